"""Hugging Face config.json -> `ModelSpec`.

Reads llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, opt, deepseek_v3 and kimi_k2
(MLA, routed and shared experts, leading dense layers), gpt_oss (alternating sliding-window and
full layers, biases), minimax_m2, and the hybrids qwen3_next and qwen3_5(_moe)_text (Gated
DeltaNet linear-attention layers with every `full_attention_interval`-th layer gated full
attention). A multimodal config (Kimi-K2.5's kimi_k25, Qwen3.5's qwen3_5_moe) is read through
its `text_config`: only the language model is simulated, not the vision tower. A field the model
type needs but the config lacks, or holds with a bad value, raises InputError naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servesim.errors import InputError, read_json
from servesim.specs.linear_attention import LinearAttention
from servesim.specs.model import ModelSpec

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
    "gpt_oss",
    "minimax_m2",
    "kimi_k2",
    "qwen3_next",
    "qwen3_5_text",
    "qwen3_5_moe_text",
)
# Multimodal wrappers whose language model is their `text_config`.
WRAPPER_MODEL_TYPES = ("kimi_k25", "qwen3_5", "qwen3_5_moe")
# Model types with Gated DeltaNet layers; their attention layers gate their output.
HYBRID_MODEL_TYPES = ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text")
# Layer kinds of a config's `layer_types`; any other kind (chunked attention) is refused, and
# linear attention only in the hybrid model types.
FULL_ATTENTION, SLIDING_ATTENTION = "full_attention", "sliding_attention"
LINEAR_ATTENTION = "linear_attention"


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


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(field, value, "a positive integer")
    return value


def _experts_per_token(config: dict[str, Any], source: str) -> int:
    """Top-k: `num_experts_per_tok`, or gpt-oss's `experts_per_token` (equal when both set)."""
    both = [config[k] for k in ("num_experts_per_tok", "experts_per_token") if k in config]
    if not both:
        raise InputError(f"{source}: num_experts_per_tok", None, "a required field of MoE configs")
    if len(both) == 2 and both[0] != both[1]:
        raise InputError(f"{source}: experts_per_token", both[1], f"equal to {both[0]}")
    return _positive_int(both[0], f"{source}: num_experts_per_tok")


def _layer_types(config: dict[str, Any], num_layers: int, source: str) -> list[str] | None:
    """The checked `layer_types` list (linear attention only in hybrid model types); for a
    hybrid config without it, every `full_attention_interval`-th layer is full attention."""
    hybrid = config.get("model_type") in HYBRID_MODEL_TYPES
    layer_types = config.get("layer_types")
    if layer_types is None and hybrid:
        interval = _positive_int(
            config.get("full_attention_interval"), f"{source}: full_attention_interval"
        )
        full = [(i + 1) % interval == 0 for i in range(num_layers)]
        return [FULL_ATTENTION if f else LINEAR_ATTENTION for f in full]
    if layer_types is None:
        return None
    kinds = (FULL_ATTENTION, SLIDING_ATTENTION, *((LINEAR_ATTENTION,) if hybrid else ()))
    if (
        not isinstance(layer_types, list)
        or len(layer_types) != num_layers
        or any(kind not in kinds for kind in layer_types)
    ):
        raise InputError(
            f"{source}: layer_types",
            layer_types,
            f"a list of {num_layers} entries, each {' or '.join(kinds)}",
        )
    return layer_types


def _window_layer_indices(config: dict[str, Any], num_layers: int, source: str) -> list[int]:
    """Layers using the sliding window: from `layer_types` when given, else (Qwen) those from
    `max_window_layers` on, else (Mistral, Mixtral) every layer."""
    layer_types = _layer_types(config, num_layers, source)
    if layer_types is not None:
        return [i for i, kind in enumerate(layer_types) if kind == SLIDING_ATTENTION]
    if config.get("sliding_window") is None or config.get("use_sliding_window") is False:
        return []
    if "max_window_layers" in config:
        first = config["max_window_layers"]
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise InputError(f"{source}: max_window_layers", first, "a non-negative integer")
        return list(range(first, num_layers))
    return list(range(num_layers))


def _sliding_window(
    config: dict[str, Any], num_layers: int, source: str
) -> tuple[int, tuple[int, ...]]:
    """(window tokens, windowed layer indices); (0, ()) without sliding-window layers."""
    layers = _window_layer_indices(config, num_layers, source)
    if not layers:
        return 0, ()
    window = _positive_int(config.get("sliding_window"), f"{source}: sliding_window")
    return window, tuple(layers)


def _linear_attention(
    config: dict[str, Any], num_layers: int, source: str
) -> tuple[LinearAttention | None, tuple[int, ...]]:
    """(shape, layer indices) of the linear-attention layers; (None, ()) without any."""
    layer_types = _layer_types(config, num_layers, source)
    layers = tuple(i for i, kind in enumerate(layer_types or ()) if kind == LINEAR_ATTENTION)
    if not layers:
        return None, ()
    fields = (
        "linear_num_key_heads",
        "linear_num_value_heads",
        "linear_key_head_dim",
        "linear_value_head_dim",
        "linear_conv_kernel_dim",
    )
    key_heads, value_heads, key_dim, value_dim, kernel = (
        _positive_int(config.get(key), f"{source}: {key}") for key in fields
    )
    if value_heads % key_heads:
        raise InputError(
            f"{source}: linear_num_value_heads",
            value_heads,
            f"a multiple of linear_num_key_heads={key_heads}",
        )
    return LinearAttention(key_heads, value_heads, key_dim, value_dim, kernel), layers


def _shared_expert_width(config: dict[str, Any], source: str) -> int:
    """Qwen's single shared expert of `shared_expert_intermediate_size` (0: none given)."""
    width = config.get("shared_expert_intermediate_size")
    if width is None or width == 0:
        return 0
    return _positive_int(width, f"{source}: shared_expert_intermediate_size")


def _check_all_moe(config: dict[str, Any], source: str) -> None:
    """Qwen MoE configs may make some layers dense (`mlp_only_layers`, `decoder_sparse_step`);
    servesim models MoE in every layer after `first_k_dense_replace`, so refuse those."""
    dense = config.get("mlp_only_layers")
    if dense:
        raise InputError(f"{source}: mlp_only_layers", dense, "[] (every layer MoE)")
    step = config.get("decoder_sparse_step")
    if step not in (None, 1):
        raise InputError(f"{source}: decoder_sparse_step", step, "1 (every layer MoE)")


def _language_model(config: dict[str, Any], source: str) -> tuple[dict[str, Any], str]:
    """The language model's config and its source label: a multimodal wrapper's `text_config`
    (top-level fields it lacks, such as the dtype, come from the wrapper)."""
    if str(config.get("model_type", "")).lower() not in WRAPPER_MODEL_TYPES:
        return config, source
    text = config.get("text_config")
    if not isinstance(text, dict):
        raise InputError(f"{source}: text_config", text, "the language model's config (an object)")
    outer = {k: v for k, v in config.items() if k not in ("model_type", "text_config")}
    return {**outer, **text}, f"{source}: text_config"


def from_hf_config(
    config: dict[str, Any], name: str | None = None, source: str = "config"
) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json dict."""
    name = name or config.get("_name_or_path")
    config, source = _language_model(config, source)
    model_type = str(config.get("model_type", "")).lower()
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"{source}: model_type",
            model_type or None,
            f"one of {', '.join(SUPPORTED_MODEL_TYPES)}",
        )
    hidden = int(_require_key(config, source, "hidden_size", "d_model"))
    heads = int(_require_key(config, source, "num_attention_heads"))
    num_layers = int(_require_key(config, source, "num_hidden_layers"))
    is_opt = model_type == "opt"
    num_experts = int(
        _get(config, "n_routed_experts", "num_local_experts", "num_experts", default=0)
    )
    window, window_layers = _sliding_window(config, num_layers, source)
    linear, linear_layers = _linear_attention(config, num_layers, source)
    shared_width = _shared_expert_width(config, source)
    if num_experts:
        _check_all_moe(config, source)
    num_dense_layers = int(_get(config, "first_k_dense_replace", default=0))
    # An all-MoE config may leave out the (unused) dense MLP width.
    ffn_keys: tuple[str, ...] = ("intermediate_size", "ffn_dim")
    if num_experts and not num_dense_layers and _get(config, *ffn_keys) is None:
        ffn_keys = (*ffn_keys, "moe_intermediate_size")
    return ModelSpec(
        name=str(name or model_type),
        model_type=model_type,
        num_layers=num_layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=int(_get(config, "num_key_value_heads", default=heads)),
        head_dim=int(_get(config, "head_dim", default=hidden // heads)),
        ffn_size=int(_require_key(config, source, *ffn_keys)),
        vocab_size=int(_require_key(config, source, "vocab_size")),
        max_context_tokens=int(_get(config, "max_position_embeddings", default=2048)),
        dtype=_TORCH_DTYPES.get(str(_get(config, "torch_dtype", "dtype", default="")), "bf16"),
        gated_mlp=not is_opt,
        attention_bias=bool(
            _get(config, "attention_bias", default=is_opt or model_type == "qwen2")
        ),
        tie_embeddings=bool(_get(config, "tie_word_embeddings", default=is_opt)),
        learned_positions=is_opt,
        num_experts=num_experts,
        experts_per_token=_experts_per_token(config, source) if num_experts else 0,
        moe_ffn_size=int(
            _get(config, "moe_intermediate_size", default=_get(config, "intermediate_size"))
        )
        if num_experts
        else 0,
        num_shared_experts=1 if shared_width else int(_get(config, "n_shared_experts", default=0)),
        num_dense_layers=num_dense_layers,
        q_lora_rank=int(_get(config, "q_lora_rank", default=0)),
        kv_lora_rank=int(_get(config, "kv_lora_rank", default=0)),
        qk_rope_head_dim=int(_get(config, "qk_rope_head_dim", default=0)),
        qk_nope_head_dim=int(_get(config, "qk_nope_head_dim", default=0)),
        v_head_dim=int(_get(config, "v_head_dim", default=0)),
        mlp_bias=is_opt or model_type == "gpt_oss",
        sliding_window_tokens=window,
        window_layers=window_layers,
        attention_output_gate=bool(
            _get(config, "attn_output_gate", default=model_type in HYBRID_MODEL_TYPES)
        ),
        shared_expert_ffn_size=shared_width,
        linear_attention=linear,
        linear_layers=linear_layers,
    )


def load_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Load a ModelSpec from a config.json file."""
    path = Path(path)
    config = read_json("model", path, "an existing config.json file or a catalog name")
    return from_hf_config(config, name=name or path.parent.name or path.stem, source=str(path))
