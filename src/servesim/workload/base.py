"""The contract between workloads and the simulator engine.

A workload is an open-loop stream of requests delivered as `RequestChunk`s (blocks of
consecutive requests in arrival order), so that a trace of millions of rows never has to be held
in memory at once. Length distributions draw (input, output) token pairs and know their means,
which the planner and the queueing formulas use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from servesim.errors import require


@dataclass(frozen=True, slots=True)
class RequestChunk:
    """A block of consecutive requests, in arrival order.

    `arrival_s` is float64, non-decreasing, in seconds from the trace start (the first request);
    `input_tokens` and `output_tokens` are int64 and > 0. `hash_ids` holds, per request, the
    Mooncake prefix-block hashes (512 tokens per block) when the source has them.
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


class Workload(Protocol):
    """An open-loop stream of requests."""

    @property
    def name(self) -> str:
        """A short label for reports."""
        ...

    def chunks(self, seed: int, chunk_size: int = 65536) -> Iterator[RequestChunk]:
        """Yield the requests in arrival order, at most `chunk_size` per chunk.

        The same seed gives identical arrays; the whole trace is never held in memory.
        """
        ...


class LengthDistribution(Protocol):
    """A distribution of (input tokens, output tokens) pairs."""

    @property
    def name(self) -> str:
        """A short label for reports."""
        ...

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw `n` pairs: (input_tokens, output_tokens), int64 arrays of length n, all >= 1."""
        ...

    @property
    def mean_input_tokens(self) -> float:
        """Expected input (prompt) tokens per request."""
        ...

    @property
    def mean_output_tokens(self) -> float:
        """Expected output (generated) tokens per request."""
        ...


def check_chunk_size(chunk_size: int) -> None:
    """Raise InputError unless `chunk_size` is a positive integer."""
    require(
        isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", chunk_size, "an integer >= 1"
    )
