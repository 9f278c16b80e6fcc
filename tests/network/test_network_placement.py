"""Tests of instance placement: first-fit, node affinity and error messages."""

from __future__ import annotations

import pytest

from servesim.errors import InputError
from servesim.network.placement import InstanceShape, pair_prefill_decode, place_instances
from servesim.network.topology import Topology


def _topo(num_nodes: int = 2, gpus_per_node: int = 8) -> Topology:
    return Topology(num_nodes=num_nodes, gpus_per_node=gpus_per_node)


def test_first_fit_fills_nodes_in_order() -> None:
    shapes = [
        InstanceShape(4, 1, "prefill"),
        InstanceShape(2, 2, "decode"),
        InstanceShape(4, 1, "colocated"),
    ]
    placed = place_instances(_topo(), shapes)
    assert placed == [((0, 1, 2, 3),), ((4, 5), (6, 7)), ((8, 9, 10, 11),)]


def test_pipeline_stages_may_span_nodes() -> None:
    placed = place_instances(_topo(num_nodes=2, gpus_per_node=4), [InstanceShape(4, 2, "prefill")])
    assert placed == [((0, 1, 2, 3), (4, 5, 6, 7))]


def test_low_affinity_puts_same_stage_on_one_node() -> None:
    topo = _topo(num_nodes=3, gpus_per_node=8)
    shapes = [
        InstanceShape(2, 3, "prefill"),
        InstanceShape(4, 3, "decode"),
        InstanceShape(1, 1, "colocated"),
    ]
    prefill, decode, colocated = place_instances(topo, shapes, affinity="low")
    for p_stage, d_stage in zip(prefill, decode, strict=True):
        assert {topo.node_of(g) for g in p_stage + d_stage} == {topo.node_of(p_stage[0])}
    assert prefill == ((0, 1), (8, 9), (16, 17))
    assert colocated == ((6,),)


def test_pairs_are_in_order() -> None:
    shapes = [InstanceShape(1, 1, r) for r in ("decode", "prefill", "prefill", "decode")]
    assert pair_prefill_decode(shapes) == [(1, 0), (2, 3)]


def test_tp_larger_than_node_is_rejected_with_numbers() -> None:
    with pytest.raises(InputError, match=r"shapes\[0\]\.tp=16 .*gpus_per_node=8"):
        place_instances(_topo(), [InstanceShape(16, 1, "prefill")])


def test_too_many_gpus_is_rejected_with_numbers() -> None:
    shapes = [InstanceShape(8, 2, "prefill"), InstanceShape(1, 1, "decode")]
    with pytest.raises(InputError, match="need 17 GPUs; the cluster has 16"):
        place_instances(_topo(), shapes)


def test_fragmentation_reports_free_gpus_per_node() -> None:
    shapes = [
        InstanceShape(3, 1, "prefill"),
        InstanceShape(3, 1, "prefill"),
        InstanceShape(2, 1, "decode"),
    ]
    with pytest.raises(InputError, match=r"shapes\[2\].*needs 2 free GPUs on one node; .*\[1, 1\]"):
        place_instances(_topo(num_nodes=2, gpus_per_node=4), shapes)


def test_low_affinity_needs_equal_pp_and_room_on_a_node() -> None:
    with pytest.raises(InputError, match=r"shapes\[1\]\.pp=1 .*pp=2"):
        place_instances(
            _topo(), [InstanceShape(2, 2, "prefill"), InstanceShape(2, 1, "decode")], affinity="low"
        )
    with pytest.raises(InputError, match=r"needs 6\+4 free GPUs on one node"):
        place_instances(
            _topo(), [InstanceShape(6, 1, "prefill"), InstanceShape(4, 1, "decode")], affinity="low"
        )


def test_bad_role_tp_and_affinity() -> None:
    with pytest.raises(InputError, match="role"):
        InstanceShape(1, 1, "train")
    with pytest.raises(InputError, match="tp=0"):
        InstanceShape(0, 1, "decode")
    with pytest.raises(InputError, match="affinity"):
        place_instances(_topo(), [], affinity="medium")
