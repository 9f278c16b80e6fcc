"""Model architectures: one frozen `ModelSpec` from any Hugging Face config.json.

Covers grouped-query and multi-head attention, DeepSeek's MLA, dense and MoE MLPs (routed and
shared experts, leading dense layers) and sliding-window layers; specs/hf_config.py builds one
from a Hugging Face config.json. Derived quantities (parameters, weight bytes, KV bytes, FLOPs)
are properties or methods, so a spec is the single source of them.

Sliding-window attention: a windowed layer's query at (1-based) position i attends to the
min(i, window) latest tokens, itself included, and the layer keeps at most `window` tokens of
KV per sequence; full-attention layers attend to and keep every token. Linear-attention layers
(Gated DeltaNet, specs/linear_attention.py) keep a fixed-size state per sequence instead of KV
and cost the same per token whatever the context.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from servesim.errors import InputError
from servesim.specs.linear_attention import LinearAttention

# fp4 is NVFP4: 4-bit values plus one fp8 scale per block of 16 (the per-tensor scale is noise).
# int4 is weight-only W4A16 (compressed-tensors pack-quantized, Kimi-K2's INT4 checkpoints): 4-bit
# values plus one bf16 scale per group of 32, widened to bf16 for the tensor cores.
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4,
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "fp4": 0.5625,
    "int4": 0.5625,
}
QUANTIZED_DTYPES = ("fp4", "int4", "fp8")  # weight precisions whose GEMMs differ from bf16's
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8")  # no 4-bit KV cache
# The KV cache of a checkpoint whose weights are 4-bit: NVFP4 ones ship an fp8 cache, W4A16 bf16.
DEFAULT_KV_DTYPE = {"fp4": "fp8", "int4": "bf16"}
# Model types whose attention output projection has a bias when `attention_bias` is set.
_OUT_BIAS_TYPES = ("opt", "gpt_oss")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture of a decoder-only transformer.

    Attention is grouped-query (`num_kv_heads` <= `num_heads`) unless `kv_lora_rank` > 0, in which
    case it is DeepSeek's multi-head latent attention (MLA) and the KV cache holds the compressed
    latent (`kv_lora_rank` + `qk_rope_head_dim` values per token per layer).
    MoE layers (`num_experts` > 0) route each token to `experts_per_token` of `num_experts`
    experts of width `moe_ffn_size`, plus `num_shared_experts` always-on experts; the first
    `num_dense_layers` layers use a dense MLP of width `ffn_size`.
    Layers listed in `window_layers` (0-based) use sliding-window attention over the latest
    `sliding_window_tokens` tokens; layers listed in `linear_layers` are linear-attention layers
    of shape `linear_attention`; the others attend to the whole context. With
    `attention_output_gate` (Qwen3-Next, Qwen3.5) the query projection also yields a sigmoid
    gate on the attention output (twice the query width). Shared experts have width
    `shared_expert_ffn_size` when set (Qwen's single shared expert), else `moe_ffn_size`.
    """

    name: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_size: int
    vocab_size: int
    max_context_tokens: int
    dtype: str = "bf16"
    gated_mlp: bool = True
    attention_bias: bool = False
    tie_embeddings: bool = False
    learned_positions: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_ffn_size: int = 0
    num_shared_experts: int = 0
    num_dense_layers: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    kv_dtype: str | None = None
    mlp_bias: bool = False  # MLP / expert projections (and the router) carry biases
    sliding_window_tokens: int = 0  # 0: no sliding-window layers
    window_layers: tuple[int, ...] = ()
    attention_output_gate: bool = False
    shared_expert_ffn_size: int = 0  # 0: shared experts as wide as the routed ones
    linear_attention: LinearAttention | None = None
    linear_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for field in (
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_size",
        ):
            if getattr(self, field) <= 0:
                raise InputError(f"model.{field}", getattr(self, field), "a positive integer")
        if self.num_heads % self.num_kv_heads:
            raise InputError(
                "model.num_kv_heads",
                self.num_kv_heads,
                f"must divide num_heads={self.num_heads}",
            )
        if self.dtype not in BYTES_PER_ELEMENT:
            raise InputError("model.dtype", self.dtype, f"one of {', '.join(BYTES_PER_ELEMENT)}")
        if self.kv_dtype is not None and self.kv_dtype not in KV_DTYPES:
            raise InputError("model.kv_dtype", self.kv_dtype, f"one of {', '.join(KV_DTYPES)}")
        if self.num_experts and not 0 < self.experts_per_token <= self.num_experts:
            raise InputError(
                "model.experts_per_token",
                self.experts_per_token,
                f"an integer in [1, num_experts={self.num_experts}]",
            )
        self._check_window()
        self._check_linear()

    def _check_linear(self) -> None:
        if (self.linear_attention is None) != (not self.linear_layers):
            raise InputError(
                "model.linear_layers",
                list(self.linear_layers),
                "non-empty exactly when linear_attention is set",
            )
        self._check_layer_indices("linear_layers", self.linear_layers)
        if set(self.linear_layers) & set(self.window_layers):
            raise InputError(
                "model.linear_layers", list(self.linear_layers), "disjoint from window_layers"
            )
        if self.shared_expert_ffn_size < 0:
            raise InputError(
                "model.shared_expert_ffn_size", self.shared_expert_ffn_size, "an integer >= 0"
            )

    def _check_window(self) -> None:
        if self.sliding_window_tokens < 0:
            raise InputError(
                "model.sliding_window_tokens", self.sliding_window_tokens, "a positive integer"
            )
        if bool(self.sliding_window_tokens) != bool(self.window_layers):
            raise InputError(
                "model.window_layers",
                list(self.window_layers),
                "non-empty exactly when sliding_window_tokens > 0",
            )
        self._check_layer_indices("window_layers", self.window_layers)

    def _check_layer_indices(self, field: str, layers: tuple[int, ...]) -> None:
        ordered = sorted(set(layers))
        if list(layers) != ordered or (ordered and ordered[-1] >= self.num_layers):
            raise InputError(
                f"model.{field}",
                list(layers),
                f"increasing distinct layer indices in [0, {self.num_layers})",
            )

    # ---- structure -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def num_window_layers(self) -> int:
        """Layers with sliding-window attention."""
        return len(self.window_layers)

    @property
    def num_linear_layers(self) -> int:
        """Linear-attention layers (a fixed-size state per sequence, no KV)."""
        return len(self.linear_layers)

    @property
    def num_attention_layers(self) -> int:
        """Softmax-attention layers, full or windowed: the layers that keep KV."""
        return self.num_layers - len(self.linear_layers)

    @property
    def num_full_attention_layers(self) -> int:
        return self.num_layers - len(self.window_layers) - len(self.linear_layers)

    def num_linear_layers_in(self, first: int, stop: int) -> int:
        """Linear-attention layers among layers first .. stop-1 (a pipeline stage)."""
        return sum(1 for i in self.linear_layers if first <= i < stop)

    @property
    def linear_state_bytes_per_layer(self) -> float:
        """Recurrent state and conv window of one sequence in one linear layer (0 without)."""
        return self.linear_attention.state_bytes if self.linear_attention else 0.0

    def num_window_layers_in(self, first: int, stop: int) -> int:
        """Sliding-window layers among layers first .. stop-1 (a pipeline stage)."""
        return sum(1 for i in self.window_layers if first <= i < stop)

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def bytes_per_param(self) -> float:
        return BYTES_PER_ELEMENT[self.dtype]

    @property
    def kv_bytes_per_element(self) -> float:
        """KV bytes per value: the KV dtype, else the weights' (4-bit weights: DEFAULT_KV_DTYPE)."""
        return BYTES_PER_ELEMENT[self.kv_dtype or DEFAULT_KV_DTYPE.get(self.dtype, self.dtype)]

    # ---- parameters (per layer, then whole model) ------------------------------------------
    @property
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        if self.is_mla:
            qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = (
                    h * self.q_lora_rank
                    + self.q_lora_rank
                    + self.q_lora_rank * self.num_heads * qk_dim
                )
            else:
                q = h * self.num_heads * qk_dim
            kv_down = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_up = self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            out = self.num_heads * self.v_head_dim * h
            return q + kv_down + kv_up + out
        q_dim = self.num_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        gate = q_dim if self.attention_output_gate else 0
        weights = h * (q_dim + gate + 2 * kv_dim) + q_dim * h
        bias = (
            (q_dim + 2 * kv_dim + (h if self.model_type in _OUT_BIAS_TYPES else 0))
            if self.attention_bias
            else 0
        )
        return weights + bias

    def mlp_params(self, width: int) -> int:
        """Parameters of one MLP (expert) of inner size `width`."""
        up = 2 if self.gated_mlp else 1
        bias = (up * width + self.hidden_size) if self.mlp_bias else 0
        return (up + 1) * self.hidden_size * width + bias

    @property
    def norm_params_per_layer(self) -> int:
        return (4 if self.model_type == "opt" else 2) * self.hidden_size

    @property
    def dense_mlp_params_per_layer(self) -> int:
        return self.mlp_params(self.ffn_size)

    @property
    def shared_expert_width(self) -> int:
        """Inner width of all shared experts of one MoE layer together."""
        return self.num_shared_experts * (self.shared_expert_ffn_size or self.moe_ffn_size)

    @property
    def shared_expert_params(self) -> int:
        width = self.shared_expert_ffn_size or self.moe_ffn_size
        return self.num_shared_experts * self.mlp_params(width)

    @property
    def moe_params_per_layer(self) -> int:
        """All experts (routed + shared) and the router of one MoE layer."""
        routed = self.num_experts * self.mlp_params(self.moe_ffn_size)
        return routed + self.shared_expert_params + self.router_params

    @property
    def active_moe_params_per_layer(self) -> int:
        """Expert parameters one token touches in one MoE layer."""
        routed = self.experts_per_token * self.mlp_params(self.moe_ffn_size)
        return routed + self.shared_expert_params + self.router_params

    @property
    def linear_params_per_layer(self) -> int:
        """Parameters of one linear-attention layer's token mixer (0 without)."""
        return self.linear_attention.params(self.hidden_size) if self.linear_attention else 0

    @property
    def router_params(self) -> int:
        return (self.hidden_size + (1 if self.mlp_bias else 0)) * self.num_experts

    @property
    def embedding_params(self) -> int:
        emb = self.vocab_size * self.hidden_size
        positions = (
            (self.max_context_tokens + 2) * self.hidden_size if self.learned_positions else 0
        )
        head = 0 if self.tie_embeddings else emb
        return emb + positions + head + self.hidden_size * (2 if self.model_type == "opt" else 1)

    @property
    def num_params(self) -> int:
        """Total parameters (all experts counted)."""
        mixers = (
            self.num_attention_layers * self.attention_params_per_layer
            + self.num_linear_layers * self.linear_params_per_layer
        )
        norms = self.num_layers * self.norm_params_per_layer
        dense = (self.num_layers - self.num_moe_layers) * self.dense_mlp_params_per_layer
        moe = self.num_moe_layers * self.moe_params_per_layer
        return mixers + norms + dense + moe + self.embedding_params

    @property
    def num_active_params(self) -> int:
        """Parameters one token's forward pass touches (MoE: routed top-k plus shared experts)."""
        if not self.is_moe:
            return self.num_params
        inactive = self.moe_params_per_layer - self.active_moe_params_per_layer
        return self.num_params - self.num_moe_layers * inactive

    @property
    def weight_bytes(self) -> float:
        return self.num_params * self.bytes_per_param

    # ---- KV cache and FLOPs ----------------------------------------------------------------
    @property
    def kv_values_per_token_per_layer(self) -> int:
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    @property
    def kv_bytes_per_token_per_layer(self) -> float:
        return self.kv_values_per_token_per_layer * self.kv_bytes_per_element

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one token occupies across the attention layers (windowed layers
        included: the bytes per token while it is inside every window; linear layers keep no
        KV; see `kv_bytes_per_seq`)."""
        return (
            self.num_attention_layers
            * self.kv_values_per_token_per_layer
            * self.kv_bytes_per_element
        )

    def kv_bytes_per_seq(self, context_tokens: int) -> float:
        """Cache bytes of one sequence holding `context_tokens`: full-attention layers keep
        every token, sliding-window layers at most the window, linear layers their state."""
        state = self.num_linear_layers * self.linear_state_bytes_per_layer
        if not self.window_layers:
            return context_tokens * self.kv_bytes_per_token + state
        kept = self.num_full_attention_layers * context_tokens + self.num_window_layers * min(
            context_tokens, self.sliding_window_tokens
        )
        return kept * self.kv_bytes_per_token_per_layer + state

    @property
    def linear_flops_per_token(self) -> float:
        """Matmul FLOPs per token outside attention scores (2 per active weight), with LM head."""
        lm_head = self.vocab_size * self.hidden_size
        non_embedding = self.num_active_params - self.embedding_params
        return 2.0 * (non_embedding + lm_head)

    @property
    def attention_flops_per_pair_per_layer(self) -> float:
        """Score and value FLOPs of one query token against one context token, one layer."""
        if self.is_mla:  # absorbed MLA: scores over (kv_lora + rope), values over kv_lora
            per_head = (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
        else:
            per_head = 2 * self.head_dim
        return 2.0 * self.num_heads * per_head

    @property
    def attention_flops_per_token_per_context(self) -> float:
        """Score and value FLOPs of one query token against one context token, all attention
        layers (a context token outside a sliding window costs only the full-attention layers;
        linear layers cost per token, `recurrent_flops_per_token`)."""
        return self.num_attention_layers * self.attention_flops_per_pair_per_layer

    @property
    def recurrent_flops_per_token(self) -> float:
        """State-update FLOPs of one token over all linear-attention layers (0 without)."""
        if self.linear_attention is None:
            return 0.0
        return self.num_linear_layers * self.linear_attention.recurrent_flops_per_token

    def prefill_flops(self, prompt_tokens: int) -> float:
        """FLOPs of a prefill of `prompt_tokens` (causal attention: half the score matrix;
        a windowed layer's query attends to at most the window)."""
        if not self.window_layers:
            attention = (
                self.attention_flops_per_token_per_context * prompt_tokens * (prompt_tokens + 1) / 2
            )
        else:
            pairs = self.num_full_attention_layers * causal_pairs(
                prompt_tokens
            ) + self.num_window_layers * causal_pairs(prompt_tokens, self.sliding_window_tokens)
            attention = self.attention_flops_per_pair_per_layer * pairs
        per_token = self.linear_flops_per_token + self.recurrent_flops_per_token
        return per_token * prompt_tokens + attention

    def decode_flops(self, context_tokens: int) -> float:
        """FLOPs of generating one token with `context_tokens` already in the KV cache."""
        per_token = self.linear_flops_per_token + self.recurrent_flops_per_token
        if not self.window_layers:
            return per_token + self.attention_flops_per_token_per_context * (context_tokens + 1)
        keys = self.num_full_attention_layers * (context_tokens + 1) + self.num_window_layers * min(
            context_tokens + 1, self.sliding_window_tokens
        )
        return per_token + self.attention_flops_per_pair_per_layer * keys

    def with_precision(self, weights: str | None = None, kv: str | None = None) -> ModelSpec:
        """The same architecture with other weight and/or KV-cache precisions."""
        return replace(self, dtype=weights or self.dtype, kv_dtype=kv or self.kv_dtype)


def causal_pairs(num_tokens: int, window_tokens: int = 0) -> int:
    """(query, key) pairs of causal attention over `num_tokens` tokens: the query at position i
    attends to i keys, or to min(i, window) with a sliding window of `window_tokens` (> 0)."""
    if window_tokens <= 0 or num_tokens <= window_tokens:
        return num_tokens * (num_tokens + 1) // 2
    return window_tokens * (window_tokens + 1) // 2 + (num_tokens - window_tokens) * window_tokens
