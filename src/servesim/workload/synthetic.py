"""Synthetic workloads: an arrival process plus a length distribution.

`OpenLoopWorkload` streams requests whose arrival times are the cumulative sum of the gaps.
`ClosedLoopWorkload` is only a specification: the engine keeps `concurrency` clients busy, each
sending its next request when its previous one finishes (after a think time).

Randomness: `np.random.SeedSequence(seed).spawn(3)` gives one child stream for the gaps, one for
the lengths and one for think times. Changing the rate (or going closed-loop) with the same seed
keeps the same lengths ("common random numbers"). Draws are made in fixed blocks of
`BLOCK_SIZE` requests, so the output does not depend on `chunk_size`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from servesim.errors import require
from servesim.workload.arrivals import ArrivalProcess
from servesim.workload.base import LengthDistribution, RequestChunk, check_chunk_size

BLOCK_SIZE = 8192
_GAPS, _LENGTHS, _THINK = 0, 1, 2


def child_rng(seed: int, stream: int) -> np.random.Generator:
    """The Generator of child stream `stream` (0 gaps, 1 lengths, 2 think times) of `seed`."""
    require(isinstance(seed, numbers.Integral) and seed >= 0, "seed", seed, "an integer >= 0")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed)).spawn(3)[stream]))


def _check_count(name: str, value: object) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
    require(ok, name, value, "an integer >= 1")


def _block_sizes(num: int) -> Iterator[int]:
    for start in range(0, num, BLOCK_SIZE):
        yield min(BLOCK_SIZE, num - start)


def rechunk(
    blocks: Iterator[tuple[np.ndarray, ...]], chunk_size: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """Regroup a stream of array tuples (equal lengths) into tuples of `chunk_size` rows."""
    pending: list[tuple[np.ndarray, ...]] = []
    num_pending = 0
    for block in blocks:
        pending.append(block)
        num_pending += block[0].size
        while num_pending >= chunk_size:
            joined = tuple(np.concatenate(parts) for parts in zip(*pending, strict=True))
            yield tuple(a[:chunk_size] for a in joined)
            pending = [tuple(a[chunk_size:] for a in joined)]
            num_pending -= chunk_size
    if num_pending:
        yield tuple(np.concatenate(parts) for parts in zip(*pending, strict=True))


def length_blocks(
    lengths: LengthDistribution, seed: int, num: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(input, output) arrays in fixed blocks, from the lengths child stream of `seed`."""
    rng = child_rng(seed, _LENGTHS)
    for size in _block_sizes(num):
        yield lengths.sample(rng, size)


@dataclass(frozen=True, slots=True)
class OpenLoopWorkload:
    """`num_requests` requests with gaps from `arrivals` and lengths from `lengths`."""

    arrivals: ArrivalProcess
    lengths: LengthDistribution
    num_requests: int
    name: str = ""

    def __post_init__(self) -> None:
        _check_count("num_requests", self.num_requests)
        object.__setattr__(self, "name", self.name or f"{self.lengths.name}@{self.arrivals.name}")

    def _blocks(self, seed: int) -> Iterator[tuple[np.ndarray, ...]]:
        gap_rng = child_rng(seed, _GAPS)
        now_s = 0.0
        for inp, out in length_blocks(self.lengths, seed, self.num_requests):
            gaps = self.arrivals.gaps(gap_rng, inp.size)
            # Summing from the running time, in order, keeps the result independent of blocking.
            arrival_s = np.cumsum(np.concatenate(([now_s], gaps)))[1:]
            now_s = float(arrival_s[-1])
            yield arrival_s, inp, out

    def chunks(self, seed: int, chunk_size: int = 65536) -> Iterator[RequestChunk]:
        check_chunk_size(chunk_size)
        for arrival_s, inp, out in rechunk(self._blocks(seed), chunk_size):
            yield RequestChunk(arrival_s, inp, out)


class ThinkTime(Protocol):
    """Time a closed-loop client waits between a response and its next request."""

    @property
    def mean_s(self) -> float: ...

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` think times, float64 seconds >= 0."""
        ...


@dataclass(frozen=True, slots=True)
class FixedThinkTime:
    """The same think time every time (0 = send the next request at once)."""

    think_time_s: float = 0.0

    def __post_init__(self) -> None:
        ok = isinstance(self.think_time_s, numbers.Real) and 0 <= self.think_time_s < float("inf")
        require(ok, "think_time_s", self.think_time_s, "a finite number >= 0")

    @property
    def mean_s(self) -> float:
        return float(self.think_time_s)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.think_time_s))


@dataclass(frozen=True, slots=True)
class ExponentialThinkTime:
    """Exponentially distributed think times with mean `mean_think_time_s`."""

    mean_think_time_s: float

    def __post_init__(self) -> None:
        ok = isinstance(
            self.mean_think_time_s, numbers.Real
        ) and 0 < self.mean_think_time_s < float("inf")
        require(ok, "mean_think_time_s", self.mean_think_time_s, "a finite number > 0")

    @property
    def mean_s(self) -> float:
        return float(self.mean_think_time_s)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_exponential(n) * self.mean_think_time_s


@dataclass(frozen=True, slots=True)
class ClosedLoopWorkload:
    """`concurrency` clients, each sending its next request when the previous one finishes.

    A specification only: the engine drives it. Requests take their lengths, in order, from
    `lengths_stream(seed)` (the same lengths an open-loop workload with that seed gets), and
    the think times, in order of use, from `think_time_stream(seed)`. `think_time_s` is a fixed
    number of seconds or a `ThinkTime` sampler (e.g. `ExponentialThinkTime(2.0)`).
    """

    concurrency: int
    lengths: LengthDistribution
    num_requests: int
    think_time_s: float | ThinkTime = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        _check_count("concurrency", self.concurrency)
        _check_count("num_requests", self.num_requests)
        if isinstance(self.think_time_s, numbers.Real):
            FixedThinkTime(float(self.think_time_s))  # validates
        object.__setattr__(
            self, "name", self.name or f"{self.lengths.name}@closed{self.concurrency}"
        )

    @property
    def think_time(self) -> ThinkTime:
        """The think-time sampler."""
        if isinstance(self.think_time_s, numbers.Real):
            return FixedThinkTime(float(self.think_time_s))
        return self.think_time_s  # type: ignore[return-value]

    def lengths_stream(
        self, seed: int, chunk_size: int = 65536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(input_tokens, output_tokens) int64 arrays for requests in the order they are sent."""
        check_chunk_size(chunk_size)
        blocks = length_blocks(self.lengths, seed, self.num_requests)
        yield from ((inp, out) for inp, out in rechunk(blocks, chunk_size))

    def think_time_stream(self, seed: int, chunk_size: int = 65536) -> Iterator[np.ndarray]:
        """Think times (seconds) in the order the engine uses them, `num_requests` in all."""
        check_chunk_size(chunk_size)
        rng = child_rng(seed, _THINK)
        sampler = self.think_time
        blocks = ((sampler.sample(rng, size),) for size in _block_sizes(self.num_requests))
        for (times,) in rechunk(blocks, chunk_size):
            yield times
