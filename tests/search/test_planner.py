"""The planner with a synthetic evaluator: pruning, determinism across workers, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.search.fakes import CALLS, FakeEvaluator

from servesim.errors import InputError
from servesim.search import (
    ExecutorSpec,
    SearchOptions,
    SearchProblem,
    SearchResult,
    WorkloadSpec,
    search,
)
from servesim.specs import get_model, make_cluster


def make_problem(
    nodes: int = 1,
    gpus_per_node: int = 4,
    model: str = "opt-13b",
    ttft: float = 0.25,
    tpot: float = 0.1,
) -> SearchProblem:
    return SearchProblem(
        get_model(model),
        make_cluster("a100-80gb", num_nodes=nodes, gpus_per_node=gpus_per_node),
        WorkloadSpec("sharegpt", num_requests=200),
        ttft,
        tpot,
    )


def run(
    problem: SearchProblem,
    cache: Path | None = None,
    workers: int = 1,
    prune: bool = True,
    affinity: str = "both",
    round_size: int = 8,
) -> SearchResult:
    return search(
        problem,
        SearchOptions(affinity=affinity, prune=prune, round_size=round_size),
        ExecutorSpec(workers=workers, cache_dir=str(cache) if cache else None),
        evaluator=FakeEvaluator(),
    )


def summary(result: SearchResult) -> list[tuple[str, str, float | None]]:
    return [(c.id, c.status, c.goodput_per_s) for c in result.candidates + result.phases]


def test_search_finds_both_modes_and_ranks_by_goodput_per_gpu() -> None:
    result = run(make_problem())
    assert result.best_colocated is not None and result.best_disaggregated is not None
    per_gpu = [c.goodput_per_gpu_per_s for c in result.candidates if c.goodput_per_s]
    assert per_gpu == sorted(per_gpu, reverse=True)
    assert result.best is not None and result.ratio is not None and result.ratio > 0
    assert all(c.stage == "final" for c in (result.best_colocated, result.best_disaggregated))
    assert all(
        c.status == "infeasible"
        for c in result.all_evaluated
        if c.unit.group("prefill") and c.unit.num_gpus == 1
    )


@pytest.mark.parametrize("nodes,gpus", [(1, 8), (2, 2)])
def test_pruning_never_removes_the_pick_of_the_exhaustive_search(nodes: int, gpus: int) -> None:
    problem = make_problem(nodes, gpus)
    pruned, full = run(problem, round_size=2), run(problem, prune=False)
    for attr in ("best_colocated", "best_disaggregated"):
        a, b = getattr(pruned, attr), getattr(full, attr)
        assert (a.id, a.goodput_per_s) == (b.id, b.goodput_per_s)
    assert pruned.num_simulations <= full.num_simulations
    high = run(problem, affinity="high", round_size=2)
    high_full = run(problem, prune=False, affinity="high")
    assert high.best_disaggregated.id == high_full.best_disaggregated.id
    if nodes * gpus >= 8:  # enough configurations for pruning to bite
        assert any(c.status == "pruned" for c in high.phases)


def test_same_ranking_with_one_and_two_workers() -> None:
    problem = make_problem(1, 4)
    assert summary(run(problem, workers=1)) == summary(run(problem, workers=2))


def test_resumed_search_recomputes_nothing(tmp_path: Path) -> None:
    problem = make_problem(1, 4)
    CALLS.clear()
    first = run(problem, cache=tmp_path)
    num_calls = sum(CALLS.values())
    # a final re-simulation identical to an earlier unit is answered from the cache already
    assert first.num_simulations == num_calls > 0
    CALLS.clear()
    again = run(problem, cache=tmp_path)
    assert sum(CALLS.values()) == 0 and again.num_simulations == 0
    assert again.num_cached_points == first.num_simulations + first.num_cached_points
    assert summary(again) == summary(first)


def test_interrupted_search_resumes_from_partial_cache(tmp_path: Path) -> None:
    problem = make_problem(1, 4)
    run(problem, cache=tmp_path, affinity="none")  # a first, partial search
    CALLS.clear()
    full = run(problem, cache=tmp_path)
    fresh = run(make_problem(1, 4), affinity="both")
    assert full.num_cached_points > 0
    assert full.num_simulations == fresh.num_simulations - full.num_cached_points
    assert summary(full) == summary(fresh)


def test_a_changed_input_misses_the_cache(tmp_path: Path) -> None:
    run(make_problem(1, 4), cache=tmp_path, affinity="none")
    other = run(make_problem(1, 4, tpot=0.2), cache=tmp_path, affinity="none")
    assert other.num_cached_points == 0


def test_cluster_too_small_says_what_is_needed() -> None:
    problem = make_problem(1, 1, model="opt-175b")
    with pytest.raises(InputError) as err:
        run(problem)
    message = str(err.value)
    assert "needs at least" in message and "GiB" in message and "1 GPUs" in message


def test_rate_target_sets_the_replicas() -> None:
    problem = make_problem(1, 4)
    fill = search(
        problem, SearchOptions(affinity="none"), ExecutorSpec(workers=1), evaluator=FakeEvaluator()
    )
    small = search(
        problem,
        SearchOptions(affinity="none", rate_per_s=0.5),
        ExecutorSpec(workers=1),
        evaluator=FakeEvaluator(),
    )
    assert small.best_colocated.num_gpus < fill.best_colocated.num_gpus
