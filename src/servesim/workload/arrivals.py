"""Arrival processes: the gaps between consecutive request arrivals.

Each process draws gaps from an explicit Generator and knows the mean and variance of a gap, so
simulations can be checked against queueing formulas. Gaps are never clamped: the realised rate
converges to the asked rate. Gaps are drawn as a unit-rate variate divided by the rate, so two
runs with the same seed and different rates see the same arrival pattern, only stretched
(common random numbers).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from servesim.errors import require


class ArrivalProcess(Protocol):
    """A renewal process of request arrivals."""

    @property
    def name(self) -> str: ...

    @property
    def rate_per_s(self) -> float:
        """Mean arrival rate, requests per second."""
        ...

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw `n` inter-arrival gaps, float64 seconds, all >= 0."""
        ...

    @property
    def mean_gap_s(self) -> float:
        """Expected gap between arrivals, seconds (= 1 / rate_per_s)."""
        ...

    @property
    def var_gap_s2(self) -> float:
        """Variance of the gap, seconds squared."""
        ...


def _check_positive(field: str, value: float) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value > 0
    require(ok, field, value, "a finite number > 0")


@dataclass(frozen=True, slots=True)
class Poisson:
    """Poisson arrivals: exponential gaps with mean 1 / rate_per_s (coefficient of variation 1)."""

    rate_per_s: float
    name: str = "poisson"

    def __post_init__(self) -> None:
        _check_positive("rate_per_s", self.rate_per_s)

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_exponential(n) / self.rate_per_s

    @property
    def mean_gap_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def var_gap_s2(self) -> float:
        return 1.0 / self.rate_per_s**2


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma-distributed gaps with mean 1 / rate_per_s and coefficient of variation `cv`.

    cv = 1 is Poisson; cv > 1 is burstier than Poisson, cv < 1 more regular.
    """

    rate_per_s: float
    cv: float
    name: str = "gamma"

    def __post_init__(self) -> None:
        _check_positive("rate_per_s", self.rate_per_s)
        _check_positive("cv", self.cv)

    @property
    def shape(self) -> float:
        """Gamma shape k = 1 / cv^2."""
        return 1.0 / self.cv**2

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = self.shape
        return rng.standard_gamma(k, n) / (k * self.rate_per_s)

    @property
    def mean_gap_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def var_gap_s2(self) -> float:
        return self.cv**2 / self.rate_per_s**2


@dataclass(frozen=True, slots=True)
class Deterministic:
    """Evenly spaced arrivals, one every 1 / rate_per_s seconds (variance 0)."""

    rate_per_s: float
    name: str = "deterministic"

    def __post_init__(self) -> None:
        _check_positive("rate_per_s", self.rate_per_s)

    def gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, 1.0 / self.rate_per_s)

    @property
    def mean_gap_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def var_gap_s2(self) -> float:
        return 0.0


ARRIVALS: dict[str, type[Poisson] | type[Gamma] | type[Deterministic]] = {
    "poisson": Poisson,
    "gamma": Gamma,
    "deterministic": Deterministic,
}
