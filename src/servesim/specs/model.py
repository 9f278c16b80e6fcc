"""Model architectures: one frozen `ModelSpec` from any Hugging Face config.json.

Handles llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, opt and deepseek_v3 (MLA attention,
routed and shared experts, leading dense layers). Derived quantities (parameters, weight bytes,
KV bytes per token, FLOPs per token) are properties, so a spec is the single source of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from servesim.errors import InputError, read_json

# fp4 is NVFP4: 4-bit values plus one fp8 scale per block of 16 (the per-tensor scale is noise).
BYTES_PER_ELEMENT: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp4": 0.5625}
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8")  # no fp4 KV cache
_TORCH_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
SUPPORTED_MODEL_TYPES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "opt",
    "deepseek_v3",
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture of a decoder-only transformer.

    Attention is grouped-query (`num_kv_heads` <= `num_heads`) unless `kv_lora_rank` > 0, in which
    case it is DeepSeek's multi-head latent attention (MLA) and the KV cache holds the compressed
    latent (`kv_lora_rank` + `qk_rope_head_dim` values per token per layer).
    MoE layers (`num_experts` > 0) route each token to `experts_per_token` of `num_experts`
    experts of width `moe_ffn_size`, plus `num_shared_experts` always-on experts; the first
    `num_dense_layers` layers use a dense MLP of width `ffn_size`.
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

    # ---- structure -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def bytes_per_param(self) -> float:
        return BYTES_PER_ELEMENT[self.dtype]

    @property
    def kv_bytes_per_element(self) -> float:
        """KV bytes per value: the KV dtype, else the weights' (fp4 weights keep an fp8 cache)."""
        return BYTES_PER_ELEMENT[self.kv_dtype or ("fp8" if self.dtype == "fp4" else self.dtype)]

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
        weights = h * (q_dim + 2 * kv_dim) + q_dim * h
        bias = (
            (q_dim + 2 * kv_dim + (h if self.model_type == "opt" else 0))
            if self.attention_bias
            else 0
        )
        return weights + bias

    def mlp_params(self, width: int) -> int:
        """Parameters of one MLP (expert) of inner size `width`."""
        mats = 3 if self.gated_mlp else 2
        bias = (width + self.hidden_size) if self.model_type == "opt" else 0
        return mats * self.hidden_size * width + bias

    @property
    def norm_params_per_layer(self) -> int:
        return (4 if self.model_type == "opt" else 2) * self.hidden_size

    @property
    def dense_mlp_params_per_layer(self) -> int:
        return self.mlp_params(self.ffn_size)

    @property
    def moe_params_per_layer(self) -> int:
        """All experts (routed + shared) and the router of one MoE layer."""
        experts = (self.num_experts + self.num_shared_experts) * self.mlp_params(self.moe_ffn_size)
        return experts + self.hidden_size * self.num_experts

    @property
    def active_moe_params_per_layer(self) -> int:
        """Expert parameters one token touches in one MoE layer."""
        active = (self.experts_per_token + self.num_shared_experts) * self.mlp_params(
            self.moe_ffn_size
        )
        return active + self.hidden_size * self.num_experts

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
        layer = self.attention_params_per_layer + self.norm_params_per_layer
        dense = (self.num_layers - self.num_moe_layers) * self.dense_mlp_params_per_layer
        moe = self.num_moe_layers * self.moe_params_per_layer
        return self.num_layers * layer + dense + moe + self.embedding_params

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
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one token occupies across all layers."""
        return self.num_layers * self.kv_values_per_token_per_layer * self.kv_bytes_per_element

    @property
    def linear_flops_per_token(self) -> float:
        """Matmul FLOPs per token outside attention scores (2 per active weight), with LM head."""
        lm_head = self.vocab_size * self.hidden_size
        non_embedding = self.num_active_params - self.embedding_params
        return 2.0 * (non_embedding + lm_head)

    @property
    def attention_flops_per_token_per_context(self) -> float:
        """Score and value FLOPs of one query token against one context token, all layers."""
        if self.is_mla:  # absorbed MLA: scores over (kv_lora + rope), values over kv_lora
            per_head = (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
        else:
            per_head = 2 * self.head_dim
        return 2.0 * self.num_layers * self.num_heads * per_head

    def prefill_flops(self, prompt_tokens: int) -> float:
        """FLOPs of a prefill of `prompt_tokens` (causal attention: half the score matrix)."""
        attention = (
            self.attention_flops_per_token_per_context * prompt_tokens * (prompt_tokens + 1) / 2
        )
        return self.linear_flops_per_token * prompt_tokens + attention

    def decode_flops(self, context_tokens: int) -> float:
        """FLOPs of generating one token with `context_tokens` already in the KV cache."""
        return self.linear_flops_per_token + self.attention_flops_per_token_per_context * (
            context_tokens + 1
        )

    def with_precision(self, weights: str | None = None, kv: str | None = None) -> ModelSpec:
        """The same architecture with other weight and/or KV-cache precisions."""
        return replace(self, dtype=weights or self.dtype, kv_dtype=kv or self.kv_dtype)


# ---- Hugging Face config.json ------------------------------------------------------------------
def _get(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def _require_key(config: dict[str, Any], source: str, *keys: str) -> Any:
    value = _get(config, *keys)
    if value is None:
        raise InputError(f"{source}: {keys[0]}", None, "a required field of the config")
    return value


def from_hf_config(
    config: dict[str, Any], name: str | None = None, source: str = "config"
) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json dict."""
    model_type = str(config.get("model_type", "")).lower()
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"{source}: model_type",
            model_type or None,
            f"one of {', '.join(SUPPORTED_MODEL_TYPES)}",
        )
    hidden = int(_require_key(config, source, "hidden_size", "d_model"))
    heads = int(_require_key(config, source, "num_attention_heads"))
    is_opt = model_type == "opt"
    num_experts = int(
        _get(config, "n_routed_experts", "num_local_experts", "num_experts", default=0)
    )
    return ModelSpec(
        name=name or str(_get(config, "_name_or_path", default=model_type)),
        model_type=model_type,
        num_layers=int(_require_key(config, source, "num_hidden_layers")),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=int(_get(config, "num_key_value_heads", default=heads)),
        head_dim=int(_get(config, "head_dim", default=hidden // heads)),
        ffn_size=int(_require_key(config, source, "intermediate_size", "ffn_dim")),
        vocab_size=int(_require_key(config, source, "vocab_size")),
        max_context_tokens=int(_get(config, "max_position_embeddings", default=2048)),
        dtype=_TORCH_DTYPES.get(str(config.get("torch_dtype", "bfloat16")), "bf16"),
        gated_mlp=not is_opt,
        attention_bias=bool(
            _get(config, "attention_bias", default=is_opt or model_type == "qwen2")
        ),
        tie_embeddings=bool(_get(config, "tie_word_embeddings", default=is_opt)),
        learned_positions=is_opt,
        num_experts=num_experts,
        experts_per_token=int(_get(config, "num_experts_per_tok", default=0)) if num_experts else 0,
        moe_ffn_size=int(
            _get(config, "moe_intermediate_size", default=_get(config, "intermediate_size"))
        )
        if num_experts
        else 0,
        num_shared_experts=int(_get(config, "n_shared_experts", default=0)),
        num_dense_layers=int(_get(config, "first_k_dense_replace", default=0)),
        q_lora_rank=int(_get(config, "q_lora_rank", default=0)),
        kv_lora_rank=int(_get(config, "kv_lora_rank", default=0)),
        qk_rope_head_dim=int(_get(config, "qk_rope_head_dim", default=0)),
        qk_nope_head_dim=int(_get(config, "qk_nope_head_dim", default=0)),
        v_head_dim=int(_get(config, "v_head_dim", default=0)),
    )


def load_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Load a ModelSpec from a config.json file."""
    path = Path(path)
    config = read_json("model", path, "an existing config.json file or a catalog name")
    return from_hf_config(config, name=name or path.parent.name or path.stem, source=str(path))
