"""`servesim simulate` with the network model: the JSON object, the table, bad topologies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from servesim.cli import run_app
from servesim.network.deployment import activation_link_bytes, tokens_through
from servesim.network.topology import Topology

DISAGG = [
    "simulate",
    "--model",
    "opt-13b",
    "--mode",
    "disagg",
    "--prefill-tp",
    "2",
    "--prefill-instances",
    "4",
    "--decode-tp",
    "2",
    "--decode-instances",
    "4",
    "--nodes",
    "2",
    "--nic-gbps",
    "25",
    "--isl",
    "512",
    "--osl",
    "8",
    "--rate",
    "10",
    "--requests",
    "60",
]


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert run_app([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_disagg_json_has_the_network_object(capsys: pytest.CaptureFixture[str]) -> None:
    net = run_json(DISAGG, capsys)["network"]
    kv = net["kv_transfer_s"]
    assert set(kv) >= {"mean", "p50", "p90", "p99", "bytes_moved"}
    assert kv["num_transfers"] == 60 and kv["mean"] > 0 and kv["p50"] <= kv["p99"]
    assert net["links"] and all(
        set(link) == {"name", "bytes", "utilization"} for link in net["links"]
    )
    assert net["bottleneck"]["name"] == net["links"][0]["name"]
    assert all(0 < link["utilization"] <= 1 for link in net["links"])
    assert 0 < net["ttft_share"] < 1
    assert net["topology"]["nic_gbps"] == 25.0 and net["affinity"] == "high"
    tx_bytes = sum(link["bytes"] for link in net["links"] if link["name"].endswith(".tx"))
    assert tx_bytes == pytest.approx(kv["bytes_moved"], rel=1e-9)


def test_flags_reach_the_topology_and_modes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *DISAGG,
        "--nvlink-gbps",
        "1200",
        "--nics-per-node",
        "2",
        "--oversubscription",
        "2",
        "--affinity",
        "low",
        "--kv-transfer",
        "layerwise",
    ]
    net = run_json(argv, capsys)["network"]
    assert net["topology"]["nvlink_gbps"] == pytest.approx(1200.0)
    assert net["topology"]["nics_per_node"] == 2 and net["topology"]["oversubscription"] == 2.0
    assert net["affinity"] == "low" and net["kv_transfer"] == "layerwise"
    # pairs share a node; the engine's dispatcher may still send KV to another pair's decode
    assert any("nvlink" in link["name"] for link in net["links"])


def test_network_off_and_colocated_default_omit_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert "network" not in run_json([*DISAGG, "--no-network"], capsys)
    colocated = [
        "simulate",
        "--model",
        "opt-13b",
        "--isl",
        "64",
        "--osl",
        "4",
        "--rate",
        "5",
        "--requests",
        "20",
    ]
    assert "network" not in run_json(colocated, capsys)


def test_colocated_pipeline_across_nodes_reports_activation_bytes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "simulate",
        "--model",
        "opt-13b",
        "--pp",
        "2",
        "--nodes",
        "2",
        "--gpus-per-node",
        "1",
        "--isl",
        "100",
        "--osl",
        "11",
        "--rate",
        "5",
        "--requests",
        "20",
        "--network",
    ]
    net = run_json(argv, capsys)["network"]
    per_request = (100 + 10) * 5120 * 2  # tokens x hidden x 2 bytes, one stage boundary
    assert net["kv_transfer_s"]["bytes_moved"] == 0
    names = {link["name"]: link["bytes"] for link in net["links"]}
    assert names == {
        "n0.nic0.tx": pytest.approx(20 * per_request),
        "n1.nic0.rx": pytest.approx(20 * per_request),
    }


def test_table_prints_a_network_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(DISAGG) == 0
    out = capsys.readouterr().out
    assert "network: KV transfer" in out and "bottleneck link" in out


@pytest.mark.parametrize(
    ("argv", "numbers"),
    [
        (["--prefill-tp", "16", "--nodes", "4"], ["16", "8"]),
        (["--prefill-tp", "4", "--prefill-instances", "4", "--nodes", "2"], ["24", "16"]),
        (
            [
                "--prefill-tp",
                "2",
                "--prefill-instances",
                "3",
                "--decode-instances",
                "2",
                "--gpus-per-node",
                "5",
            ],
            ["2", "[1, 1]"],
        ),
    ],
)
def test_bad_topology_is_one_line_with_numbers(
    argv: list[str], numbers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "simulate",
        "--model",
        "opt-13b",
        "--mode",
        "disagg",
        "--decode-tp",
        "2",
        "--decode-instances",
        "4",
        "--nodes",
        "2",
        "--rate",
        "1",
        "--requests",
        "5",
    ]
    assert run_app([*base, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert all(n in err for n in numbers), err


def test_activation_bytes_split_over_tp_ranks() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=2, nics_per_node=2)
    placements = [((0, 1), (2, 3))]
    carried = activation_link_bytes(topo, placements, np.array([10.0]), hidden_size=100)
    total = 10 * 100 * 2
    by_name = {link.name: b for link, b in zip(topo.links(), carried, strict=True) if b}
    assert by_name == {
        "n0.nic0.tx": total / 2,
        "n0.nic1.tx": total / 2,
        "n1.nic0.rx": total / 2,
        "n1.nic1.rx": total / 2,
    }


def test_tokens_through_counts_prefill_and_decode_tokens() -> None:
    from types import SimpleNamespace

    records = SimpleNamespace(
        prefill_end_s=np.array([1.0, 1.0, np.nan]),
        finish_s=np.array([2.0, np.nan, np.nan]),
        prefill_instance=np.array([0, 0, -1]),
        decode_instance=np.array([1, 1, -1]),
        input_tokens=np.array([10, 20, 30]),
        output_tokens=np.array([5, 5, 5]),
    )
    assert tokens_through(records, 2).tolist() == [30.0, 4.0]
