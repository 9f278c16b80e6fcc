"""Operator-level latency primitives: GEMM, attention, MoE, element-wise, collectives, sends.

Each primitive costs one kernel on one GPU, in seconds, from its shape and the GPU's datasheet
peaks scaled by the achievable-efficiency factors of an `Efficiency`:

- GEMM (m tokens x k -> n): compute time 2*n*k*(m + m_half) / (peak * eff_max), i.e. the
  efficiency ramps as eff(m) = eff_max * m / (m + m_half); memory time (weights + activations) /
  (bandwidth * eff_memory); the kernel costs its overhead plus the larger of the two.
- Attention: a fixed overhead, a per-sequence cost, Q/O bytes per token, and per (query, key) pair
  the larger of its FLOPs and its KV bytes -- linear in the context for a fixed batch.
- MoE: the experts a batch touches are streamed once; each touched expert's GEMMs ramp like GEMMs.
- Element-wise kernels (norms, rotary, activation, residual add, embedding) move bytes.
- Ring all-reduce: latency + 2*(tp-1)/tp * bytes / (link * eff);
  a send: latency + bytes / (link * eff).

The functions accept floats or numpy arrays (the fitter evaluates whole tables at once). With
the default `Efficiency` they are the roofline; a fitted profile replaces the factors per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from servesim.errors import InputError
from servesim.specs.gpu import GpuSpec
from servesim.specs.model import BYTES_PER_ELEMENT

ACT_BYTES = 2  # activations stay in bf16/fp16


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Achieved fractions of datasheet peaks and fixed per-kernel costs (seconds).

    The defaults are typical achieved fractions chosen a priori (the roofline); fitted profiles
    replace them per GPU.
    """

    gemm_compute: float = 0.70  # eff_max of dense GEMMs
    gemm_half_tokens: float = 0.0  # m at which GEMM efficiency is half of eff_max
    gemm_memory: float = 0.80
    gemm_overhead_s: float = 4e-6
    moe_compute: float = 0.60
    moe_half_tokens: float = 0.0  # tokens per expert at half efficiency
    moe_memory: float = 0.70
    moe_overhead_s: float = 10e-6
    attention_compute: float = 0.50
    attention_memory: float = 0.75
    attention_half_tokens: float = 0.0  # prompt length at which prefill attention runs at half eff
    attention_overhead_s: float = 5e-6
    attention_seq_s: float = 0.0  # per sequence per prefill attention call
    decode_overhead_s: float = 5e-6  # decode attention kernel
    decode_seq_s: float = 0.0  # per sequence per decode attention call
    elementwise_memory: float = 0.70
    elementwise_overhead_s: float = 3e-6
    communication: float = 0.70  # all-reduce bus bandwidth / link bandwidth
    collective_latency_s: float = 10e-6
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
            if not f.name.endswith(("_s", "_tokens")) and not 0 < value <= 2.0:
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


def _flops(gpu: GpuSpec, precision: str) -> float:
    return gpu.peak_flops_per_s(precision)


def _weight_bytes(precision: str) -> int:
    return BYTES_PER_ELEMENT[precision]


# ---- GEMM -------------------------------------------------------------------------------------
def gemm_lines(
    n: float, k: float, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16"
) -> tuple[float, float, float, float]:
    """(compute_base_s, compute_per_token_s, memory_base_s, memory_per_token_s) of an n x k GEMM.

    Time at m tokens = overhead + max(compute_base + compute_per_token * m, memory_base + ...).
    """
    rate = _flops(gpu, precision) * eff.gemm_compute
    bw = gpu.memory_bw_bytes_per_s * eff.gemm_memory
    wb = _weight_bytes(precision)
    per_token_c = 2.0 * n * k / rate
    return (
        per_token_c * eff.gemm_half_tokens,
        per_token_c,
        n * k * wb / bw,
        (k * wb + n * ACT_BYTES) / bw,
    )


def gemm_s(m: Any, n: Any, k: Any, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16") -> Any:
    """Seconds of one GEMM of m tokens, k inputs, n outputs (floats or arrays)."""
    ac, bc, am, bm = gemm_lines(n, k, gpu, eff, precision)
    return eff.gemm_overhead_s + np.maximum(ac + bc * m, am + bm * m)


# ---- attention (per GPU: heads already divided by TP) ----------------------------------------
def attention_pair_s(
    num_heads: Any, num_kv_heads: Any, head_dim: Any, kv_bytes: Any, gpu: GpuSpec, eff: Efficiency
) -> tuple[Any, Any]:
    """(prefill_s_per_pair, decode_s_per_context_token) of one attention call.

    A prefill pair is compute-bound; a decode context token costs the larger of its KV bytes and
    its FLOPs (MLA and wide GQA groups can be compute-bound).
    """
    flops_per_pair = 4.0 * num_heads * head_dim
    compute = flops_per_pair / (gpu.peak_flops_per_s("bf16") * eff.attention_compute)
    memory = (
        2.0
        * num_kv_heads
        * head_dim
        * kv_bytes
        / (gpu.memory_bw_bytes_per_s * eff.attention_memory)
    )
    return compute, np.maximum(compute, memory)


def attention_token_s(num_heads: Any, head_dim: Any, gpu: GpuSpec, eff: Efficiency) -> Any:
    """Seconds per query token of reading Q and writing O."""
    return (
        2.0 * num_heads * head_dim * ACT_BYTES / (gpu.memory_bw_bytes_per_s * eff.attention_memory)
    )


def attention_prefill_s(
    num_seqs: Any,
    num_tokens: Any,
    num_pairs: Any,
    num_heads: Any,
    num_kv_heads: Any,
    head_dim: Any,
    gpu: GpuSpec,
    eff: Efficiency,
    kv_bytes: Any = ACT_BYTES,
) -> Any:
    """One prefill attention call over `num_pairs` (query, key) pairs of `num_tokens` queries.

    The pair cost ramps with the prompt length l like a GEMM's with m: a sequence costs
    pair_s * (l*(l+1)/2 + half * l), i.e. efficiency l / (l + 2*half) of eff_max.
    """
    pair_s, _ = attention_pair_s(num_heads, num_kv_heads, head_dim, kv_bytes, gpu, eff)
    token_s = attention_token_s(num_heads + 2 * num_kv_heads, head_dim, gpu, eff)
    token_s = token_s + pair_s * eff.attention_half_tokens
    return (
        eff.attention_overhead_s
        + eff.attention_seq_s * num_seqs
        + token_s * num_tokens
        + pair_s * num_pairs
    )


def attention_decode_s(
    num_seqs: Any,
    sum_ctx_tokens: Any,
    num_heads: Any,
    num_kv_heads: Any,
    head_dim: Any,
    gpu: GpuSpec,
    eff: Efficiency,
    kv_bytes: Any = ACT_BYTES,
) -> Any:
    """One decode attention call: `num_seqs` queries over `sum_ctx_tokens` cached tokens in all."""
    _, ctx_s = attention_pair_s(num_heads, num_kv_heads, head_dim, kv_bytes, gpu, eff)
    token_s = attention_token_s(num_heads, head_dim, gpu, eff)
    return eff.decode_overhead_s + (eff.decode_seq_s + token_s) * num_seqs + ctx_s * sum_ctx_tokens


# ---- MoE ----------------------------------------------------------------------------------------
def moe_split(
    num_tokens: Any,
    hidden: Any,
    inter: Any,
    topk: Any,
    num_experts: Any,
    gpu: GpuSpec,
    eff: Efficiency,
    tp: Any = 1,
    ep: Any = 1,
    precision: str = "bf16",
) -> tuple[Any, Any]:
    """(compute_s, memory_s) of one fused-MoE call (gated experts, uniform routing) on one GPU.

    The experts touched by `num_tokens` tokens routed to `topk` of `num_experts` are expected to
    number E * (1 - (1 - topk/E)^tokens); each is streamed once and its GEMMs ramp like a GEMM's.
    """
    touched = num_experts * (1.0 - (1.0 - topk / num_experts) ** num_tokens) / ep
    expert_params = 3.0 * hidden * inter / tp
    assignments = num_tokens * topk / ep
    rate = _flops(gpu, precision) * eff.moe_compute
    compute = 2.0 * expert_params * (assignments + touched * eff.moe_half_tokens) / rate
    moved = (
        touched * expert_params * _weight_bytes(precision) + assignments * 2 * hidden * ACT_BYTES
    )
    return compute, moved / (gpu.memory_bw_bytes_per_s * eff.moe_memory)


def moe_s(
    num_tokens: Any,
    hidden: Any,
    inter: Any,
    topk: Any,
    num_experts: Any,
    gpu: GpuSpec,
    eff: Efficiency,
    tp: Any = 1,
    ep: Any = 1,
    precision: str = "bf16",
) -> Any:
    """Seconds of one fused-MoE call on one GPU of a tp x ep group."""
    compute, memory = moe_split(
        num_tokens, hidden, inter, topk, num_experts, gpu, eff, tp, ep, precision
    )
    return eff.moe_overhead_s + np.maximum(compute, memory)


# ---- element-wise, collectives, sends --------------------------------------------------------
def elementwise_s(num_bytes: Any, gpu: GpuSpec, eff: Efficiency) -> Any:
    """One memory-bound kernel that reads and writes `num_bytes` in all."""
    return eff.elementwise_overhead_s + num_bytes / (
        gpu.memory_bw_bytes_per_s * eff.elementwise_memory
    )


def ring_factor(tp: Any) -> Any:
    """Bytes each GPU sends per byte reduced in a ring all-reduce: 2*(tp-1)/tp."""
    return 2.0 * (tp - 1) / tp


def allreduce_s(num_bytes: Any, tp: Any, link_bytes_per_s: Any, eff: Efficiency) -> Any:
    """Ring all-reduce of `num_bytes` over `tp` GPUs on a link of one-way `link_bytes_per_s`."""
    bw = link_bytes_per_s * eff.communication
    return np.where(tp > 1, eff.collective_latency_s + ring_factor(tp) * num_bytes / bw, 0.0)


def send_s(num_bytes: Any, link_bytes_per_s: Any, eff: Efficiency) -> Any:
    """One point-to-point send of `num_bytes`."""
    return eff.send_latency_s + num_bytes / (link_bytes_per_s * eff.send_efficiency)


# ---- a sum of GEMMs as one piecewise-linear function of the token count ---------------------
@dataclass(frozen=True, slots=True)
class GemmStack:
    """Sum over GEMMs of max(compute line, memory line) in m, precomputed as segments.

    `bounds[i]` is the upper end of segment i (the last is +inf); each segment keeps the summed
    compute line (a, b) of the compute-bound GEMMs and the memory line of the memory-bound ones,
    so a call is one bisection and four multiply-adds.
    """

    bounds: tuple[float, ...]
    lines: tuple[tuple[float, float, float, float], ...]
    overhead_s: float

    def split(self, m: float) -> tuple[float, float]:
        """(compute_s, memory_s) of the whole stack at m tokens (overheads excluded)."""
        i = 0
        while m > self.bounds[i]:
            i += 1
        ac, bc, am, bm = self.lines[i]
        return ac + bc * m, am + bm * m

    def __call__(self, m: float) -> float:
        compute, memory = self.split(m)
        return self.overhead_s + compute + memory


def gemm_stack(
    shapes: list[tuple[float, float, float]], gpu: GpuSpec, eff: Efficiency, precision: str = "bf16"
) -> GemmStack:
    """Precompute the stack of GEMMs given as (count, n, k)."""
    per_gemm = [(c, gemm_lines(n, k, gpu, eff, precision)) for c, n, k in shapes if c > 0]
    cuts = sorted(
        {
            (am - ac) / (bc - bm)
            for _, (ac, bc, am, bm) in per_gemm
            if bc != bm and (am - ac) / (bc - bm) > 0
        }
    )
    bounds = (*cuts, float("inf"))
    lines = []
    for lo, hi in zip((0.0, *cuts), bounds, strict=True):
        mid = lo + 1.0 if hi == float("inf") else 0.5 * (lo + hi)
        acc = [0.0, 0.0, 0.0, 0.0]
        for count, (ac, bc, am, bm) in per_gemm:
            if ac + bc * mid >= am + bm * mid:
                acc[0] += count * ac
                acc[1] += count * bc
            else:
                acc[2] += count * am
                acc[3] += count * bm
        lines.append((acc[0], acc[1], acc[2], acc[3]))
    overhead = eff.gemm_overhead_s * sum(c for c, _ in per_gemm)
    return GemmStack(bounds, tuple(lines), overhead)
