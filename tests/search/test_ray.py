"""The search on Ray gives the same candidates as the local pool (runs where Ray is installed)."""

from __future__ import annotations

import pytest
from tests.search.test_search_engine import small_problem

from servesim.search import ExecutorSpec, SearchOptions, search

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'servesim[ray]'")


def test_ray_equals_local_pool() -> None:
    problem = small_problem(200)
    local = search(problem, SearchOptions(), ExecutorSpec(workers=1))
    try:
        on_ray = search(problem, SearchOptions(), ExecutorSpec(ray_address=""))
    finally:
        ray.shutdown()
    assert [(c.id, c.goodput_per_s) for c in on_ray.candidates] == [
        (c.id, c.goodput_per_s) for c in local.candidates
    ]
