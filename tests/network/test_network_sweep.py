"""Topology from the cluster spec, and the goodput-against-NIC-bandwidth sweep."""

from __future__ import annotations

import pytest

from servesim.network import Topology
from servesim.network.sweep import SloSpec, goodput_vs_nic, with_nic_gbps
from servesim.search.goodput import BisectionSpec
from servesim.specs import make_cluster
from servesim.workload import Fixed, OpenLoopWorkload, Poisson

from .factories import disagg


def test_topology_from_cluster_converts_totals_to_per_direction_gbps() -> None:
    cluster = make_cluster(
        "h100-sxm", num_nodes=3, nic_gbps=400.0, nics_per_node=4, oversubscription=2.0
    )
    topo = Topology.from_cluster(cluster, nodes_per_leaf=2)
    assert topo.num_nodes == 3 and topo.gpus_per_node == 8 and topo.nics_per_node == 4
    assert topo.nvlink_gbps == pytest.approx(900 / 2 * 8)  # 900 GB/s total -> 3600 Gbps
    assert topo.pcie_gbps == pytest.approx(128 / 2 * 8)
    assert topo.nic_gbps == 400.0 and topo.oversubscription == 2.0 and topo.has_spine
    pcie_only = Topology.from_cluster(make_cluster("l40s", num_nodes=1))
    assert pcie_only.nvlink_gbps is None and "pcie" in pcie_only.links()[0].name


def test_goodput_never_falls_when_nic_bandwidth_rises() -> None:
    """Prefill instances fill node 0 and decode instances node 1: every KV byte crosses a NIC."""
    from servesim.engine import Deployment

    base = disagg(1.0, tp=(1, 1), num_instances=(2, 2))
    cluster = make_cluster("a100-80gb", num_nodes=2, gpus_per_node=2, nic_gbps=1.0)
    dep = Deployment(base.model, cluster, base.groups)
    points = goodput_vs_nic(
        dep,
        lambda rate: OpenLoopWorkload(Poisson(rate), Fixed(512, 16), 80),
        [0.5, 200.0],
        SloSpec(ttft_s=0.5, tpot_s=0.1),
        bound_per_s=20.0,
        probe_rate_per_s=2.0,
        bisection=BisectionSpec(rel_tol=0.1),
    )
    assert [p.nic_gbps for p in points] == [0.5, 200.0]
    assert points[0].goodput_per_s < points[1].goodput_per_s
    assert points[0].kv_transfer_mean_s > points[1].kv_transfer_mean_s
    assert points[0].bottleneck is not None and "nic" in points[0].bottleneck
    assert with_nic_gbps(dep, 25.0).cluster.nic_gbps == 25.0
