"""What a simulation returns: one record per request, per-instance stats, an optional timeline.

During the run the records live in `RecordBuffer`: flat `array.array` columns (8 bytes a value,
no Python object per request) that the engine writes by request id. `Records` is the frozen
result: equal-length numpy arrays, one row per request in arrival order, NaN where a phase did
not happen.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field, fields

import numpy as np

NAN = math.nan
TIME_FIELDS = (
    "arrival_s",
    "prefill_start_s",
    "prefill_end_s",
    "kv_start_s",
    "kv_end_s",
    "first_token_s",
    "finish_s",
)
COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "prefill_instance",
    "decode_instance",
    "num_preemptions",
)


@dataclass(frozen=True)
class Records:
    """Per-request records (numpy arrays of equal length, in arrival order), seconds."""

    request_id: np.ndarray
    arrival_s: np.ndarray
    prefill_start_s: np.ndarray
    prefill_end_s: np.ndarray
    kv_start_s: np.ndarray
    kv_end_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefill_instance: np.ndarray  # -1 where none
    decode_instance: np.ndarray  # -1 where none
    num_preemptions: np.ndarray
    rejected: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.request_id.shape[0])

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RecordBuffer:
    """Growable columns written by request id while the simulation runs."""

    __slots__ = (*TIME_FIELDS, *COUNT_FIELDS, "num_requests", "rejected")
    arrival_s: array[float]
    prefill_start_s: array[float]
    prefill_end_s: array[float]
    kv_start_s: array[float]
    kv_end_s: array[float]
    first_token_s: array[float]
    finish_s: array[float]
    input_tokens: array[int]
    output_tokens: array[int]
    prefill_instance: array[int]
    decode_instance: array[int]
    num_preemptions: array[int]
    rejected: array[int]

    def __init__(self) -> None:
        for name in TIME_FIELDS:
            setattr(self, name, array("d"))
        for name in COUNT_FIELDS:
            setattr(self, name, array("q"))
        self.rejected = array("b")
        self.num_requests = 0

    def extend(
        self, arrival_s: list[float], input_tokens: list[int], output_tokens: list[int]
    ) -> int:
        """Append requests (arrival order); returns the id of the first one."""
        first = self.num_requests
        num = len(arrival_s)
        self.arrival_s.extend(arrival_s)
        self.input_tokens.extend(input_tokens)
        self.output_tokens.extend(output_tokens)
        nans = array("d", [NAN]) * num
        for name in TIME_FIELDS[1:]:
            getattr(self, name).extend(nans)
        minus = array("q", [-1]) * num
        self.prefill_instance.extend(minus)
        self.decode_instance.extend(minus)
        self.num_preemptions.extend(array("q", [0]) * num)
        self.rejected.extend(array("b", [0]) * num)
        self.num_requests += num
        return first

    def freeze(self) -> Records:
        """Numpy views of the columns (no copy: the buffer must not grow afterwards)."""
        cols: dict[str, np.ndarray] = {
            name: np.frombuffer(getattr(self, name), dtype=np.float64) for name in TIME_FIELDS
        }
        for name in COUNT_FIELDS:
            cols[name] = np.frombuffer(getattr(self, name), dtype=np.int64)
        cols["rejected"] = np.frombuffer(self.rejected, dtype=np.int8).astype(bool)
        cols["request_id"] = np.arange(self.num_requests, dtype=np.int64)
        return Records(**cols)


@dataclass(frozen=True)
class Counts:
    """Request counts at the end of a run; arrived = finished + rejected + in_flight."""

    arrived: int
    finished: int
    rejected: int
    preempted: int  # preemption events (a request may be preempted several times)
    in_flight: int


@dataclass(frozen=True)
class InstanceStats:
    """Activity of one instance over the run."""

    index: int
    role: str
    busy_s: float
    num_iterations: int
    mean_batch_size: float  # time-averaged over busy time
    max_batch_size: int
    max_kv_tokens: int  # most KV tokens allocated at once
    kv_capacity_tokens: int

    def utilization(self, duration_s: float) -> float:
        """Busy share of `duration_s`."""
        return self.busy_s / duration_s if duration_s > 0 else 0.0


@dataclass
class Timeline:
    """What happened when, for traces and plots (collected only with `timeline=True`).

    spans: per instance, (start_s, end_s, kind, batch_size, num_iterations); a decode stretch
        the fast engine jumped over is one span of `num_iterations` iterations.
    queue_samples: (time_s, instance, queued_requests, kv_tokens) after every scheduling step.
    transfers: (request_id, src_instance, dst_instance, start_s, end_s).
    """

    spans: list[list[tuple[float, float, str, int, int]]] = field(default_factory=list)
    queue_samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    transfers: list[tuple[int, int, int, float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class SimResult:
    """Everything one simulation produced."""

    records: Records
    counts: Counts
    instances: tuple[InstanceStats, ...]
    end_s: float
    mode: str
    exact: bool
    timeline: Timeline | None = None
