"""Tests of link statistics: utilization, bottleneck link, series binning, per-tag times."""

from __future__ import annotations

import pytest

from servesim.errors import InputError
from servesim.network.flows import FlowNetwork, FlowRecord
from servesim.network.link_metrics import (
    bottleneck_link,
    link_stats,
    link_utilization,
    transfer_time_by_tag,
    utilization_over_time,
)
from servesim.network.replay import FlowSpec, replay_flows
from servesim.network.topology import Topology


def test_utilization_and_bottleneck() -> None:
    utilization = link_utilization([5.0, 20.0, 0.0], [10.0, 10.0, 10.0], span_s=4.0)
    assert utilization == [0.125, 0.5, 0.0]
    assert bottleneck_link(utilization) == 1
    assert bottleneck_link([0.0, 0.0]) is None
    with pytest.raises(InputError, match="span_s"):
        link_utilization([1.0], [1.0], span_s=0.0)


def test_utilization_over_time_bins_the_rate_steps() -> None:
    series = [(0.0, 10.0), (1.0, 0.0), (1.25, 5.0), (1.75, 0.0)]
    assert utilization_over_time(series, 10.0, end_s=2.0, bin_s=0.5) == pytest.approx(
        [1.0, 1.0, 0.25, 0.25]
    )


def test_kv_like_run_names_the_nic_as_bottleneck() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=2, nics_per_node=1, nic_gbps=80.0)
    net = FlowNetwork(topo.capacities_bytes_per_s(), topo.latencies_s())
    specs = [
        FlowSpec(0.0, topo.path(0, 2), 1e9),
        FlowSpec(0.0, topo.path(1, 3), 1e9),
        FlowSpec(0.0, topo.path(0, 1), 1e9),
    ]
    records = replay_flows(net, specs)
    span_s = max(r.finish_s for r in records)
    names = [link.name for link in topo.links()]
    stats = link_stats(names, net.link_bytes(), topo.capacities_bytes_per_s(), span_s)
    assert stats[0].name in {"n0.nic0.tx", "n1.nic0.rx"}
    assert stats[0].num_bytes == pytest.approx(2e9)
    assert stats[0].utilization == pytest.approx(1.0, rel=1e-3)  # busy for the whole span
    assert records[0].bottleneck_link == topo.link_index("n0.nic0.tx")


def test_transfer_time_by_tag_spans_all_flows_of_a_request() -> None:
    records = [
        FlowRecord(0, "r1", (0,), 1.0, 1.0, 2.0, 0),
        FlowRecord(1, "r1", (1,), 1.0, 1.5, 3.0, 1),
        FlowRecord(2, "r2", (1,), 1.0, 0.0, 0.5, 1),
    ]
    assert transfer_time_by_tag(records) == {"r1": 2.0, "r2": 0.5}
