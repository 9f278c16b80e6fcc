"""Cluster topology: nodes of GPUs, their intra-node links, NICs and the inter-node fabric.

A `Topology` is a frozen spec. From it come the directed, named links of the cluster
(`links()`) and, for any two GPUs, the tuple of link indices a transfer between them crosses
(`path()`). Bandwidths are given in Gbps (10^9 bits/s) in the spec and are bytes/s everywhere
inside (`Link.capacity_bytes_per_s`).

Link model, per node `n` with `K` GPUs:
- `n{n}.g{i}.nvlink.tx` / `.rx` (or `.pcie.tx` / `.rx` when the node has no NVLink): the GPU's
  port into the intra-node switch, one per direction. An intra-node transfer crosses the sender's
  tx and the receiver's rx, so NVSwitch is modelled as non-blocking with per-GPU bandwidth.
- `n{n}.nic{j}.tx` / `.rx`: the node's NICs. GPU `i` uses NIC `i mod nics_per_node`
  (rail-optimized) or NIC `i * nics_per_node // K` (contiguous blocks) when `rail_optimized`
  is false.
- Between nodes: one non-blocking switch (no links of its own) when `oversubscription == 1`;
  otherwise a two-tier leaf-spine, `nodes_per_leaf` nodes under each leaf, and a transfer between
  leaves also crosses `leaf{a}.up` and `leaf{b}.down`, whose capacity is the leaf's NIC
  bandwidth divided by `oversubscription`.

Latency sits on the first link of a path (the sender's tx port), so a path's latency is
`intra_node_latency_s` or `inter_node_latency_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from servesim.errors import InputError, require
from servesim.specs.cluster import ClusterSpec

BITS_PER_BYTE = 8.0


def gbps_to_bytes_per_s(gbps: float) -> float:
    """Convert Gbps (10^9 bits/s) to bytes/s."""
    return gbps * 1e9 / BITS_PER_BYTE


def _per_direction_gbps(total_gbs: float) -> float:
    """GB/s of both directions together -> Gbps in one direction."""
    return total_gbs / 2 * BITS_PER_BYTE


@dataclass(frozen=True)
class Link:
    """One directed link: its name, capacity (bytes/s) and the latency it adds (s)."""

    name: str
    capacity_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class Topology:
    """A cluster of identical nodes; see the module docstring for the links it implies."""

    num_nodes: int
    """Number of nodes (servers)."""
    gpus_per_node: int
    """GPUs per node (K)."""
    nvlink_gbps: float | None = 2400.0
    """NVLink/NVSwitch bandwidth per GPU and direction (A100: 300 GB/s = 2400 Gbps); None = PCIe."""
    pcie_gbps: float = 256.0
    """PCIe bandwidth per GPU and direction, used between GPUs of a node without NVLink."""
    nic_gbps: float = 200.0
    """Bandwidth of one NIC, per direction."""
    nics_per_node: int = 8
    """NICs per node."""
    oversubscription: float = 1.0
    """Leaf-to-spine oversubscription; 1.0 = one non-blocking switch between nodes."""
    nodes_per_leaf: int = 4
    """Nodes under one leaf switch (only used when oversubscription > 1)."""
    rail_optimized: bool = True
    """GPU i uses NIC i mod nics_per_node; otherwise NICs serve contiguous blocks of GPUs."""
    intra_node_latency_s: float = 2e-6
    """Latency of a transfer between two GPUs of one node."""
    inter_node_latency_s: float = 5e-6
    """Latency of a transfer between two nodes."""

    @classmethod
    def from_cluster(cls, cluster: ClusterSpec, **overrides: object) -> Topology:
        """The topology of `cluster`; `overrides` set the fields a ClusterSpec lacks
        (`nodes_per_leaf`, `rail_optimized`) or replace any other.

        A ClusterSpec gives NVLink and PCIe as GB/s totals of both directions; a Topology takes
        Gbps per direction (A100: 600 GB/s -> 2400 Gbps).
        """
        fields: dict[str, object] = {
            "num_nodes": cluster.num_nodes,
            "gpus_per_node": cluster.gpus_per_node,
            "nvlink_gbps": None
            if cluster.nvlink_gbs is None
            else _per_direction_gbps(cluster.nvlink_gbs),
            "pcie_gbps": _per_direction_gbps(cluster.pcie_gbs),
            "nic_gbps": cluster.nic_gbps,
            "nics_per_node": cluster.nics_per_node,
            "oversubscription": cluster.oversubscription,
            "intra_node_latency_s": cluster.intra_node_latency_s,
            "inter_node_latency_s": cluster.inter_node_latency_s,
        }
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_rates()
        for name in ("intra_node_latency_s", "inter_node_latency_s"):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, name, value, "a finite number >= 0")

    def _check_counts(self) -> None:
        for name in ("num_nodes", "gpus_per_node", "nics_per_node", "nodes_per_leaf"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")

    def _check_rates(self) -> None:
        rates = {"pcie_gbps": self.pcie_gbps, "nic_gbps": self.nic_gbps}
        if self.nvlink_gbps is not None:
            rates["nvlink_gbps"] = self.nvlink_gbps
        for name, value in rates.items():
            require(math.isfinite(value) and value > 0, name, value, "a finite number > 0")
        ratio = self.oversubscription
        require(
            math.isfinite(ratio) and ratio >= 1.0,
            "oversubscription",
            ratio,
            "a finite number >= 1.0 (1.0 = non-blocking)",
        )

    @property
    def num_gpus(self) -> int:
        """GPUs in the cluster; global GPU id = node * gpus_per_node + local index."""
        return self.num_nodes * self.gpus_per_node

    @property
    def num_leaves(self) -> int:
        """Leaf switches; 1 when the fabric is a single non-blocking switch."""
        if not self.has_spine:
            return 1
        return -(-self.num_nodes // self.nodes_per_leaf)

    @property
    def has_spine(self) -> bool:
        """Whether inter-leaf traffic crosses oversubscribed leaf uplinks."""
        return self.oversubscription > 1.0 and self.num_nodes > self.nodes_per_leaf

    def node_of(self, gpu: int) -> int:
        """Node that holds global GPU id `gpu`."""
        self._check_gpu(gpu)
        return gpu // self.gpus_per_node

    def nic_of(self, gpu: int) -> int:
        """Index (within its node) of the NIC that global GPU id `gpu` uses."""
        local = gpu % self.gpus_per_node
        if self.rail_optimized:
            return local % self.nics_per_node
        return local * self.nics_per_node // self.gpus_per_node

    def leaf_of(self, node: int) -> int:
        """Leaf switch of `node` (0 for a single switch)."""
        return node // self.nodes_per_leaf if self.has_spine else 0

    def links(self) -> tuple[Link, ...]:
        """All directed links, in index order (the indices `path` returns)."""
        return self._links

    def link_index(self, name: str) -> int:
        """Index of the link called `name` (e.g. 'n0.nic1.tx')."""
        try:
            return self._index_by_name[name]
        except KeyError:
            raise InputError(
                "link", name, f"one of {len(self._links)} link names, e.g. {self._links[0].name!r}"
            ) from None

    def capacities_bytes_per_s(self) -> tuple[float, ...]:
        """Capacity of every link, bytes/s, in index order."""
        return tuple(link.capacity_bytes_per_s for link in self._links)

    def latencies_s(self) -> tuple[float, ...]:
        """Latency added by every link, seconds, in index order."""
        return tuple(link.latency_s for link in self._links)

    def path(self, gpu_a: int, gpu_b: int) -> tuple[int, ...]:
        """Link indices crossed by a transfer from `gpu_a` to `gpu_b` (global ids); () if equal."""
        node_a, node_b = self.node_of(gpu_a), self.node_of(gpu_b)
        if gpu_a == gpu_b:
            return ()
        if node_a == node_b:
            return (self._gpu_link(gpu_a, "tx"), self._gpu_link(gpu_b, "rx"))
        hops = [self._nic_link(gpu_a, "tx")]
        leaf_a, leaf_b = self.leaf_of(node_a), self.leaf_of(node_b)
        if leaf_a != leaf_b:
            hops += [self._leaf_link(leaf_a, "up"), self._leaf_link(leaf_b, "down")]
        hops.append(self._nic_link(gpu_b, "rx"))
        return tuple(hops)

    def path_latency_s(self, path: tuple[int, ...]) -> float:
        """Latency of a path, seconds."""
        return sum(self._links[i].latency_s for i in path)

    def path_bandwidth_bytes_per_s(self, path: tuple[int, ...]) -> float:
        """Uncontended bandwidth of a path (its narrowest link), bytes/s; inf for ()."""
        return min((self._links[i].capacity_bytes_per_s for i in path), default=math.inf)

    def _check_gpu(self, gpu: int) -> None:
        require(
            isinstance(gpu, int) and 0 <= gpu < self.num_gpus,
            "gpu",
            gpu,
            f"a global GPU id in [0, {self.num_gpus})",
        )

    def _gpu_link(self, gpu: int, direction: str) -> int:
        node, local = divmod(gpu, self.gpus_per_node)
        return self._node_base(node) + 2 * local + (direction == "rx")

    def _nic_link(self, gpu: int, direction: str) -> int:
        node = gpu // self.gpus_per_node
        first_nic = self._node_base(node) + 2 * self.gpus_per_node
        return first_nic + 2 * self.nic_of(gpu) + (direction == "rx")

    def _leaf_link(self, leaf: int, direction: str) -> int:
        return self._links_per_node * self.num_nodes + 2 * leaf + (direction == "down")

    def _node_base(self, node: int) -> int:
        return node * self._links_per_node

    @property
    def _links_per_node(self) -> int:
        return 2 * (self.gpus_per_node + self.nics_per_node)

    @cached_property
    def _links(self) -> tuple[Link, ...]:
        links: list[Link] = []
        for node in range(self.num_nodes):
            links += self._node_links(node)
        if self.has_spine:
            links += self._leaf_links()
        return tuple(links)

    @cached_property
    def _index_by_name(self) -> dict[str, int]:
        return {link.name: i for i, link in enumerate(self._links)}

    def _node_links(self, node: int) -> list[Link]:
        kind, gbps = ("nvlink", self.nvlink_gbps) if self.nvlink_gbps else ("pcie", self.pcie_gbps)
        gpu_bw = gbps_to_bytes_per_s(gbps)
        nic_bw = gbps_to_bytes_per_s(self.nic_gbps)
        links: list[Link] = []
        for local in range(self.gpus_per_node):
            prefix = f"n{node}.g{local}.{kind}"
            links += [
                Link(f"{prefix}.tx", gpu_bw, self.intra_node_latency_s),
                Link(f"{prefix}.rx", gpu_bw, 0.0),
            ]
        for nic in range(self.nics_per_node):
            links += [
                Link(f"n{node}.nic{nic}.tx", nic_bw, self.inter_node_latency_s),
                Link(f"n{node}.nic{nic}.rx", nic_bw, 0.0),
            ]
        return links

    def _leaf_links(self) -> list[Link]:
        leaf_nic_gbps = self.nodes_per_leaf * self.nics_per_node * self.nic_gbps
        uplink_bw = gbps_to_bytes_per_s(leaf_nic_gbps / self.oversubscription)
        links: list[Link] = []
        for leaf in range(self.num_leaves):
            links += [
                Link(f"leaf{leaf}.up", uplink_bw, 0.0),
                Link(f"leaf{leaf}.down", uplink_bw, 0.0),
            ]
        return links


TOPOLOGY_PRESETS: dict[str, Topology] = {
    # DistServe's testbed: 4 nodes x 8 A100-80GB SXM, NVLink inside, 25 Gbps between nodes.
    "distserve-testbed": Topology(num_nodes=4, gpus_per_node=8, nic_gbps=25.0, nics_per_node=1),
    # A DGX A100-like node: 8 GPUs, NVSwitch, 8 x 200 Gbps HDR InfiniBand, rail-optimized.
    "dgx-a100": Topology(num_nodes=4, gpus_per_node=8, nic_gbps=200.0, nics_per_node=8),
    # PCIe-only servers with one 100 Gbps NIC.
    "pcie-100g": Topology(
        num_nodes=4, gpus_per_node=8, nvlink_gbps=None, nic_gbps=100.0, nics_per_node=1
    ),
}
