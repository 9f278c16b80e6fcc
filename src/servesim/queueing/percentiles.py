"""Percentiles of the waiting time and of TTFT: exact for M/D/1, approximate for M/G/1.

M/D/1 (service D, load rho = R*D), exact and numerically stable. Erlang's closed form
P(W <= t) = (1-rho) * sum_{k<=t/D} (rho*(k - t/D))^k / k! * exp(-rho*(k - t/D)) alternates in
sign with terms that grow like exp(rho*t/D), so it loses every digit for long waits. Instead:

1. Fry's relation: with D = 1, the number in system N satisfies N(s+1) = max(N(s)-1, 0) +
   A(s, s+1], because exactly one request leaves in any unit interval that starts busy. Its
   stationary law p_n has the generating function (1-rho)(1-z) / (1 - z*exp(rho*(1-z))),
   which we invert with one FFT on the unit circle (M points, M chosen so that the geometric
   tail beyond M is below 1e-17; all terms are bounded, so the rounding error stays ~1e-15).
2. FCFS with unit service: a request arriving at t waits at most k + v (0 <= v < 1) iff all
   requests ahead of it are gone by t + k + v, i.e. iff max(N(s)-1, 0) + A(s, t) <= k at
   s = t - (1 - v). Hence P(W <= k + v) = sum_m Poisson(m; rho*(1-v)) * Q(k - m), Q the
   distribution function of max(N-1, 0): a sum of nonnegative terms.

M/G/1 (a distribution of input lengths): only the first two moments are known, so we offer
(a) an upper bound from Markov's inequality, P(W > t) <= E[W]/t, and (b) the exponential
approximation P(W > t) ~= rho * exp(-rho*t/E[W]), which has the exact P(W > 0) = rho and the
exact mean; it is an approximation, not a bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servesim.errors import InputError, require
from servesim.queueing.mg1 import ServiceMoments, check_stable, mg1_mean_wait_s
from servesim.queueing.prefill import PrefillOption, check_stable_option

MAX_FFT_POINTS = 1 << 23
_TAIL_NATS = 40.0  # exp(-40) ~ 4e-18 of the geometric tail is left beyond the FFT length
_MAX_POISSON_TERMS = 64  # Poisson(mu <= 1) mass beyond 64 arrivals is below 1e-89


def _tail_decay_rate(load: float) -> float:
    """y > 0 with load*(e^y - 1) = y: p_n decays like exp(-y*n)."""
    lo, hi = 0.0, 1.0
    while load * math.expm1(hi) - hi <= 0:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if load * math.expm1(mid) - mid < 0:
            lo = mid
        else:
            hi = mid
    return hi


def _fft_points(load: float) -> int:
    needed = _TAIL_NATS / _tail_decay_rate(load) + 64
    num_points = 64
    while num_points < needed:
        num_points *= 2
    if num_points > MAX_FFT_POINTS:
        raise InputError("load", load, "exact M/D/1 percentiles are computed for load < 0.99999")
    return num_points


def md1_number_in_system_pmf(load: float) -> np.ndarray:
    """P(N = n), n = 0..M-1, of the M/D/1 number in system at load `load` in [0, 1)."""
    require(0 <= load < 1, "load", load, "a load in [0, 1)")
    if load == 0:
        return np.array([1.0])
    num_points = _fft_points(load)
    theta = 2 * np.pi * np.arange(num_points) / num_points
    u = 2 * np.sin(theta / 2) ** 2 - 1j * np.sin(theta)  # 1 - z, accurate near z = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        pgf = (1 - load) * u / (u * np.exp(load * u) - np.expm1(load * u))
    pgf[0] = 1.0  # the removable singularity at z = 1
    pmf = np.fft.fft(pgf).real / num_points
    return np.maximum(pmf, 0.0)  # rounding leaves values of order -1e-17 in the far tail


@dataclass(frozen=True)
class MD1Wait:
    """The exact waiting-time distribution of M/D/1 with D = 1 (times in units of D)."""

    load: float
    pmf: np.ndarray  # P(N = n)
    ahead_cdf: np.ndarray  # P(max(N - 1, 0) <= j)

    @classmethod
    def at_load(cls, load: float) -> MD1Wait:
        """Build the distribution for load rho = R*D in [0, 1)."""
        pmf = md1_number_in_system_pmf(load)
        ahead = np.concatenate(([pmf[:2].sum()], pmf[2:]))
        return cls(load, pmf, np.minimum(np.cumsum(ahead), 1.0))

    def _ahead(self, j: np.ndarray) -> np.ndarray:
        return self.ahead_cdf[np.minimum(j, self.ahead_cdf.size - 1)]

    def cdf(self, x: float) -> float:
        """P(W/D <= x)."""
        if x < 0:
            return 0.0
        if self.load == 0:
            return 1.0
        k = math.floor(x)
        mu = self.load * (1 - (x - k))  # mean arrivals in (s, t), s = t - (1 - v)
        m = np.arange(min(k, _MAX_POISSON_TERMS) + 1)
        log_pmf = m * math.log(mu) - mu - np.array([math.lgamma(i + 1) for i in m])
        return float(min(np.exp(log_pmf) @ self._ahead(k - m), 1.0))

    def quantile(self, level: float) -> float:
        """Smallest x with P(W/D <= x) >= level."""
        if level <= 1 - self.load:
            return 0.0
        integer_cdf = np.cumsum(self.pmf)  # P(W/D <= k) = P(N <= k)
        k = int(np.searchsorted(integer_cdf, level))
        if k >= integer_cdf.size:
            raise InputError("level", level, "a level the FFT resolves (below 1 - 1e-15)")
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.cdf(k - 1 + mid) < level else (lo, mid)
        return k - 1 + hi


def _check_level(level: float) -> None:
    require(0 < level < 1, "level", level, "a quantile level in (0, 1), e.g. 0.99")


def md1_wait_cdf(rate_per_s: float, service_s: float, wait_s: float) -> float:
    """P(W <= wait_s) for M/D/1 (exact)."""
    load = check_stable(rate_per_s, service_s)
    return MD1Wait.at_load(load).cdf(wait_s / service_s)


def md1_wait_quantiles_s(
    rate_per_s: float, service_s: float, levels: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[float, float]:
    """Exact M/D/1 waiting-time quantiles in seconds, keyed by level."""
    for level in levels:
        _check_level(level)
    wait = MD1Wait.at_load(check_stable(rate_per_s, service_s))
    return {level: service_s * wait.quantile(level) for level in levels}


def md1_ttft_quantiles_s(
    rate_per_s: float, service_s: float, levels: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[float, float]:
    """Exact M/D/1 TTFT (= D + W) quantiles in seconds, keyed by level."""
    waits = md1_wait_quantiles_s(rate_per_s, service_s, levels)
    return {level: service_s + w for level, w in waits.items()}


def ttft_quantiles_s(
    option: PrefillOption, rate_per_s: float, levels: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[float, float]:
    """Exact TTFT quantiles (s) of an option with a fixed service time, keyed by level.

    TTFT = latency + W, W the M/D/1 wait with service D_m at rate R/N. For a distribution of
    service times use `ttft_quantiles_approx_s` (no closed form exists from two moments).
    """
    require(
        option.service.is_deterministic,
        "service",
        option.service,
        "a fixed service time for exact percentiles; use ttft_quantiles_approx_s",
    )
    for level in levels:
        _check_level(level)
    service_s = option.service.mean_s
    wait = MD1Wait.at_load(check_stable_option(option, rate_per_s))
    return {lv: option.latency_mean_s + service_s * wait.quantile(lv) for lv in levels}


def mg1_wait_quantile_bound_s(rate_per_s: float, moments: ServiceMoments, level: float) -> float:
    """Upper bound (s) on the M/G/1 wait quantile: 0 if level <= 1 - rho, else E[W]/(1-level)."""
    _check_level(level)
    load = check_stable(rate_per_s, moments.mean_s)
    if level <= 1 - load:
        return 0.0
    return mg1_mean_wait_s(rate_per_s, moments.mean_s, moments.second_moment_s2) / (1 - level)


def mg1_wait_quantile_approx_s(rate_per_s: float, moments: ServiceMoments, level: float) -> float:
    """Exponential-tail approximation (s) of the M/G/1 wait quantile (not a bound).

    P(W > t) ~= rho*exp(-rho*t/E[W]) gives t = E[W]/rho * ln(rho/(1-level)) above 1 - rho.
    """
    _check_level(level)
    load = check_stable(rate_per_s, moments.mean_s)
    if level <= 1 - load:
        return 0.0
    mean_wait = mg1_mean_wait_s(rate_per_s, moments.mean_s, moments.second_moment_s2)
    return mean_wait / load * math.log(load / (1 - level))


def ttft_quantiles_approx_s(
    option: PrefillOption, rate_per_s: float, levels: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[float, float]:
    """Approximate TTFT quantiles (s): mean latency + exponential-tail wait quantile.

    Ignores the spread of the latency itself; use for a distribution of input lengths.
    """
    per_instance = rate_per_s / option.num_instances
    check_stable_option(option, rate_per_s)
    return {
        lv: option.latency_mean_s + mg1_wait_quantile_approx_s(per_instance, option.service, lv)
        for lv in levels
    }


def lundberg_decay_per_s(
    rate_per_s: float, service_s: Sequence[float], weights: Sequence[float] | None = None
) -> float:
    """theta > 0 with R*(E[exp(theta*S)] - 1) = theta, for a discrete service distribution.

    Lundberg's inequality then bounds the M/G/1 wait: P(W > t) <= exp(-theta*t) for all t.
    """
    values = np.asarray(service_s, dtype=float)
    probs = (
        np.full(values.size, 1.0 / max(values.size, 1))
        if weights is None
        else np.asarray(weights, dtype=float)
    )
    require(
        values.size > 0
        and values.size == probs.size
        and bool(np.all(values > 0))
        and bool(np.all(probs >= 0))
        and probs.sum() > 0,
        "service_s",
        f"{values.size} values",
        "service times > 0 s with one weight >= 0 each (positive sum)",
    )
    probs = probs / probs.sum()
    check_stable(rate_per_s, float(probs @ values))

    def excess(theta: float) -> float:
        return rate_per_s * float(probs @ np.expm1(theta * values)) - theta

    lo, hi = 0.0, 1.0 / float(values.max())
    while excess(hi) <= 0:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return lo  # the lower end keeps the bound on the safe side


def mg1_wait_quantile_lundberg_s(
    rate_per_s: float,
    service_s: Sequence[float],
    weights: Sequence[float] | None,
    level: float,
) -> float:
    """Upper bound (s) on the M/G/1 wait quantile from Lundberg's inequality: ln(1/(1-level))/theta.

    Needs the service distribution itself (values and weights), not just two moments; much
    tighter than the Markov bound `mg1_wait_quantile_bound_s` at high levels.
    """
    _check_level(level)
    return math.log(1 / (1 - level)) / lundberg_decay_per_s(rate_per_s, service_s, weights)


def max_rate_for_ttft_quantile_s(
    option: PrefillOption, ttft_slo_s: float, level: float = 0.9, tol_rel: float = 1e-9
) -> float:
    """Highest total rate (req/s) at which the exact `level` TTFT quantile is <= `ttft_slo_s`.

    The quantile grows with the rate, so bisection finds it to `tol_rel`; 0.0 when the
    latency alone reaches the SLO. Needs a fixed service time (see `ttft_quantiles_s`).
    """
    require(
        math.isfinite(ttft_slo_s) and ttft_slo_s > 0, "ttft_slo_s", ttft_slo_s, "a finite SLO > 0 s"
    )
    _check_level(level)
    if option.latency_mean_s >= ttft_slo_s:
        return 0.0
    lo, hi = 0.0, option.stable_below_per_s
    while hi - lo > tol_rel * hi:
        mid = 0.5 * (lo + hi)
        meets = ttft_quantiles_s(option, mid, [level])[level] <= ttft_slo_s
        lo, hi = (mid, hi) if meets else (lo, mid)
    return lo
