"""Tests of servesim.queueing: REFERENCE.md identities, properties, and Lindley cross-checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.queueing import (
    DecodePoint,
    MD1Wait,
    PrefillOption,
    ServiceMoments,
    UnstableQueueError,
    best_point_under_tpot_slo,
    crossover_rate_per_s,
    crossover_rates_per_s,
    decode_curve,
    deterministic,
    inter_op,
    inter_op_even,
    inter_op_mean_ttft_s,
    intra_op,
    intra_op_mean_ttft_s,
    max_batch_for_tpot_slo,
    max_rate_for_mean_ttft_s,
    max_rate_for_ttft_quantile_s,
    md1_mean_ttft_or_none_s,
    md1_mean_ttft_s,
    md1_ttft_quantiles_s,
    md1_wait_cdf,
    md1_wait_quantiles_s,
    mean_ttft_or_none_s,
    mean_ttft_s,
    mg1_mean_sojourn_s,
    mg1_mean_wait_s,
    mg1_wait_quantile_approx_s,
    mg1_wait_quantile_bound_s,
    mg1_wait_quantile_lundberg_s,
    moments_from_samples,
    moments_of_lengths,
    replicated,
    replicated_mean_ttft_s,
    single_device,
    ttft_quantiles_approx_s,
    ttft_quantiles_s,
)

service_s = st.floats(0.01, 5.0)
loads = st.floats(0.0, 0.98)
speedups = st.floats(1.05, 1.95)


# --- the formulas exactly as REFERENCE.md writes them --------------------------------------


def ref_md1(r: float, d: float) -> float:
    return d + r * d**2 / (2 * (1 - r * d))


def ref_inter_2way(r: float, d: float) -> float:
    return d + r * d**2 / (4 * (2 - r * d))


def ref_intra_2way(r: float, d: float, k: float) -> float:
    return d / k + r * d**2 / (2 * k * (k - r * d))


def lindley_waits(services: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """FCFS waits W_{n+1} = max(W_n + S_n - A_{n+1}, 0) from W_0 = 0, via running minima."""
    u = np.concatenate(([0.0], np.cumsum(services[:-1] - gaps[1:])))
    return u - np.minimum.accumulate(u)


# --- REFERENCE identities -------------------------------------------------------------------


@given(service_s, loads)
def test_md1_matches_reference(d: float, load: float) -> None:
    r = load / d
    assert md1_mean_ttft_s(r, d) == pytest.approx(ref_md1(r, d), rel=1e-12)
    assert mean_ttft_s(single_device(d), r) == pytest.approx(ref_md1(r, d), rel=1e-12)


@given(service_s, st.floats(0.0, 1.98))
def test_two_way_inter_op_is_general_form_with_n2(d: float, rd: float) -> None:
    r = rd / d
    general = inter_op_mean_ttft_s(r, latency_s=d, stage_s=d / 2)
    assert general == pytest.approx(ref_inter_2way(r, d), rel=1e-12)
    assert mean_ttft_s(inter_op_even(d, 2), r) == pytest.approx(general, rel=1e-12)


@given(service_s, speedups, st.floats(0.0, 0.98))
def test_two_way_intra_op_is_general_form(d: float, k: float, frac: float) -> None:
    r = frac * k / d
    assert intra_op_mean_ttft_s(r, d, k) == pytest.approx(ref_intra_2way(r, d, k), rel=1e-12)


@given(service_s, loads)
def test_intra_with_k1_and_pipeline_of_one_are_md1(d: float, load: float) -> None:
    r = load / d
    assert intra_op_mean_ttft_s(r, d, 1.0) == pytest.approx(md1_mean_ttft_s(r, d), rel=1e-12)
    assert mean_ttft_s(inter_op_even(d, 1), r) == pytest.approx(md1_mean_ttft_s(r, d), rel=1e-12)


@given(service_s, loads, st.integers(1, 16))
def test_replication_substitutes_rate_over_n(d: float, load: float, n: int) -> None:
    r = n * load / d
    assert replicated_mean_ttft_s(r, d, n) == pytest.approx(ref_md1(r / n, d), rel=1e-12)
    twice = replicated(replicated(single_device(d), 2), n)
    assert mean_ttft_s(twice, 2 * r) == pytest.approx(ref_md1(r / n, d), rel=1e-12)


@given(service_s, loads)
def test_pollaczek_khinchine_special_cases(m: float, load: float) -> None:
    r = load / m
    assert mg1_mean_sojourn_s(r, m, m * m) == pytest.approx(md1_mean_ttft_s(r, m), rel=1e-12)
    # Exponential service (E[S^2] = 2 m^2) gives M/M/1: sojourn 1/(mu - lambda).
    assert mg1_mean_sojourn_s(r, m, 2 * m * m) == pytest.approx(1 / (1 / m - r), rel=1e-9)


# --- properties -----------------------------------------------------------------------------


options = st.one_of(
    st.builds(single_device, service_s),
    st.builds(inter_op_even, service_s, st.integers(1, 8)),
    st.builds(intra_op, service_s, st.floats(1.0, 8.0)),
    st.builds(lambda d, n: replicated(single_device(d), n), service_s, st.integers(1, 8)),
)


@given(options, st.floats(0.0, 0.99), st.floats(0.0, 0.99))
def test_mean_ttft_is_monotone_in_rate(option: PrefillOption, f1: float, f2: float) -> None:
    lo, hi = sorted((f1, f2))
    limit = option.stable_below_per_s
    assert mean_ttft_s(option, lo * limit) <= mean_ttft_s(option, hi * limit)
    assert mean_ttft_s(option, 0.0) == option.latency_mean_s


@given(options, st.floats(1.0, 10.0))
def test_load_at_or_beyond_one_is_unstable(option: PrefillOption, factor: float) -> None:
    rate = factor * option.stable_below_per_s
    with pytest.raises(UnstableQueueError) as info:
        mean_ttft_s(option, rate)
    assert isinstance(info.value, InputError)
    assert info.value.stable_below_per_s == pytest.approx(option.stable_below_per_s)
    assert mean_ttft_or_none_s(option, rate) is None


def test_unstable_message_names_rate_load_and_limit() -> None:
    with pytest.raises(UnstableQueueError) as info:
        md1_mean_ttft_s(12.0, 0.1)
    message = str(info.value)
    assert message.startswith("rate=12 req/s makes the queue unstable")
    assert "R*D=1.2 >= 1" in message
    assert "stable below 10 req/s" in message
    assert md1_mean_ttft_or_none_s(10.0, 0.1) is None
    assert md1_mean_ttft_or_none_s(9.0, 0.1) == pytest.approx(0.1 + 9.0 * 0.01 / 0.2)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: md1_mean_ttft_s(-1.0, 0.1), "rate_per_s"),
        (lambda: md1_mean_ttft_s(math.nan, 0.1), "rate_per_s"),
        (lambda: md1_mean_ttft_s(1.0, 0.0), "service_s"),
        (lambda: mg1_mean_wait_s(1.0, 0.1, 0.005), "second_moment_s2"),
        (lambda: intra_op(0.1, 0.0), "speedup"),
        (lambda: inter_op(0.1, 0.2), "stage"),
        (lambda: replicated(single_device(0.1), 0), "num_instances"),
        (lambda: ttft_quantiles_s(single_device(0.1), 1.0, [1.0]), "level"),
        (lambda: ttft_quantiles_s(single_device(ServiceMoments(0.1, 0.02)), 1.0), "service"),
        (lambda: max_rate_for_mean_ttft_s(single_device(0.1), -1.0), "ttft_slo_s"),
    ],
)
def test_bad_input_names_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InputError) as info:
        call()
    assert info.value.field == field


# --- crossover and SLO rate -----------------------------------------------------------------


@given(service_s, speedups)
def test_crossover_is_where_the_curves_meet(d: float, k: float) -> None:
    intra, inter = intra_op(d, k), inter_op_even(d, 2)
    cross = crossover_rate_per_s(intra, inter)
    assert cross is not None and 0 < cross < k / d
    t_intra, t_inter = mean_ttft_s(intra, cross), mean_ttft_s(inter, cross)
    assert t_intra == pytest.approx(t_inter, rel=1e-9)
    assert ref_intra_2way(cross, d, k) == pytest.approx(ref_inter_2way(cross, d), rel=1e-9)
    below, above = 0.5 * cross, 0.5 * (cross + k / d)
    assert mean_ttft_s(intra, below) < mean_ttft_s(inter, below)
    assert mean_ttft_s(intra, above) > mean_ttft_s(inter, above)


def test_crossover_matches_bisection_and_shrinks_with_k() -> None:
    d = 1.0
    crosses = [crossover_rate_per_s(intra_op(d, k), inter_op_even(d, 2)) for k in (1.2, 1.5, 1.8)]
    assert all(c is not None for c in crosses)
    lo, hi = 0.0, 1.5 - 1e-12  # bisection on the REFERENCE forms for K = 1.5
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ref_intra_2way(mid, d, 1.5) < ref_inter_2way(mid, d) else (lo, mid)
    assert crosses[1] == pytest.approx(lo, rel=1e-9)
    # A larger K keeps intra-op ahead up to a higher rate.
    assert crosses[0] < crosses[1] < crosses[2]  # type: ignore[operator]


@given(service_s, st.floats(2.0, 6.0))
def test_two_way_intra_with_k_at_least_two_never_crosses(d: float, k: float) -> None:
    assert crossover_rate_per_s(intra_op(d, k), inter_op_even(d, 2)) is None


def test_equal_options_have_no_crossing() -> None:
    assert crossover_rates_per_s(single_device(0.3), single_device(0.3)) == []


@given(options, st.floats(1.01, 20.0))
def test_max_rate_for_mean_slo_is_exact(option: PrefillOption, slo_factor: float) -> None:
    slo = slo_factor * option.latency_mean_s
    rate = max_rate_for_mean_ttft_s(option, slo)
    assert 0 < rate < option.stable_below_per_s
    assert mean_ttft_s(option, rate) == pytest.approx(slo, rel=1e-9)
    assert (mean_ttft_or_none_s(option, rate * 1.001) or math.inf) > slo


def test_max_rate_is_zero_when_latency_alone_misses_slo() -> None:
    assert max_rate_for_mean_ttft_s(single_device(0.5), 0.4) == 0.0
    assert max_rate_for_mean_ttft_s(single_device(0.5), 0.5) == 0.0


# --- service-time distributions -------------------------------------------------------------


def test_moments_of_lengths_and_samples() -> None:
    moments = moments_of_lengths([100, 300], [3, 1], lambda n: n / 1000)
    assert moments.mean_s == pytest.approx(0.15)
    assert moments.second_moment_s2 == pytest.approx(0.75 * 0.01 + 0.25 * 0.09)
    assert moments_from_samples([0.2, 0.2]).is_deterministic
    assert deterministic(0.2).scaled(0.5) == ServiceMoments(0.1, 0.1**2)


def test_pollaczek_khinchine_against_lindley() -> None:
    rng = np.random.default_rng(7)
    n = 400_000
    lengths = rng.integers(64, 2048, size=n)  # a spread of prompt lengths
    services = 0.02 + lengths * 1e-4
    moments = moments_of_lengths(list(range(64, 2048)), [1.0] * 1984, lambda x: 0.02 + x * 1e-4)
    rate = 0.7 / moments.mean_s
    waits = lindley_waits(services, rng.exponential(1 / rate, size=n))
    expected = mg1_mean_wait_s(rate, moments.mean_s, moments.second_moment_s2)
    assert waits.mean() == pytest.approx(expected, rel=0.03)
    grid = list(range(64, 2048))
    for level in (0.9, 0.99):
        simulated = np.quantile(waits, level)
        assert mg1_wait_quantile_bound_s(rate, moments, level) >= simulated
        approx = mg1_wait_quantile_approx_s(rate, moments, level)
        assert approx == pytest.approx(simulated, rel=0.15)  # an approximation, ~10% here
        lundberg = mg1_wait_quantile_lundberg_s(rate, [0.02 + x * 1e-4 for x in grid], None, level)
        assert simulated <= lundberg <= 1.3 * simulated
    option = single_device(moments)
    approx = ttft_quantiles_approx_s(option, rate, [0.99])[0.99]
    assert approx == pytest.approx(moments.mean_s + mg1_wait_quantile_approx_s(rate, moments, 0.99))


# --- exact M/D/1 percentiles ----------------------------------------------------------------


def erlang_cdf(load: float, x: float) -> float:
    """Erlang's alternating series (D = 1), fine for small x only."""
    return (1 - load) * sum(
        (load * (k - x)) ** k / math.factorial(k) * math.exp(-load * (k - x))
        for k in range(math.floor(x) + 1)
    )


@pytest.mark.parametrize("load", [0.1, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("x", [0.0, 0.25, 1.0, 1.5, 2.75, 4.0, 6.3])
def test_md1_cdf_matches_erlang_formula_where_it_is_stable(load: float, x: float) -> None:
    assert MD1Wait.at_load(load).cdf(x) == pytest.approx(erlang_cdf(load, x), abs=1e-11)


@pytest.mark.parametrize("load", [0.5, 0.9, 0.99, 0.999])
def test_md1_distribution_is_stable_at_high_load(load: float) -> None:
    wait = MD1Wait.at_load(load)
    n = np.arange(wait.pmf.size)
    assert wait.pmf.sum() == pytest.approx(1.0, abs=1e-11)
    assert wait.pmf[0] == pytest.approx(1 - load, abs=1e-12)
    # Mean number in system of M/D/1: rho + rho^2 / (2 (1 - rho)).
    assert n @ wait.pmf == pytest.approx(load + load**2 / (2 * (1 - load)), rel=1e-8)
    xs = np.linspace(0, wait.quantile(0.9999), 400)
    cdf = np.array([wait.cdf(x) for x in xs])
    assert np.all(np.diff(cdf) >= -1e-14) and cdf[0] == pytest.approx(1 - load)
    assert cdf[-1] == pytest.approx(0.9999, abs=1e-9)  # the alternating series fails here
    for level in (0.5, 0.9, 0.99):
        assert wait.cdf(wait.quantile(level)) == pytest.approx(level, abs=1e-12)


@pytest.mark.parametrize("load", [0.5, 0.75])
def test_md1_percentiles_against_lindley(load: float) -> None:
    d = 0.2
    rate = load / d
    rng = np.random.default_rng(2024)
    n = 1_000_000
    ttft = d + lindley_waits(np.full(n, d), rng.exponential(1 / rate, size=n))
    exact = md1_ttft_quantiles_s(rate, d, (0.5, 0.9, 0.99))
    for level, value in exact.items():
        assert np.quantile(ttft, level) == pytest.approx(value, rel=0.025)
    for wait_s in (0.05, 0.2, 0.5, 1.0):
        assert np.mean(ttft - d <= wait_s) == pytest.approx(md1_wait_cdf(rate, d, wait_s), abs=0.01)
    assert ttft.mean() == pytest.approx(md1_mean_ttft_s(rate, d), rel=0.02)


def test_option_percentiles_use_bottleneck_and_latency() -> None:
    d, rate = 1.0, 1.2
    pipeline = ttft_quantiles_s(inter_op_even(d, 2), rate)
    stage_wait = md1_ttft_quantiles_s(rate, d / 2)
    for level, value in pipeline.items():
        assert value == pytest.approx(d + stage_wait[level] - d / 2, rel=1e-12)
    assert ttft_quantiles_s(single_device(d), 0.0) == {0.5: d, 0.9: d, 0.99: d}


@pytest.mark.parametrize("load", [0.3, 0.7, 0.9, 0.99])
def test_lundberg_bound_holds_and_is_tight_for_md1(load: float) -> None:
    exact = md1_wait_quantiles_s(load, 1.0, (0.9, 0.99, 0.999))
    for level, value in exact.items():
        bound = mg1_wait_quantile_lundberg_s(load, [1.0], None, level)
        assert value <= bound <= value + 0.35 * (value + 1)


def test_max_rate_for_ttft_quantile_slo() -> None:
    option = inter_op_even(0.2, 2)
    rate = max_rate_for_ttft_quantile_s(option, 0.6, level=0.9)
    assert ttft_quantiles_s(option, rate, [0.9])[0.9] <= 0.6
    assert ttft_quantiles_s(option, rate * 1.001, [0.9])[0.9] > 0.6
    assert rate < max_rate_for_mean_ttft_s(option, 0.6)  # p90 is above the mean here
    assert max_rate_for_ttft_quantile_s(option, 0.2) == 0.0


def test_md1_percentiles_beyond_the_point_mass_at_zero() -> None:
    # P(W = 0) = 1 - rho: at load 0.3, the median TTFT is the service time itself.
    quantiles = md1_ttft_quantiles_s(3.0, 0.1, (0.5, 0.7, 0.71))
    assert quantiles[0.5] == quantiles[0.7] == pytest.approx(0.1)
    assert quantiles[0.71] > 0.1


# --- decoding side --------------------------------------------------------------------------


class LinearDecode:
    """decode_ms = a + b*sum_ctx + c*num_seqs, the shape of the fitted profiles."""

    def __init__(self, a_ms: float, b_ms: float, c_ms: float) -> None:
        self.a_ms, self.b_ms, self.c_ms = a_ms, b_ms, c_ms

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        return (self.a_ms + self.b_ms * sum_ctx_tokens + self.c_ms * num_seqs) / 1000


def test_decode_curve_latency_and_throughput() -> None:
    model = LinearDecode(20.0, 0.001, 0.1)
    points = decode_curve(model, [1, 8, 64], ctx_tokens_per_seq=1000)
    assert points[0] == DecodePoint(1, 0.0211, 1 / 0.0211)
    assert [p.tpot_s for p in points] == sorted(p.tpot_s for p in points)
    assert points[2].throughput_tokens_per_s == pytest.approx(64 / 0.0904)
    # Memory-bound decoding: a bigger batch costs TPOT but buys throughput.
    assert points[2].throughput_tokens_per_s > 10 * points[0].throughput_tokens_per_s


@settings(max_examples=60)
@given(
    st.floats(1.0, 50.0),
    st.floats(0.0, 0.01),
    st.floats(0.0, 1.0),
    st.floats(0.005, 0.5),
    st.integers(1, 4096),
    st.integers(1, 300),
)
def test_max_batch_for_tpot_matches_brute_force(
    a: float, b: float, c: float, slo: float, ctx: int, cap: int
) -> None:
    model = LinearDecode(a, b, c)
    meets = [n for n in range(1, cap + 1) if model.decode_s(n, n * ctx) <= slo]
    assert max_batch_for_tpot_slo(model, slo, ctx, cap) == (max(meets) if meets else None)


def test_best_point_under_tpot_slo() -> None:
    model = LinearDecode(20.0, 0.001, 0.1)
    point = best_point_under_tpot_slo(model, 0.1, 1000, 512)
    assert point is not None and point.batch_size == 72  # 20 + 1.1*72 = 99.2 ms
    assert point.tpot_s <= 0.1 < model.decode_s(73, 73 * 1000)
    assert best_point_under_tpot_slo(model, 0.01, 1000, 512) is None
