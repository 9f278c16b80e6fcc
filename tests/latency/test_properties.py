"""Properties of the instance latency model: monotone in batch and length, falls with TP, decode
linear in context, breakdowns that add up -- for the roofline and the shipped fitted profiles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.latency.factories import make_latency

from servesim.latency import prefill_attn_pairs

CASES = [
    ("llama-2-13b", "a100-80gb", False),
    ("llama-2-13b", "a100-80gb", True),
    ("mixtral-8x7b", "h100-sxm", False),
    ("llama-3.1-8b", "a40", False),
    ("deepseek-v3", "h200-sxm", False),
]
MODELS = {
    case: make_latency(case[0], case[1], tp=8 if case[0] == "deepseek-v3" else 2, roofline=case[2])
    for case in CASES
}
lengths = st.integers(min_value=1, max_value=8192)
counts = st.integers(min_value=1, max_value=256)


@pytest.mark.parametrize("case", CASES)
@given(length=lengths, count=counts, extra=st.integers(1, 512))
@settings(max_examples=60, deadline=None)
def test_prefill_monotone_in_length_and_batch(
    case: tuple[str, str, bool], length: int, count: int, extra: int
) -> None:
    lat = MODELS[case]

    def t(n: int, ln: int) -> float:
        return lat.prefill_s(n, n * ln, n * ln * ln)

    assert t(count, length + extra) > t(count, length)
    assert t(count + 1, length) > t(count, length)


@pytest.mark.parametrize("case", CASES)
@given(ctx=lengths, count=counts, extra=st.integers(1, 512))
@settings(max_examples=60, deadline=None)
def test_decode_monotone_in_context_and_batch(
    case: tuple[str, str, bool], ctx: int, count: int, extra: int
) -> None:
    lat = MODELS[case]
    assert lat.decode_s(count, count * (ctx + extra)) > lat.decode_s(count, count * ctx)
    assert lat.decode_s(count + 1, (count + 1) * ctx) > lat.decode_s(count, count * ctx)


@pytest.mark.parametrize("roofline", [False, True])
@given(length=st.integers(16, 4096), count=st.integers(1, 64))
@settings(max_examples=40, deadline=None)
def test_latency_falls_with_tp(roofline: bool, length: int, count: int) -> None:
    by_tp = [make_latency("llama-2-70b", "h100-sxm", tp=tp, roofline=roofline) for tp in (2, 4, 8)]
    prefill = [m.prefill_s(count, count * length, count * length * length) for m in by_tp]
    decode = [m.decode_s(count, count * length) for m in by_tp]
    assert prefill[0] > prefill[1] > prefill[2]
    assert decode[0] > decode[1] > decode[2]


@pytest.mark.parametrize("case", CASES)
@given(count=counts, a=st.integers(0, 10**6), b=st.integers(0, 10**6))
@settings(max_examples=40, deadline=None)
def test_decode_exactly_linear_in_context(
    case: tuple[str, str, bool], count: int, a: int, b: int
) -> None:
    lat = MODELS[case]
    base, slope = lat.decode_coeffs(count)
    assert lat.decode_s(count, a) == pytest.approx(base + slope * a, rel=1e-12)
    mid = lat.decode_s(count, a) + lat.decode_s(count, b)
    assert mid == pytest.approx(2 * (base + slope * (a + b) / 2), rel=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_breakdowns_add_up(case: tuple[str, str, bool]) -> None:
    lat = MODELS[case]
    assert lat.prefill_breakdown(4, 2048, 4 * 512 * 512).total_s == pytest.approx(
        lat.prefill_s(4, 2048, 4 * 512**2)
    )
    assert lat.decode_breakdown(16, 16000).total_s == pytest.approx(lat.decode_s(16, 16000))


def test_pipeline_stage_is_shorter_than_the_whole_prefill() -> None:
    lat = make_latency("llama-2-70b", "a100-80gb", tp=4, pp=2)
    args = (4, 4096, 4 * 1024 * 1024)
    assert lat.prefill_stage_s(*args) < lat.prefill_s(*args)
    assert lat.prefill_stage_s(*args) > 0.4 * lat.prefill_s(*args)


def test_mixed_iteration_between_its_parts() -> None:
    lat = make_latency()
    pairs = prefill_attn_pairs(512, 512 * 512)
    mixed = lat.mixed_s(512, pairs, 16, 16 * 1000)
    assert mixed > lat.prefill_s(1, 512, 512 * 512)
    assert mixed > lat.decode_s(16, 16 * 1000)
    assert mixed < lat.prefill_s(1, 512, 512 * 512) + lat.decode_s(16, 16 * 1000)


def test_decode_coeffs_cached_and_cheap() -> None:
    lat = make_latency()
    assert lat.decode_coeffs(32) is lat.decode_coeffs(32)
