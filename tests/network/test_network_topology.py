"""Tests of the cluster topology: link names, capacities, paths and input checks."""

from __future__ import annotations

import pytest

from servesim.errors import InputError
from servesim.network.topology import TOPOLOGY_PRESETS, Topology, gbps_to_bytes_per_s


def _names(topology: Topology, path: tuple[int, ...]) -> list[str]:
    return [topology.links()[i].name for i in path]


def test_gbps_conversion() -> None:
    assert gbps_to_bytes_per_s(8.0) == 1e9


def test_link_count_and_names_per_node() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=4, nics_per_node=2)
    assert len(topo.links()) == 2 * (2 * 4 + 2 * 2)
    assert topo.links()[topo.link_index("n1.g3.nvlink.rx")].name == "n1.g3.nvlink.rx"
    assert topo.link_index("n0.nic1.tx") == 2 * 4 + 2


def test_same_gpu_has_empty_path() -> None:
    topo = Topology(num_nodes=1, gpus_per_node=8)
    assert topo.path(5, 5) == ()
    assert topo.path_bandwidth_bytes_per_s(()) == float("inf")


def test_intra_node_path_uses_nvlink_ports() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=8, nvlink_gbps=2400.0)
    path = topo.path(9, 12)
    assert _names(topo, path) == ["n1.g1.nvlink.tx", "n1.g4.nvlink.rx"]
    assert topo.path_bandwidth_bytes_per_s(path) == 300e9
    assert topo.path_latency_s(path) == topo.intra_node_latency_s


def test_pcie_only_node_uses_pcie_ports() -> None:
    topo = Topology(num_nodes=1, gpus_per_node=4, nvlink_gbps=None, pcie_gbps=128.0)
    path = topo.path(0, 3)
    assert _names(topo, path) == ["n0.g0.pcie.tx", "n0.g3.pcie.rx"]
    assert topo.path_bandwidth_bytes_per_s(path) == 16e9


def test_inter_node_path_is_rail_optimized() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=8, nics_per_node=4, nic_gbps=100.0)
    path = topo.path(6, 8 + 1)
    assert _names(topo, path) == ["n0.nic2.tx", "n1.nic1.rx"]
    assert topo.path_bandwidth_bytes_per_s(path) == 12.5e9
    assert topo.path_latency_s(path) == topo.inter_node_latency_s


def test_non_rail_nics_serve_contiguous_gpus() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=8, nics_per_node=2, rail_optimized=False)
    assert [topo.nic_of(g) for g in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert _names(topo, topo.path(5, 8)) == ["n0.nic1.tx", "n1.nic0.rx"]


def test_single_switch_has_no_fabric_links() -> None:
    topo = Topology(num_nodes=8, gpus_per_node=1, nics_per_node=1, oversubscription=1.0)
    assert not topo.has_spine
    assert len(topo.path(0, 7)) == 2


def test_leaf_spine_crosses_uplinks_only_between_leaves() -> None:
    topo = Topology(
        num_nodes=4,
        gpus_per_node=2,
        nics_per_node=1,
        nic_gbps=100.0,
        oversubscription=4.0,
        nodes_per_leaf=2,
    )
    assert topo.num_leaves == 2
    assert _names(topo, topo.path(0, 2)) == ["n0.nic0.tx", "n1.nic0.rx"]
    across = topo.path(0, 4)
    assert _names(topo, across) == ["n0.nic0.tx", "leaf0.up", "leaf1.down", "n2.nic0.rx"]
    # 2 nodes x 1 NIC x 100 Gbps / 4 = 50 Gbps of uplink per leaf.
    assert topo.links()[topo.link_index("leaf0.up")].capacity_bytes_per_s == 50e9 / 8


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_nodes": 0}, "num_nodes"),
        ({"gpus_per_node": 0}, "gpus_per_node"),
        ({"nic_gbps": 0.0}, "nic_gbps"),
        ({"nvlink_gbps": -1.0}, "nvlink_gbps"),
        ({"oversubscription": 0.5}, "oversubscription"),
        ({"inter_node_latency_s": -1e-6}, "inter_node_latency_s"),
        ({"nics_per_node": 1.5}, "nics_per_node"),
    ],
)
def test_bad_spec_names_the_field(kwargs: dict[str, object], field: str) -> None:
    spec: dict[str, object] = {"num_nodes": 2, "gpus_per_node": 8, **kwargs}
    with pytest.raises(InputError, match=field):
        Topology(**spec)  # type: ignore[arg-type]


def test_gpu_out_of_range_and_unknown_link() -> None:
    topo = Topology(num_nodes=2, gpus_per_node=4)
    with pytest.raises(InputError, match=r"gpu=8 .*\[0, 8\)"):
        topo.path(0, 8)
    with pytest.raises(InputError, match="link"):
        topo.link_index("n9.nic0.tx")


def test_presets_are_valid() -> None:
    testbed = TOPOLOGY_PRESETS["distserve-testbed"]
    assert testbed.num_gpus == 32
    assert testbed.path_bandwidth_bytes_per_s(testbed.path(0, 8)) == 25e9 / 8
