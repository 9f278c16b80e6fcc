"""The three-way comparison (compare.py) and its inputs from the latency model (setup.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.queueing import (
    ServiceMoments,
    ThreeWay,
    deterministic,
    inter_op_even,
    intra_inter_crossover_per_s,
    intra_op,
    mean_ttft_s,
    rate_grid_per_s,
    slo_quantile_rates_per_s,
    slo_rates_per_s,
    three_way_from_moments,
    three_way_from_numbers,
    ttft_rows,
)
from servesim.queueing.setup import LatencySource, LengthMix, batch_grid, prefill_setup
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec


@given(st.floats(0.01, 5.0), st.floats(1.05, 1.95), st.floats(0.01, 0.99))
def test_two_way_rows_are_the_reference_forms(d: float, k: float, frac: float) -> None:
    three = three_way_from_numbers(d, k)
    r = frac / d  # stable for every option
    (row,) = ttft_rows(three, [r])
    assert row.ttft_s["single"] == pytest.approx(d + r * d * d / (2 * (1 - r * d)))
    assert row.ttft_s["inter"] == pytest.approx(d + r * d * d / (4 * (2 - r * d)))
    assert row.ttft_s["intra"] == pytest.approx(d / k + r * d * d / (2 * k * (k - r * d)))
    assert three.speedup == pytest.approx(k)


@given(st.floats(0.01, 5.0), st.floats(1.05, 1.95))
def test_crossover_is_where_rows_meet(d: float, k: float) -> None:
    three = three_way_from_numbers(d, k)
    cross = intra_inter_crossover_per_s(three)
    assert cross is not None
    (row,) = ttft_rows(three, [cross])
    assert row.ttft_s["intra"] == pytest.approx(row.ttft_s["inter"], rel=1e-7)
    below, above = ttft_rows(three, [0.5 * cross, min(1.5 * cross, 0.5 * (cross + 2 / d))])
    low_intra, low_inter = below.ttft_s["intra"], below.ttft_s["inter"]
    high_intra, high_inter = above.ttft_s["intra"], above.ttft_s["inter"]
    assert low_intra is not None and low_inter is not None and low_intra < low_inter
    assert high_inter is not None
    assert high_intra is None or high_intra > high_inter


def test_rows_are_none_exactly_where_unstable() -> None:
    three = three_way_from_numbers(1.0, 1.5)
    rows = ttft_rows(three, [0.0, 0.99, 1.0, 1.49, 1.5, 1.99, 2.0])
    assert [r.ttft_s["single"] is None for r in rows] == [False] * 2 + [True] * 5
    assert [r.ttft_s["intra"] is None for r in rows] == [False] * 4 + [True] * 3
    assert [r.ttft_s["inter"] is None for r in rows] == [False] * 6 + [True]
    assert rows[0].ttft_s == {"single": 1.0, "inter": 1.0, "intra": pytest.approx(1 / 1.5)}
    with pytest.raises(InputError, match="rates"):
        ttft_rows(three, [-1.0])


def test_rate_grid() -> None:
    three = three_way_from_numbers(0.3, 1.6, ways=4)
    grid = rate_grid_per_s(three, 8)
    assert len(grid) == 8 and grid[-1] == pytest.approx(4 / 0.3, rel=5e-3)
    assert np.allclose(np.diff(grid), 4 / 0.3 / 8, atol=0.1)


def test_uneven_pipeline_and_bad_numbers() -> None:
    three = three_way_from_numbers(1.0, 1.5, ways=2, stage_s=0.6, pipeline_latency_s=1.1)
    assert three.inter.latency_mean_s == 1.1 and three.inter.service.mean_s == 0.6
    bad: list[dict[str, Any]] = [
        {"service_s": 0.0, "speedup": 1.5},
        {"service_s": 1.0, "speedup": -1.0},
        {"service_s": 1.0, "speedup": 1.5, "ways": 1},
        {"service_s": 1.0, "speedup": 1.5, "stage_s": 2.0},
    ]
    for kwargs in bad:
        with pytest.raises(InputError):
            three_way_from_numbers(**kwargs)


def test_slo_rates() -> None:
    three = three_way_from_numbers(0.5, 1.7)
    rates = slo_rates_per_s(three, 1.5)
    for name, option in three.options.items():
        assert mean_ttft_s(option, rates[name]) == pytest.approx(1.5)
    p90 = slo_quantile_rates_per_s(three, 1.5)
    assert p90 is not None and all(p90[k] < rates[k] for k in rates)
    fixed = three_way_from_moments(
        deterministic(0.5), deterministic(0.5), deterministic(0.25), deterministic(0.3), 2
    )
    assert fixed.is_deterministic and fixed.speedup == pytest.approx(0.5 / 0.3)
    spread = ServiceMoments(0.5, 0.5)  # scv 1
    mg1 = ThreeWay(intra_op(spread, 1.0), inter_op_even(spread, 2), intra_op(spread, 1.5), 2)
    assert not mg1.is_deterministic
    assert slo_quantile_rates_per_s(mg1, 1.5) is None


@pytest.fixture(scope="module")
def source() -> LatencySource:
    return LatencySource(get_model("opt-13b"), make_cluster("a100-80gb"))


def test_fixed_mix_is_md1_with_model_times(source: LatencySource) -> None:
    setup = prefill_setup(source, LengthMix.fixed(1024), 2)
    three = setup.three
    assert three.is_deterministic
    tp2 = source.latency_model(ParallelSpec(2, 1))
    assert three.intra.service.mean_s == pytest.approx(tp2.prefill_s(1, 1024, 1024**2))
    assert setup.parallel["inter"] == ParallelSpec(1, 2)
    assert setup.fit_notes == {"single": None, "inter": None, "intra": None}  # 13B fits one GPU


def test_sampled_mix_gives_mg1_moments(source: LatencySource) -> None:
    lengths = np.array([100, 100, 900, 2000])
    mix = LengthMix.from_samples(lengths)
    assert mix.lengths_tokens == (100, 900, 2000) and mix.weights == (2.0, 1.0, 1.0)
    assert mix.mean_tokens == pytest.approx(lengths.mean()) and mix.max_tokens == 2000
    three = prefill_setup(source, mix, 4).three
    one = source.latency_model(ParallelSpec())
    times = np.array([one.prefill_s(1, int(n), int(n) ** 2) for n in lengths])
    assert three.single.service.mean_s == pytest.approx(times.mean())
    assert three.single.service.second_moment_s2 == pytest.approx(np.mean(times**2))
    assert not three.is_deterministic and three.ways == 4


def test_structural_rules_raise_but_memory_is_reported() -> None:
    big = LatencySource(get_model("opt-66b"), make_cluster("a100-80gb"))
    with pytest.raises(InputError, match="attention heads"):
        prefill_setup(big, LengthMix.fixed(512), 5)
    notes = prefill_setup(big, LengthMix.fixed(512), 2).fit_notes
    assert notes["single"] is not None and "GiB" in notes["single"]
    assert notes["intra"] is None and notes["inter"] is None


def test_batch_grid() -> None:
    assert batch_grid(1) == [1]
    assert batch_grid(16) == [1, 2, 4, 8, 16]
    assert batch_grid(20) == [1, 2, 4, 8, 16, 20]


def test_two_way_inter_even_equals_numbers() -> None:
    three = three_way_from_numbers(0.8, 1.4, ways=2)
    assert three.inter.service == inter_op_even(0.8, 2).service
