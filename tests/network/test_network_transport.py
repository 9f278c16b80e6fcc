"""FlowTransport inside the engine: bytes, monotonicity, layerwise vs after-prefill, fast path."""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.network import FlowTransport, Topology, place_instances, plan_kv_flows
from servesim.network.deployment import instance_shapes
from servesim.network.kv_transfer import kv_ready_s, kv_shard_flows
from servesim.network.placement import InstanceShape
from servesim.network.topology import gbps_to_bytes_per_s

from .factories import MODEL, disagg, run, workload

KV_PER_TOKEN = MODEL.kv_bytes_per_token


def kv_bytes_of_transferred(records: object) -> float:
    moved = ~np.isnan(records.kv_end_s)  # type: ignore[attr-defined]
    return float(records.input_tokens[moved].sum()) * KV_PER_TOKEN  # type: ignore[attr-defined]


def test_bytes_moved_equal_kv_bytes_of_finished_requests() -> None:
    result, tr = run(disagg(25.0), workload(20, 300))
    rec = result.records
    finished = ~np.isnan(rec.finish_s) & (rec.output_tokens > 1)
    expected = float(rec.input_tokens[finished].sum()) * KV_PER_TOKEN
    assert result.counts.finished == 300
    assert tr.num_transfers == int(finished.sum())
    assert tr.bytes_moved == pytest.approx(expected, rel=1e-12)
    assert tr.num_active == 0


def test_every_transfer_byte_crosses_one_nic_each_way() -> None:
    """Prefill on node 0, decode on node 1: the NIC tx of node 0 and rx of node 1 each carry
    all the KV bytes, and nothing else carries any."""
    result, tr = run(disagg(25.0, num_instances=(4, 4)), workload(20, 200))
    names = [link.name for link in tr.topology.links()]
    carried = dict(zip(names, tr.link_bytes(), strict=True))
    tx = sum(b for n, b in carried.items() if n.startswith("n0.nic") and n.endswith(".tx"))
    rx = sum(b for n, b in carried.items() if n.startswith("n1.nic") and n.endswith(".rx"))
    other = sum(b for n, b in carried.items() if "nic" not in n)
    assert tx == pytest.approx(tr.bytes_moved, rel=1e-9)
    assert rx == pytest.approx(tr.bytes_moved, rel=1e-9)
    assert other == 0.0
    assert tr.bytes_moved == pytest.approx(kv_bytes_of_transferred(result.records), rel=1e-12)


def test_transfer_time_never_rises_when_nic_bandwidth_rises() -> None:
    means = []
    for gbps in (10.0, 25.0, 50.0, 100.0, 200.0, 400.0):
        result, _ = run(disagg(gbps), workload(20, 200))
        spans = result.records.kv_end_s - result.records.kv_start_s
        means.append(float(np.nanmean(spans)))
    assert all(b <= a for a, b in itertools.pairwise(means)), means
    assert means[0] > 10 * means[-1]


@pytest.mark.parametrize("nic_gbps", [5.0, 25.0, 100.0])
@pytest.mark.parametrize("kv_mode", ["after_prefill", "layerwise"])
def test_solo_fast_path_matches_the_flow_network_reference(nic_gbps: float, kv_mode: str) -> None:
    dep = disagg(nic_gbps, tp=(2, 4), kv_transfer=kv_mode)
    topo = Topology.from_cluster(dep.cluster)
    placements = place_instances(topo, instance_shapes(dep))
    layers = MODEL.num_layers
    fast = FlowTransport(topo, placements, layers, kv_mode)
    reference = FlowTransport(topo, placements, layers, kv_mode, solo=False)
    a, _ = run(dep, workload(30, 200), transport=fast)
    b, _ = run(dep, workload(30, 200), transport=reference)
    assert np.allclose(a.records.kv_end_s, b.records.kv_end_s, rtol=1e-9, atol=1e-12)
    assert np.all(a.records.kv_end_s >= a.records.kv_start_s)
    assert np.allclose(fast.link_bytes(), reference.link_bytes(), rtol=1e-9)
    assert fast.bytes_moved == pytest.approx(reference.bytes_moved, rel=1e-12)
    assert fast.num_solo > 0 and reference.num_solo == 0


def test_lone_transfer_takes_latency_plus_shard_bytes_over_nic() -> None:
    dep = disagg(25.0, tp=(2, 2), num_instances=(4, 4))
    result, _ = run(dep, workload(1.0, 1, isl=1000, osl=4))
    rec = result.records
    shard_bytes = 1000 * KV_PER_TOKEN / 2
    expected_s = dep.cluster.inter_node_latency_s + shard_bytes / gbps_to_bytes_per_s(25.0)
    assert rec.kv_end_s[0] - rec.kv_start_s[0] == pytest.approx(expected_s, rel=1e-9)


def test_low_affinity_keeps_transfers_on_nvlink() -> None:
    dep = disagg(25.0, tp=(2, 2), num_instances=(2, 2))
    _, tr_low = run(dep, workload(10, 100), affinity="low")
    names = [
        link.name
        for link, b in zip(tr_low.topology.links(), tr_low.link_bytes(), strict=True)
        if b > 0
    ]
    assert names and all("nvlink" in n for n in names)


def test_background_load_slows_a_lone_transfer() -> None:
    from servesim.network import flow_transport

    dep = disagg(25.0, tp=(1, 1), num_instances=(8, 8))
    wl = workload(1.0, 1, isl=1000, osl=4)
    free, _ = run(dep, wl)
    tr = flow_transport(dep, background_gbps={"n0.nic0.tx": 20.0})
    loaded, _ = run(dep, wl, transport=tr)
    spans = [r.records.kv_end_s[0] - r.records.kv_start_s[0] for r in (free, loaded)]
    assert spans[1] == pytest.approx(spans[0] * 5, rel=1e-3)  # 25 -> 5 Gbps left


@settings(max_examples=15, deadline=None)
@given(
    isl=st.integers(1, 2000),
    nic_gbps=st.sampled_from([1.0, 10.0, 25.0, 100.0, 400.0]),
    tps=st.sampled_from([(1, 1), (2, 2), (2, 4), (4, 2), (4, 4)]),
)
def test_layerwise_never_slower_than_after_prefill_for_a_lone_request(
    isl: int, nic_gbps: float, tps: tuple[int, int]
) -> None:
    ttft = {}
    for mode in ("after_prefill", "layerwise"):
        result, _ = run(
            disagg(nic_gbps, tp=tps, num_instances=(1, 1), kv_transfer=mode),
            workload(1.0, 1, isl=isl, osl=4),
        )
        ttft[mode] = float(result.records.first_token_s[0] - result.records.arrival_s[0])
    assert ttft["layerwise"] <= ttft["after_prefill"] * (1 + 1e-12)


def test_layerwise_lone_transfer_matches_plan_kv_flows() -> None:
    dep = disagg(10.0, tp=(2, 2), num_instances=(4, 4), kv_transfer="layerwise")
    result, tr = run(dep, workload(1.0, 1, isl=1800, osl=4))
    rec = result.records
    start_s, end_s = float(rec.prefill_start_s[0]), float(rec.prefill_end_s[0])
    prefill, decode = (
        tr.placements[int(rec.prefill_instance[0])],
        tr.placements[int(rec.decode_instance[0])],
    )
    shards = kv_shard_flows(prefill, decode, 1800, KV_PER_TOKEN, MODEL.num_layers)
    plans = plan_kv_flows(tr.topology, shards, "layerwise", start_s, end_s, MODEL.num_layers)
    alone = [
        p.start_s
        + tr.topology.path_latency_s(p.path)
        + p.shard.num_bytes / tr.topology.path_bandwidth_bytes_per_s(p.path)
        for p in plans
    ]
    assert rec.kv_end_s[0] == pytest.approx(kv_ready_s(plans, alone), rel=1e-9)
    assert rec.kv_end_s[0] > end_s


def test_two_transfers_on_one_link_share_it_after_a_hand_over() -> None:
    topo = Topology(
        num_nodes=2, gpus_per_node=1, nic_gbps=8.0, nics_per_node=1, inter_node_latency_s=0.0
    )
    placements = place_instances(
        topo, [InstanceShape(1, 1, "prefill"), InstanceShape(1, 1, "decode")]
    )
    tr = FlowTransport(topo, placements, num_layers=4)
    [(a, a_end)] = tr.start(0.0, 0, 0, 1, 2e9)  # 1e9 bytes/s: alone it ends at 2 s
    assert a_end == pytest.approx(2.0) and tr.num_solo == 1
    moved = dict(tr.start(1.0, 1, 0, 1, 1e9))  # a has 1e9 left; both get 0.5e9 bytes/s
    b = max(moved)
    assert moved[b] == pytest.approx(3.0) and moved[a] == pytest.approx(3.0)
    assert tr.complete(3.0, a) == []
    assert tr.complete(3.0, b) == []
    assert tr.bytes_moved == pytest.approx(3e9)
    assert sum(tr.link_bytes()) == pytest.approx(2 * 3e9)  # tx and rx each carry every byte


def test_a_transfer_re_arms_until_its_last_shard_flow_ends() -> None:
    """Uneven shards (PP 2 -> PP 1 with an odd layer split) end at different times."""
    topo = Topology(
        num_nodes=2, gpus_per_node=2, nic_gbps=8.0, nics_per_node=2, inter_node_latency_s=0.0
    )
    placements = place_instances(
        topo, [InstanceShape(1, 2, "prefill"), InstanceShape(1, 1, "decode")]
    )
    tr = FlowTransport(topo, placements, num_layers=3)
    [(tid, first_s)] = tr.start(0.0, 0, 0, 1, 3e9)
    second = tr.complete(first_s, tid)
    assert [t for t, _ in second] == [tid] and second[0][1] > first_s
    assert tr.complete(second[0][1], tid) == []
    assert math.isclose(tr.bytes_moved, 3e9)


def drive(tr: FlowTransport, starts: list[tuple[float, int, int, float]]) -> dict[int, float]:
    """A minimal engine loop: start transfers (time, src, dst, bytes) in order, fire each
    transfer's latest event, re-arm as told; the end time of every transfer."""
    heap: list[tuple[float, int, int]] = []
    version: dict[int, int] = {}
    ends: dict[int, float] = {}
    counter = itertools.count()

    def arm(moved: list[tuple[int, float]]) -> None:
        for tid, at_s in moved:
            version[tid] = next(counter)
            heapq.heappush(heap, (at_s, tid, version[tid]))

    pending = sorted(starts)
    while pending or heap:
        if pending and (not heap or pending[0][0] <= heap[0][0]):
            at_s, src, dst, num_bytes = pending.pop(0)
            arm(tr.start(at_s, 0, src, dst, num_bytes))
            continue
        at_s, tid, v = heapq.heappop(heap)
        if version.get(tid) != v:
            continue
        del version[tid]
        arm(tr.complete(at_s, tid))
        if tid not in version:
            ends[tid] = at_s
    return ends


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 2.0), st.integers(0, 1), st.integers(2, 3), st.floats(1e6, 3e9)),
        min_size=1,
        max_size=12,
    )
)
def test_merged_shards_of_mixed_tp_on_one_nic_match_the_reference(
    starts: list[tuple[float, int, int, float]],
) -> None:
    """One NIC per node: a transfer's shards all cross the same two NIC links, so the fast
    transport runs them as one flow of weight = number of shards (here 4, 2 or 1 ... by TP
    pair). Every end time and link byte count equals per-shard flows (solo=False)."""
    topo = Topology(num_nodes=2, gpus_per_node=8, nic_gbps=25.0, nics_per_node=1)
    placements = [((0, 1, 2, 3),), ((4, 5),), ((8,),), ((9, 10),)]  # prefill TP4, TP2; decode
    fast = FlowTransport(topo, placements, num_layers=8)
    reference = FlowTransport(topo, placements, num_layers=8, solo=False)
    fast_ends, reference_ends = drive(fast, starts), drive(reference, starts)
    assert len(fast_ends) == len(starts) == reference.num_transfers
    assert [fast_ends[t] for t in sorted(fast_ends)] == pytest.approx(
        [reference_ends[t] for t in sorted(reference_ends)], rel=1e-9, abs=1e-12
    )
    assert fast.link_bytes() == pytest.approx(reference.link_bytes(), rel=1e-9)
