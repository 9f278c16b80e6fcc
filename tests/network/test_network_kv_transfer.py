"""Tests of KV-cache transfer flows: sharding, timing modes, and layer-wise never slower."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.network.flows import FlowNetwork
from servesim.network.kv_transfer import (
    KvFlowPlan,
    activation_flows,
    kv_ready_s,
    kv_shard_flows,
    layer_ranges,
    plan_kv_flows,
    split_between_shards,
)
from servesim.network.placement import InstanceShape, place_instances
from servesim.network.replay import FlowSpec, replay_flows
from servesim.network.topology import Topology


def test_layer_ranges_give_extra_layers_to_early_stages() -> None:
    assert layer_ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(InputError, match="num_layers"):
        layer_ranges(2, 3)


def test_equal_tp_sends_shard_i_to_shard_i() -> None:
    assert split_between_shards((0, 1), (8, 9), 10.0) == [(0, 8, 5.0), (1, 9, 5.0)]


def test_tp2_to_tp4_sends_each_prefill_shard_to_two_decode_shards() -> None:
    pieces = split_between_shards((0, 1), (8, 9, 10, 11), 8.0)
    assert pieces == [(0, 8, 2.0), (0, 9, 2.0), (1, 10, 2.0), (1, 11, 2.0)]


def test_tp3_to_tp2_splits_the_middle_shard() -> None:
    pieces = split_between_shards((0, 1, 2), (8, 9), 6.0)
    assert [(src, dst) for src, dst, _ in pieces] == [(0, 8), (1, 8), (1, 9), (2, 9)]
    assert [b for _, _, b in pieces] == pytest.approx([2.0, 1.0, 1.0, 2.0])


def test_pp_stages_map_layers() -> None:
    # Prefill pp=2 (layers 0-1, 2-3), decode pp=1: every layer goes to the one decode stage.
    flows = kv_shard_flows(
        ((0,), (1,)), ((8,),), num_tokens=10, kv_bytes_per_token=4.0, num_layers=4
    )
    assert [(f.src_gpu, f.dst_gpu, f.num_bytes, f.first_layer, f.num_layers) for f in flows] == [
        (0, 8, 20.0, 0, 2),
        (1, 8, 20.0, 2, 2),
    ]


@settings(max_examples=60, deadline=None)
@given(
    tp_p=st.integers(1, 8),
    pp_p=st.integers(1, 4),
    tp_d=st.integers(1, 8),
    pp_d=st.integers(1, 4),
    num_tokens=st.integers(0, 4096),
    num_layers=st.integers(4, 96),
)
def test_kv_bytes_are_one_copy_of_the_cache(
    tp_p: int, pp_p: int, tp_d: int, pp_d: int, num_tokens: int, num_layers: int
) -> None:
    prefill = tuple(tuple(range(s * tp_p, (s + 1) * tp_p)) for s in range(pp_p))
    decode = tuple(tuple(range(100 + s * tp_d, 100 + (s + 1) * tp_d)) for s in range(pp_d))
    flows = kv_shard_flows(prefill, decode, num_tokens, 1000.0, num_layers)
    assert sum(f.num_bytes for f in flows) == pytest.approx(num_tokens * 1000.0)
    assert sum(f.num_layers for f in flows if f.dst_gpu == decode[0][0]) >= 1


def test_after_prefill_and_layerwise_timing() -> None:
    topo = Topology(
        num_nodes=2, gpus_per_node=1, nics_per_node=1, nic_gbps=8.0, inter_node_latency_s=0.0
    )  # 1 GB/s between nodes
    shards = kv_shard_flows(((0,),), ((1,),), num_tokens=1, kv_bytes_per_token=4e9, num_layers=4)
    after = plan_kv_flows(topo, shards, "after_prefill", 1.0, 3.0, num_layers=4)
    assert (after[0].start_s, after[0].not_before_s) == (3.0, 3.0)
    layer = plan_kv_flows(topo, shards, "layerwise", 1.0, 3.0, num_layers=4)
    # First layer done at 1.5 s; 4 GB at 1 GB/s would end at 5.5 s; the floor is the last
    # layer's compute end (3 s) plus one layer's 1 GB at 1 GB/s = 4 s.
    assert layer[0].start_s == 1.5 and layer[0].not_before_s == pytest.approx(4.0)
    assert kv_ready_s(layer, [5.5]) == 5.5
    assert kv_ready_s(layer, [3.2]) == pytest.approx(4.0)
    with pytest.raises(InputError, match="kv_mode"):
        plan_kv_flows(topo, shards, "streaming", 1.0, 3.0, num_layers=4)


def test_activation_flows_split_over_tp_pairs() -> None:
    flows = activation_flows((0, 1), (8, 9), 100.0)
    assert [(f.src_gpu, f.dst_gpu, f.num_bytes) for f in flows] == [(0, 8, 50.0), (1, 9, 50.0)]


def _transfer_s(topo: Topology, plans: list[KvFlowPlan], prefill_end_s: float) -> float:
    net = FlowNetwork(topo.capacities_bytes_per_s(), topo.latencies_s())
    records = replay_flows(net, [FlowSpec(p.start_s, p.path, p.shard.num_bytes) for p in plans])
    return kv_ready_s(plans, [r.finish_s for r in records]) - prefill_end_s


shapes = st.tuples(st.integers(1, 4), st.integers(1, 3))


@settings(max_examples=60, deadline=None)
@given(
    prefill=shapes,
    decode=shapes,
    nic_gbps=st.floats(10.0, 400.0),
    num_tokens=st.integers(1, 4096),
    prefill_s=st.floats(0.0, 2.0),
    nics=st.integers(1, 4),
    affinity=st.sampled_from(["high", "low"]),
)
def test_layerwise_is_never_slower_than_after_prefill(
    prefill: tuple[int, int],
    decode: tuple[int, int],
    nic_gbps: float,
    num_tokens: int,
    prefill_s: float,
    nics: int,
    affinity: str,
) -> None:
    if affinity == "low":
        decode = (min(decode[0], 8 - prefill[0]), prefill[1])
    topo = Topology(
        num_nodes=4,
        gpus_per_node=8,
        nic_gbps=nic_gbps,
        nics_per_node=nics,
        oversubscription=2.0,
        nodes_per_leaf=2,
    )
    placed = place_instances(
        topo, [InstanceShape(*prefill, "prefill"), InstanceShape(*decode, "decode")], affinity
    )
    shards = kv_shard_flows(placed[0], placed[1], num_tokens, 2 * 40 * 5120 * 2.0, 40)
    times = {
        mode: _transfer_s(
            topo, plan_kv_flows(topo, shards, mode, 1.0, 1.0 + prefill_s, 40), 1.0 + prefill_s
        )
        for mode in ("after_prefill", "layerwise")
    }
    assert times["layerwise"] <= times["after_prefill"] * (1 + 1e-9) + 1e-12


@settings(max_examples=40, deadline=None)
@given(
    nic_gbps=st.floats(10.0, 400.0),
    factor=st.floats(1.0, 8.0),
    num_tokens=st.integers(1, 4096),
    mode=st.sampled_from(["after_prefill", "layerwise"]),
)
def test_kv_transfer_time_never_rises_with_nic_bandwidth(
    nic_gbps: float, factor: float, num_tokens: int, mode: str
) -> None:
    times = []
    for gbps in (nic_gbps, nic_gbps * factor):
        topo = Topology(num_nodes=2, gpus_per_node=8, nic_gbps=gbps, nics_per_node=2)
        placed = place_instances(
            topo, [InstanceShape(8, 1, "prefill"), InstanceShape(4, 2, "decode")]
        )
        shards = kv_shard_flows(placed[0], placed[1], num_tokens, 1e5, 40)
        times.append(_transfer_s(topo, plan_kv_flows(topo, shards, mode, 0.0, 0.5, 40), 0.5))
    assert times[1] <= times[0] * (1 + 1e-9) + 1e-12
