"""`search --nic-gbps A,B,...`: one search per NIC bandwidth, goodput against bandwidth."""

from __future__ import annotations

import json

import pytest

from servesim.cli import run_app

BASE = [
    "search",
    "--gpus-per-node",
    "2",
    "--nodes",
    "2",
    "--requests",
    "150",
    "--workers",
    "1",
    "--no-cache",
    "--affinity",
    "high",
]


def test_sweep_prints_one_row_per_bandwidth(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app([*BASE, "--nic-gbps", "10,400", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["nic_gbps_sweep"]
    assert [r["nic_gbps"] for r in rows] == [10.0, 400.0]
    for row in rows:
        assert {"best", "best_colocated", "best_disaggregated"} <= set(row)
    slow, fast = (r["best_disaggregated"] for r in rows)
    if slow and fast:  # a faster NIC never lowers the disaggregated goodput
        assert fast["goodput_per_s"] >= slow["goodput_per_s"] * 0.98


@pytest.mark.parametrize("value", ["25,-1", "fast", "0"])
def test_bad_bandwidth_is_one_line(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert run_app([*BASE, "--nic-gbps", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nic_gbps" in err
