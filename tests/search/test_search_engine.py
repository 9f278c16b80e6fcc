"""The search on the real engine, small and fast: exhaustive vs pruned, workers, CLI outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from servesim.cli import run_app
from servesim.search import (
    BisectionSpec,
    ExecutorSpec,
    SearchOptions,
    SearchProblem,
    WorkloadSpec,
    search,
)
from servesim.specs import get_model, make_cluster


def small_problem(num_requests: int = 300) -> SearchProblem:
    cluster = make_cluster("a100-80gb", num_nodes=1, gpus_per_node=2)
    return SearchProblem(
        get_model("opt-13b"),
        cluster,
        WorkloadSpec("sharegpt", num_requests=num_requests),
        0.25,
        0.1,
        BisectionSpec(rel_tol=0.05),
    )


def picks(result) -> tuple:
    return tuple(
        (c.id, c.goodput_per_s) for c in (result.best_colocated, result.best_disaggregated) if c
    )


def test_engine_search_pruning_keeps_the_exhaustive_pick() -> None:
    problem = small_problem()
    pruned = search(problem, SearchOptions(round_size=1), ExecutorSpec(workers=1))
    full = search(problem, SearchOptions(prune=False), ExecutorSpec(workers=1))
    assert picks(pruned) == picks(full)
    assert pruned.num_simulations <= full.num_simulations


def test_engine_search_same_with_two_workers() -> None:
    problem = small_problem(200)
    one = search(problem, SearchOptions(), ExecutorSpec(workers=1))
    two = search(problem, SearchOptions(), ExecutorSpec(workers=2))
    assert [(c.id, c.goodput_per_s) for c in one.candidates] == [
        (c.id, c.goodput_per_s) for c in two.candidates
    ]


ARGS = ["search", "--gpus-per-node", "2", "--requests", "200", "--workers", "1", "--quiet"]


def test_cli_json_and_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = run_app([*ARGS, "--json", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    obj = json.loads(capsys.readouterr().out)
    for key in ("best", "best_colocated", "best_disaggregated", "candidates"):
        assert key in obj
    best = obj["best_colocated"]
    assert best["mode"] == "colocated" and best["decode"] is None
    assert set(best["prefill"]) == {"tp", "pp", "instances"}
    assert best["goodput_per_gpu_per_s"] == pytest.approx(best["goodput_per_s"] / best["num_gpus"])
    assert json.loads((out / "search.json").read_text())["best"] == obj["best"]
    with (out / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {
        "candidate_id",
        "rate_per_s",
        "attainment_ttft",
        "attainment_tpot",
        "attainment_joint",
    }
    assert (out / "candidates.csv").exists()
    for folder in ("best_colocated", "best_disaggregated"):
        if obj[folder] is not None:
            for name in ("summary.json", "records.csv", "slo_scale.csv"):
                assert (out / folder / name).exists()
    # a second run is answered from the cache
    assert run_app([*ARGS, "--json", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert json.loads(capsys.readouterr().out)["num_simulations"] == 0


def test_cli_cluster_too_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_app(
        ["search", "--model", "opt-175b", "--gpus-per-node", "2", "--no-cache", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "needs at least" in err and "Traceback" not in err


def test_cli_unreachable_slos_name_the_binding_slo(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_app([*ARGS, "--ttft-slo", "0.001", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2 and "best" in err and "TTFT SLO binds" in err


def test_cli_ray_missing_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("servesim")
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    code = run_app([*ARGS, "--ray", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install" in err
