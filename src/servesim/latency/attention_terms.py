"""Batch-independent attention coefficients of one instance, per GPU, by layer kind.

latency/roofline.py composes an iteration from these sums over the layers; here each layer kind
adds its own terms:

- full attention: overheads, Q/K/V/O bytes per query token, and the per-pair (prefill) and
  per-cached-token (decode) costs that grow with the context;
- sliding-window attention: the same per-token costs, pairs and cached tokens only inside the
  window (kept apart so the iteration can cap them at the window);
- linear attention (Gated DeltaNet): overheads, a per-token cost (the recurrent update's FLOPs
  plus the token's q/k/v/gate/output traffic) and a per-sequence cost (reading and writing the
  fixed-size state once per call; in decode the larger of that and the update's FLOPs), and
  nothing that grows with the context.

MLA runs absorbed: every head scores against the shared latent (kv_lora + rope values) and
reads back kv_lora values, so it is one 'KV head' of the latent's width.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.latency import ops
from servesim.latency.ops import ACT_BYTES, Efficiency
from servesim.specs.gpu import GpuSpec
from servesim.specs.model import ModelSpec

GemmShapes = list[tuple[float, float, float]]  # (count over all layers, n, k)


@dataclass(frozen=True, slots=True)
class AttentionTerms:
    """Attention seconds per GPU, summed over the layers of the whole model."""

    attn_base_s: float  # prefill: overheads, all layers
    attn_s_per_seq: float  # prefill: per sequence (linear layers: their state)
    attn_s_per_token: float  # prefill: per query token (linear layers: the recurrent update)
    attn_s_per_pair: float  # prefill: per (query, key) pair, full-attention layers
    decode_base_s: float
    decode_s_per_seq: float  # decode: per sequence (linear layers: state and update)
    decode_s_per_ctx: float  # decode: per cached token, full-attention layers
    window_tokens: int  # sliding window of the windowed layers; 0: none
    attn_s_per_window_pair: float  # prefill: per pair inside the window, windowed layers
    decode_s_per_window_ctx: float  # decode: per cached token in the window, windowed layers


def attention_shape(model: ModelSpec, tp: int) -> tuple[float, float, float]:
    """(query heads, KV heads, head dim) per GPU as the attention kernel sees them."""
    heads = model.num_heads / tp
    if model.is_mla:
        head_dim = (2 * model.kv_lora_rank + model.qk_rope_head_dim) / 2
        return heads, model.kv_values_per_token_per_layer / (2 * head_dim), head_dim
    return heads, max(1, model.num_kv_heads // tp), model.head_dim


def attention_gemms(model: ModelSpec, tp: int) -> GemmShapes:
    """(count over all layers, n, k) of the token mixers' GEMMs on one GPU: the attention
    layers' QKV (with the output gate's extra query width) and output projections, and the
    linear layers' input (q, k, v, z, a, b) and output projections."""
    h = float(model.hidden_size)
    num = float(model.num_attention_layers)
    gemms: GemmShapes
    if model.is_mla:
        gemms = [(num, model.attention_params_per_layer / (tp * h), h)]
    else:
        heads, kv_heads, d = attention_shape(model, tp)
        gate = heads if model.attention_output_gate else 0.0
        gemms = [(num, (heads + gate + 2 * kv_heads) * d, h), (num, h, heads * d)]
    linear = model.linear_attention
    if linear is not None:
        in_width = linear.conv_channels + linear.value_dim + 2 * linear.num_value_heads
        gemms += [
            (model.num_linear_layers, in_width / tp, h),
            (model.num_linear_layers, h, linear.value_dim / tp),
        ]
    return gemms


def _linear_costs(
    model: ModelSpec, tp: int, gpu: GpuSpec, eff: Efficiency
) -> tuple[float, float, float]:
    """(compute_s, io_s, state_s) of one linear-attention layer on one GPU: the recurrent
    update and the traffic per token, and one read and write of a sequence's state.

    Traffic per token: the conv reads and writes q, k and v; the update reads them and writes
    the output; the gated norm reads the output and z and writes the result.
    """
    linear = model.linear_attention
    if linear is None:
        return 0.0, 0.0, 0.0
    io_bytes = (3 * linear.conv_channels + 4 * linear.value_dim) * ACT_BYTES / tp
    compute, io = ops.recurrent_token_s(linear.recurrent_flops_per_token / tp, io_bytes, gpu, eff)
    state = ops.recurrent_state_s(linear.state_bytes / tp, gpu, eff)
    return float(compute), float(io), float(state)


def attention_terms(model: ModelSpec, tp: int, gpu: GpuSpec, eff: Efficiency) -> AttentionTerms:
    """The attention coefficients of `model` at tensor-parallel `tp` on `gpu`."""
    layers, attention = model.num_layers, model.num_attention_layers
    full, linear = model.num_full_attention_layers, model.num_linear_layers
    heads, kv_heads, d = attention_shape(model, tp)
    pair_s, ctx_s = ops.attention_pair_s(heads, kv_heads, d, model.kv_bytes_per_element, gpu, eff)
    qkvo_s = float(ops.attention_token_s(heads + 2 * kv_heads, d, gpu, eff))
    qo_s = float(ops.attention_token_s(heads, d, gpu, eff))
    lin_compute, lin_io, lin_state = _linear_costs(model, tp, gpu, eff)
    return AttentionTerms(
        attn_base_s=layers * eff.attention_overhead_s,
        attn_s_per_seq=layers * eff.attention_seq_s + linear * lin_state,
        attn_s_per_token=attention * (qkvo_s + float(pair_s) * eff.attention_half_tokens)
        + linear * (lin_compute + lin_io),
        attn_s_per_pair=full * float(pair_s),
        decode_base_s=layers * eff.decode_overhead_s,
        decode_s_per_seq=layers * eff.decode_seq_s
        + attention * qo_s
        + linear * (max(lin_compute, lin_state) + lin_io),
        decode_s_per_ctx=full * float(ctx_s),
        window_tokens=model.sliding_window_tokens,
        attn_s_per_window_pair=model.num_window_layers * float(pair_s),
        decode_s_per_window_ctx=model.num_window_layers * float(ctx_s),
    )
