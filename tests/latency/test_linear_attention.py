"""Linear-attention (Gated DeltaNet) layers in the latency model: no cost that grows with the
context, a per-sequence state read and write, a per-token recurrent update, GEMMs that match the
parameter count, and the same coefficients as before for models without them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.latency import build_latency_model
from servesim.latency.attention_terms import attention_gemms, attention_shape, attention_terms
from servesim.latency.ops import (
    Efficiency,
    attention_token_s,
    recurrent_state_s,
    recurrent_token_s,
)
from servesim.latency.roofline import RooflineModel
from servesim.specs import get_model, make_cluster
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec

from .factories import assert_breakdowns_add_up, assert_monotone

CASES = [("b200", 4, 1), ("b300", 8, 1), ("h100-sxm", 4, 2)]
QWEN = get_model("qwen3.5-397b-a17b")
# The same model with all 60 layers full attention.
ALL_FULL = replace(QWEN, linear_attention=None, linear_layers=())


def _build(model: ModelSpec, gpu: str, tp: int, pp: int) -> RooflineModel:
    lat = build_latency_model(
        model, make_cluster(gpu), ParallelSpec(tp, pp), roofline=True, precision="fp8"
    )
    assert isinstance(lat, RooflineModel)
    return lat


PAIRS = {case: (_build(QWEN, *case), _build(ALL_FULL, *case)) for case in CASES}
counts = st.integers(1, 256)
contexts = st.integers(0, 200_000)


# ---- the context terms belong to the full-attention layers alone -------------------------------
@pytest.mark.parametrize("case", CASES)
def test_decode_slope_is_a_quarter_of_all_full_attention(case: tuple[str, int, int]) -> None:
    hybrid, full = PAIRS[case]
    assert hybrid.terms.decode_s_per_ctx == pytest.approx(full.terms.decode_s_per_ctx / 4)
    assert hybrid.terms.attn_s_per_pair == pytest.approx(full.terms.attn_s_per_pair / 4)


@pytest.mark.parametrize("case", CASES)
@given(count=counts, ctx=contexts, extra=st.integers(1, 100_000))
@settings(max_examples=40, deadline=None)
def test_linear_layers_add_a_context_free_decode_cost(
    case: tuple[str, int, int], count: int, ctx: int, extra: int
) -> None:
    hybrid, _ = PAIRS[case]
    growth = hybrid.decode_s(count, ctx + extra) - hybrid.decode_s(count, ctx)
    _, slope = hybrid.decode_coeffs(count)
    assert growth == pytest.approx(slope * extra, rel=1e-9)
    assert slope == pytest.approx(
        hybrid.pp * hybrid.stage_fraction * hybrid.terms.decode_s_per_ctx / min(count, hybrid.pp)
    )


def test_linear_layer_decode_cost_is_the_state_round_trip() -> None:
    """At TP 4 each GPU reads and writes 16 value heads of 128 x 128 fp32 plus its conv window
    per sequence and layer: memory-bound, far above the update's FLOPs."""
    gpu, eff, tp = make_cluster("b200").gpu, Efficiency(), 4
    linear = QWEN.linear_attention
    assert linear is not None
    state_s = float(recurrent_state_s(linear.state_bytes / tp, gpu, eff))
    expected_state_s = 2 * (16 * 128 * 128 * 4 + 3 * 3072 * 2) / (gpu.memory_bw_bytes_per_s * 0.75)
    assert state_s == pytest.approx(expected_state_s)
    compute_s, io_s = recurrent_token_s(linear.recurrent_flops_per_token / tp, 0.0, gpu, eff)
    assert compute_s < state_s / 10 and io_s == 0.0
    hybrid, full = attention_terms(QWEN, tp, gpu, eff), attention_terms(ALL_FULL, tp, gpu, eff)
    extra = hybrid.decode_s_per_seq - full.decode_s_per_seq
    assert extra > 45 * state_s  # plus the token traffic
    assert extra < 45 * 1.5 * state_s
    assert hybrid.attn_s_per_seq - full.attn_s_per_seq == pytest.approx(45 * state_s)


@pytest.mark.parametrize("case", CASES)
def test_hybrid_prefill_grows_slower_with_length_than_all_full(case: tuple[str, int, int]) -> None:
    gpu, tp, pp = case
    hybrid = _build(QWEN, gpu, tp, pp)
    all_full = _build(ALL_FULL, gpu, tp, pp)

    def quadratic(lat: RooflineModel) -> float:  # second difference in the prompt length
        lengths = (8192, 16384, 32768)
        s = [lat.prefill_s(1, n, n * n) for n in lengths]
        return s[2] - 2 * s[1] + s[0]

    assert quadratic(hybrid) < quadratic(all_full)


# ---- monotonicity and breakdowns ----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
@given(length=st.integers(1, 32768), count=st.integers(1, 64), extra=st.integers(1, 512))
@settings(max_examples=40, deadline=None)
def test_monotone_in_length_and_batch(
    case: tuple[str, int, int], length: int, count: int, extra: int
) -> None:
    assert_monotone(PAIRS[case][0], count, length, extra)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("length", [100, 8192])
def test_breakdowns_add_up(case: tuple[str, int, int], length: int) -> None:
    assert_breakdowns_add_up(PAIRS[case][0], length)


@given(cached=st.integers(0, 100_000), more=st.integers(1, 100_000))
@settings(max_examples=30, deadline=None)
def test_a_chunk_after_more_cached_tokens_costs_the_full_layers_only(
    cached: int, more: int
) -> None:
    hybrid, full = PAIRS[("b200", 4, 1)]
    chunk = 2048

    def pairs(prefix: int) -> float:
        return chunk * prefix + chunk * (chunk + 1) / 2

    def growth(lat: RooflineModel) -> float:
        return lat.mixed_s(chunk, pairs(cached + more), 0, 0) - lat.mixed_s(
            chunk, pairs(cached), 0, 0
        )

    assert growth(hybrid) == pytest.approx(hybrid.terms.attn_s_per_pair * chunk * more, rel=1e-6)
    assert growth(hybrid) == pytest.approx(growth(full) / 4, rel=1e-6)


# ---- GEMMs and unchanged models ----------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 4, 8])
def test_mixer_gemms_hold_the_mixer_weights(tp: int) -> None:
    gemm_weights = sum(count * n * k for count, n, k in attention_gemms(QWEN, tp)) * tp
    linear = QWEN.linear_attention
    assert linear is not None
    non_matmul = linear.conv_channels * linear.conv_kernel_tokens + 2 * 64 + 128
    # K and V heads replicate when TP exceeds the 2 KV heads: each GPU holds at least one.
    replicated = 2 * 256 * 4096 * (max(1, 2 // tp) * tp - 2)
    attention = QWEN.attention_params_per_layer + replicated
    expected = 15 * attention + 45 * (linear.params(4096) - non_matmul)
    assert gemm_weights == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["llama-3.1-70b", "deepseek-v3", "gpt-oss-120b", "kimi-k2.5"])
def test_models_without_linear_layers_have_no_linear_terms(name: str) -> None:
    model = get_model(name)
    gpu, eff = make_cluster("h100-sxm").gpu, Efficiency()
    terms = attention_terms(model, 8, gpu, eff)
    heads, _, head_dim = attention_shape(model, 8)
    qo_s = float(attention_token_s(heads, head_dim, gpu, eff))
    assert terms.attn_s_per_seq == model.num_layers * eff.attention_seq_s
    assert terms.decode_s_per_seq == pytest.approx(
        model.num_layers * (eff.decode_seq_s + qo_s), rel=1e-12
    )
    assert len(attention_gemms(model, 8)) == (1 if model.is_mla else 2)
