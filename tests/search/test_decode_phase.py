"""The decode-only phase counts the wait for KV memory against TPOT (engine v2 regression)."""

from __future__ import annotations

from servesim.search import SearchProblem, WorkloadSpec
from servesim.search.evaluate import SimEvaluator
from servesim.search.shapes import decode_only
from servesim.specs import get_model, make_cluster


def _problem() -> SearchProblem:
    cluster = make_cluster("a100-80gb", num_nodes=1, gpus_per_node=2)
    workload = WorkloadSpec("sharegpt", num_requests=200)
    return SearchProblem(get_model("opt-13b"), cluster, workload, 0.25, 0.1)


def test_overloaded_decode_instance_misses_tpot() -> None:
    # Far above any decode capacity: requests queue for KV memory, so TPOT must fail.
    point = SimEvaluator().point(_problem(), decode_only(1, 1), 2000.0)
    assert point.attainment_tpot < 0.9


def test_light_load_decode_instance_meets_tpot() -> None:
    point = SimEvaluator().point(_problem(), decode_only(1, 1), 0.5)
    assert point.attainment_tpot > 0.9
