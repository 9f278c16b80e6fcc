"""Decoding side: per-token latency and throughput against batch size, and the TPOT SLO limit.

Works with any latency model that has `decode_s(num_seqs, sum_ctx_tokens) -> float`: the
seconds one decode iteration of `num_seqs` sequences takes through one instance (all its
pipeline stages), when their contexts add up to `sum_ctx_tokens`. A model stands for one
parallel degree (its TP and PP); the caller passes one model per degree.

With `num_stages` pipeline stages running equal, full micro-batches of `batch_size`
sequences, every sequence gets one token per iteration latency (TPOT = decode_s) while
`num_stages` micro-batches are in flight, so throughput = num_stages * batch_size / TPOT.
Intra-op (TP) lowers decode_s itself; inter-op (PP) multiplies the sequences in flight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from servesim.errors import require


class DecodeLatencyModel(Protocol):
    """The part of a latency model the decode analysis needs."""

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        """Seconds per decode iteration of `num_seqs` sequences with this total context."""
        ...


@dataclass(frozen=True)
class DecodePoint:
    """One batch size: per-token latency (s) and throughput (tokens/s) of one instance."""

    batch_size: int
    num_stages: int
    tpot_s: float
    throughput_tokens_per_s: float

    @property
    def num_seqs_in_flight(self) -> int:
        """Sequences decoding at once: one micro-batch per pipeline stage."""
        return self.batch_size * self.num_stages


def _check_ctx(ctx_tokens_per_seq: int) -> None:
    require(ctx_tokens_per_seq >= 1, "ctx_tokens_per_seq", ctx_tokens_per_seq,
            "an integer >= 1 (prompt plus generated tokens so far)")


def tpot_s(model: DecodeLatencyModel, batch_size: int, ctx_tokens_per_seq: int) -> float:
    """Per-token latency (s) of a micro-batch of `batch_size` sequences of equal context."""
    require(batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
    _check_ctx(ctx_tokens_per_seq)
    seconds = float(model.decode_s(batch_size, batch_size * ctx_tokens_per_seq))
    require(math.isfinite(seconds) and seconds > 0, "decode_s", seconds,
            "a latency model returning a finite time > 0 s")
    return seconds


def decode_point(
    model: DecodeLatencyModel, batch_size: int, ctx_tokens_per_seq: int, num_stages: int = 1
) -> DecodePoint:
    """Per-token latency and throughput at one batch size."""
    require(num_stages >= 1, "num_stages", num_stages, "an integer >= 1")
    latency_s = tpot_s(model, batch_size, ctx_tokens_per_seq)
    return DecodePoint(batch_size, num_stages, latency_s, num_stages * batch_size / latency_s)


def decode_curve(
    model: DecodeLatencyModel,
    batch_sizes: Iterable[int],
    ctx_tokens_per_seq: int,
    num_stages: int = 1,
) -> list[DecodePoint]:
    """`decode_point` at each batch size, in the order given."""
    return [decode_point(model, b, ctx_tokens_per_seq, num_stages) for b in batch_sizes]


def max_batch_for_tpot_slo(
    model: DecodeLatencyModel, tpot_slo_s: float, ctx_tokens_per_seq: int, max_batch_size: int
) -> int | None:
    """Largest batch size in [1, max_batch_size] whose TPOT is <= `tpot_slo_s`.

    Binary search, assuming decode_s does not decrease with the batch size (more sequences
    never make an iteration faster). `max_batch_size` is the caller's cap, e.g. what fits in
    KV memory. None when even one sequence misses the SLO.
    """
    require(math.isfinite(tpot_slo_s) and tpot_slo_s > 0, "tpot_slo_s", tpot_slo_s,
            "a finite SLO > 0 s")
    require(max_batch_size >= 1, "max_batch_size", max_batch_size, "an integer >= 1")
    if tpot_s(model, 1, ctx_tokens_per_seq) > tpot_slo_s:
        return None
    lo, hi = 1, max_batch_size  # invariant: lo meets the SLO; the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tpot_s(model, mid, ctx_tokens_per_seq) <= tpot_slo_s:
            lo = mid
        else:
            hi = mid - 1
    return lo
