"""A prefill instance: FCFS batches of up to L_m prompt tokens, pipelined over PP stages.

A batch takes the queue head and then the following requests while the prompt tokens stay
within L_m (a longer prompt runs alone) and the KV cache has room: a request's KV stays on the
instance from its prefill start until its transfer to a decode instance ends (released by the
engine). With PP stages a batch spends `prefill_s / PP` in each stage, in order, and a stage
serves one batch at a time, so batches never overtake each other; the first stage takes the
next batch only after `prefill_stage_s` (the busiest stage's time), which bounds throughput.
"""

from __future__ import annotations

from collections import deque

from servesim.engine.instance import Instance
from servesim.engine.records import RecordBuffer
from servesim.latency.base import LatencyModel


def saturating_prefill_tokens(latency: LatencyModel, max_tokens: int, share: float = 0.95) -> int:
    """L_m: the shortest prompt length (multiple of 16) whose prefill throughput reaches `share`
    of the best throughput over lengths up to `max_tokens`."""
    lengths = list(range(16, max(16, max_tokens) + 1, 16))
    rates = [t / latency.prefill_s(1, t, t * t) for t in lengths]
    best = max(rates)
    return next(t for t, r in zip(lengths, rates, strict=True) if r >= share * best)


class PrefillInstance(Instance):
    """Prefill-only instance: a FCFS queue, batching up to `max_tokens`, PP micro-pipelining."""

    __slots__ = ("in_flight", "kv", "max_tokens", "pp", "queue", "slot_free_s", "stage_free_s")

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

    def kv_used(self) -> int:
        return self.kv

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
        free = self.cap - self.kv
        rid = queue[0]
        tokens = inp[rid]
        if tokens > free:
            return None
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
            self.max_kv = self.kv
        self.in_flight += 1
        self.slot_free_s = now + stage
        if self.pp > 1:
            dur = self._through_stages(now, dur) - now
        starts = self.rec.prefill_start_s
        for rid in batch:
            starts[rid] = now
        # Busy time counts the first stage's occupancy, so utilization is that of the pipeline.
        self.account(now, stage, "prefill", num, 1)
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
