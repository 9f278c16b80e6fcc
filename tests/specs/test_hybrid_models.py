"""Kimi-K2.5 and Qwen3.5-397B-A17B: catalog lookups, parameter counts against the published
sizes, Gated DeltaNet linear-attention layers (structure, state, KV, FLOPs, memory plan) and
bad config values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.specs import from_hf_config, get_model
from servesim.specs.linear_attention import LinearAttention
from servesim.specs.parallel import ParallelSpec, memory_plan

GIB = 1024**3
QWEN = "qwen3.5-397b-a17b"
FULL_LAYERS = tuple(range(3, 60, 4))  # every 4th layer (1-based) is full attention
# One DeltaNet layer's recurrent state (64 value heads of 128 x 128, fp32) and conv window
# (3 tokens of q, k, v: 2 * 16 * 128 + 64 * 128 = 12288 channels, 16-bit).
STATE_BYTES = 64 * 128 * 128 * 4 + 3 * 12288 * 2


def qwen35_text(**changes: Any) -> dict[str, Any]:
    """Qwen3.5-397B-A17B's text_config with fields changed (None removes one)."""
    config = {
        "model_type": "qwen3_5_moe_text",
        "hidden_size": 4096,
        "num_hidden_layers": 60,
        "num_attention_heads": 32,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "attn_output_gate": True,
        "full_attention_interval": 4,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 64,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "num_experts": 512,
        "num_experts_per_tok": 10,
        "moe_intermediate_size": 1024,
        "shared_expert_intermediate_size": 1024,
        "vocab_size": 248320,
        "max_position_embeddings": 262144,
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def wrapped(text: dict[str, Any]) -> dict[str, Any]:
    return {"model_type": "qwen3_5_moe", "text_config": text, "torch_dtype": "bfloat16"}


def without_linear() -> Any:
    """Qwen3.5 with every layer full attention (the linear layers' mixers removed)."""
    return replace(get_model(QWEN), linear_attention=None, linear_layers=())


# ---- catalog and parameter counts ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("hf_id", "short"),
    [("moonshotai/Kimi-K2.5", "kimi-k2.5"), ("Qwen/Qwen3.5-397B-A17B", QWEN)],
)
def test_silicon_model_paths_resolve(hf_id: str, short: str) -> None:
    assert get_model(hf_id).name == short


def test_kimi_k25_parameters_match_the_published_size() -> None:
    model = get_model("kimi-k2.5")
    # "1T total" (Kimi K2's report: 1.04T); the language model alone, vision tower left out.
    assert 1.00e12 < model.num_params < 1.04e12
    # "32B activated": ours 31.7B without the 1.17B input embedding (a lookup).
    embed = model.vocab_size * model.hidden_size
    assert (model.num_active_params - embed) / 1e9 == pytest.approx(32.0, rel=0.02)


def test_kimi_k25_is_deepseek_v3_with_64_heads_and_384_experts() -> None:
    kimi, v3 = get_model("kimi-k2.5"), get_model("deepseek-v3")
    assert kimi.is_mla and kimi.num_heads == 64 and kimi.num_experts == 384
    assert (kimi.num_dense_layers, kimi.num_moe_layers) == (1, 60)
    assert kimi.num_linear_layers == 0 and kimi.window_layers == ()
    assert kimi.mlp_params(kimi.moe_ffn_size) == v3.mlp_params(v3.moe_ffn_size)
    assert kimi.kv_bytes_per_token == v3.kv_bytes_per_token  # the MLA latent: heads do not matter
    # Half the heads: the per-head projections (q up, kv up, output) shrink by half.
    assert kimi.attention_params_per_layer < v3.attention_params_per_layer


def test_qwen35_parameters_match_the_published_size() -> None:
    model = get_model(QWEN)
    # 397B published; ours 396.4B: the vision tower and the MTP head are left out, as are the
    # q/k norms and the shared-expert gates (0.25M parameters).
    assert model.num_params / 1e9 == pytest.approx(397.0, rel=0.005)
    # "A17B": ours 17.35B with the 1.02B input embedding, 16.3B without.
    assert model.num_active_params / 1e9 == pytest.approx(17.0, rel=0.03)


def test_qwen35_deltanet_layer_parameters_by_hand() -> None:
    linear = get_model(QWEN).linear_attention
    assert linear is not None
    in_proj = 4096 * (2 * 2048 + 8192 + 8192 + 2 * 64)  # q, k, v, z, a, b
    expected = in_proj + 12288 * 4 + 2 * 64 + 128 + 8192 * 4096
    assert linear.params(4096) == expected
    # Gated attention: the query projection doubles (query and gate).
    model = get_model(QWEN)
    assert model.attention_params_per_layer == 4096 * (2 * 8192 + 2 * 512) + 8192 * 4096


def test_qwen35_structure() -> None:
    model = get_model(QWEN)
    assert model.num_linear_layers == 45 and model.num_full_attention_layers == 15
    assert tuple(sorted(set(range(60)) - set(model.linear_layers))) == FULL_LAYERS
    assert model.attention_output_gate and model.shared_expert_ffn_size == 1024
    assert (model.num_shared_experts, model.shared_expert_width) == (1, 1024)
    assert model.linear_state_bytes_per_layer == STATE_BYTES


def test_qwen3_next_80b_cross_check() -> None:
    """The same design at a smaller size: Qwen3-Next-80B-A3B (80B total, 3B active)."""
    config = qwen35_text(
        model_type="qwen3_next",
        hidden_size=2048,
        num_hidden_layers=48,
        num_attention_heads=16,
        attn_output_gate=None,  # Qwen3-Next always gates
        linear_num_value_heads=32,
        moe_intermediate_size=512,
        shared_expert_intermediate_size=512,
        intermediate_size=5120,
        vocab_size=151936,
        mlp_only_layers=[],
        decoder_sparse_step=1,
    )
    model = from_hf_config(config)
    assert model.attention_output_gate and model.num_linear_layers == 36
    assert model.num_params / 1e9 == pytest.approx(80.0, rel=0.01)
    # "A3B": ours 3.25B without the input embedding and the LM head (0.31B each).
    active = model.num_active_params - 2 * model.vocab_size * model.hidden_size
    assert active / 1e9 == pytest.approx(3.25, abs=0.05)


# ---- KV cache and state -------------------------------------------------------------------------
@given(ctx=st.integers(0, 300_000))
@settings(max_examples=50, deadline=None)
def test_kv_per_sequence_charges_full_layers_per_token_and_linear_layers_once(ctx: int) -> None:
    model = get_model(QWEN)
    per_layer = model.kv_bytes_per_token_per_layer
    assert model.kv_bytes_per_token == 15 * per_layer
    assert model.kv_bytes_per_seq(ctx) == 15 * ctx * per_layer + 45 * STATE_BYTES


def test_memory_plan_reserves_the_state_per_sequence() -> None:
    model = get_model(QWEN).with_precision("fp8")
    par = ParallelSpec(4, 1)
    one = memory_plan(model, par, 180 * GIB)
    many = memory_plan(model, par, 180 * GIB, max_seqs=256)
    per_token = 15 * 2 * 256 * 1 * 1  # 15 layers, K and V, one KV head per GPU (2 over TP 4), fp8
    assert one.kv_bytes_per_token == many.kv_bytes_per_token == per_token
    assert one.state_bytes_per_seq == many.state_bytes_per_seq == 45 * STATE_BYTES / 4
    assert one.max_seqs == 1  # without max_seqs: the one sequence any request needs
    reserved = one.kv_free_bytes - many.kv_free_bytes
    assert reserved == pytest.approx(255 * 45 * STATE_BYTES / 4)
    assert many.kv_capacity_tokens < one.kv_capacity_tokens
    # Charged only for its 15 attention layers: four times the all-full-attention capacity.
    full = memory_plan(without_linear().with_precision("fp8"), par, 180 * GIB)
    assert full.kv_bytes_per_token == 4 * per_token


def test_pipeline_stage_counts_its_layer_kinds() -> None:
    model = get_model(QWEN)
    plan = memory_plan(model, ParallelSpec(1, 4), 180 * GIB, max_seqs=8)  # stages of 15 layers
    # Stage 0 holds full layers 3, 7, 11 (12 linear); stage 1 holds 15, 19, 23, 27 (11 linear).
    assert plan.kv_bytes_per_token == 4 * model.kv_bytes_per_token_per_layer
    assert plan.state_bytes_per_seq == 12 * STATE_BYTES


def test_memory_plan_unchanged_without_linear_layers() -> None:
    model = get_model("kimi-k2.5")
    par = ParallelSpec(8, 1)
    plan = memory_plan(model, par, 180 * GIB, max_seqs=64)
    assert plan == memory_plan(model, par, 180 * GIB)
    assert plan.state_bytes_per_seq == 0.0


# ---- FLOPs --------------------------------------------------------------------------------------
def test_decode_flops_grow_with_the_full_layers_only() -> None:
    model = get_model(QWEN)
    slope = model.decode_flops(20_001) - model.decode_flops(20_000)
    assert slope == pytest.approx(15 * model.attention_flops_per_pair_per_layer)
    recurrent = 45 * 8 * 64 * 128 * 128
    assert model.recurrent_flops_per_token == recurrent
    assert model.decode_flops(0) == pytest.approx(
        model.linear_flops_per_token + recurrent + 15 * model.attention_flops_per_pair_per_layer
    )


@given(length=st.integers(1, 100_000))
@settings(max_examples=50, deadline=None)
def test_prefill_flops_linear_layers_per_token(length: int) -> None:
    model = get_model(QWEN)
    pairs = length * (length + 1) / 2
    expected = (
        model.linear_flops_per_token + model.recurrent_flops_per_token
    ) * length + 15 * model.attention_flops_per_pair_per_layer * pairs
    assert model.prefill_flops(length) == pytest.approx(expected, rel=1e-12)


# ---- config reader ------------------------------------------------------------------------------
def test_nested_flat_and_explicit_layer_types_agree() -> None:
    nested = from_hf_config(wrapped(qwen35_text()), name="q")
    flat = from_hf_config(qwen35_text(), name="q")
    kinds = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(60)]
    explicit = from_hf_config(qwen35_text(full_attention_interval=None, layer_types=kinds), "q")
    assert nested == flat == explicit == replace(get_model(QWEN), name="q")


def test_wrapper_fields_fill_in_the_text_config() -> None:
    config = wrapped(qwen35_text())
    config["torch_dtype"] = "float16"
    assert from_hf_config(config).dtype == "fp16"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"linear_num_value_heads": 0}, "linear_num_value_heads"),
        ({"linear_key_head_dim": None}, "linear_key_head_dim"),
        ({"linear_conv_kernel_dim": 4.0}, "linear_conv_kernel_dim"),
        ({"linear_num_value_heads": 40}, "linear_num_value_heads"),  # not a multiple of 16
        ({"full_attention_interval": 0}, "full_attention_interval"),
        ({"full_attention_interval": None}, "full_attention_interval"),
        ({"layer_types": ["linear_attention"] * 59}, "layer_types"),
        ({"layer_types": ["mamba"] * 60}, "layer_types"),
        ({"shared_expert_intermediate_size": -1}, "shared_expert_intermediate_size"),
        ({"mlp_only_layers": [0, 1]}, "mlp_only_layers"),
        ({"decoder_sparse_step": 2}, "decoder_sparse_step"),
    ],
)
def test_bad_hybrid_config_values_are_rejected(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        from_hf_config(wrapped(qwen35_text(**changes)))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model_type": "kimi_k25"}, "text_config"),
        ({"model_type": "qwen3_5_moe", "text_config": "x"}, "text_config"),
        ({"model_type": "qwen3_5_moe", "text_config": {"model_type": "t5"}}, "model_type"),
    ],
)
def test_bad_wrappers_are_rejected(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        from_hf_config(config)


def test_linear_layers_only_in_hybrid_model_types() -> None:
    config = {
        **qwen35_text(model_type="qwen3_moe", full_attention_interval=None),
        "layer_types": ["linear_attention"] * 60,
    }
    with pytest.raises(InputError, match="layer_types"):
        from_hf_config(config)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"linear_layers": ()}, "linear_layers"),
        ({"linear_layers": (2, 1)}, "linear_layers"),
        ({"linear_layers": (0, 60)}, "linear_layers"),
        ({"linear_attention": None}, "linear_layers"),
        ({"sliding_window_tokens": 128, "window_layers": (0,)}, "linear_layers"),
        ({"shared_expert_ffn_size": -1}, "shared_expert_ffn_size"),
    ],
)
def test_spec_rejects_inconsistent_linear_layers(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        replace(get_model(QWEN), **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_key_heads": 0}, "num_key_heads"),
        ({"num_value_heads": 24}, "num_value_heads"),
        ({"state_dtype": "fp8"}, "state_dtype"),
        ({"conv_kernel_tokens": True}, "conv_kernel_tokens"),
    ],
)
def test_linear_attention_spec_validates(changes: dict[str, Any], field: str) -> None:
    base = {
        "num_key_heads": 16,
        "num_value_heads": 64,
        "key_head_dim": 128,
        "value_head_dim": 128,
        "conv_kernel_tokens": 4,
    }
    with pytest.raises(InputError, match=field):
        LinearAttention(**{**base, **changes})


def test_tp_must_divide_the_linear_attention_key_heads() -> None:
    from servesim.specs import make_cluster
    from servesim.specs.parallel import check_parallel

    model = get_model(QWEN).with_precision("fp8")
    cluster = make_cluster("b200", num_nodes=4)
    check_parallel(model, ParallelSpec(8, 1), cluster)  # 16 key heads: TP 8 splits them
    with pytest.raises(InputError, match="linear-attention key heads"):
        check_parallel(model, ParallelSpec(32, 1), cluster)
