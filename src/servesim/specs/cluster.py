"""Node and cluster specs: GPUs per node, the links inside and between nodes.

Defaults describe a DGX/HGX-like node of the chosen GPU (8 GPUs, NVSwitch, one NIC per GPU);
every value can be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.errors import require
from servesim.specs.gpu import GpuSpec, get_gpu


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster of identical nodes.

    Attributes:
        gpu: the GPU in every node.
        num_nodes: number of nodes.
        gpus_per_node: GPUs in one node.
        nvlink_gbs: NVLink/NVSwitch bandwidth per GPU, GB/s, both directions (None: PCIe only).
        pcie_gbs: PCIe bandwidth per GPU, GB/s, both directions together.
        nic_gbps: bandwidth of one NIC, Gbit/s per direction.
        nics_per_node: NICs per node (rail-optimized: GPU i uses NIC i mod nics_per_node).
        oversubscription: leaf-to-spine oversubscription ratio (1.0 = non-blocking switch).
        intra_node_latency_s: one-way latency of a GPU-to-GPU hop inside a node.
        inter_node_latency_s: one-way latency of a hop between nodes.
    """

    gpu: GpuSpec
    num_nodes: int = 1
    gpus_per_node: int = 8
    nvlink_gbs: float | None = None
    pcie_gbs: float = 64.0
    nic_gbps: float = 200.0
    nics_per_node: int = 8
    oversubscription: float = 1.0
    intra_node_latency_s: float = 2e-6
    inter_node_latency_s: float = 5e-6

    def __post_init__(self) -> None:
        require(self.num_nodes >= 1, "nodes", self.num_nodes, "an integer >= 1")
        require(self.gpus_per_node >= 1, "gpus_per_node", self.gpus_per_node, "an integer >= 1")
        require(self.nic_gbps > 0, "nic_gbps", self.nic_gbps, "a bandwidth > 0 Gbit/s")
        require(self.nics_per_node >= 1, "nics_per_node", self.nics_per_node, "an integer >= 1")
        require(self.pcie_gbs > 0, "pcie_gbs", self.pcie_gbs, "a bandwidth > 0 GB/s")
        require(
            self.nvlink_gbs is None or self.nvlink_gbs > 0,
            "nvlink_gbs",
            self.nvlink_gbs,
            "a bandwidth > 0 GB/s, or none for PCIe-only nodes",
        )
        require(
            self.oversubscription >= 1.0, "oversubscription", self.oversubscription, "a ratio >= 1"
        )
        require(
            self.intra_node_latency_s >= 0,
            "intra_node_latency_s",
            self.intra_node_latency_s,
            ">= 0",
        )
        require(
            self.inter_node_latency_s >= 0,
            "inter_node_latency_s",
            self.inter_node_latency_s,
            ">= 0",
        )

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def intra_node_bytes_per_s(self) -> float:
        """One-way bandwidth between two GPUs of a node (NVLink if present, else PCIe)."""
        total_gbs = self.nvlink_gbs if self.nvlink_gbs is not None else self.pcie_gbs
        return total_gbs * 1e9 / 2

    @property
    def inter_node_bytes_per_s(self) -> float:
        """One-way bandwidth of one GPU's NIC."""
        return self.nic_gbps * 1e9 / 8


def make_cluster(gpu: str | GpuSpec, **overrides: object) -> ClusterSpec:
    """A DGX-like cluster of `gpu`; keyword arguments override any field (None ones are ignored)."""
    spec = get_gpu(gpu) if isinstance(gpu, str) else gpu
    fields: dict[str, object] = {
        "gpu": spec,
        "nvlink_gbs": spec.nvlink_gbs,
        "pcie_gbs": spec.pcie_gbs,
        "nic_gbps": spec.default_nic_gbps,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ClusterSpec(**fields)  # type: ignore[arg-type]
