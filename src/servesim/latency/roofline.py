"""The instance latency model: per-operator costs (latency/ops.py) composed over a model's layers.

Per GPU of a TP x PP instance, one iteration runs every layer's GEMMs (QKV, output, MLP or the
experts the batch touches), its element-wise kernels, one attention call and, with TP > 1, two
ring all-reduces; with expert parallelism (EP ranks within the TP group) a GPU runs its E/EP
experts, each sharded over TP/EP ranks, on the tokens routed to them (uniform routing). The
attention's TP all-reduce has left every rank with every token, so no dispatch is needed, and the
MLP all-reduce is the combine: EP moves the same bytes as TP and adds no all-to-all (that would
come with attention data parallelism, which is not modelled). Pipeline stages send activations;
the LM head and embedding run once; a fixed overhead per iteration, per layer and per sequence
covers scheduling, sampling and launches. Sliding-window layers cost their attention pairs and
cached-token reads only inside the window (latency/ops.py `window_*`); in `decode_coeffs` they
read a whole window per sequence (exact once every context has reached the window, which
`decode_s` corrects for shorter contexts). Linear-attention layers (Gated DeltaNet) add only
per-token and per-sequence terms (latency/attention_terms.py builds every attention term).

Everything that does not depend on the batch is precomputed by `build_roofline`, so the hot-path
methods cost a few multiply-adds. With the default `Efficiency` this is the roofline from specs
alone; with a fitted profile (latency/profiles.py) it is the calibrated model of that GPU.
"""

from __future__ import annotations

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

    def _layers(self, num_tokens: float) -> tuple[float, float, float]:
        """(compute_s, memory_s, overhead_s) of the per-layer kernels except attention."""
        t = self.terms
        gemm_c, gemm_m = t.layers.split(num_tokens)
        moe_c, moe_m = self._moe(num_tokens)
        eff = self.efficiency
        overhead = t.layers.overhead_s + t.elem_base_s + t.moe_layers * eff.moe_overhead_s
        # Per-token work outside the roofline: element-wise kernels and MoE routing.
        topk = t.moe_shape[2] if t.moe_layers else 0.0
        per_token = t.elem_s_per_token + t.moe_layers * eff.moe_token_s * topk
        return gemm_c + moe_c, gemm_m + moe_m + per_token * num_tokens, overhead

    def _head(self, num_seqs: float) -> float:
        return self.terms.head(num_seqs)

    def _comm(self, num_tokens: float) -> float:
        """All-reduces of all layers; each call takes the faster algorithm."""
        t = self.terms
        small = t.allreduce_base_s + t.allreduce_s_per_token * num_tokens
        bulk = t.bulk_allreduce_base_s + t.bulk_allreduce_s_per_token * num_tokens
        return small if small <= bulk else bulk

    def _send(self, num_tokens: float) -> float:
        return self.terms.send_base_s + self.terms.send_s_per_token * num_tokens

    def _overhead(self, num_seqs: float) -> float:
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
        comp, mem, ovh = self._layers(sum_tokens)
        a_c, a_m, a_o = self._prefill_attn(
            num_seqs,
            sum_tokens,
            prefill_attn_pairs(sum_tokens, sum_sq_tokens),
            self._window_pairs(num_seqs, sum_tokens, sum_sq_tokens),
        )
        return Breakdown(
            compute_s=comp + a_c,
            memory_s=mem + a_m + self._head(num_seqs),
            communication_s=self._comm(sum_tokens) + (self.pp - 1) * self._send(sum_tokens),
            overhead_s=ovh + a_o + self._overhead(num_seqs),
        )

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        t = self.terms
        comp, mem, ovh = self._layers(sum_tokens)
        pairs = 0.5 * (sum_sq_tokens + sum_tokens)
        attn = t.attn_base_s + t.attn_s_per_seq * num_seqs + t.attn_s_per_token * sum_tokens
        if t.window_tokens:
            attn += t.attn_s_per_window_pair * self._window_pairs(
                num_seqs, sum_tokens, sum_sq_tokens
            )
        return (
            comp
            + mem
            + ovh
            + attn
            + t.attn_s_per_pair * pairs
            + t.head(num_seqs)
            + self._comm(sum_tokens)
            + (self.pp - 1) * self._send(sum_tokens)
            + self._overhead(num_seqs)
        )

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        if self.pp == 1:
            return self.prefill_s(num_seqs, sum_tokens, sum_sq_tokens)
        comp, mem, ovh = self._layers(sum_tokens)
        attn = sum(
            self._prefill_attn(
                num_seqs,
                sum_tokens,
                prefill_attn_pairs(sum_tokens, sum_sq_tokens),
                self._window_pairs(num_seqs, sum_tokens, sum_sq_tokens),
            )
        )
        layer_work = comp + mem + ovh + attn + self._comm(sum_tokens)
        return (
            self.stage_fraction * layer_work
            + self._head(num_seqs)
            + self._send(sum_tokens)
            + self._overhead(num_seqs)
        )

    # ---- decode: the batch runs as min(n, pp) micro-batches through the pipeline ------------
    @lru_cache(maxsize=4096)  # noqa: B019  (frozen instances, bounded cache)
    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        t = self.terms
        num_micro = min(num_seqs, self.pp)
        micro = num_seqs / num_micro
        layer_work = (
            sum(self._layers(micro))
            + self._comm(micro)
            + t.decode_base_s
            + t.decode_s_per_seq * micro
        )
        if t.window_tokens:  # every context at least the window: a whole window per sequence
            layer_work += t.decode_s_per_window_ctx * micro * t.window_tokens
        send = self._send(micro) if self.pp > 1 else 0.0
        stage = self.stage_fraction * layer_work + self._head(micro) + send
        base = self.pp * stage + self._overhead(num_seqs)
        slope = self.pp * self.stage_fraction * t.decode_s_per_ctx / num_micro
        return base, slope

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        t = self.terms
        short = num_seqs * t.window_tokens - sum_ctx_tokens
        if short > 0:  # windowed layers with contexts below the window read fewer than W tokens
            num_micro = min(num_seqs, self.pp)
            base -= self.pp * self.stage_fraction * t.decode_s_per_window_ctx * short / num_micro
        return base + slope * sum_ctx_tokens

    def decode_breakdown(self, num_seqs: int, sum_ctx_tokens: int) -> Breakdown:
        t = self.terms
        num_micro = min(num_seqs, self.pp)
        micro = num_seqs / num_micro
        scale = self.pp * self.stage_fraction
        comp, mem, ovh = self._layers(micro)
        attn_mem = (
            t.decode_s_per_seq * micro
            + (t.decode_s_per_ctx * sum_ctx_tokens + self._window_ctx_s(num_seqs, sum_ctx_tokens))
            / num_micro
        )
        send = self._send(micro) * self.pp if self.pp > 1 else 0.0
        return Breakdown(
            compute_s=comp * scale,
            memory_s=(mem + attn_mem) * scale + self._head(micro) * self.pp,
            communication_s=self._comm(micro) * scale + send,
            overhead_s=(ovh + t.decode_base_s) * scale + self._overhead(num_seqs),
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
        attn = (
            sum(
                self._prefill_attn(num_chunks, num_prefill_tokens, prefill_attn_pairs, window_pairs)
            )
            if num_chunks
            else 0.0
        )
        attn += t.decode_s_per_seq * num_decode_seqs + t.decode_s_per_ctx * sum_ctx_tokens
        attn += self._window_ctx_s(num_decode_seqs, sum_ctx_tokens)
        if num_decode_seqs:
            attn += t.decode_base_s
        return (
            sum(self._layers(tokens))
            + self._head(num_decode_seqs + num_chunks)
            + attn
            + self._comm(tokens)
            + (self.pp - 1) * self._send(tokens)
            + self._overhead(num_decode_seqs + 1)
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
    # Two all-reduces per layer (attention and MLP outputs), each the faster of two algorithms.
    calls = 2 * layers if tp > 1 else 0
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
        send_base_s=link_latency + eff.send_latency_s,
        send_s_per_token=per_token_bytes / (send_bw * eff.send_efficiency),
        overhead_s=eff.iteration_overhead_s + eff.layer_overhead_s * layers,
        seq_overhead_s=eff.seq_overhead_s,
    )
    fraction = max(stage_layers(layers, pp)) / layers
    return RooflineModel(model, parallel, terms, fraction, prec, eff)
