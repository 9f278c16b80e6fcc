"""The instance latency model: per-operator costs (latency/ops.py) composed over a model's layers.

Per GPU of a TP x PP instance, one iteration runs every layer's GEMMs (QKV, output, MLP or the
experts the batch touches), its element-wise kernels, one attention call and, with TP > 1, two
ring all-reduces; with expert parallelism (EP ranks within the TP group) a GPU runs its E/EP
experts, each sharded over TP/EP ranks, on the tokens routed to them (uniform routing). The
attention's TP all-reduce has left every rank with every token, so no dispatch is needed, and the
MLP all-reduce is the combine: EP moves the same bytes as TP and adds no all-to-all.

With attention data parallelism (DP ranks of TP GPUs each, specs/parallel.py) each rank runs the
attention, dense and shared-expert layers on its own sequences, and the iteration takes as long
as the busiest rank: ceil(n / DP) of n sequences (of a chunk's prompts, estimated from its
attention pairs), their share of the tokens, pairs and context, and its scheduler's
per-sequence overhead. The routed experts run on every token of all ranks, spread over the
TP x DP GPUs; per MoE layer the tokens reach them and come back by an all-gather and a
reduce-scatter over those GPUs (one all-reduce's bytes) or by an all-to-all to their top-k
experts (top-k / (TP x DP) of that), whichever is faster, at the inter-node bandwidth when the
ranks span nodes; each rank's TP all-reduces remain for the attention and the dense MLPs.

Pipeline stages send activations; the LM head and embedding run once; a fixed overhead per
iteration, per layer and per sequence covers scheduling, sampling and launches. Sliding-window
layers cost their attention pairs and cached-token reads only inside the window (latency/ops.py
`window_*`); in `decode_coeffs` they read a whole window per sequence (exact once every context
has reached the window, which `decode_s` corrects for shorter contexts). Linear-attention layers
(Gated DeltaNet) add only per-token and per-sequence terms (latency/attention_terms.py builds
every attention term).

Everything that does not depend on the batch is precomputed by `build_roofline`, so the hot-path
methods cost a few multiply-adds. With the default `Efficiency` this is the roofline from specs
alone; with a fitted profile (latency/profiles.py) it is the calibrated model of that GPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from servesim.latency import ops
from servesim.latency.attention_terms import attention_gemms, attention_shape, attention_terms
from servesim.latency.base import Breakdown, prefill_attn_pairs
from servesim.latency.ops import Efficiency, GemmStack
from servesim.specs.cluster import ClusterSpec
from servesim.specs.gpu import GpuSpec
from servesim.specs.model import QUANTIZED_DTYPES, ModelSpec
from servesim.specs.parallel import ParallelSpec, stage_layers

__all__ = ["Efficiency", "RooflineModel", "build_roofline"]


@dataclass(frozen=True, slots=True)
class _Terms:
    """Batch-independent coefficients of one instance, per GPU, summed over all layers (seconds)."""

    gpu: GpuSpec
    layers: GemmStack  # per-layer GEMMs (MoE: attention, router, shared experts)
    head: GemmStack  # LM head, one token per sequence
    elem_base_s: float  # element-wise kernel overheads
    elem_s_per_token: float
    moe_layers: int
    moe_shape: tuple[float, float, float, float, float, float]  # hidden, inter, topk, E, moe_tp, ep
    attn_base_s: float  # attention overheads, all layers
    attn_s_per_seq: float  # prefill: per sequence
    attn_s_per_token: float  # prefill: Q/K/V/O bytes per query token
    attn_s_per_pair: float  # prefill: per (query, key) pair, full-attention layers
    decode_base_s: float
    decode_s_per_seq: float
    decode_s_per_ctx: float  # full-attention layers
    allreduce_base_s: float  # the small-message all-reduce algorithm, all layers
    allreduce_s_per_token: float
    bulk_allreduce_base_s: float  # the bulk algorithm (the small one's line when there is none)
    bulk_allreduce_s_per_token: float
    send_base_s: float  # one PP stage boundary
    send_s_per_token: float
    overhead_s: float  # per iteration (including per-layer overheads)
    seq_overhead_s: float
    dp: int = 1  # attention data-parallel ranks
    # attention DP: (base, per token) of each algorithm of the MoE layers' gather and scatter
    moe_comm_lines: tuple[tuple[float, float], ...] = ()
    window_tokens: int = 0  # sliding window of the windowed layers; 0: none
    attn_s_per_window_pair: float = 0.0  # prefill: per pair inside the window, windowed layers
    decode_s_per_window_ctx: float = 0.0  # decode: per cached token in the window, windowed layers


@dataclass(frozen=True, eq=False)  # identity hash: decode_coeffs is cached per instance
class RooflineModel:
    """Latency model of one instance composed from operator costs; implements `LatencyModel`."""

    model: ModelSpec
    parallel: ParallelSpec
    terms: _Terms
    stage_fraction: float  # layers of the busiest stage / all layers
    precision: str = "bf16"
    efficiency: Efficiency = field(default_factory=Efficiency)

    @property
    def pp(self) -> int:
        return self.parallel.pp

    # ---- pieces, for all layers of the instance ------------------------------------------------
    def _moe(self, num_tokens: float) -> tuple[float, float]:
        """(compute_s, memory_s) of the routed experts, all MoE layers (only the larger counts)."""
        t = self.terms
        if t.moe_layers == 0 or num_tokens <= 0:
            return 0.0, 0.0
        hidden, inter, topk, experts, moe_tp, ep = t.moe_shape
        compute, memory = ops.moe_split(
            num_tokens,
            hidden,
            inter,
            topk,
            experts,
            t.gpu,
            self.efficiency,
            moe_tp,
            ep,
            self.precision,
        )
        if compute >= memory:
            return t.moe_layers * float(compute), 0.0
        return 0.0, t.moe_layers * float(memory)

    def _layers(
        self, num_tokens: float, all_tokens: float | None = None
    ) -> tuple[float, float, float]:
        """(compute_s, memory_s, overhead_s) of the per-layer kernels except attention, for
        `num_tokens` on the busiest attention rank of `all_tokens` (default: one rank)."""
        t = self.terms
        gemm_c, gemm_m = t.layers.split(num_tokens)
        moe_c, moe_m = self._moe(num_tokens if all_tokens is None else all_tokens)
        eff = self.efficiency
        overhead = t.layers.overhead_s + t.elem_base_s + t.moe_layers * eff.moe_overhead_s
        # Per-token work outside the roofline: element-wise kernels and MoE routing.
        topk = t.moe_shape[2] if t.moe_layers else 0.0
        per_token = t.elem_s_per_token + t.moe_layers * eff.moe_token_s * topk
        return gemm_c + moe_c, gemm_m + moe_m + per_token * num_tokens, overhead

    def _head(self, num_seqs: float) -> float:
        return self.terms.head(num_seqs)

    def _comm(self, num_tokens: float, all_tokens: float | None = None) -> float:
        """All-reduces of all layers, each call the faster algorithm, for `num_tokens` on the
        busiest attention rank; with attention DP, plus the MoE layers' gather and scatter of
        `all_tokens`."""
        t = self.terms
        small = t.allreduce_base_s + t.allreduce_s_per_token * num_tokens
        bulk = t.bulk_allreduce_base_s + t.bulk_allreduce_s_per_token * num_tokens
        tp_comm = small if small <= bulk else bulk
        if t.dp == 1:
            return tp_comm
        tokens = num_tokens if all_tokens is None else all_tokens
        return tp_comm + min(base + slope * tokens for base, slope in t.moe_comm_lines)

    def _rank_share(self, num_seqs: float) -> float:
        """The busiest attention rank's share of `num_seqs` sequences: ceil(n / DP) / n."""
        dp = self.terms.dp
        if dp == 1 or num_seqs <= 1:
            return 1.0
        return math.ceil(num_seqs / dp - 1e-9) / num_seqs

    def _chunk_share(self, num_tokens: float, pairs: float) -> float:
        """The busiest rank's share of a chunk's prompt tokens: its prompts counted as
        tokens^2 / (2 * pairs) (exact for whole prompts of one length, fewer when chunks
        attend to earlier context)."""
        if self.terms.dp == 1 or pairs <= 0:
            return 1.0
        return self._rank_share(max(1, round(num_tokens * num_tokens / (2.0 * pairs))))

    def _send(self, num_tokens: float) -> float:
        return self.terms.send_base_s + self.terms.send_s_per_token * num_tokens

    def _overhead(self, num_seqs: float) -> float:
        """Per-iteration and per-sequence overheads (of the busiest rank's sequences: each
        attention DP rank schedules its own)."""
        return self.terms.overhead_s + self.terms.seq_overhead_s * num_seqs

    def _prefill_attn(
        self, num_seqs: float, num_tokens: float, pairs: float, window_pairs: float = 0.0
    ) -> tuple[float, float, float]:
        t = self.terms
        return (
            t.attn_s_per_pair * pairs + t.attn_s_per_window_pair * window_pairs,
            t.attn_s_per_token * num_tokens,
            t.attn_base_s + t.attn_s_per_seq * num_seqs,
        )

    def _window_pairs(self, num_seqs: float, sum_tokens: float, sum_sq_tokens: float) -> float:
        """Pairs of one windowed layer over whole prompts (0 without windowed layers)."""
        window = self.terms.window_tokens
        if not window:
            return 0.0
        return ops.window_prompt_pairs(num_seqs, sum_tokens, sum_sq_tokens, window)

    def _window_ctx_s(self, num_seqs: float, sum_ctx_tokens: float) -> float:
        """Decode reads of the windowed layers' caches (0 without windowed layers)."""
        t = self.terms
        if not t.window_tokens:
            return 0.0
        ctx = ops.window_context_tokens(num_seqs, sum_ctx_tokens, t.window_tokens)
        return t.decode_s_per_window_ctx * ctx

    # ---- prefill ------------------------------------------------------------------------------
    def prefill_breakdown(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> Breakdown:
        share = self._rank_share(num_seqs)
        seqs, tokens, sq = num_seqs * share, sum_tokens * share, sum_sq_tokens * share
        comp, mem, ovh = self._layers(tokens, sum_tokens)
        a_c, a_m, a_o = self._prefill_attn(
            seqs,
            tokens,
            prefill_attn_pairs(tokens, sq),
            self._window_pairs(seqs, tokens, sq),
        )
        return Breakdown(
            compute_s=comp + a_c,
            memory_s=mem + a_m + self._head(seqs),
            communication_s=self._comm(tokens, sum_tokens) + (self.pp - 1) * self._send(tokens),
            overhead_s=ovh + a_o + self._overhead(seqs),
        )

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        t = self.terms
        share = self._rank_share(num_seqs)
        seqs, tokens, sq = num_seqs * share, sum_tokens * share, sum_sq_tokens * share
        comp, mem, ovh = self._layers(tokens, sum_tokens)
        pairs = 0.5 * (sq + tokens)
        attn = t.attn_base_s + t.attn_s_per_seq * seqs + t.attn_s_per_token * tokens
        if t.window_tokens:
            attn += t.attn_s_per_window_pair * self._window_pairs(seqs, tokens, sq)
        return (
            comp
            + mem
            + ovh
            + attn
            + t.attn_s_per_pair * pairs
            + t.head(seqs)
            + self._comm(tokens, sum_tokens)
            + (self.pp - 1) * self._send(tokens)
            + self._overhead(seqs)
        )

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        if self.pp == 1:
            return self.prefill_s(num_seqs, sum_tokens, sum_sq_tokens)
        share = self._rank_share(num_seqs)
        seqs, tokens, sq = num_seqs * share, sum_tokens * share, sum_sq_tokens * share
        comp, mem, ovh = self._layers(tokens, sum_tokens)
        attn = sum(
            self._prefill_attn(
                seqs,
                tokens,
                prefill_attn_pairs(tokens, sq),
                self._window_pairs(seqs, tokens, sq),
            )
        )
        layer_work = comp + mem + ovh + attn + self._comm(tokens, sum_tokens)
        return (
            self.stage_fraction * layer_work
            + self._head(seqs)
            + self._send(tokens)
            + self._overhead(seqs)
        )

    # ---- decode: the batch runs as min(n, pp) micro-batches through the pipeline ------------
    @lru_cache(maxsize=4096)  # noqa: B019  (frozen instances, bounded cache)
    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        t = self.terms
        num_micro = min(num_seqs, self.pp)
        micro = num_seqs / num_micro
        share = self._rank_share(num_seqs)
        rank = micro * share  # the busiest attention rank's sequences of a micro-batch
        layer_work = (
            sum(self._layers(rank, micro))
            + self._comm(rank, micro)
            + t.decode_base_s
            + t.decode_s_per_seq * rank
        )
        if t.window_tokens:  # every context at least the window: a whole window per sequence
            layer_work += t.decode_s_per_window_ctx * rank * t.window_tokens
        send = self._send(rank) if self.pp > 1 else 0.0
        stage = self.stage_fraction * layer_work + self._head(rank) + send
        base = self.pp * stage + self._overhead(num_seqs * share)
        slope = self.pp * self.stage_fraction * t.decode_s_per_ctx * share / num_micro
        return base, slope

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        t = self.terms
        short = num_seqs * t.window_tokens - sum_ctx_tokens
        if short > 0:  # windowed layers with contexts below the window read fewer than W tokens
            num_micro = min(num_seqs, self.pp)
            rank_short = short * self._rank_share(num_seqs)
            base -= (
                self.pp * self.stage_fraction * t.decode_s_per_window_ctx * rank_short / num_micro
            )
        return base + slope * sum_ctx_tokens

    def decode_breakdown(self, num_seqs: int, sum_ctx_tokens: int) -> Breakdown:
        t = self.terms
        num_micro = min(num_seqs, self.pp)
        micro = num_seqs / num_micro
        share = self._rank_share(num_seqs)
        rank = micro * share
        scale = self.pp * self.stage_fraction
        comp, mem, ovh = self._layers(rank, micro)
        ctx_s = t.decode_s_per_ctx * sum_ctx_tokens + self._window_ctx_s(num_seqs, sum_ctx_tokens)
        attn_mem = t.decode_s_per_seq * rank + ctx_s * share / num_micro
        send = self._send(rank) * self.pp if self.pp > 1 else 0.0
        return Breakdown(
            compute_s=comp * scale,
            memory_s=(mem + attn_mem) * scale + self._head(rank) * self.pp,
            communication_s=self._comm(rank, micro) * scale + send,
            overhead_s=(ovh + t.decode_base_s) * scale + self._overhead(num_seqs * share),
        )

    # ---- chunked prefill: chunks and decodes share one pass (no micro-batching) -------------
    def mixed_s(
        self,
        num_prefill_tokens: int,
        prefill_attn_pairs: float,
        num_decode_seqs: int,
        sum_ctx_tokens: int,
    ) -> float:
        t = self.terms
        tokens = num_prefill_tokens + num_decode_seqs
        num_chunks = 1 if num_prefill_tokens else 0
        window_pairs = (
            ops.window_chunk_pairs(prefill_attn_pairs, num_prefill_tokens, t.window_tokens)
            if t.window_tokens
            else 0.0
        )
        # The busiest attention rank: its share of the chunk's prompts and of the decodes.
        chunk = self._chunk_share(num_prefill_tokens, prefill_attn_pairs)
        share = self._rank_share(num_decode_seqs)
        decodes = num_decode_seqs * share
        rank_tokens = num_prefill_tokens * chunk + decodes
        attn = (
            sum(
                self._prefill_attn(
                    num_chunks,
                    num_prefill_tokens * chunk,
                    prefill_attn_pairs * chunk,
                    window_pairs * chunk,
                )
            )
            if num_chunks
            else 0.0
        )
        attn += t.decode_s_per_seq * decodes + t.decode_s_per_ctx * sum_ctx_tokens * share
        attn += self._window_ctx_s(num_decode_seqs, sum_ctx_tokens) * share
        if num_decode_seqs:
            attn += t.decode_base_s
        return (
            sum(self._layers(rank_tokens, tokens))
            + self._head(decodes + num_chunks)
            + attn
            + self._comm(rank_tokens, tokens)
            + (self.pp - 1) * self._send(rank_tokens)
            + self._overhead(decodes + 1)
        )


# ---- precompute ---------------------------------------------------------------------------------
def _layer_gemms(model: ModelSpec, tp: int) -> list[tuple[float, float, float]]:
    """(count over all layers, n, k) of each per-layer GEMM on one GPU."""
    h = float(model.hidden_size)
    attention = attention_gemms(model, tp)
    up = 2 if model.gated_mlp else 1
    dense = model.num_layers - model.num_moe_layers
    mlp: list[tuple[float, float, float]] = [
        (dense, up * model.ffn_size / tp, h),
        (dense, h, model.ffn_size / tp),
    ]
    if model.is_moe:
        shared = model.shared_expert_width / tp
        mlp += [
            (model.num_moe_layers, model.num_experts, h),
            (model.num_moe_layers if shared else 0, up * shared, h),
            (model.num_moe_layers if shared else 0, h, shared),
        ]
    return attention + mlp


def _elementwise(model: ModelSpec, tp: int, eff: Efficiency, gpu: GpuSpec) -> tuple[float, float]:
    """(overhead_s, s_per_token) of norms, rotary, activation, residual adds and the embedding.

    Per layer: two norms, one rotary (attention layers only), one activation, two residual adds;
    once: the embedding gather and the final norm. Bytes per token are reads plus writes in
    16-bit activations.
    """
    h, layers = model.hidden_size, model.num_layers
    heads, kv_heads, d = attention_shape(model, tp)
    width = model.ffn_size if not model.is_moe else model.shared_expert_width
    act = (3 if model.gated_mlp else 2) * width / tp
    kernels = (  # (kind, launches, bytes per token per launch)
        ("norm", 2 * layers + 1, 4 * h),
        ("rotary", model.num_attention_layers, 4 * (heads + kv_heads) * d),
        ("activation", layers, 2 * act),
        ("residual", 2 * layers, 6 * h),
        ("embedding", 1, 4 * h),
    )
    overhead_s = per_token_s = 0.0
    for kind, count, num_bytes in kernels:
        memory, launch_s = eff.kernel(kind)
        overhead_s += count * launch_s
        per_token_s += count * num_bytes / (gpu.memory_bw_bytes_per_s * memory)
    return overhead_s, per_token_s


def _moe_collective(
    model: ModelSpec, cluster: ClusterSpec, parallel: ParallelSpec, eff: Efficiency
) -> tuple[tuple[float, float], ...]:
    """(base, per token) of each way to move the MoE layers' tokens over the TP x DP GPUs of an
    attention-DP stage (none without attention DP), on the NICs when the ranks span nodes: an
    all-gather and a reduce-scatter (one all-reduce's ring bytes per MoE layer) or an
    all-to-all dispatch and combine, each at the all-reduce algorithms' latency and efficiency."""
    if parallel.dp == 1:
        return ()
    gpus = parallel.moe_gpus
    if gpus > cluster.gpus_per_node:
        link, latency = cluster.inter_node_bytes_per_s, cluster.inter_node_latency_s
    else:
        link, latency = cluster.intra_node_bytes_per_s, 0.0
    calls = model.num_moe_layers
    per_token = calls * float(ops.ring_factor(gpus)) * model.hidden_size * ops.ACT_BYTES / link
    # An all-to-all sends each GPU's share of its rank's tokens to their top-k experts' GPUs and
    # back: top-k / (TP x DP) of the gather's bytes; engines take it for wide expert parallelism.
    alltoall = per_token * model.experts_per_token / gpus
    slopes = (per_token, alltoall)
    algorithms = eff.allreduce_algorithms()
    return tuple((calls * (lat + latency), v / frac) for lat, frac in algorithms for v in slopes)


def build_roofline(
    model: ModelSpec,
    cluster: ClusterSpec,
    parallel: ParallelSpec,
    efficiency: Efficiency | None = None,
    precision: str = "bf16",
) -> RooflineModel:
    """Precompute the coefficients of a TP x PP instance of `model` on `cluster`."""
    eff = efficiency or Efficiency()
    gpu = cluster.gpu
    tp, pp, layers = parallel.tp, parallel.pp, model.num_layers
    prec = next((p for p in QUANTIZED_DTYPES if p in (precision, model.dtype)), "bf16")
    h = model.hidden_size
    elem_base, elem_per_token = _elementwise(model, tp, eff, gpu)
    spans_nodes = parallel.num_gpus > cluster.gpus_per_node
    send_bw = cluster.inter_node_bytes_per_s if spans_nodes else cluster.intra_node_bytes_per_s
    link_latency = cluster.inter_node_latency_s if spans_nodes else cluster.intra_node_latency_s
    per_token_bytes = h * ops.ACT_BYTES
    # Two all-reduces per layer (attention and MLP outputs), each the faster of two algorithms;
    # with attention DP, the MoE layers' MLP outputs are combined over all ranks instead.
    mlp_calls = layers if parallel.dp == 1 else layers - model.num_moe_layers
    calls = layers + mlp_calls if tp > 1 else 0
    ring_per_token = calls * float(ops.ring_factor(tp)) * per_token_bytes
    ring_per_token /= cluster.intra_node_bytes_per_s
    # (base, per token) of the small-message and the bulk algorithm (the same without a bulk one)
    lines = [(calls * lat, ring_per_token / frac) for lat, frac in eff.allreduce_algorithms()]
    (small_base, small_slope), (bulk_base, bulk_slope) = lines[0], lines[-1]
    terms = _Terms(
        gpu=gpu,
        layers=ops.gemm_stack(_layer_gemms(model, tp), gpu, eff, prec),
        head=ops.gemm_stack([(1, model.vocab_size / tp, h)], gpu, eff, prec),
        elem_base_s=elem_base,
        elem_s_per_token=elem_per_token,
        moe_layers=model.num_moe_layers,
        moe_shape=(
            h,
            model.moe_ffn_size,
            model.experts_per_token,
            model.num_experts,
            parallel.moe_tp,
            parallel.ep,
        ),
        **asdict(attention_terms(model, tp, gpu, eff)),
        allreduce_base_s=small_base,
        allreduce_s_per_token=small_slope,
        bulk_allreduce_base_s=bulk_base,
        bulk_allreduce_s_per_token=bulk_slope,
        moe_comm_lines=_moe_collective(model, cluster, parallel, eff),
        send_base_s=link_latency + eff.send_latency_s,
        send_s_per_token=per_token_bytes / (send_bw * eff.send_efficiency),
        overhead_s=eff.iteration_overhead_s + eff.layer_overhead_s * layers,
        seq_overhead_s=eff.seq_overhead_s,
        dp=parallel.dp,
    )
    fraction = max(stage_layers(layers, pp)) / layers
    return RooflineModel(model, parallel, terms, fraction, prec, eff)
