"""JointHistogram: exact sampling probabilities, exact means, the total-length filter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.workload import JointHistogram


def _exact_pmf(h: JointHistogram) -> dict[tuple[int, int], float]:
    """Enumerate every pair: cell weight spread uniformly over the cell's allowed pairs."""
    pmf: dict[tuple[int, int], float] = {}
    for i, j, count in h.cells:
        ins = range(h.input_edges[i], h.input_edges[i + 1])
        outs = range(h.output_edges[j], h.output_edges[j + 1])
        per_pair = count / (len(ins) * len(outs))  # before the filter, as in the source binning
        for a, b in itertools.product(ins, outs):
            if h.max_total_tokens is None or a + b <= h.max_total_tokens:
                pmf[(a, b)] = pmf.get((a, b), 0.0) + per_pair
    total = sum(pmf.values())
    return {k: v / total for k, v in pmf.items()}


def _small(max_total: int | None) -> JointHistogram:
    cells = [[0, 0, 5], [1, 2, 3], [2, 1, 4], [3, 2, 9], [3, 0, 2]]
    return JointHistogram(
        "t", np.array([1, 2, 4, 9, 20]), np.array([1, 3, 7, 16]), np.array(cells), max_total
    )


@pytest.mark.parametrize("max_total", [None, 20, 12])
def test_means_are_exact(max_total) -> None:  # type: ignore[no-untyped-def]
    h = _small(max_total)
    pmf = _exact_pmf(h)
    assert h.mean_input_tokens == pytest.approx(sum(p * a for (a, _), p in pmf.items()), rel=1e-12)
    assert h.mean_output_tokens == pytest.approx(sum(p * b for (_, b), p in pmf.items()), rel=1e-12)


@pytest.mark.parametrize("max_total", [None, 12])
def test_sample_frequencies_match_the_exact_pmf(max_total) -> None:  # type: ignore[no-untyped-def]
    h = _small(max_total)
    pmf = _exact_pmf(h)
    n = 400_000
    inp, out = h.sample(np.random.default_rng(11), n)
    assert inp.dtype == np.int64 and inp.min() >= 1 and out.min() >= 1
    pairs, counts = np.unique(np.stack([inp, out], axis=1), axis=0, return_counts=True)
    seen_pairs = {(int(a), int(b)): int(c) for (a, b), c in zip(pairs, counts, strict=True)}
    assert set(seen_pairs) <= set(pmf)
    for pair, p in pmf.items():
        expected = p * n
        assert abs(seen_pairs.get(pair, 0) - expected) < 5 * np.sqrt(expected) + 1


@settings(max_examples=30, deadline=None)
@given(cap=st.integers(2, 40), seed=st.integers(0, 10_000))
def test_the_total_filter_always_holds(cap, seed) -> None:  # type: ignore[no-untyped-def]
    cells = np.array([[0, 0, 5], [1, 2, 3], [3, 2, 9]])
    h = JointHistogram("t", np.array([1, 2, 4, 9, 20]), np.array([1, 3, 7, 16]), cells, cap)
    inp, out = h.sample(np.random.default_rng(seed), 500)
    assert (inp + out).max() <= cap


def test_quantiles_interpolate_the_marginals() -> None:
    h = JointHistogram(
        "t", np.array([1, 11, 21]), np.array([1, 2]), np.array([[0, 0, 1], [1, 0, 1]])
    )
    assert h.quantile(0.5) == (11.0, pytest.approx(1.5))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_edges": [0, 2]}, "input_edges"),
        ({"output_edges": [3, 2]}, "output_edges"),
        ({"cells": [[5, 0, 1]]}, "cells"),
        ({"cells": [[0, 0, -1]]}, "cells"),
    ],
)
def test_bad_histograms_name_the_field(kwargs, field) -> None:  # type: ignore[no-untyped-def]
    base = {"name": "t", "input_edges": [1, 2], "output_edges": [1, 2], "cells": [[0, 0, 1]]}
    with pytest.raises(InputError) as err:
        JointHistogram(**{**base, **kwargs})
    assert err.value.field == field
