"""Operator-level latency primitives: GEMM, attention, MoE, element-wise, collectives, sends.

Each primitive costs one kernel on one GPU, in seconds, from its shape and the GPU's datasheet
peaks scaled by the achievable-efficiency factors of an `Efficiency`:

- GEMM (m tokens x k -> n): output tiles run in waves over the SMs (latency/gemm.py); memory
  time (weights + activations) / (bandwidth * eff_memory); overhead plus the larger of the two.
- Attention: a fixed overhead, a per-sequence cost, Q/O bytes per token, and per (query, key) pair
  the larger of its FLOPs and its KV bytes -- linear in the context for a fixed batch. A
  sliding-window layer counts only the pairs inside its window (`window_*_pairs`). A
  linear-attention layer (Gated DeltaNet) costs per token, whatever the context: its recurrent
  FLOPs and token traffic, plus one read and write of each sequence's state per call
  (`recurrent_*_s`).
- MoE: the experts a batch touches (balanced or Zipf-skewed routing) are streamed once; each
  touched expert's GEMMs ramp like GEMMs; routing and permutation cost per token-expert pair.
- Element-wise kernels (norms, rotary, activation, residual add, embedding) move bytes, each
  kind at its own bandwidth fraction and launch cost.
- Ring all-reduce: latency + 2*(tp-1)/tp * bytes / (link * eff);
  a send: latency + bytes / (link * eff).

The functions accept floats or numpy arrays (the fitter evaluates whole tables at once). With
the default `Efficiency` they are the roofline; a fitted profile replaces the factors per GPU.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from servesim.latency.efficiency import ELEMENTWISE_KERNELS, Efficiency
from servesim.latency.gemm import ACT_BYTES, GemmStack, gemm_s, gemm_stack, ramp_tokens
from servesim.specs.gpu import GpuSpec
from servesim.specs.model import BYTES_PER_ELEMENT

__all__ = [
    "ACT_BYTES",
    "ELEMENTWISE_KERNELS",
    "Efficiency",
    "GemmStack",
    "allreduce_s",
    "attention_decode_s",
    "attention_pair_s",
    "attention_prefill_s",
    "attention_token_s",
    "elementwise_kernels_s",
    "elementwise_s",
    "gemm_s",
    "gemm_stack",
    "moe_s",
    "moe_split",
    "recurrent_state_s",
    "recurrent_token_s",
    "ring_factor",
    "send_s",
    "window_chunk_pairs",
    "window_context_tokens",
    "window_prompt_pairs",
]


def _flops(gpu: GpuSpec, precision: str) -> float:
    return gpu.peak_flops_per_s(precision)


def _weight_bytes(precision: str) -> float:
    return BYTES_PER_ELEMENT[precision]


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


# ---- sliding-window attention: pairs inside the window, from a batch's aggregates (scalars) ----
def window_prompt_pairs(
    num_seqs: float, sum_tokens: float, sum_sq_tokens: float, window_tokens: int
) -> float:
    """(query, key) pairs of one sliding-window layer over `num_seqs` whole prompts.

    A prompt of l <= W tokens has l*(l+1)/2 pairs (as with full attention), one of l >= W has
    W*l - W*(W-1)/2. Exact when every prompt is on the same side of the window (so for one
    prompt, or equal prompts); otherwise the mean length picks the side. Never above the
    causal pairs.
    """
    if sum_tokens <= num_seqs * window_tokens:
        return 0.5 * (sum_sq_tokens + sum_tokens)
    return window_tokens * sum_tokens - num_seqs * window_tokens * (window_tokens - 1) / 2


def window_chunk_pairs(causal_pairs: float, num_tokens: float, window_tokens: int) -> float:
    """Pairs of one sliding-window layer for prompt chunks with `causal_pairs` causal pairs over
    `num_tokens` queries: each query sees at most W keys. Exact for a chunk wholly inside the
    first window or wholly past it; a chunk straddling it is over-counted by < W*W/2."""
    return min(causal_pairs, window_tokens * num_tokens)


def window_context_tokens(num_seqs: float, sum_ctx_tokens: float, window_tokens: int) -> float:
    """Cached tokens one sliding-window layer reads for `num_seqs` decodes whose contexts sum to
    `sum_ctx_tokens` (each reads at most W): exact when every context is on the same side of W."""
    return min(sum_ctx_tokens, num_seqs * window_tokens)


# ---- linear attention (Gated DeltaNet): no context term --------------------------------------
def recurrent_token_s(
    flops_per_token: Any, io_bytes_per_token: Any, gpu: GpuSpec, eff: Efficiency
) -> tuple[Any, Any]:
    """(compute_s, memory_s) per token of one linear-attention layer's recurrent kernels: the
    state update's FLOPs at the attention compute rate, and the token's q/k/v/gate/output
    traffic at the attention bandwidth."""
    compute = flops_per_token / (gpu.peak_flops_per_s("bf16") * eff.attention_compute)
    memory = io_bytes_per_token / (gpu.memory_bw_bytes_per_s * eff.attention_memory)
    return compute, memory


def recurrent_state_s(state_bytes: Any, gpu: GpuSpec, eff: Efficiency) -> Any:
    """Seconds to read and write one sequence's recurrent state (and conv window) once: every
    prefill chunk and every decode step of a linear-attention layer does."""
    return 2.0 * state_bytes / (gpu.memory_bw_bytes_per_s * eff.attention_memory)


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
    balanced: Any = 0.0,
) -> tuple[Any, Any]:
    """(compute_s, memory_s) of one fused-MoE call (gated experts) on one GPU.

    Routing is balanced (`balanced` 1: every expert the same load, how benchmark tables are
    measured) or skewed by `eff.routing_skew` (how servesim serves); see `touched_experts`. Each
    touched expert is streamed once and its GEMMs ramp like a GEMM's (a weight-only kernel's
    ramp scaled by its weight bytes, latency/gemm.py).
    """
    touched, assignments = touched_experts(
        num_tokens, topk, num_experts, ep, balanced, eff.routing_skew
    )
    expert_params = 3.0 * hidden * inter / tp
    rate = _flops(gpu, precision) * eff.moe_compute
    half = ramp_tokens(eff.moe_half_tokens, gpu, precision)
    compute = 2.0 * expert_params * (assignments + touched * half) / rate
    moved = (
        touched * expert_params * _weight_bytes(precision) + assignments * 2 * hidden * ACT_BYTES
    )
    return compute, moved / (gpu.memory_bw_bytes_per_s * eff.moe_memory)


def touched_experts(
    num_tokens: Any,
    topk: Any,
    num_experts: Any,
    ep: Any = 1,
    balanced: Any = 0.0,
    skew: float = 0.0,
) -> tuple[Any, Any]:
    """(experts touched, token-expert assignments) on one GPU of an ep-way expert split.

    Balanced routing (every expert the same load, as benchmark tables are measured) touches
    min(E, tokens * topk) experts. Otherwise expert popularity is Zipf(`skew`) (`skewed_touched`;
    skew 0 is uniform random routing, E * (1 - (1 - topk/E)^tokens)): popular experts are shared
    by more tokens, so fewer are touched. Both are spread evenly over the ep GPUs.
    """
    assigned = num_tokens * topk
    if np.ndim(num_tokens) == 0 and np.ndim(balanced) == 0:  # one call (serving): no arrays
        if balanced:
            touched = min(assigned, num_experts)
        elif skew > 0:
            touched = skewed_touched(float(num_tokens), int(topk), int(num_experts), skew)
        else:
            touched = num_experts * (1.0 - (1.0 - topk / num_experts) ** num_tokens)
        return float(touched) / ep, assigned / ep
    if skew > 0:  # a measured table: one row per element
        routed = np.vectorize(skewed_touched, otypes=[float])(
            num_tokens, np.asarray(topk, int), np.asarray(num_experts, int), skew
        )
    else:
        routed = num_experts * (1.0 - (1.0 - topk / num_experts) ** num_tokens)
    touched = np.where(np.asarray(balanced) > 0, np.minimum(assigned, num_experts), routed)
    return touched / ep, assigned / ep


@functools.cache
def _inclusion(topk: int, num_experts: int, skew: float) -> np.ndarray:
    """Probability that one token routes to each expert when expert i (1-based rank) is chosen
    with weight i^-skew: each expert's chance over `draws` independent picks, with `draws` set so
    that a token picks `topk` experts on average."""
    weights = np.arange(1, num_experts + 1, dtype=float) ** -skew
    p = weights / weights.sum()
    lo, hi = float(topk), float(topk) * num_experts
    for _ in range(60):  # bisection on the number of draws
        draws = 0.5 * (lo + hi)
        if (1.0 - (1.0 - p) ** draws).sum() < topk:
            lo = draws
        else:
            hi = draws
    return 1.0 - (1.0 - p) ** (0.5 * (lo + hi))


@functools.lru_cache(maxsize=65536)
def skewed_touched(num_tokens: float, topk: int, num_experts: int, skew: float) -> float:
    """Expected experts touched by `num_tokens` tokens under Zipf(`skew`) expert popularity."""
    q = _inclusion(topk, num_experts, skew)
    return float((1.0 - (1.0 - q) ** num_tokens).sum())


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
    balanced: Any = 0.0,
) -> Any:
    """Seconds of one fused-MoE call on one GPU of a tp x ep group."""
    compute, memory = moe_split(
        num_tokens, hidden, inter, topk, num_experts, gpu, eff, tp, ep, precision, balanced
    )
    routing = eff.moe_token_s * num_tokens * topk
    return eff.moe_overhead_s + routing + np.maximum(compute, memory)


# ---- element-wise, collectives, sends --------------------------------------------------------
def elementwise_s(num_bytes: Any, gpu: GpuSpec, eff: Efficiency, kernel: str = "") -> Any:
    """One memory-bound kernel of kind `kernel` (norm, rotary, activation, residual, embedding;
    '' for any other) that reads and writes `num_bytes` in all."""
    memory, overhead_s = eff.kernel(kernel)
    return overhead_s + num_bytes / (gpu.memory_bw_bytes_per_s * memory)


def elementwise_kernels_s(num_bytes: Any, kernel_index: Any, gpu: GpuSpec, eff: Efficiency) -> Any:
    """Like `elementwise_s` for arrays of rows, the kernel given as an index into
    ELEMENTWISE_KERNELS (-1: any other kind)."""
    memory = np.full(np.shape(num_bytes), eff.elementwise_memory)
    overhead_s = np.full(np.shape(num_bytes), eff.elementwise_overhead_s)
    for i, name in enumerate(ELEMENTWISE_KERNELS):
        mem_i, ovh_i = eff.kernel(name)
        memory = np.where(kernel_index == i, mem_i, memory)
        overhead_s = np.where(kernel_index == i, ovh_i, overhead_s)
    return overhead_s + num_bytes / (gpu.memory_bw_bytes_per_s * memory)


def ring_factor(tp: Any) -> Any:
    """Bytes each GPU sends per byte reduced in a ring all-reduce: 2*(tp-1)/tp."""
    return 2.0 * (tp - 1) / tp


def allreduce_s(num_bytes: Any, tp: Any, link_bytes_per_s: Any, eff: Efficiency) -> Any:
    """All-reduce of `num_bytes` over `tp` GPUs on a link of one-way `link_bytes_per_s`: ring
    traffic at the faster of the small-message kernel and the bulk (NCCL ring) algorithm."""
    ring = ring_factor(tp) * num_bytes / link_bytes_per_s
    fastest = np.minimum.reduce(
        [latency + ring / fraction for latency, fraction in eff.allreduce_algorithms()]
    )
    return np.where(tp > 1, fastest, 0.0)


def send_s(num_bytes: Any, link_bytes_per_s: Any, eff: Efficiency) -> Any:
    """One point-to-point send of `num_bytes`."""
    return eff.send_latency_s + num_bytes / (link_bytes_per_s * eff.send_efficiency)
