"""Decoding side: per-token latency and throughput against batch size, and the TPOT SLO limit.

Works with any latency model that has `decode_s(num_seqs, sum_ctx_tokens) -> float`: the
seconds one decode iteration of an instance takes, in which each of its `num_seqs` running
sequences (contexts adding up to `sum_ctx_tokens`) generates one token. A model stands for
one parallel degree (its TP and PP) and handles any pipeline micro-batching itself, as
servesim.latency does; the caller passes one model per degree.

So TPOT = decode_s(B, B*ctx) and throughput = B / TPOT tokens/s for B running sequences.
Intra-op (TP) lowers decode_s; inter-op (PP) keeps several micro-batches in flight, which
lets B grow at nearly the same TPOT.
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
    """One batch size (running sequences): per-token latency (s) and throughput (tokens/s)."""

    batch_size: int
    tpot_s: float
    throughput_tokens_per_s: float


def _check_ctx(ctx_tokens_per_seq: int) -> None:
    require(
        ctx_tokens_per_seq >= 1,
        "ctx_tokens_per_seq",
        ctx_tokens_per_seq,
        "an integer >= 1 (prompt plus generated tokens so far)",
    )


def tpot_s(model: DecodeLatencyModel, batch_size: int, ctx_tokens_per_seq: int) -> float:
    """Per-token latency (s) of `batch_size` running sequences of equal context."""
    require(batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
    _check_ctx(ctx_tokens_per_seq)
    seconds = float(model.decode_s(batch_size, batch_size * ctx_tokens_per_seq))
    require(
        math.isfinite(seconds) and seconds > 0,
        "decode_s",
        seconds,
        "a latency model returning a finite time > 0 s",
    )
    return seconds


def decode_point(
    model: DecodeLatencyModel, batch_size: int, ctx_tokens_per_seq: int
) -> DecodePoint:
    """Per-token latency and throughput at one batch size."""
    latency_s = tpot_s(model, batch_size, ctx_tokens_per_seq)
    return DecodePoint(batch_size, latency_s, batch_size / latency_s)


def decode_curve(
    model: DecodeLatencyModel,
    batch_sizes: Iterable[int],
    ctx_tokens_per_seq: int,
) -> list[DecodePoint]:
    """`decode_point` at each batch size, in the order given."""
    return [decode_point(model, b, ctx_tokens_per_seq) for b in batch_sizes]


def max_batch_for_tpot_slo(
    model: DecodeLatencyModel, tpot_slo_s: float, ctx_tokens_per_seq: int, max_batch_size: int
) -> int | None:
    """Largest batch size in [1, max_batch_size] whose TPOT is <= `tpot_slo_s`.

    Binary search, assuming decode_s does not decrease with the batch size (more sequences
    never make an iteration faster). `max_batch_size` is the caller's cap, e.g. what fits in
    KV memory. None when even one sequence misses the SLO.
    """
    require(
        math.isfinite(tpot_slo_s) and tpot_slo_s > 0, "tpot_slo_s", tpot_slo_s, "a finite SLO > 0 s"
    )
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


def best_point_under_tpot_slo(
    model: DecodeLatencyModel,
    tpot_slo_s: float,
    ctx_tokens_per_seq: int,
    max_batch_size: int,
) -> DecodePoint | None:
    """The decode point at the largest batch size that meets the TPOT SLO, or None.

    Throughput B / decode_s(B) grows with B when decode_s grows less than linearly
    (memory-bound decoding), so this is the highest-throughput point under the SLO.
    """
    batch_size = max_batch_for_tpot_slo(model, tpot_slo_s, ctx_tokens_per_seq, max_batch_size)
    if batch_size is None:
        return None
    return decode_point(model, batch_size, ctx_tokens_per_seq)
