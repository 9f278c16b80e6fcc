"""What every instance shares: its index, KV capacity, activity counters and timeline spans.

Instances never touch the event heap: their methods change their own state and return the time
of the next event they need (or None); the engine schedules it.
"""

from __future__ import annotations

from array import array

from servesim.engine.records import InstanceStats, RecordBuffer
from servesim.latency.base import LatencyModel

MEMO_SIZE = 1 << 16

Span = tuple[float, float, str, int, int]


class Instance:
    """Base of the prefill, decode and colocated instances."""

    __slots__ = (
        "_latency",
        "_prefill_memo",
        "batch_integral",
        "busy_s",
        "cap",
        "finished",
        "index",
        "inp",
        "max_batch",
        "max_kv",
        "num_iterations",
        "out",
        "rec",
        "role",
        "spans",
        "version",
    )

    def __init__(
        self,
        index: int,
        role: str,
        latency: LatencyModel,
        kv_capacity_tokens: int,
        rec: RecordBuffer,
    ) -> None:
        self.index = index
        self._latency = latency
        self._prefill_memo: dict[tuple[int, int, int], float] = {}
        self.role = role
        self.cap = kv_capacity_tokens
        self.rec = rec
        self.inp: array = rec.input_tokens
        self.out: array = rec.output_tokens
        self.busy_s = 0.0
        self.num_iterations = 0
        self.batch_integral = 0.0  # sum of batch size x iteration time
        self.max_batch = 0
        self.max_kv = 0
        self.version = 0  # bumped by the engine at every (re)scheduled boundary event
        self.finished: list[int] = []  # requests done since the engine last looked
        self.spans: list[Span] | None = None

    def account(self, start_s: float, dt_s: float, kind: str, batch_size: int, k: int) -> None:
        """Count k iterations of `batch_size` sequences that took `dt_s` from `start_s`."""
        self.busy_s += dt_s
        self.num_iterations += k
        self.batch_integral += batch_size * dt_s
        if batch_size > self.max_batch:
            self.max_batch = batch_size
        if self.spans is not None:
            self.spans.append((start_s, start_s + dt_s, kind, batch_size, k))

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        """The latency model's prefill time, memoized (workloads repeat prompt lengths)."""
        key = (num_seqs, sum_tokens, sum_sq_tokens)
        dt = self._prefill_memo.get(key)
        if dt is None:
            if len(self._prefill_memo) >= MEMO_SIZE:
                self._prefill_memo.clear()
            dt = self._prefill_memo[key] = self._latency.prefill_s(
                num_seqs, sum_tokens, sum_sq_tokens
            )
        return dt

    def kv_used(self, now_s: float | None = None) -> int:
        """KV tokens allocated (at `now_s`, for instances that free KV lazily)."""
        raise NotImplementedError

    def queue_depth(self) -> int:
        """Requests waiting to start."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise AssertionError when the instance holds more KV than it has."""
        used = self.kv_used()
        if used > self.cap or used < 0:
            raise AssertionError(f"instance {self.index}: KV {used} outside [0, {self.cap}]")

    def stats(self) -> InstanceStats:
        mean = self.batch_integral / self.busy_s if self.busy_s > 0 else 0.0
        return InstanceStats(
            index=self.index,
            role=self.role,
            busy_s=self.busy_s,
            num_iterations=self.num_iterations,
            mean_batch_size=mean,
            max_batch_size=self.max_batch,
            max_kv_tokens=self.max_kv,
            kv_capacity_tokens=self.cap,
        )
