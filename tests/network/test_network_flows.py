"""Tests of the fluid flow network: timing, sharing, updates, background load and series."""

from __future__ import annotations

import heapq

import pytest

from servesim.errors import InputError
from servesim.network.flows import FlowNetwork, FlowRecord
from servesim.network.replay import FlowSpec, replay_flows
from servesim.network.topology import Topology

GB = 1e9


def test_one_flow_takes_latency_plus_bytes_over_bandwidth() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=8, nic_gbps=200.0, inter_node_latency_s=5e-6)
    net = FlowNetwork(topo.capacities_bytes_per_s(), topo.latencies_s())
    flow = net.start(1.0, topo.path(0, 8), 2 * GB)
    assert net.finish_time(flow) == pytest.approx(1.0 + 5e-6 + 2 * GB / 25e9, rel=1e-12)
    record = net.complete(net.finish_time(flow), flow)
    assert record.transfer_time_s == pytest.approx(5e-6 + 0.08)


@pytest.mark.parametrize("num_flows", [1, 2, 5, 16])
def test_equal_flows_each_get_one_nth(num_flows: int) -> None:
    net = FlowNetwork([10 * GB, 100 * GB])
    ids = net.start_many(0.0, [((0, 1), 1 * GB, None)] * num_flows)
    assert [net.rate(i) for i in ids] == pytest.approx([10 * GB / num_flows] * num_flows)
    assert [net.finish_time(i) for i in ids] == pytest.approx([num_flows * 0.1] * num_flows)


def test_three_links_four_flows_finish_times() -> None:
    # Rates (see test_network_maxmin): 0.5, 0.5, 0.75, 0.75 GB/s with 1 GB each.
    net = FlowNetwork([1 * GB, 2 * GB, 3 * GB])
    ids = net.start_many(
        0.0, [((0, 1, 2), 1 * GB, 0), ((0,), 1 * GB, 1), ((1,), 1 * GB, 2), ((1, 2), 1 * GB, 3)]
    )
    # f2, f3 at 0.75 GB/s finish first, at 4/3 s; f0, f1 then have 1/3 GB left at 0.5 GB/s,
    # and L0 (1 GB/s) is their bottleneck: 0.5 GB/s each until 2 s.
    assert [net.finish_time(i) for i in ids] == pytest.approx([2.0, 2.0, 4 / 3, 4 / 3])
    net.complete(4 / 3, ids[2])
    net.complete(4 / 3, ids[3])
    assert net.rate(ids[0]) == pytest.approx(0.5 * GB)
    assert net.finish_time(ids[0]) == pytest.approx(2.0)


def test_finish_moves_when_a_competitor_leaves() -> None:
    net = FlowNetwork([1 * GB])
    small, big = net.start_many(0.0, [((0,), 1 * GB, "s"), ((0,), 2 * GB, "b")])
    first = {u.flow_id: u for u in net.pop_updates()}
    assert first[small].finish_s == pytest.approx(2.0)
    assert first[big].finish_s == pytest.approx(4.0)
    net.complete(2.0, small)
    (update,) = net.pop_updates()
    assert update.flow_id == big and update.version == first[big].version + 1
    assert update.finish_s == pytest.approx(3.0)
    assert not net.is_current(big, first[big].version)
    assert net.next_completion() == (pytest.approx(3.0), big)


def test_flow_joining_slows_the_running_one() -> None:
    net = FlowNetwork([1 * GB])
    first = net.start(0.0, (0,), 2 * GB)
    assert net.finish_time(first) == pytest.approx(2.0)
    newcomer = net.start(1.0, (0,), 0.5 * GB)
    # First moved 1 GB alone, then shares 0.5 GB/s: the newcomer ends at 2 s, first at 2.5 s.
    assert net.finish_time(first) == pytest.approx(3.0)  # projected at the shared rate
    assert net.finish_time(newcomer) == pytest.approx(2.0)
    net.complete(2.0, newcomer)
    assert net.finish_time(first) == pytest.approx(2.5)


def test_latency_phase_moves_no_bytes() -> None:
    net = FlowNetwork([1 * GB], latencies_s=[0.5])
    flow = net.start(0.0, (0,), 1 * GB)
    assert net.finish_time(flow) == pytest.approx(1.5)
    net.settle(0.4)
    assert net.link_bytes() == [0.0]


def test_background_load_reduces_capacity_and_can_change() -> None:
    net = FlowNetwork([10 * GB], background_bytes_per_s=[6 * GB])
    flow = net.start(0.0, (0,), 8 * GB)
    assert net.finish_time(flow) == pytest.approx(2.0)
    net.set_background(1.0, 0, 2 * GB)
    # 4 GB moved by t=1; the remaining 4 GB at 8 GB/s take 0.5 s.
    assert net.finish_time(flow) == pytest.approx(1.5)
    with pytest.raises(InputError, match="background"):
        net.set_background(1.0, 0, 10 * GB)


def test_empty_path_finishes_at_once_and_zero_bytes_after_latency() -> None:
    net = FlowNetwork([1 * GB], latencies_s=[0.25])
    local = net.start(3.0, (), 5 * GB)
    empty = net.start(3.0, (0,), 0.0)
    assert net.finish_time(local) == 3.0
    assert net.finish_time(empty) == pytest.approx(3.25)
    assert net.complete(3.0, local).bottleneck_link == -1


def test_link_series_and_bytes() -> None:
    net = FlowNetwork([10.0, 10.0])
    flow = net.start(0.0, (0, 1), 10.0)
    net.complete(1.0, flow)
    assert net.link_rate_series(0) == [(0.0, 10.0), (1.0, 0.0)]
    assert net.link_bytes() == [10.0, 10.0]


def test_bottleneck_of_record_is_the_link_that_limited_most_bytes() -> None:
    net = FlowNetwork([1.0, 4.0])
    a = net.start(0.0, (0, 1), 3.0)
    b = net.start(0.0, (1,), 100.0)
    record = net.complete(net.finish_time(a), a)
    assert record.bottleneck_link == 0
    assert net.rate(b) == pytest.approx(4.0)


def test_misuse_is_rejected() -> None:
    net = FlowNetwork([1.0])
    flow = net.start(1.0, (0,), 1.0)
    with pytest.raises(InputError, match="now_s"):
        net.start(0.5, (0,), 1.0)
    with pytest.raises(ValueError, match="before its finish time"):
        net.complete(1.5, flow)
    with pytest.raises(InputError, match="num_bytes"):
        net.start(1.0, (0,), -1.0)
    with pytest.raises(InputError, match="path"):
        net.start(1.0, (0, 0), 1.0)
    with pytest.raises(InputError, match="path"):
        net.start(1.0, (3,), 1.0)
    with pytest.raises(InputError, match="flow_id"):
        net.complete(5.0, 99)
    with pytest.raises(InputError, match="capacities"):
        FlowNetwork([0.0])
    with pytest.raises(InputError, match="latencies"):
        FlowNetwork([1.0], latencies_s=[0.0, 0.0])


def _engine_loop(net: FlowNetwork, specs: list[FlowSpec]) -> list[FlowRecord]:
    """An engine-like loop: its own heap, lazy invalidation by version."""
    heap: list[tuple[float, int, int, int]] = []  # (time, kind 0=finish 1=start, id, version)
    for i, spec in enumerate(specs):
        heapq.heappush(heap, (spec.start_s, 1, i, 0))
    records: dict[int, FlowRecord] = {}
    flow_to_spec: dict[int, int] = {}
    while heap:
        time_s, kind, key, version = heapq.heappop(heap)
        if kind == 1:
            flow_to_spec[net.start(time_s, specs[key].path, specs[key].num_bytes)] = key
        elif net.is_current(key, version):
            records[flow_to_spec[key]] = net.complete(time_s, key)
        for update in net.pop_updates():
            heapq.heappush(heap, (update.finish_s, 0, update.flow_id, update.version))
    return [records[i] for i in range(len(specs))]


def test_engine_heap_protocol_matches_replay() -> None:
    specs = [
        FlowSpec(0.0, (0, 1), 3.0),
        FlowSpec(0.5, (1,), 2.0),
        FlowSpec(0.5, (1, 2), 1.0),
        FlowSpec(2.0, (2,), 4.0),
        FlowSpec(2.0, (0,), 1.0),
    ]
    caps = [1.0, 2.0, 1.5]
    by_engine = _engine_loop(FlowNetwork(caps), specs)
    by_replay = replay_flows(FlowNetwork(caps), specs)
    assert [r.finish_s for r in by_engine] == pytest.approx([r.finish_s for r in by_replay])


def test_change_touches_only_its_connected_component() -> None:
    net = FlowNetwork([1.0, 1.0, 1.0])
    a = net.start(0.0, (0, 1), 1.0)
    far = net.start(0.0, (2,), 1.0)
    net.pop_updates()
    b = net.start(0.5, (1,), 1.0)  # shares link 1 with a, nothing with far
    assert {u.flow_id for u in net.pop_updates()} == {a, b}
    assert net.is_current(far, 1)


def test_weights_are_checked_and_finish_many_matches_complete_many() -> None:

    net = FlowNetwork([4.0, 4.0])
    with pytest.raises(InputError, match="weights"):
        net.start_many(0.0, [((0,), 1.0, None)], weights=[0])
    with pytest.raises(InputError, match="weights"):
        net.start_many(0.0, [((0,), 1.0, None)], weights=[1, 1])
    a, b = net.start_many(0.0, [((0, 1), 6.0, None), ((0,), 2.0, None)], weights=[3, 1])
    assert net.rate(a) == pytest.approx(3.0) and net.rate(b) == pytest.approx(1.0)
    assert net.pop_updated_ids() == {a, b} and net.pop_updated_ids() == set()
    net.finish_many(2.0, [a, b])
    assert net.num_active == 0 and net.link_bytes() == pytest.approx([8.0, 6.0])
