"""Malformed engine inputs stop with an InputError naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from servesim.engine import Deployment, InstanceGroup, simulate
from servesim.errors import InputError
from servesim.specs.parallel import ParallelSpec

from .factories import CLUSTER, MODEL, deployment, fixed_workload, group, stubs

P1 = ParallelSpec(1, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "router"}, "role"),
        ({"num_instances": 0}, "colocated.num_instances"),
        ({"policy": "orca"}, "colocated.policy"),
        ({"max_batch_seqs": 0}, "colocated.max_batch_seqs"),
        ({"max_prefill_tokens": -5}, "colocated.max_prefill_tokens"),
        ({"chunk_tokens": 1.5}, "colocated.chunk_tokens"),
        ({"kv_capacity_tokens": 0}, "colocated.kv_capacity_tokens"),
    ],
)
def test_bad_group_fields(kwargs: dict, field: str) -> None:
    args = {"role": "colocated", "parallel": P1, **kwargs}
    with pytest.raises(InputError) as err:
        InstanceGroup(**args)
    assert err.value.field == field


@pytest.mark.parametrize(
    "roles",
    [
        (),
        ("decode", "prefill"),
        ("colocated", "colocated"),
        ("colocated", "decode"),
        ("prefill", "prefill"),
    ],
)
def test_bad_group_combinations(roles: tuple[str, ...]) -> None:
    with pytest.raises(InputError, match="groups"):
        Deployment(MODEL, CLUSTER, tuple(group(r) for r in roles))


def test_bad_deployment_fields() -> None:
    with pytest.raises(InputError, match="kv_transfer"):
        Deployment(MODEL, CLUSTER, (group("colocated"),), kv_transfer="teleport")
    with pytest.raises(InputError, match="block_tokens"):
        Deployment(MODEL, CLUSTER, (group("colocated"),), block_tokens=0)
    with pytest.raises(InputError, match="16 GPUs"):
        Deployment(MODEL, CLUSTER, (group("colocated", num_instances=17),))


def test_parallelism_rules_are_checked() -> None:
    dep = Deployment(MODEL, CLUSTER, (group("colocated", tp=3),))  # 40 heads, TP 3
    with pytest.raises(InputError, match="tp"):
        simulate(dep, fixed_workload(1, 5))


def test_bad_simulate_arguments() -> None:
    dep = deployment("colocated")
    not_a_workload: Any = [1, 2, 3]
    not_a_deployment: Any = "colocated"
    with pytest.raises(InputError, match="seed"):
        simulate(dep, fixed_workload(1, 5), seed=-1)
    with pytest.raises(InputError, match="workload"):
        simulate(dep, not_a_workload)
    with pytest.raises(InputError, match="deployment"):
        simulate(not_a_deployment, fixed_workload(1, 5))
    with pytest.raises(InputError, match="latency_models"):
        simulate(dep, fixed_workload(1, 5), latency_models=stubs("disagg"))
