"""Achievable-efficiency factors: the numbers a fitted profile replaces per (GPU, source).

Fractions are of a datasheet peak (FLOP/s, memory or link bandwidth); `_s` fields are fixed
seconds per kernel, call, sequence or iteration; `_tokens` fields are token counts. The
defaults are typical achieved fractions chosen a priori: with them the model is the roofline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from servesim.errors import InputError

# Element-wise kernels of a layer, each with its own bandwidth fraction and launch cost.
ELEMENTWISE_KERNELS = ("norm", "rotary", "activation", "residual", "embedding")


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Achieved fractions of datasheet peaks and fixed per-kernel costs (seconds)."""

    gemm_compute: float = 0.70  # eff_max of dense GEMMs (bf16)
    gemm_half_tokens: float = 0.0  # m at which GEMM efficiency is half of eff_max
    gemm_memory: float = 0.80
    gemm_overhead_s: float = 4e-6
    gemm_tile_tokens: float = 0.0  # operand-load cost of one output tile, in tile rows/columns
    gemm_fp8_compute: float = 0.70  # eff_max of fp8 GEMMs (of the fp8 peak)
    gemm_fp8_half_tokens: float = 0.0  # the fp8 kernel's ramp, in tokens (latency/gemm.py)
    gemm_fp8_overhead_s: float = 2e-6  # fp8: the activation-quantisation kernel's launch
    gemm_fp8_token_s: float = 0.0  # fp8: fixed quantisation cost per token (one block each)
    moe_compute: float = 0.60
    moe_half_tokens: float = 0.0  # tokens per expert at half efficiency
    moe_memory: float = 0.70
    moe_overhead_s: float = 10e-6
    moe_token_s: float = 0.0  # routing/permutation per token-expert pair, every token of the call
    # Zipf exponent of MoE expert popularity outside balanced benchmark tables (0: uniform random
    # routing). 0.75 is what aiconfigurator's power-law routing tables (its "realistic" routing for
    # DeepSeek and Qwen3) touch on H100 (docs/latency.md).
    routing_skew: float = 0.75
    attention_compute: float = 0.50
    attention_memory: float = 0.75
    attention_half_tokens: float = 0.0  # prompt length at which prefill attention runs at half eff
    attention_overhead_s: float = 5e-6
    attention_seq_s: float = 0.0  # per sequence per prefill attention call
    decode_overhead_s: float = 5e-6  # decode attention kernel
    decode_seq_s: float = 0.0  # per sequence per decode attention call
    elementwise_memory: float = 0.70  # element-wise kernels of no named kind
    elementwise_overhead_s: float = 3e-6
    norm_memory: float = 0.70
    norm_overhead_s: float = 3e-6
    rotary_memory: float = 0.70
    rotary_overhead_s: float = 3e-6
    activation_memory: float = 0.70
    activation_overhead_s: float = 3e-6
    residual_memory: float = 0.70
    residual_overhead_s: float = 3e-6
    embedding_memory: float = 0.70
    embedding_overhead_s: float = 3e-6
    communication: float = 0.70  # all-reduce bus bandwidth / link bandwidth
    collective_latency_s: float = 10e-6
    # The bulk all-reduce (NCCL's ring, for messages past the engine's custom kernel): a higher
    # bandwidth fraction behind a larger fixed cost; an all-reduce takes the faster of the two.
    # 0: no separate bulk algorithm (the defaults, and profiles fitted before it).
    bulk_communication: float = 0.0
    bulk_latency_s: float = 0.0
    send_efficiency: float = 0.70
    send_latency_s: float = 10e-6
    iteration_overhead_s: float = 2.0e-3
    layer_overhead_s: float = 0.0
    seq_overhead_s: float = 10e-6

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise InputError(f"efficiency.{f.name}", value, "a finite number >= 0")
            absent = value == 0 and f.name in _OPTIONAL
            if _is_fraction(f.name) and not (0 < value <= 2.0 or absent):
                raise InputError(f"efficiency.{f.name}", value, "a fraction of the peak in (0, 2]")

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Efficiency:
        """Build from a dict; unknown keys are an error, missing keys keep the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError("profile.params", unknown[0], f"one of {', '.join(sorted(known))}")
        return replace(cls(), **{k: float(v) for k, v in values.items()})

    def allreduce_algorithms(self) -> tuple[tuple[float, float], ...]:
        """(fixed seconds, bus-bandwidth fraction) of each all-reduce algorithm the engine has."""
        small = (self.collective_latency_s, self.communication)
        if not self.bulk_communication:
            return (small,)
        return small, (self.bulk_latency_s, self.bulk_communication)

    def kernel(self, name: str) -> tuple[float, float]:
        """(bandwidth fraction, overhead_s) of one element-wise kernel kind."""
        if name not in ELEMENTWISE_KERNELS:
            return self.elementwise_memory, self.elementwise_overhead_s
        return getattr(self, f"{name}_memory"), getattr(self, f"{name}_overhead_s")


# Fractions that may be 0 (absent), and otherwise must be in (0, 2].
_OPTIONAL = frozenset({"bulk_communication"})


def _is_fraction(name: str) -> bool:
    return not name.endswith(("_s", "_tokens", "_skew"))
