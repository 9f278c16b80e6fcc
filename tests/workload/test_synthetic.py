"""Open- and closed-loop synthetic workloads: streaming, determinism, common random numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.workload import (
    ClosedLoopWorkload,
    Deterministic,
    ExponentialThinkTime,
    Fixed,
    Gamma,
    LogNormal,
    OpenLoopWorkload,
    Poisson,
    Workload,
    get_lengths,
)


def _collect(w: Workload, seed: int, chunk_size: int) -> tuple[np.ndarray, ...]:
    chunks = list(w.chunks(seed, chunk_size))
    assert all(0 < len(c) <= chunk_size for c in chunks)
    return tuple(
        np.concatenate([getattr(c, f) for c in chunks])
        for f in ("arrival_s", "input_tokens", "output_tokens")
    )


def test_open_loop_stream_shape_and_rate() -> None:
    w = OpenLoopWorkload(Poisson(20.0), get_lengths("sharegpt"), 50_000)
    arrival, inp, out = _collect(w, 1, 4096)
    assert arrival.dtype == np.float64 and inp.dtype == np.int64 and out.dtype == np.int64
    assert arrival.size == 50_000 and np.all(np.diff(arrival) >= 0) and arrival[0] > 0
    assert (arrival.size - 1) / (arrival[-1] - arrival[0]) == pytest.approx(20.0, rel=0.02)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 20_000), chunk=st.integers(1, 30_000), seed=st.integers(0, 2**31))
def test_output_does_not_depend_on_chunk_size(n, chunk, seed) -> None:  # type: ignore[no-untyped-def]
    w = OpenLoopWorkload(Gamma(3.0, 2.0), LogNormal(100, 1.0, 50, 1.0, max_total_tokens=300), n)
    a = _collect(w, seed, chunk)
    b = _collect(w, seed, 65536)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


def test_same_seed_same_arrays_other_seed_other_arrays() -> None:
    w = OpenLoopWorkload(Poisson(5.0), get_lengths("azure-conv"), 1000)
    a, b, c = _collect(w, 3, 100), _collect(w, 3, 100), _collect(w, 4, 100)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_common_random_numbers_across_rates() -> None:
    lengths = get_lengths("sharegpt")
    slow = _collect(OpenLoopWorkload(Poisson(1.0), lengths, 5000), 9, 1000)
    fast = _collect(OpenLoopWorkload(Poisson(4.0), lengths, 5000), 9, 1000)
    assert np.array_equal(slow[1], fast[1]) and np.array_equal(slow[2], fast[2])
    np.testing.assert_allclose(slow[0], fast[0] * 4.0, rtol=1e-12)


def test_deterministic_arrivals_are_evenly_spaced() -> None:
    arrival, _, _ = _collect(OpenLoopWorkload(Deterministic(4.0), Fixed(8, 8), 10), 0, 3)
    np.testing.assert_allclose(arrival, 0.25 * np.arange(1, 11))


def test_closed_loop_shares_lengths_with_open_loop() -> None:
    lengths = get_lengths("humaneval")
    closed = ClosedLoopWorkload(8, lengths, 3000, think_time_s=ExponentialThinkTime(2.0))
    inp = np.concatenate([i for i, _ in closed.lengths_stream(5, 512)])
    _, open_inp, _ = _collect(OpenLoopWorkload(Poisson(1.0), lengths, 3000), 5, 700)
    assert np.array_equal(inp, open_inp)
    think = np.concatenate(list(closed.think_time_stream(5, 1000)))
    assert think.size == 3000 and think.min() >= 0
    assert think.mean() == pytest.approx(2.0, rel=0.1)
    assert closed.think_time.mean_s == 2.0


def test_closed_loop_fixed_think_time() -> None:
    closed = ClosedLoopWorkload(2, Fixed(4, 4), 10, think_time_s=0.5)
    assert closed.think_time.mean_s == 0.5
    assert np.all(np.concatenate(list(closed.think_time_stream(0))) == 0.5)
    assert closed.name == "fixed@closed2"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: OpenLoopWorkload(Poisson(1.0), Fixed(1, 1), 0), "num_requests"),
        (lambda: ClosedLoopWorkload(0, Fixed(1, 1), 10), "concurrency"),
        (lambda: ClosedLoopWorkload(1, Fixed(1, 1), 10, think_time_s=-1.0), "think_time_s"),
        (lambda: ExponentialThinkTime(0.0), "mean_think_time_s"),
        (lambda: next(OpenLoopWorkload(Poisson(1.0), Fixed(1, 1), 5).chunks(0, 0)), "chunk_size"),
        (lambda: next(OpenLoopWorkload(Poisson(1.0), Fixed(1, 1), 5).chunks(-1)), "seed"),
    ],
)
def test_bad_parameters_name_the_field(make, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        make()
    assert err.value.field == field
