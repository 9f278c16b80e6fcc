"""Streaming trace replay: read request traces in chunks and replay them as a Workload.

`read_trace` yields `RequestChunk`s with arrival times in seconds from the first request;
`TraceWorkload` replays a trace as is, or stretched in time to a target mean rate (a first
streaming pass counts the rows and finds the span). Formats are detected from the first line or
forced; see `trace_formats` for the formats and the errors.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from servesim.errors import UnknownNameError, require
from servesim.workload.base import RequestChunk, check_chunk_size
from servesim.workload.trace_formats import (
    LAYOUTS,
    Block,
    Layout,
    csv_columns,
    detect_format,
    parse_csv_block,
    parse_jsonl_block,
    trace_error,
)

TRACE_FORMATS: tuple[str, ...] = tuple(LAYOUTS)


def resolve_format(path: str | Path, format: str | None = None) -> str:
    """The trace format of `path`: `format` if given (checked), else detected from line 1."""
    path = Path(path)
    if format is not None and format not in LAYOUTS:
        raise UnknownNameError("trace format", format, LAYOUTS)
    require(path.is_file(), "trace", str(path), "an existing file")
    with path.open() as f:
        first = f.readline()
    if not first.strip():
        raise trace_error(path, 1, "header", first, "a CSV header or a JSON object (file is empty)")
    return format if format is not None else detect_format(path, first)


def _blocks(path: Path, f: TextIO, layout: Layout, chunk_size: int) -> Iterator[Block]:
    line = 1
    cols = None
    if not layout.jsonl:
        cols = csv_columns(path, f.readline(), layout)
        line = 2
    while lines := list(itertools.islice(f, chunk_size)):
        if cols is None:
            yield parse_jsonl_block(path, lines, line, layout)
        else:
            yield parse_csv_block(path, lines, line, layout, cols)
        line += len(lines)


def _check_order(path: Path, layout: Layout, block: Block, prev: float | None) -> None:
    t = block.times
    if layout.time != "TIMESTAMP" and t.size and not np.all(np.isfinite(t)):
        k = int(np.flatnonzero(~np.isfinite(t))[0])
        raise trace_error(path, block.first_line + k, layout.time, t[k], "a finite number")
    steps = np.diff(t, prepend=t[0] if prev is None else prev)
    if np.any(steps < 0):
        k = int(np.flatnonzero(steps < 0)[0])
        allowed = "non-decreasing arrival times (the trace must be sorted by time)"
        raise trace_error(path, block.first_line + k, layout.time, t[k], allowed)


def read_trace(
    path: str | Path, format: str | None = None, chunk_size: int = 65536
) -> Iterator[RequestChunk]:
    """Yield the requests of a trace file in chunks of at most `chunk_size` rows.

    Arrival times are seconds since the first request. Raises InputError (file, line, field) at
    the first malformed row; rows before it have already been yielded.
    """
    check_chunk_size(chunk_size)
    path = Path(path)
    fmt = resolve_format(path, format)
    layout = LAYOUTS[fmt]
    start: float | None = None
    prev: float | None = None
    with path.open() as f:
        for block in _blocks(path, f, layout, chunk_size):
            _check_order(path, layout, block, prev)
            start = block.times[0] if start is None else start
            prev = block.times[-1]
            arrival_s = (block.times - start).astype(np.float64) / layout.units_per_s
            yield RequestChunk(arrival_s, block.input_tokens, block.output_tokens, block.hash_ids)


@dataclass(frozen=True, slots=True)
class TraceStats:
    """What a first pass over a trace finds."""

    num_requests: int
    span_s: float  # last arrival - first arrival

    @property
    def mean_rate_per_s(self) -> float:
        """(num_requests - 1) / span_s: the rate whose mean gap matches the trace's."""
        return (self.num_requests - 1) / self.span_s if self.span_s > 0 else math.inf


def _take(chunks: Iterator[RequestChunk], max_requests: int | None) -> Iterator[RequestChunk]:
    left = math.inf if max_requests is None else max_requests
    for chunk in chunks:
        if left <= 0:
            return
        if len(chunk) > left:
            k = int(left)
            hashes = None if chunk.hash_ids is None else chunk.hash_ids[:k]
            chunk = RequestChunk(
                chunk.arrival_s[:k], chunk.input_tokens[:k], chunk.output_tokens[:k], hashes
            )
        left -= len(chunk)
        yield chunk


@functools.lru_cache(maxsize=32)
def _trace_stats(
    path: str, version: tuple[int, int], format: str | None, max_requests: int | None
) -> TraceStats:
    """One pass over a trace; cached so a rate search does not re-read it for every rate."""
    num, last = 0, 0.0
    for chunk in _take(read_trace(path, format), max_requests):
        num += len(chunk)
        last = float(chunk.arrival_s[-1])
    return TraceStats(num, last)


@dataclass(frozen=True, slots=True)
class TraceWorkload:
    """Replay a trace file: as recorded, or stretched in time to a mean rate of `rate_per_s`.

    The time stretch keeps the trace's burstiness; the realised mean rate
    (num_requests - 1) / span equals `rate_per_s` exactly. `max_requests` keeps the first rows.
    The seed is ignored: a trace is deterministic.
    """

    path: Path
    format: str | None = None
    rate_per_s: float | None = None
    max_requests: int | None = None
    name: str = ""
    _stats: list[TraceStats] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.format is not None and self.format not in LAYOUTS:
            raise UnknownNameError("trace format", self.format, LAYOUTS)
        if self.rate_per_s is not None:
            ok = isinstance(self.rate_per_s, numbers.Real) and 0 < self.rate_per_s < math.inf
            require(ok, "rate_per_s", self.rate_per_s, "a finite number > 0")
        if self.max_requests is not None:
            ok = isinstance(self.max_requests, numbers.Integral) and self.max_requests >= 1
            require(ok, "max_requests", self.max_requests, "an integer >= 1")
        object.__setattr__(self, "name", self.name or self.path.stem)
        object.__setattr__(self, "_stats", [])

    def _raw(self, chunk_size: int) -> Iterator[RequestChunk]:
        return _take(read_trace(self.path, self.format, chunk_size), self.max_requests)

    def stats(self) -> TraceStats:
        """Count the rows and find the span (one streaming pass, cached per file version)."""
        if not self._stats:
            st = self.path.stat() if self.path.is_file() else None
            key = (st.st_mtime_ns, st.st_size) if st else (0, 0)
            self._stats.append(_trace_stats(str(self.path), key, self.format, self.max_requests))
        return self._stats[0]

    def time_scale(self) -> float:
        """Factor applied to the recorded arrival times (1.0 when replaying as is)."""
        if self.rate_per_s is None:
            return 1.0
        st = self.stats()
        ok = st.num_requests >= 2 and st.span_s > 0
        require(
            ok,
            "rate_per_s",
            self.rate_per_s,
            "needs a trace with two or more distinct arrival times",
        )
        return st.mean_rate_per_s / self.rate_per_s

    def chunks(self, seed: int = 0, chunk_size: int = 65536) -> Iterator[RequestChunk]:
        check_chunk_size(chunk_size)
        scale = self.time_scale()
        for chunk in self._raw(chunk_size):
            if scale != 1.0:
                chunk = RequestChunk(
                    chunk.arrival_s * scale, chunk.input_tokens, chunk.output_tokens, chunk.hash_ids
                )
            yield chunk
