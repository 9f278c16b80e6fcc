"""Property tests of the flow network: incremental = full recompute, conservation, capacity,
and transfer times that never rise when bandwidth rises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.network.flows import FlowNetwork
from servesim.network.maxmin import max_min_rates
from servesim.network.replay import FlowSpec, replay_flows

NUM_LINKS = 6

capacities = st.lists(st.floats(0.5, 20.0), min_size=NUM_LINKS, max_size=NUM_LINKS)
paths = st.lists(st.integers(0, NUM_LINKS - 1), min_size=1, max_size=4, unique=True).map(tuple)
flow_specs = st.lists(
    st.builds(
        FlowSpec,
        start_s=st.sampled_from([0.0, 0.25, 1.0, 1.5, 3.0]),
        path=paths,
        num_bytes=st.floats(0.0, 50.0),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(caps=capacities, specs=flow_specs)
def test_incremental_equals_full_recompute(caps: list[float], specs: list[FlowSpec]) -> None:
    incremental = replay_flows(FlowNetwork(caps), specs)
    full = replay_flows(FlowNetwork(caps, incremental=False), specs)
    assert [r.finish_s for r in incremental] == pytest.approx(
        [r.finish_s for r in full], rel=1e-9, abs=1e-12
    )


@settings(max_examples=80, deadline=None)
@given(caps=capacities, specs=flow_specs, completes=st.lists(st.booleans(), min_size=25))
def test_rates_after_every_change_are_max_min_over_all_flows(
    caps: list[float], specs: list[FlowSpec], completes: list[bool]
) -> None:
    net = FlowNetwork(caps)
    active: list[int] = []
    now_s = 0.0
    for spec, do_complete in zip(specs, completes, strict=False):
        if active and do_complete:
            finish_s, flow_id = min((net.finish_time(f), f) for f in active)
            now_s = max(now_s, finish_s)
            net.complete(now_s, flow_id)
            active.remove(flow_id)
        else:
            active.append(net.start(now_s, spec.path, spec.num_bytes))
        rates = net.rates()
        expected, _ = max_min_rates([net.paths()[f] for f in sorted(rates)], caps)
        assert [rates[f] for f in sorted(rates)] == pytest.approx(expected, rel=1e-9)
        _assert_within_capacity(net, caps)


def _assert_within_capacity(net: FlowNetwork, caps: list[float]) -> None:
    load = [0.0] * len(caps)
    for flow_id, rate in net.rates().items():
        for link in net.paths()[flow_id]:
            load[link] += rate
    for link, cap in enumerate(caps):
        assert load[link] <= cap * (1 + 1e-9)


@settings(max_examples=80, deadline=None)
@given(caps=capacities, specs=flow_specs)
def test_bytes_are_conserved_per_link(caps: list[float], specs: list[FlowSpec]) -> None:
    net = FlowNetwork(caps)
    records = replay_flows(net, specs)
    expected = [sum(r.num_bytes for r in records if link in r.path) for link in range(NUM_LINKS)]
    assert net.link_bytes() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The rate series integrates to the same bytes (no latency here).
    end_s = max(r.finish_s for r in records)
    for link in range(NUM_LINKS):
        series = net.link_rate_series(link)
        moved = sum(
            rate * (t1 - t0)
            for (t0, rate), (t1, _) in zip(series, [*series[1:], (end_s, 0.0)], strict=True)
        )
        assert moved == pytest.approx(expected[link], rel=1e-9, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    caps=capacities,
    specs=flow_specs.map(lambda ss: [FlowSpec(0.0, s.path, s.num_bytes) for s in ss]),
    factor=st.floats(1.0, 10.0),
)
def test_transfer_times_never_rise_when_bandwidth_rises(
    caps: list[float], specs: list[FlowSpec], factor: float
) -> None:
    slow = replay_flows(FlowNetwork(caps), specs)
    fast = replay_flows(FlowNetwork([c * factor for c in caps]), specs)
    for before, after in zip(slow, fast, strict=True):
        assert after.transfer_time_s <= before.transfer_time_s * (1 + 1e-9) + 1e-12


@settings(max_examples=50, deadline=None)
@given(
    cap=st.floats(0.5, 20.0),
    num_bytes=st.floats(0.0, 100.0),
    latency_s=st.floats(0.0, 1.0),
    start_s=st.floats(0.0, 10.0),
    factor=st.floats(1.0, 10.0),
)
def test_single_flow_time_is_latency_plus_bytes_over_bandwidth(
    cap: float, num_bytes: float, latency_s: float, start_s: float, factor: float
) -> None:
    times = []
    for bandwidth in (cap, cap * factor):
        net = FlowNetwork([bandwidth], latencies_s=[latency_s])
        flow = net.start(start_s, (0,), num_bytes)
        times.append(net.complete(net.finish_time(flow), flow).transfer_time_s)
    assert times[0] == pytest.approx(latency_s + num_bytes / cap, rel=1e-9, abs=1e-9)
    assert times[1] <= times[0] * (1 + 1e-12)


@settings(max_examples=80, deadline=None)
@given(caps=capacities, flow_paths=st.lists(paths, min_size=1, max_size=10), data=st.data())
def test_a_weight_k_flow_equals_k_copies_of_it(
    caps: list[float], flow_paths: list[tuple[int, ...]], data: st.DataObject
) -> None:
    """Merging k alike flows into one of weight k (what the transport does with a transfer's
    shards on one path) leaves every rate as it was: the merged flow gets k copies' worth."""
    weights = data.draw(
        st.lists(st.integers(1, 4), min_size=len(flow_paths), max_size=len(flow_paths))
    )
    merged, _ = max_min_rates(flow_paths, caps, weights)
    copies = [path for path, k in zip(flow_paths, weights, strict=True) for _ in range(k)]
    separate, _ = max_min_rates(copies, caps)
    expected, index = [], 0
    for k in weights:
        assert separate[index : index + k] == pytest.approx([separate[index]] * k, rel=1e-9)
        expected.append(sum(separate[index : index + k]))
        index += k
    assert merged == pytest.approx(expected, rel=1e-9)
