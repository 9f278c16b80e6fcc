"""Arrival processes: moments, exact rates, common random numbers, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.workload import ARRIVALS, Deterministic, Gamma, Poisson

N = 400_000


@pytest.mark.parametrize(
    "proc", [Poisson(4.0), Gamma(4.0, 1.0), Gamma(4.0, 3.0), Gamma(4.0, 0.5), Deterministic(4.0)]
)
def test_gap_mean_and_variance_match_the_process(proc) -> None:  # type: ignore[no-untyped-def]
    gaps = proc.gaps(np.random.default_rng(7), N)
    assert gaps.dtype == np.float64 and gaps.shape == (N,)
    assert np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(proc.mean_gap_s, rel=0.01)
    assert gaps.var() == pytest.approx(proc.var_gap_s2, rel=0.05, abs=1e-12)


def test_gamma_cv_is_the_asked_burstiness() -> None:
    gaps = Gamma(2.0, 4.0).gaps(np.random.default_rng(3), N)
    assert gaps.std() / gaps.mean() == pytest.approx(4.0, rel=0.05)


def test_poisson_counts_in_windows_are_poisson() -> None:
    arrivals = np.cumsum(Poisson(10.0).gaps(np.random.default_rng(1), N))
    counts = np.bincount(arrivals.astype(np.int64))[:-1]
    assert counts.mean() == pytest.approx(10.0, rel=0.01)
    assert counts.var() == pytest.approx(10.0, rel=0.05)


def test_deterministic_gaps_are_exact() -> None:
    assert np.all(Deterministic(8.0).gaps(np.random.default_rng(0), 5) == 0.125)


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.01, 1000.0), factor=st.floats(0.1, 10.0), seed=st.integers(0, 2**32))
def test_same_seed_different_rate_stretches_the_same_pattern(rate, factor, seed) -> None:  # type: ignore[no-untyped-def]
    for kind in (Poisson(rate), Gamma(rate, 2.0)):
        faster = type(kind)(
            **{
                **{f: getattr(kind, f) for f in kind.__dataclass_fields__},
                "rate_per_s": rate * factor,
            }
        )
        a = kind.gaps(np.random.default_rng(seed), 50)
        b = faster.gaps(np.random.default_rng(seed), 50)
        np.testing.assert_allclose(a, b * factor, rtol=1e-9)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Poisson(0.0), "rate_per_s"),
        (lambda: Poisson(-1.0), "rate_per_s"),
        (lambda: Poisson(float("nan")), "rate_per_s"),
        (lambda: Gamma(1.0, 0.0), "cv"),
        (lambda: Gamma(-2.0, 1.0), "rate_per_s"),
        (lambda: Deterministic(float("inf")), "rate_per_s"),
    ],
)
def test_bad_parameters_name_the_field(make, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        make()
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}=")


def test_registry_names() -> None:
    assert set(ARRIVALS) == {"poisson", "gamma", "deterministic"}
    assert ARRIVALS["gamma"] is Gamma
    assert Gamma(2.0, cv=2.0).var_gap_s2 == pytest.approx(1.0)
