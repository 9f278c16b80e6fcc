"""Sliding-window attention in the latency model: pairs and cached tokens inside the window only,
the same cost as full attention within the window, less beyond it, and the decode contract
(linear in context once every context has reached the window)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.latency import build_latency_model, prefill_attn_pairs
from servesim.latency.ops import window_chunk_pairs, window_context_tokens, window_prompt_pairs
from servesim.latency.roofline import RooflineModel
from servesim.specs import get_model, make_cluster
from servesim.specs.model import ModelSpec, causal_pairs
from servesim.specs.parallel import ParallelSpec

from .factories import assert_breakdowns_add_up, assert_monotone

WINDOW = 128
CASES = [("h100-sxm", 2, 1, True), ("b200", 1, 1, False), ("h100-sxm", 2, 2, False)]


def _build(model: ModelSpec, gpu: str, tp: int, pp: int, roofline: bool) -> RooflineModel:
    lat = build_latency_model(
        model, make_cluster(gpu), ParallelSpec(tp, pp), roofline=roofline, precision="fp4"
    )
    assert isinstance(lat, RooflineModel)
    return lat


GPT_OSS = get_model("gpt-oss-120b")
FULL = replace(GPT_OSS, sliding_window_tokens=0, window_layers=())
PAIRS = {case: (_build(GPT_OSS, *case), _build(FULL, *case)) for case in CASES}
lengths = st.integers(1, 16384)
counts = st.integers(1, 64)


# ---- pair and context counts --------------------------------------------------------------------
@given(length=lengths, count=counts, window=st.integers(1, 4096))
@settings(max_examples=100, deadline=None)
def test_prompt_pairs_exact_for_equal_prompts(length: int, count: int, window: int) -> None:
    pairs = window_prompt_pairs(count, count * length, count * length * length, window)
    assert pairs == pytest.approx(count * causal_pairs(length, window), rel=1e-12)


@given(prompts=st.lists(st.integers(1, 4000), min_size=1, max_size=16), window=st.integers(1, 512))
@settings(max_examples=100, deadline=None)
def test_prompt_pairs_never_above_causal_and_exact_on_one_side(
    prompts: list[int], window: int
) -> None:
    n, s, sq = len(prompts), sum(prompts), sum(p * p for p in prompts)
    pairs = window_prompt_pairs(n, s, sq, window)
    assert 0 < pairs <= prefill_attn_pairs(s, sq) + 1e-9
    if all(p <= window for p in prompts) or all(p >= window for p in prompts):
        assert pairs == pytest.approx(sum(causal_pairs(p, window) for p in prompts), rel=1e-12)


@given(prefix=st.integers(0, 2000), chunk=st.integers(1, 2000), window=st.integers(1, 512))
@settings(max_examples=100, deadline=None)
def test_chunk_pairs_exact_inside_or_past_the_window(prefix: int, chunk: int, window: int) -> None:
    causal = chunk * prefix + chunk * (chunk + 1) / 2
    exact = sum(min(prefix + j, window) for j in range(1, chunk + 1))
    pairs = window_chunk_pairs(causal, chunk, window)
    assert exact <= pairs <= causal
    if prefix >= window or prefix + chunk <= window:
        assert pairs == exact


def test_context_tokens_saturate_at_one_window_per_sequence() -> None:
    assert window_context_tokens(4, 4 * 100, WINDOW) == 400
    assert window_context_tokens(4, 4 * 5000, WINDOW) == 4 * WINDOW


# ---- windowed vs full attention -----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
@given(length=st.integers(1, WINDOW), count=counts)
@settings(max_examples=30, deadline=None)
def test_same_cost_as_full_within_the_window(
    case: tuple[str, int, int, bool], length: int, count: int
) -> None:
    windowed, full = PAIRS[case]
    args = (count, count * length, count * length * length)
    assert windowed.prefill_s(*args) == pytest.approx(full.prefill_s(*args), rel=1e-12)
    assert windowed.prefill_stage_s(*args) == pytest.approx(full.prefill_stage_s(*args), rel=1e-12)
    ctx = count * (length - 1)
    assert windowed.decode_s(count, ctx) == pytest.approx(full.decode_s(count, ctx), rel=1e-12)
    pairs = prefill_attn_pairs(length, length * length)
    assert windowed.mixed_s(length, pairs, count, ctx) == pytest.approx(
        full.mixed_s(length, pairs, count, ctx), rel=1e-12
    )


@pytest.mark.parametrize("case", CASES)
@given(length=st.integers(4 * WINDOW, 65536), count=counts)
@settings(max_examples=30, deadline=None)
def test_cheaper_than_full_at_long_context(
    case: tuple[str, int, int, bool], length: int, count: int
) -> None:
    windowed, full = PAIRS[case]
    args = (count, count * length, count * length * length)
    assert windowed.prefill_s(*args) < full.prefill_s(*args)
    assert windowed.decode_s(count, count * length) < full.decode_s(count, count * length)
    pairs = prefill_attn_pairs(length, length * length)
    assert windowed.mixed_s(length, pairs, count, count * length) < full.mixed_s(
        length, pairs, count, count * length
    )


@pytest.mark.parametrize("case", CASES)
def test_decode_grows_with_the_full_layers_only_past_the_window(
    case: tuple[str, int, int, bool],
) -> None:
    windowed, full = PAIRS[case]
    n = 8
    slope_windowed = windowed.decode_s(n, n * 20_000) - windowed.decode_s(n, n * 10_000)
    slope_full = full.decode_s(n, n * 20_000) - full.decode_s(n, n * 10_000)
    assert slope_windowed == pytest.approx(slope_full / 2, rel=1e-9)  # 18 of 36 layers


# ---- the decode contract, monotonicity, breakdowns ---------------------------------------------
@pytest.mark.parametrize("case", CASES)
@given(count=counts, ctx=st.integers(0, 10**6))
@settings(max_examples=60, deadline=None)
def test_decode_coeffs_exact_once_contexts_reach_the_window(
    case: tuple[str, int, int, bool], count: int, ctx: int
) -> None:
    lat = PAIRS[case][0]
    base, slope = lat.decode_coeffs(count)
    linear = base + slope * ctx
    if ctx >= count * WINDOW:
        assert lat.decode_s(count, ctx) == pytest.approx(linear, rel=1e-12)
    else:
        assert lat.decode_s(count, ctx) < linear


@pytest.mark.parametrize("case", CASES)
@given(length=lengths, count=counts, extra=st.integers(1, 512))
@settings(max_examples=40, deadline=None)
def test_monotone_in_length_and_batch(
    case: tuple[str, int, int, bool], length: int, count: int, extra: int
) -> None:
    assert_monotone(PAIRS[case][0], count, length, extra)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("length", [50, WINDOW, 3000])
def test_breakdowns_add_up(case: tuple[str, int, int, bool], length: int) -> None:
    assert_breakdowns_add_up(PAIRS[case][0], length)


def test_full_attention_models_have_no_window_terms() -> None:
    lat = build_latency_model(
        get_model("llama-3.1-70b"), make_cluster("h100-sxm"), ParallelSpec(4, 1)
    )
    assert isinstance(lat, RooflineModel)
    terms = lat.terms
    assert (terms.window_tokens, terms.attn_s_per_window_pair, terms.decode_s_per_window_ctx) == (
        0,
        0.0,
        0.0,
    )
