"""Tests of the progressive-filling max-min allocation against hand-computed examples."""

from __future__ import annotations

import math

import pytest

from servesim.network.maxmin import NO_LINK, max_min_rates


def test_single_flow_gets_its_narrowest_link() -> None:
    rates, bottlenecks = max_min_rates([(0, 1)], [5.0, 3.0])
    assert rates == [3.0]
    assert bottlenecks == [1]


@pytest.mark.parametrize("num_flows", [1, 2, 3, 7])
def test_equal_flows_split_a_link_evenly(num_flows: int) -> None:
    rates, _ = max_min_rates([(0,)] * num_flows, [12.0])
    assert rates == pytest.approx([12.0 / num_flows] * num_flows)


def test_three_links_four_flows_by_hand() -> None:
    # Links L0=1, L1=2, L2=3. f0 crosses all three; f1 only L0; f2 only L1; f3 L1 and L2.
    # Fill: fair shares L0 1/2, L1 2/3, L2 3/2 -> L0 saturates first, f0 = f1 = 1/2.
    # Left: L1 2-1/2 = 3/2 for f2, f3 -> 3/4 each; L2 3-1/2 = 5/2 for f3 alone -> L1 binds.
    paths = [(0, 1, 2), (0,), (1,), (1, 2)]
    rates, bottlenecks = max_min_rates(paths, [1.0, 2.0, 3.0])
    assert rates == pytest.approx([0.5, 0.5, 0.75, 0.75])
    assert bottlenecks == [0, 0, 1, 1]


def test_classic_parking_lot() -> None:
    # Parking lot: a long flow over links 0..2 and one short flow per link, all capacity 1:
    # every link has two flows, so everyone gets 1/2 and link 2 keeps 0 spare.
    paths = [(0, 1, 2), (0,), (1,), (2,)]
    rates, _ = max_min_rates(paths, [1.0, 1.0, 1.0])
    assert rates == pytest.approx([0.5] * 4)


def test_unused_capacity_goes_to_unconstrained_flow() -> None:
    # L0 = 1 shared by f0, f1; f1 also crosses L1 = 0.25, so f0 takes the rest of L0.
    rates, bottlenecks = max_min_rates([(0,), (0, 1)], [1.0, 0.25])
    assert rates == pytest.approx([0.75, 0.25])
    assert bottlenecks == [0, 1]


def test_empty_path_is_unlimited() -> None:
    rates, bottlenecks = max_min_rates([(), (0,)], [2.0])
    assert math.isinf(rates[0]) and rates[1] == 2.0
    assert bottlenecks == [NO_LINK, 0]


def test_a_weighted_flow_takes_that_many_shares() -> None:
    # L0 = 6 shared by f0 (weight 2) and f1: f0 gets 4, f1 gets 2, as three equal flows would.
    rates, bottlenecks = max_min_rates([(0,), (0, 1)], [6.0, 10.0], [2, 1])
    assert rates == pytest.approx([4.0, 2.0])
    assert bottlenecks == [0, 0]


def test_flows_on_one_path_take_the_tightest_link_lowest_index_on_ties() -> None:
    rates, bottlenecks = max_min_rates([(2, 0, 1)] * 2, [4.0, 6.0, 4.0], [1, 3])
    assert rates == pytest.approx([1.0, 3.0])
    assert bottlenecks == [0, 0]
