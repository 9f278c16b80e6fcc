"""GPU specs: a catalog of datasheet figures, stored as data (specs/data/gpus.json).

Figures are per GPU and dense (no structured sparsity). Bandwidths are datasheet totals; the
per-direction figure that a one-way transfer sees is half of an NVLink or PCIe total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from servesim.errors import UnknownNameError

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU model. `None` marks a feature the part lacks (fp8, NVSwitch fabric)."""

    name: str
    full_name: str
    bf16_tflops: float
    fp8_tflops: float | None
    memory_gib: float
    memory_bw_gbs: float
    nvlink_gbs: float | None
    pcie_gbs: float
    default_nic_gbps: float
    num_sms: int | None = None  # streaming multiprocessors (GEMM tile waves); None: not recorded
    fp4_tflops: float | None = None  # NVFP4 tensor cores (Blackwell); None: none

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * GIB

    @property
    def memory_bw_bytes_per_s(self) -> float:
        return self.memory_bw_gbs * 1e9

    def peak_flops_per_s(self, precision: str = "bf16") -> float:
        """Dense tensor throughput for `precision` ('bf16', 'fp8' or 'fp4'); a precision the part
        has no tensor cores for runs at the bf16 rate (its weights are widened on load)."""
        if precision == "fp8" and self.fp8_tflops is not None:
            return self.fp8_tflops * 1e12
        if precision == "fp4" and self.fp4_tflops is not None:
            return self.fp4_tflops * 1e12
        return self.bf16_tflops * 1e12

    @property
    def intra_node_bytes_per_s(self) -> float:
        """One-way GPU-to-GPU bandwidth inside a node: NVLink if present, else PCIe."""
        total_gbs = self.nvlink_gbs if self.nvlink_gbs is not None else self.pcie_gbs
        return total_gbs * 1e9 / 2


@cache
def _catalog() -> dict[str, GpuSpec]:
    text = resources.files("servesim.specs").joinpath("data/gpus.json").read_text()
    raw = json.loads(text)
    return {name: GpuSpec(name=name, **fields) for name, fields in raw.items() if name[0] != "_"}


def gpu_names() -> list[str]:
    return sorted(_catalog())


def get_gpu(name: str) -> GpuSpec:
    """Look up a GPU by catalog name (case-insensitive; `_` and `-` are equivalent)."""
    key = name.strip().lower().replace("_", "-")
    catalog = _catalog()
    if key not in catalog:
        raise UnknownNameError("gpu", name, catalog)
    return catalog[key]
