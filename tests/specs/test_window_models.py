"""gpt-oss-120b and MiniMax-M2.5: catalog lookups, parameter counts, and sliding-window specs
(which layers are windowed, KV per sequence, attention FLOPs, bad config values)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.specs import from_hf_config, get_model
from servesim.specs.model import causal_pairs
from servesim.specs.parallel import ParallelSpec, memory_plan, min_gpus_to_fit

GIB = 1024**3
WINDOW = 128


def gpt_oss_config(**changes: Any) -> dict[str, Any]:
    """gpt-oss-120b's config with fields changed (None removes one)."""
    config = {
        "model_type": "gpt_oss",
        "hidden_size": 2880,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "attention_bias": True,
        "intermediate_size": 2880,
        "num_local_experts": 128,
        "experts_per_token": 4,
        "sliding_window": WINDOW,
        "layer_types": ["sliding_attention", "full_attention"] * 18,
        "vocab_size": 201088,
        "max_position_embeddings": 131072,
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def unwindowed(name: str = "gpt-oss-120b") -> Any:
    """The same model with every layer full attention."""
    return replace(get_model(name), sliding_window_tokens=0, window_layers=())


# ---- catalog and parameter counts ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("hf_id", "short"),
    [
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("MiniMaxAI/MiniMax-M2.5", "minimax-m2.5"),
        ("minimaxai/minimax-m2", "minimax-m2.5"),
    ],
)
def test_silicon_model_paths_resolve(hf_id: str, short: str) -> None:
    assert get_model(hf_id).name == short


def test_gpt_oss_120b_parameters_match_the_model_card() -> None:
    model = get_model("gpt-oss-120b")
    assert model.num_params / 1e9 == pytest.approx(116.83, rel=0.002)
    # The card's 5.13B active leaves out the input embedding (201088 x 2880 = 0.58B), a lookup.
    assert (model.num_active_params - model.vocab_size * model.hidden_size) / 1e9 == pytest.approx(
        5.13, rel=0.005
    )


def test_minimax_m25_parameters_match_the_published_size() -> None:
    model = get_model("minimax-m2.5")
    assert model.num_params / 1e9 == pytest.approx(229.0, rel=0.01)  # "230B total"
    active_b = model.num_active_params / 1e9
    assert 10.0 < active_b < 11.2  # "10B active" (ours: 11.0 with the 0.61B input embedding)
    assert model.num_moe_layers == 62 and model.num_shared_experts == 0
    assert model.experts_per_token == 8 and model.moe_ffn_size == 1536


def test_gpt_oss_structure() -> None:
    model = get_model("gpt-oss-120b")
    assert model.sliding_window_tokens == WINDOW
    assert model.window_layers == tuple(range(0, 36, 2))
    assert (model.num_window_layers, model.num_full_attention_layers) == (18, 18)
    assert model.experts_per_token == 4 and model.num_experts == 128
    assert model.mlp_bias and model.attention_bias
    assert get_model("minimax-m2.5").window_layers == ()


# ---- KV cache -----------------------------------------------------------------------------------
@given(ctx=st.integers(0, 200_000))
@settings(max_examples=50, deadline=None)
def test_kv_per_sequence_saturates_at_the_window(ctx: int) -> None:
    model = get_model("gpt-oss-120b")
    per_layer = model.kv_bytes_per_token_per_layer
    expected = (18 * ctx + 18 * min(ctx, WINDOW)) * per_layer
    assert model.kv_bytes_per_seq(ctx) == expected
    assert model.kv_bytes_per_seq(ctx) <= unwindowed().kv_bytes_per_seq(ctx)
    window_part = model.kv_bytes_per_seq(ctx) - 18 * ctx * per_layer
    assert window_part == 18 * min(ctx, WINDOW) * per_layer


def test_full_attention_kv_per_sequence_is_per_token_times_tokens() -> None:
    model = get_model("llama-3.1-70b")
    assert model.kv_bytes_per_seq(5000) == 5000 * model.kv_bytes_per_token


def test_memory_plan_reserves_one_window_per_sequence() -> None:
    model = get_model("gpt-oss-120b").with_precision("fp4")
    gpu_bytes = 80 * GIB
    charged = memory_plan(model, ParallelSpec(1, 1), gpu_bytes)
    reserved = memory_plan(model, ParallelSpec(1, 1), gpu_bytes, max_seqs=64)
    per_layer = model.kv_bytes_per_token_per_layer
    assert charged.kv_bytes_per_token == 36 * per_layer
    assert reserved.kv_bytes_per_token == 18 * per_layer
    assert reserved.window_bytes_per_seq == 18 * WINDOW * per_layer
    free = charged.kv_free_bytes - 64 * reserved.window_bytes_per_seq
    assert reserved.kv_free_bytes == pytest.approx(free)
    # Full layers alone per token: close to twice the all-layer capacity.
    assert 1.8 * charged.kv_capacity_tokens < reserved.kv_capacity_tokens


def test_memory_plan_unchanged_for_full_attention_models() -> None:
    model = get_model("llama-3.1-70b")
    par = ParallelSpec(4, 2)
    assert memory_plan(model, par, 80 * GIB, max_seqs=256) == memory_plan(model, par, 80 * GIB)


def test_pipeline_stage_counts_its_window_layers() -> None:
    model = get_model("gpt-oss-120b")
    plan = memory_plan(model, ParallelSpec(1, 4), 80 * GIB, max_seqs=8)  # stages of 9 layers
    per_layer = model.kv_bytes_per_token_per_layer
    assert plan.kv_bytes_per_token == 5 * per_layer  # the most full layers on a stage
    assert plan.window_bytes_per_seq == 5 * WINDOW * per_layer


def test_min_gpus_counts_windowed_layers_once_per_window() -> None:
    model = get_model("gpt-oss-120b")
    need = model.weight_bytes + model.kv_bytes_per_seq(131072)
    assert min_gpus_to_fit(model, 80 * GIB, 131072) == -(-int(need) // int(72 * GIB))


# ---- FLOPs --------------------------------------------------------------------------------------
def test_causal_pairs_with_and_without_a_window() -> None:
    assert causal_pairs(5) == 15
    assert causal_pairs(5, 8) == 15
    assert causal_pairs(5, 3) == 1 + 2 + 3 + 3 + 3
    assert all(causal_pairs(n, 4) == sum(min(i, 4) for i in range(1, n + 1)) for n in range(20))


@given(length=st.integers(1, 50_000))
@settings(max_examples=50, deadline=None)
def test_windowed_flops_equal_full_within_the_window_and_less_beyond(length: int) -> None:
    model, full = get_model("gpt-oss-120b"), unwindowed()
    if length <= WINDOW:
        assert model.prefill_flops(length) == pytest.approx(full.prefill_flops(length))
    else:
        assert model.prefill_flops(length) < full.prefill_flops(length)
    ctx = length - 1
    if ctx + 1 <= WINDOW:
        assert model.decode_flops(ctx) == pytest.approx(full.decode_flops(ctx))
    else:
        assert model.decode_flops(ctx) < full.decode_flops(ctx)


def test_windowed_decode_flops_grow_with_the_full_layers_only() -> None:
    model = get_model("gpt-oss-120b")
    slope = model.decode_flops(10_001) - model.decode_flops(10_000)
    assert slope == pytest.approx(18 * model.attention_flops_per_pair_per_layer)


# ---- config reader ------------------------------------------------------------------------------
def test_config_reads_both_top_k_spellings() -> None:
    assert from_hf_config(gpt_oss_config()).experts_per_token == 4
    renamed = gpt_oss_config(experts_per_token=None, num_experts_per_tok=4)
    assert from_hf_config(renamed).experts_per_token == 4


@pytest.mark.parametrize("bad", [0, -128, 128.5, "128", True, None])
def test_bad_sliding_window_is_rejected(bad: Any) -> None:
    config = gpt_oss_config(sliding_window=bad)
    if bad is None:
        config = {**gpt_oss_config(), "sliding_window": None}
    with pytest.raises(InputError, match="sliding_window"):
        from_hf_config(config)


@pytest.mark.parametrize(
    "layer_types",
    [
        ["sliding_attention", "full_attention"] * 17,  # 34 entries for 36 layers
        ["sliding_attention", "linear_attention"] * 18,
        "sliding_attention",
    ],
)
def test_bad_layer_types_are_rejected(layer_types: Any) -> None:
    with pytest.raises(InputError, match="layer_types"):
        from_hf_config(gpt_oss_config(layer_types=layer_types))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"experts_per_token": 0}, "num_experts_per_tok"),
        ({"experts_per_token": None}, "num_experts_per_tok"),
        ({"num_experts_per_tok": 8}, "experts_per_token"),  # disagrees with experts_per_token
        ({"experts_per_token": 129}, "experts_per_token"),
    ],
)
def test_bad_top_k_is_rejected(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        from_hf_config(gpt_oss_config(**changes))


def test_only_full_layers_need_no_window() -> None:
    model = from_hf_config(gpt_oss_config(layer_types=["full_attention"] * 36, sliding_window=0))
    assert model.window_layers == () and model.sliding_window_tokens == 0


@pytest.mark.parametrize(
    ("extra", "windowed"),
    [
        ({"model_type": "mistral", "sliding_window": 4096}, list(range(4))),
        ({"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False}, []),
        (
            {
                "model_type": "qwen2",
                "sliding_window": 4096,
                "use_sliding_window": True,
                "max_window_layers": 3,
            },
            [3],
        ),
        ({"model_type": "mistral", "sliding_window": None}, []),
    ],
)
def test_window_layers_without_layer_types(extra: dict[str, Any], windowed: list[int]) -> None:
    config = {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "vocab_size": 1000,
        **extra,
    }
    model = from_hf_config(config)
    assert list(model.window_layers) == windowed
    assert model.sliding_window_tokens == (4096 if windowed else 0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sliding_window_tokens": -1}, "sliding_window_tokens"),
        ({"sliding_window_tokens": 128, "window_layers": ()}, "window_layers"),
        ({"sliding_window_tokens": 0, "window_layers": (0,)}, "window_layers"),
        ({"window_layers": (2, 0)}, "window_layers"),
        ({"window_layers": (0, 36)}, "window_layers"),
    ],
)
def test_spec_rejects_inconsistent_windows(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        replace(get_model("gpt-oss-120b"), **changes)
