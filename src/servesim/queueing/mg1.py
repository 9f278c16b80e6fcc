"""Single-server queues with Poisson arrivals: M/G/1 (Pollaczek-Khinchine) and M/D/1 means.

Everything here is a pure function of the arrival rate (requests/s) and the first two moments
of the service time (seconds, seconds^2). A queue whose load R*E[S] is at or beyond 1 has no
steady state: asking for its mean raises `UnstableQueueError`, which says at what rate the
queue stops being stable; the `*_or_none` helpers return None instead, for tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from servesim.errors import InputError, require


class UnstableQueueError(InputError):
    """The offered load R*E[S] is >= 1, so waiting times grow without bound."""

    def __init__(self, rate_per_s: float, load: float, stable_below_per_s: float) -> None:
        allowed = (
            f"makes the queue unstable: load R*D={load:.6g} >= 1; "
            f"the queue is stable below {stable_below_per_s:.6g} req/s"
        )
        super().__init__("rate_per_s", rate_per_s, allowed)
        self.load = load
        self.stable_below_per_s = stable_below_per_s
        self.args = (f"rate={rate_per_s:.6g} req/s {allowed}",)


@dataclass(frozen=True)
class ServiceMoments:
    """First two moments of a service time: `mean_s` = E[S], `second_moment_s2` = E[S^2]."""

    mean_s: float
    second_moment_s2: float

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.mean_s) and self.mean_s > 0,
            "mean_s",
            self.mean_s,
            "a finite service time > 0 s",
        )
        # Jensen: E[S^2] >= E[S]^2; allow rounding so that deterministic(d).scaled(k) passes.
        floor = self.mean_s**2 * (1.0 - 1e-12)
        require(
            math.isfinite(self.second_moment_s2) and self.second_moment_s2 >= floor,
            "second_moment_s2",
            self.second_moment_s2,
            f"a finite value >= mean_s^2 = {self.mean_s**2:.6g} s^2",
        )

    @property
    def variance_s2(self) -> float:
        """Var[S] in s^2 (0 for a deterministic service time)."""
        return max(self.second_moment_s2 - self.mean_s**2, 0.0)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation Var[S]/E[S]^2 (0 deterministic, 1 exponential)."""
        return self.variance_s2 / self.mean_s**2

    @property
    def is_deterministic(self) -> bool:
        """True when the variance is zero up to rounding."""
        return self.scv <= 1e-12

    def scaled(self, factor: float) -> ServiceMoments:
        """Moments of factor*S (e.g. 1/K for a speedup K, 1/N for one of N pipeline stages)."""
        require(math.isfinite(factor) and factor > 0, "factor", factor, "a finite value > 0")
        return ServiceMoments(self.mean_s * factor, self.second_moment_s2 * factor**2)


def deterministic(service_s: float) -> ServiceMoments:
    """Moments of a fixed service time of `service_s` seconds (the M/D/1 case)."""
    require(
        math.isfinite(service_s) and service_s > 0,
        "service_s",
        service_s,
        "a finite service time > 0 s",
    )
    return ServiceMoments(service_s, service_s**2)


def moments_from_samples(service_s: Sequence[float] | np.ndarray) -> ServiceMoments:
    """Empirical moments of observed service times (seconds), each > 0."""
    values = np.asarray(service_s, dtype=float)
    require(values.size > 0, "service_s", "[]", "at least one service time")
    require(
        bool(np.all(np.isfinite(values) & (values > 0))),
        "service_s",
        "array with a value <= 0 or not finite",
        "finite service times > 0 s",
    )
    mean = float(values.mean())
    return ServiceMoments(mean, max(float(np.mean(values**2)), mean**2))


def moments_of_lengths(
    lengths_tokens: Sequence[int],
    weights: Sequence[float],
    service_s: Callable[[int], float],
) -> ServiceMoments:
    """Moments of service_s(L) when the input length L takes `lengths_tokens` with `weights`.

    This is how a distribution of prompt lengths (rather than one fixed length) enters the
    Pollaczek-Khinchine formula; `service_s` is any latency function of the prompt length.
    """
    require(
        len(lengths_tokens) == len(weights) and len(weights) > 0,
        "weights",
        len(weights),
        f"one weight per length ({len(lengths_tokens)} lengths)",
    )
    w = np.asarray(weights, dtype=float)
    require(
        bool(np.all(np.isfinite(w) & (w >= 0))) and w.sum() > 0,
        "weights",
        list(weights),
        "finite weights >= 0 with a positive sum",
    )
    times = np.array([service_s(int(n)) for n in lengths_tokens], dtype=float)
    require(
        bool(np.all(np.isfinite(times) & (times > 0))),
        "service_s",
        "a length function",
        "a service time > 0 s for every length",
    )
    p = w / w.sum()
    mean = float(p @ times)
    return ServiceMoments(mean, max(float(p @ times**2), mean**2))


def stable_rate_limit_per_s(mean_service_s: float, num_servers: int = 1) -> float:
    """The arrival rate (req/s) at which the load reaches 1: num_servers / E[S]."""
    return num_servers / mean_service_s


def check_rate(rate_per_s: float) -> None:
    """Reject a negative or non-finite arrival rate."""
    require(
        math.isfinite(rate_per_s) and rate_per_s >= 0,
        "rate_per_s",
        rate_per_s,
        "a finite arrival rate >= 0 req/s",
    )


def check_stable(rate_per_s: float, mean_service_s: float) -> float:
    """Return the load R*E[S]; raise `UnstableQueueError` when it is >= 1."""
    check_rate(rate_per_s)
    load = rate_per_s * mean_service_s
    if load >= 1.0 or rate_per_s >= stable_rate_limit_per_s(mean_service_s):  # rounding
        raise UnstableQueueError(rate_per_s, load, stable_rate_limit_per_s(mean_service_s))
    return load


def mg1_mean_wait_s(rate_per_s: float, mean_s: float, second_moment_s2: float) -> float:
    """Pollaczek-Khinchine mean wait in queue: R*E[S^2] / (2*(1 - R*E[S])), in seconds."""
    moments = ServiceMoments(mean_s, second_moment_s2)
    load = check_stable(rate_per_s, moments.mean_s)
    return rate_per_s * moments.second_moment_s2 / (2.0 * (1.0 - load))


def mg1_mean_sojourn_s(rate_per_s: float, mean_s: float, second_moment_s2: float) -> float:
    """Mean time in system (wait + service) of M/G/1, in seconds; the TTFT of one device."""
    return mean_s + mg1_mean_wait_s(rate_per_s, mean_s, second_moment_s2)


def md1_mean_wait_s(rate_per_s: float, service_s: float) -> float:
    """M/D/1 mean wait in queue: R*D^2 / (2*(1 - R*D)), in seconds."""
    moments = deterministic(service_s)
    return mg1_mean_wait_s(rate_per_s, moments.mean_s, moments.second_moment_s2)


def md1_mean_ttft_s(rate_per_s: float, service_s: float) -> float:
    """M/D/1 mean TTFT on one device: D + R*D^2 / (2*(1 - R*D)), in seconds."""
    return service_s + md1_mean_wait_s(rate_per_s, service_s)


def md1_mean_ttft_or_none_s(rate_per_s: float, service_s: float) -> float | None:
    """`md1_mean_ttft_s`, or None where the queue is unstable (for tables)."""
    try:
        return md1_mean_ttft_s(rate_per_s, service_s)
    except UnstableQueueError:
        return None
