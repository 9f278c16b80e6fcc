"""Goodput of one configuration: the highest rate whose SLO attainment reaches the target.

Attainment falls as the rate rises (with common random numbers the same requests arrive at
every rate, only closer together, so the curve is monotone up to rare batching effects). The
search brackets the threshold starting from a throughput bound, then bisects geometrically
until the bracket is narrower than a relative tolerance. The goodput is the highest rate
observed to meet the target; every evaluated point is kept for the attainment-vs-rate curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from servesim.errors import require

METRICS = ("joint", "ttft", "tpot")
"""Which attainment decides: both SLOs (a full deployment), TTFT only (prefill-only
simulation) or TPOT only (decode-only simulation)."""


@dataclass(frozen=True, slots=True)
class RatePoint:
    """The outcome of one simulation at one request rate.

    Attainments are fractions of requests in [0, 1]; latencies are seconds (NaN if undefined).
    """

    rate_per_s: float
    attainment_ttft: float
    attainment_tpot: float
    attainment_joint: float
    p90_ttft_s: float
    p90_tpot_s: float
    kv_share_of_ttft: float = 0.0  # mean share of TTFT spent moving the KV cache

    def attainment(self, metric: str) -> float:
        """The attainment that `metric` ('joint', 'ttft' or 'tpot') names."""
        return {
            "joint": self.attainment_joint,
            "ttft": self.attainment_ttft,
            "tpot": self.attainment_tpot,
        }[metric]


@dataclass(frozen=True, slots=True)
class GoodputResult:
    """Goodput (req/s; 0 when even the lowest probed rate misses) and the points evaluated."""

    goodput_per_s: float
    points: tuple[RatePoint, ...]
    exact: bool = True
    """False when the search stopped early, the shape missing at a goodput to beat: the true
    goodput is somewhere below `first_miss()`'s rate, and `goodput_per_s` is 0."""

    @property
    def num_simulations(self) -> int:
        return len(self.points)

    def point_at(self, rate_per_s: float) -> RatePoint | None:
        """The evaluated point at exactly `rate_per_s`, if any."""
        return next((p for p in self.points if p.rate_per_s == rate_per_s), None)

    def first_miss(self) -> RatePoint | None:
        """The lowest evaluated rate above the goodput (where the target was missed)."""
        above = [p for p in self.points if p.rate_per_s > self.goodput_per_s]
        return min(above, key=lambda p: p.rate_per_s) if above else None


@dataclass(frozen=True, slots=True)
class BisectionSpec:
    """How the goodput search probes rates.

    target: attainment the goodput must reach (0 < target <= 1).
    rel_tol: stop when hi / lo <= 1 + rel_tol (relative width of the final bracket).
    start_fraction: first probe as a fraction of the throughput bound.
    max_halvings: give up (goodput 0) after this many halvings below the first probe.
    """

    target: float = 0.9
    rel_tol: float = 0.02
    start_fraction: float = 0.4
    max_halvings: int = 5

    def __post_init__(self) -> None:
        require(0 < self.target <= 1, "attainment", self.target, "a fraction in (0, 1]")
        require(0 < self.rel_tol < 1, "rel_tol", self.rel_tol, "a relative tolerance in (0, 1)")
        require(0 < self.start_fraction <= 1, "start_fraction", self.start_fraction, "in (0, 1]")
        require(self.max_halvings >= 1, "max_halvings", self.max_halvings, "an integer >= 1")


def find_goodput(
    evaluate: Callable[[float], RatePoint],
    bound_per_s: float,
    spec: BisectionSpec,
    metric: str = "joint",
    stop_below_per_s: float = 0.0,
) -> GoodputResult:
    """Highest rate (req/s) at which `evaluate(rate).attainment(metric) >= spec.target`.

    `bound_per_s` is an upper bound on the goodput (a throughput bound); the search starts below
    it, widens upwards by 1.5x if needed, then narrows the bracket to `spec.rel_tol`, alternating
    an interpolated guess (checked one tolerance step away) with a geometric bisection step.
    With `stop_below_per_s` > 0 (a goodput to beat elsewhere) the first probe is that rate: a
    miss there shows the shape cannot win, and the search stops after one simulation
    (goodput 0, `exact=False`, the true goodput lies below that rate).
    """
    require(metric in METRICS, "metric", metric, f"one of {', '.join(METRICS)}")
    require(
        math.isfinite(bound_per_s) and bound_per_s > 0,
        "bound_per_s",
        bound_per_s,
        "a finite rate > 0",
    )
    points: dict[float, RatePoint] = {}

    def meets(rate: float) -> bool:
        if rate not in points:
            points[rate] = evaluate(rate)
        return points[rate].attainment(metric) >= spec.target

    def attained(rate: float) -> float:
        return points[rate].attainment(metric)

    if stop_below_per_s > 0 and not meets(stop_below_per_s):
        return GoodputResult(0.0, _ordered(points), exact=False)
    if stop_below_per_s > 0:
        lo, hi = _bracket_up(meets, stop_below_per_s, bound_per_s)
    else:
        lo, hi = _bracket(meets, bound_per_s, spec)
    interpolate = True
    while lo > 0 and hi / lo > 1 + spec.rel_tol:
        if interpolate:
            lo, hi = _interpolate_and_verify(meets, attained, lo, hi, spec)
        else:
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if meets(mid) else (lo, mid)
        interpolate = not interpolate
    return GoodputResult(goodput_per_s=lo, points=_ordered(points))


def _ordered(points: dict[float, RatePoint]) -> tuple[RatePoint, ...]:
    return tuple(sorted(points.values(), key=lambda p: p.rate_per_s))


def _interpolate_and_verify(
    meets: Callable[[float], bool],
    attained: Callable[[float], float],
    lo: float,
    hi: float,
    spec: BisectionSpec,
) -> tuple[float, float]:
    """Probe where the attainment line between lo and hi crosses the target (in log rate), then
    one tolerance step beyond it to the other side, which ends the search if the guess was good.
    """
    a_lo, a_hi = attained(lo), attained(hi)
    frac = (a_lo - spec.target) / (a_lo - a_hi) if a_lo > a_hi else 0.5
    margin = math.sqrt(1 + spec.rel_tol)
    x = min(max(lo * (hi / lo) ** frac, lo * margin), hi / margin)
    if meets(x):
        lo = x
        y = lo * (1 + spec.rel_tol)
        if y < hi:
            lo, hi = (y, hi) if meets(y) else (lo, y)
    else:
        hi = x
        y = hi / (1 + spec.rel_tol)
        if y > lo:
            lo, hi = (y, hi) if meets(y) else (lo, y)
    return lo, hi


def _bracket_up(
    meets: Callable[[float], bool], rate: float, bound_per_s: float
) -> tuple[float, float]:
    """(lo, hi) above `rate`, which meets the target: widen by 1.5x until a rate misses."""
    while rate < bound_per_s * 4:
        higher = rate * 1.5
        if not meets(higher):
            return rate, higher
        rate = higher
    return rate, rate  # the bound was far too low; stop rather than probe forever


def _bracket(
    meets: Callable[[float], bool], bound_per_s: float, spec: BisectionSpec
) -> tuple[float, float]:
    """(lo, hi): lo meets the target (or is 0), hi misses it (or is an unreachable ceiling)."""
    rate = bound_per_s * spec.start_fraction
    if meets(rate):
        return _bracket_up(meets, rate, bound_per_s)
    for _ in range(spec.max_halvings):
        lower = rate / 2
        if meets(lower):
            return lower, rate
        rate = lower
    return 0.0, rate
