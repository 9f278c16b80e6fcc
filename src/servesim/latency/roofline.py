"""Roofline latency model from specs alone, with achievable-efficiency factors.

Per iteration and per GPU of a TP group: GEMMs cost max(FLOPs / achieved peak, bytes / achieved
bandwidth) where the bytes are the weight shard (MoE: the experts the batch touches) plus
activations; attention costs the larger of its FLOPs and its KV/QKV bytes; each layer does two
TP all-reduces costed as a ring over the TP link, 2*(TP-1)/TP * bytes / bandwidth plus a
per-collective latency; pipeline stages send activations; a fixed overhead per iteration and per
sequence covers scheduling, sampling and kernel launches.

The `Efficiency` factors are what a fitted profile changes (see latency/fitted.py); the defaults
are typical achieved fractions of datasheet peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from servesim.latency.base import Breakdown, prefill_attn_pairs
from servesim.specs.cluster import ClusterSpec
from servesim.specs.model import BYTES_PER_ELEMENT, ModelSpec
from servesim.specs.parallel import ParallelSpec, kv_bytes_per_token_per_gpu, stage_layers


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Achieved fractions of datasheet peaks, and fixed overheads (seconds)."""

    gemm_compute: float = 0.70
    gemm_memory: float = 0.80
    attention_compute: float = 0.50
    attention_memory: float = 0.75
    communication: float = 0.70
    collective_latency_s: float = 10e-6
    iteration_overhead_s: float = 2.0e-3
    layer_overhead_s: float = 30e-6
    seq_overhead_s: float = 10e-6

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class _Terms:
    """Coefficients of one instance, per GPU, for all layers (seconds per unit)."""

    gemm_s_per_token: float           # linear-layer FLOPs at achieved compute
    logits_s_per_seq: float           # LM-head FLOPs, one token per sequence
    weight_s: float                   # streaming the dense weight shard once
    expert_s: float                   # streaming one routed expert of every MoE layer once
    num_experts: int
    experts_per_token: int
    act_s_per_token: float            # activation bytes at achieved bandwidth
    attn_s_per_pair: float            # prefill attention FLOPs per (query, key) pair
    qkv_s_per_token: float            # prefill attention bytes per token
    decode_s_per_ctx: float           # decode attention per context token (max of bytes, FLOPs)
    allreduce_s_per_token: float      # TP ring all-reduce bytes, all layers
    allreduce_latency_s: float        # TP per-collective latencies, all layers
    send_s_per_token: float           # one PP stage boundary
    send_latency_s: float
    overhead_s: float
    seq_overhead_s: float


@dataclass(frozen=True)
class RooflineModel:
    """Latency model of one instance built from specs; implements `LatencyModel`."""

    model: ModelSpec
    parallel: ParallelSpec
    terms: _Terms
    stage_fraction: float  # layers of the busiest stage / all layers
    precision: str = "bf16"
    efficiency: Efficiency = field(default_factory=Efficiency)

    @property
    def pp(self) -> int:
        return self.parallel.pp

    # ---- the pieces, for all layers of the instance ------------------------------------------
    def _touched_expert_s(self, num_tokens: float) -> float:
        t = self.terms
        if t.num_experts == 0 or num_tokens <= 0:
            return 0.0
        share = 1.0 - (1.0 - t.experts_per_token / t.num_experts) ** num_tokens
        return t.expert_s * t.num_experts * share

    def _gemm(self, num_tokens: float, num_seqs: float) -> tuple[float, float]:
        """(compute_s, memory_s) of the linear layers; only the larger one counts."""
        t = self.terms
        compute = t.gemm_s_per_token * num_tokens + t.logits_s_per_seq * num_seqs
        memory = t.weight_s + self._touched_expert_s(num_tokens) + t.act_s_per_token * num_tokens
        return compute, memory

    def _comm(self, num_tokens: float) -> float:
        t = self.terms
        return t.allreduce_latency_s + t.allreduce_s_per_token * num_tokens

    def _send(self, num_tokens: float) -> float:
        return (self.pp - 1) * (self.terms.send_latency_s + self.terms.send_s_per_token * num_tokens)

    def _overhead(self, num_seqs: float) -> float:
        return self.terms.overhead_s + self.terms.seq_overhead_s * num_seqs

    def _split(self, compute: float, memory: float) -> tuple[float, float]:
        return (compute, 0.0) if compute >= memory else (0.0, memory)

    # ---- prefill ------------------------------------------------------------------------------
    def prefill_breakdown(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> Breakdown:
        gemm_c, gemm_m = self._split(*self._gemm(sum_tokens, num_seqs))
        attn_c = self.terms.attn_s_per_pair * prefill_attn_pairs(sum_tokens, sum_sq_tokens)
        attn_c, attn_m = self._split(attn_c, self.terms.qkv_s_per_token * sum_tokens)
        return Breakdown(
            compute_s=gemm_c + attn_c,
            memory_s=gemm_m + attn_m,
            communication_s=self._comm(sum_tokens) + self._send(sum_tokens),
            overhead_s=self._overhead(num_seqs),
        )

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.prefill_breakdown(num_seqs, sum_tokens, sum_sq_tokens).total_s

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        if self.pp == 1:
            return self.prefill_s(num_seqs, sum_tokens, sum_sq_tokens)
        b = self.prefill_breakdown(num_seqs, sum_tokens, sum_sq_tokens)
        layer_work = b.compute_s + b.memory_s + self._comm(sum_tokens)
        send = self._send(sum_tokens) / (self.pp - 1)
        return self.stage_fraction * layer_work + send + b.overhead_s

    # ---- decode: the batch runs as min(n, pp) micro-batches through the pipeline ------------
    @lru_cache(maxsize=4096)  # noqa: B019  (frozen instances, bounded cache)
    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        num_micro = min(num_seqs, self.pp)
        micro_seqs = num_seqs / num_micro
        gemm = max(self._gemm(micro_seqs, micro_seqs))
        layer_work = gemm + self._comm(micro_seqs)
        send = self._send(micro_seqs) / (self.pp - 1) if self.pp > 1 else 0.0
        stage = self.stage_fraction * layer_work + send
        base = self.pp * stage + self._overhead(num_seqs)
        slope = self.pp * self.stage_fraction * self.terms.decode_s_per_ctx / num_micro
        return base, slope

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        return base + slope * sum_ctx_tokens

    def decode_breakdown(self, num_seqs: int, sum_ctx_tokens: int) -> Breakdown:
        num_micro = min(num_seqs, self.pp)
        scale = self.pp * self.stage_fraction
        gemm_c, gemm_m = self._split(*self._gemm(num_seqs / num_micro, num_seqs / num_micro))
        attn = self.terms.decode_s_per_ctx * sum_ctx_tokens / num_micro
        comm = self._comm(num_seqs / num_micro) * scale + self._send(num_seqs / num_micro) * self.pp / max(1, self.pp - 1) * (self.pp > 1)
        return Breakdown(
            compute_s=gemm_c * scale,
            memory_s=(gemm_m + attn) * scale,
            communication_s=comm,
            overhead_s=self._overhead(num_seqs),
        )

    # ---- chunked prefill: chunks and decodes share one pass (no micro-batching) -------------
    def mixed_s(
        self, num_prefill_tokens: int, prefill_attn_pairs: float, num_decode_seqs: int, sum_ctx_tokens: int
    ) -> float:
        tokens = num_prefill_tokens + num_decode_seqs
        gemm = max(self._gemm(tokens, num_decode_seqs + (1 if num_prefill_tokens else 0)))
        attn = max(self.terms.attn_s_per_pair * prefill_attn_pairs, self.terms.qkv_s_per_token * num_prefill_tokens)
        attn += self.terms.decode_s_per_ctx * sum_ctx_tokens
        return gemm + attn + self._comm(tokens) + self._send(tokens) + self._overhead(num_decode_seqs + 1)


def build_roofline(
    model: ModelSpec,
    cluster: ClusterSpec,
    parallel: ParallelSpec,
    efficiency: Efficiency | None = None,
    precision: str = "bf16",
) -> RooflineModel:
    """Precompute the roofline coefficients of a TP x PP instance of `model` on `cluster`."""
    eff = efficiency or Efficiency()
    gpu = cluster.gpu
    tp, pp = parallel.tp, parallel.pp
    act_bytes = BYTES_PER_ELEMENT["bf16"]
    w_bytes = model.bytes_per_param
    flops = gpu.peak_flops_per_s(precision)
    bw = gpu.memory_bw_bytes_per_s
    h, layers = model.hidden_size, model.num_layers

    lm_head_params = model.vocab_size * h
    per_token_flops = model.linear_flops_per_token - 2.0 * lm_head_params
    expert_params = model.mlp_params(model.moe_ffn_size) if model.is_moe else 0
    routed_params = model.num_moe_layers * model.num_experts * expert_params
    dense_weight_bytes = (model.num_params - routed_params) * w_bytes / tp
    act_per_token = layers * (6 * h + 3 * max(model.ffn_size, model.moe_ffn_size) / tp) * act_bytes
    qkv_per_token = layers * (model.num_heads + 2 * model.num_kv_heads) * model.head_dim * act_bytes / tp
    kv_per_ctx = kv_bytes_per_token_per_gpu(model, tp, layers)
    decode_attn = max(
        kv_per_ctx / (bw * eff.attention_memory),
        model.attention_flops_per_token_per_context / tp / (flops * eff.attention_compute),
    )
    link_bw = cluster.intra_node_bytes_per_s * eff.communication
    ring = 2 * (tp - 1) / tp if tp > 1 else 0.0
    spans_nodes = parallel.num_gpus > cluster.gpus_per_node
    send_bw = (cluster.inter_node_bytes_per_s if spans_nodes else cluster.intra_node_bytes_per_s)
    terms = _Terms(
        gemm_s_per_token=per_token_flops / tp / (flops * eff.gemm_compute),
        logits_s_per_seq=2.0 * lm_head_params / tp / (flops * eff.gemm_compute),
        weight_s=dense_weight_bytes / (bw * eff.gemm_memory),
        expert_s=model.num_moe_layers * expert_params * w_bytes / tp / (bw * eff.gemm_memory),
        num_experts=model.num_experts,
        experts_per_token=model.experts_per_token,
        act_s_per_token=act_per_token / (bw * eff.gemm_memory),
        attn_s_per_pair=model.attention_flops_per_token_per_context / tp / (flops * eff.attention_compute),
        qkv_s_per_token=qkv_per_token / (bw * eff.attention_memory),
        decode_s_per_ctx=decode_attn,
        allreduce_s_per_token=2 * layers * ring * h * act_bytes / link_bw if tp > 1 else 0.0,
        allreduce_latency_s=2 * layers * eff.collective_latency_s if tp > 1 else 0.0,
        send_s_per_token=h * act_bytes / (send_bw * eff.communication),
        send_latency_s=cluster.inter_node_latency_s if spans_nodes else cluster.intra_node_latency_s,
        overhead_s=eff.iteration_overhead_s + eff.layer_overhead_s * layers,
        seq_overhead_s=eff.seq_overhead_s,
    )
    fraction = max(stage_layers(layers, pp)) / layers
    return RooflineModel(model, parallel, terms, fraction, precision, eff)
