"""Bisection: finds the threshold of monotone attainment curves to the relative tolerance."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.search import BisectionSpec, RatePoint, find_goodput


def _step_curve(threshold: float, calls: list[float] | None = None):
    def evaluate(rate: float) -> RatePoint:
        if calls is not None:
            calls.append(rate)
        att = 0.95 if rate <= threshold else 0.5
        return RatePoint(rate, att, 1.0, att, 0.1, 0.01)

    return evaluate


@settings(max_examples=60, deadline=None)
@given(
    threshold=st.floats(0.01, 1000.0),
    bound_factor=st.floats(1.0, 20.0),
    tol=st.sampled_from([0.01, 0.02, 0.05]),
)
def test_bisection_brackets_threshold_within_tolerance(
    threshold: float, bound_factor: float, tol: float
) -> None:
    spec = BisectionSpec(target=0.9, rel_tol=tol, max_halvings=12)
    result = find_goodput(_step_curve(threshold), threshold * bound_factor, spec)
    assert result.goodput_per_s <= threshold
    assert result.goodput_per_s >= threshold / (1 + tol) * (1 - 1e-12)


def test_bisection_on_smooth_curve_and_few_simulations() -> None:
    # attainment falls linearly from 1 at rate 5 to 0 at rate 15: crosses 0.9 at rate 6
    def evaluate(rate: float) -> RatePoint:
        att = min(1.0, max(0.0, 1 - (rate - 5) / 10))
        return RatePoint(rate, att, att, att, 0.0, 0.0)

    result = find_goodput(evaluate, 12.0, BisectionSpec(rel_tol=0.02))
    assert 6 / 1.02 <= result.goodput_per_s <= 6.0
    assert result.num_simulations <= 10
    assert [p.rate_per_s for p in result.points] == sorted(p.rate_per_s for p in result.points)
    miss = result.first_miss()
    assert miss is not None and miss.attainment_joint < 0.9


def test_metric_selects_the_attainment() -> None:
    def evaluate(rate: float) -> RatePoint:
        return RatePoint(rate, 1.0 if rate < 2 else 0.0, 1.0 if rate < 8 else 0.0, 0.0, 0.0, 0.0)

    spec = BisectionSpec(rel_tol=0.01)
    assert find_goodput(evaluate, 10, spec, "ttft").goodput_per_s == pytest.approx(2, rel=0.011)
    assert find_goodput(evaluate, 10, spec, "tpot").goodput_per_s == pytest.approx(8, rel=0.011)
    assert find_goodput(evaluate, 10, spec, "joint").goodput_per_s == 0.0


def test_bound_too_low_widens_upwards() -> None:
    result = find_goodput(_step_curve(30.0), 10.0, BisectionSpec(rel_tol=0.02))
    assert 30 / 1.02 <= result.goodput_per_s <= 30


def test_unreachable_target_gives_zero() -> None:
    result = find_goodput(_step_curve(1e-9), 10.0, BisectionSpec(max_halvings=4))
    assert result.goodput_per_s == 0.0 and result.num_simulations == 5


def test_bad_arguments_raise_input_error() -> None:
    with pytest.raises(InputError):
        BisectionSpec(target=1.5)
    with pytest.raises(InputError):
        find_goodput(_step_curve(1.0), math.inf, BisectionSpec())
    with pytest.raises(InputError):
        find_goodput(_step_curve(1.0), 1.0, BisectionSpec(), metric="e2e")
