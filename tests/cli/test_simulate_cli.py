"""`servesim simulate` and scenario files: output keys, determinism, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servesim.cli import run_app

SMALL = ["simulate", "--model", "opt-13b", "--requests", "200", "--rate", "2"]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert run_app([*SMALL, *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys)
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(out[key]) >= {"mean", "p50", "p90", "p99"}
    assert set(out["attainment"]) >= {"ttft", "tpot", "joint"}
    assert set(out["throughput"]) >= {"requests_per_s", "output_tokens_per_s"}
    assert set(out["requests"]) >= {"arrived", "finished", "rejected", "preempted"}
    assert out["requests"]["arrived"] == 200


def test_disaggregated_run(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "disagg", "--prefill-tp", "2", "--decode-tp", "2")
    assert out["requests"]["finished"] == 200
    assert out["ttft_s"]["p50"] > 0


def test_same_seed_gives_identical_records(tmp_path: Path) -> None:
    paths = [tmp_path / f"r{i}.csv" for i in range(2)]
    for path in paths:
        assert run_app([*SMALL, "--seed", "7", "--records", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = tmp_path / "other.csv"
    assert run_app([*SMALL, "--seed", "8", "--records", str(other)]) == 0
    assert other.read_bytes() != paths[0].read_bytes()


def test_out_folder_and_timeline(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_app([*SMALL, "--out", str(out), "--timeline", str(out / "trace.json")]) == 0
    assert {p.name for p in out.iterdir()} >= {
        "summary.json",
        "records.csv",
        "instances.csv",
        "trace.json",
    }
    assert "traceEvents" in json.loads((out / "trace.json").read_text())


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_scenario_file_and_flag_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    body = {
        ".yaml": "model: opt-13b\nrequests: 100\nrate: 1.5\ntp: 2\n",
        ".toml": 'model = "opt-13b"\nrequests = 100\nrate = 1.5\ntp = 2\n',
    }[suffix]
    path = tmp_path / f"s{suffix}"
    path.write_text(body)
    assert run_app(["simulate", "--scenario", str(path), "--requests", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"]["arrived"] == 50


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate", "-1"], "rate"),
        (["--model", "opt-13"], "closest known: opt-13b"),
        (["--gpu", "a100"], "gpu"),
        (["--tp", "3"], "tp"),
        (["--tp", "16"], "GPUs"),
        (["--mode", "both"], "mode"),
        (["--workload", "nope"], "workload"),
        (["--isl", "100"], "isl"),
        (["--trace", "/nonexistent.csv"], "nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    base = ["simulate", "--requests", "20"]
    if "--rate" not in args:
        base += ["--rate", "1"]
    assert run_app([*base, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:") and needle in err
    assert "Traceback" not in err


def test_model_that_does_not_fit_names_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["simulate", "--model", "opt-66b", "--rate", "1", "--requests", "10"]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "use more GPUs" in err


def test_backend_profile_changes_the_latency(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--isl", "512", "--osl", "64"]
    plain = run_json(capsys, *base)
    vllm = run_json(capsys, *base, "--backend", "vllm")
    assert vllm["tpot_s"]["mean"] != pytest.approx(plain["tpot_s"]["mean"], rel=0.01)
    assert run_app([*SMALL, "--backend", "nope"]) == 2
    assert "backend" in capsys.readouterr().err


def test_decode_kv_policy_flag(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "disagg", "--decode-kv-policy", "reserve")
    assert out["requests"]["finished"] == 200
    assert run_app([*SMALL, "--decode-kv-policy", "sometimes"]) == 2


def test_precision_flags_change_the_latency(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--requests", "100"]
    runs = {}
    for flags in ((), ("--precision", "fp8"), ("--precision", "fp8", "--kv-precision", "bf16")):
        assert run_app([*base, "--rate", "2", *flags, "--json"]) == 0
        runs[flags] = json.loads(capsys.readouterr().out)["tpot_s"]["mean"]
    bf16, fp8, fp8_bf16_kv = runs.values()
    assert fp8 < bf16  # half the weight bytes per decode step
    assert fp8 <= fp8_bf16_kv < bf16  # an fp8 cache reads half the KV bytes too
    assert run_app([*base, "--rate", "2", "--precision", "fp5"]) == 2
    assert "precision" in capsys.readouterr().err


def test_search_reads_the_precision_flags() -> None:
    from servesim.cli.search import SearchScenario, build_problem

    problem = build_problem(SearchScenario(model="llama-3.1-8b", precision="fp4"))
    assert (problem.model.dtype, problem.model.kv_bytes_per_element) == ("fp4", 1.0)
    kv16 = build_problem(SearchScenario(model="llama-3.1-8b", precision="fp8", kv_precision="bf16"))
    assert (kv16.model.dtype, kv16.model.kv_dtype) == ("fp8", "bf16")
