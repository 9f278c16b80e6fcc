"""A prefill instance: FCFS batches of up to L_m prompt tokens, pipelined over PP stages.

A batch takes the queue head and then the following requests while the prompt tokens stay
within L_m (a longer prompt runs alone) and the KV cache has room: a request's KV stays on the
instance from its prefill start until its transfer to a decode instance ends (released by the
engine). With PP stages a batch spends `prefill_s / PP` in each stage, in order, and a stage
serves one batch at a time, so batches never overtake each other; the first stage takes the
next batch only after `prefill_stage_s` (the busiest stage's time), which bounds throughput.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop

from servesim.engine.instance import Instance
from servesim.engine.records import RecordBuffer
from servesim.latency.base import LatencyModel

DOUBLING_GAIN = 0.15


def saturating_prefill_tokens(
    latency: LatencyModel, max_tokens: int, gain: float = DOUBLING_GAIN
) -> int:
    """L_m: the shortest prompt length (a multiple of 16, at most `max_tokens`) from which
    doubling the tokens of a prefill batch raises its throughput (tokens/s) by less than `gain`;
    `max_tokens` when no shorter length qualifies.

    Past L_m a batch twice as long (twice the TTFT of its requests) buys little throughput: the
    GPU is saturated. A ratio between two points of the curve does not depend on how far the
    curve is scanned or where its maximum lies, so a flat top does not move the result (a rule
    like "95% of the best throughput" jumps along a flat top). For a linear time a + b*t the rule
    gives t > 2.83 a/b, where the throughput is about 74% of its asymptote 1/b.
    """
    top = max(16, max_tokens)
    for t in range(16, top + 1, 16):
        if 2 * latency.prefill_s(1, t, t * t) < (1 + gain) * latency.prefill_s(1, 2 * t, 4 * t * t):
            return t
    return top


class PrefillInstance(Instance):
    """Prefill-only instance: a FCFS queue, batching up to `max_tokens`, PP micro-pipelining."""

    __slots__ = (
        "blocked_kv",
        "in_flight",
        "kv",
        "max_tokens",
        "pp",
        "queue",
        "releases",
        "slot_free_s",
        "stage_free_s",
        "wake_s",
    )

    def __init__(
        self,
        index: int,
        latency: LatencyModel,
        kv_capacity_tokens: int,
        max_tokens: int,
        rec: RecordBuffer,
    ) -> None:
        super().__init__(index, "prefill", latency, kv_capacity_tokens, rec)
        self.pp = latency.pp
        self.max_tokens = max_tokens
        self.queue: deque[int] = deque()
        self.kv = 0  # KV tokens held: prefilling, or waiting for / in transfer
        self.in_flight = 0  # batches inside the pipeline
        self.slot_free_s = 0.0  # when the first stage can take the next batch
        self.stage_free_s = [0.0] * self.pp  # when each stage finishes its current batch
        # KV leaving at known times (transfers under way): (time, tokens), freed lazily.
        self.releases: list[tuple[float, int]] = []
        self.blocked_kv = False  # the queue head waits for KV to leave
        self.wake_s = math.inf  # when the engine retries a queue blocked on KV

    def kv_used(self, now_s: float | None = None) -> int:
        if now_s is None:  # counting KV already gone but not yet settled: an upper bound
            return self.kv
        return self.kv - sum(tokens for t, tokens in self.releases if t <= now_s)

    def settle(self, now: float) -> None:
        """Free the KV of transfers that ended by `now`."""
        rel = self.releases
        while rel and rel[0][0] <= now:
            self.kv -= heappop(rel)[1]

    def queue_depth(self) -> int:
        return len(self.queue)

    def try_start(self, now: float) -> tuple[float, float, list[int]] | None:
        """Start the next batch if the pipeline and the KV cache allow it.

        Returns (end_s, stage_free_s, batch) or None.
        """
        queue = self.queue
        if not queue or self.in_flight >= self.pp or now < self.slot_free_s:
            return None
        inp = self.inp
        rid = queue[0]
        tokens = inp[rid]
        # `kv` still counts transfers that ended since the last settle: settle when it matters
        # (the KV could limit this batch, or a new peak), which also bounds `releases`.
        free = self.cap - self.kv
        if free < tokens or free < self.max_tokens:
            self.settle(now)
            free = self.cap - self.kv
            if tokens > free:
                self.blocked_kv = True
                return None
        self.blocked_kv = False
        queue.popleft()
        batch = [rid]
        sq = tokens * tokens
        limit = min(self.max_tokens, free)
        while queue:
            length = inp[queue[0]]
            if tokens + length > limit:
                break
            batch.append(queue.popleft())
            tokens += length
            sq += length * length
        num = len(batch)
        dur = self.prefill_s(num, tokens, sq)
        stage = dur if self.pp == 1 else self._latency.prefill_stage_s(num, tokens, sq)
        self.kv += tokens
        if self.kv > self.max_kv:
            self.settle(now)
            if self.kv > self.max_kv:
                self.max_kv = self.kv
        self.in_flight += 1
        self.slot_free_s = now + stage
        if self.pp > 1:
            dur = self._through_stages(now, dur) - now
        starts = self.rec.prefill_start_s
        for rid in batch:
            starts[rid] = now
        # Busy time counts the first stage's occupancy, so utilization is that of the pipeline.
        # (`account`, inlined: once per batch.)
        self.busy_s += stage
        self.num_iterations += 1
        self.batch_integral += num * stage
        if num > self.max_batch:
            self.max_batch = num
        if self.spans is not None:
            self.spans.append((now, now + stage, "prefill", num, 1))
        return now + dur, now + stage, batch

    def _through_stages(self, now: float, dur: float) -> float:
        """When a batch started at `now` leaves the last stage (each stage takes dur / PP)."""
        t = now
        per_stage = dur / self.pp
        free = self.stage_free_s
        for j in range(self.pp):
            t = max(t, free[j]) + per_stage
            free[j] = t
        return t

    def end_batch(self, now: float, batch: list[int]) -> None:
        """A batch came out of the last stage at `now`."""
        self.in_flight -= 1
        ends = self.rec.prefill_end_s
        for rid in batch:
            ends[rid] = now

    def release(self, tokens: int) -> None:
        """A request's KV left the instance."""
        self.kv -= tokens
