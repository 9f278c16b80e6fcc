"""A decode instance: continuous batching, the batch advanced in closed-form stretches.

Admission is FCFS: a routed request is admitted when the batch (counting requests whose KV is
still in transfer) has fewer than `max_batch_seqs` and the KV cache can reserve its whole final
context (input + output - 1 tokens); otherwise it waits, its KV kept on the prefill instance.
Reserving the final context up front means a decode instance never preempts.

A request whose KV has arrived joins the running batch at the first iteration boundary at or
after its arrival. The instance keeps one scheduled event, at boundary `target`: the next finish
(fast mode) or the next iteration (exact mode). A join that lands strictly before `target`
advances the batch to its boundary in closed form and the engine reschedules; a join on
`target` waits there for the event.
"""

from __future__ import annotations

from collections import deque

from servesim.engine.batch import DecodeBatch
from servesim.engine.instance import Instance
from servesim.engine.records import RecordBuffer
from servesim.latency.base import LatencyModel


class DecodeInstance(Instance):
    """Decode-only instance with reservation-based KV admission."""

    __slots__ = (
        "batch",
        "fast",
        "joining",
        "max_seqs",
        "num_admitted",
        "pending",
        "reserved",
        "target",
    )

    def __init__(
        self,
        index: int,
        latency: LatencyModel,
        kv_capacity_tokens: int,
        max_seqs: int,
        rec: RecordBuffer,
        fast: bool,
    ) -> None:
        super().__init__(index, "decode", latency, kv_capacity_tokens, rec)
        self.batch = DecodeBatch(latency)
        self.fast = fast
        self.max_seqs = max_seqs
        self.pending: deque[int] = deque()  # routed here, not yet admitted
        self.joining: list[int] = []  # KV arrived, joining at the next boundary
        self.num_admitted = 0  # admitted and not finished (in transfer or running)
        self.reserved = 0  # KV tokens reserved by admitted requests
        self.target = -1  # counter of the scheduled boundary, -1 when idle

    def kv_used(self) -> int:
        return self.reserved

    def queue_depth(self) -> int:
        return len(self.pending)

    def admit(self) -> list[int]:
        """Admit pending requests in FCFS order while there is room; returns them."""
        pending = self.pending
        if not pending:
            return []
        inp, out, cap = self.inp, self.out, self.cap
        admitted: list[int] = []
        while pending and self.num_admitted < self.max_seqs:
            rid = pending[0]
            need = inp[rid] + out[rid] - 1
            if self.reserved + need > cap:
                break
            pending.popleft()
            self.reserved += need
            self.num_admitted += 1
            admitted.append(rid)
        if self.reserved > self.max_kv:
            self.max_kv = self.reserved
        return admitted

    def join(self, rid: int, now: float) -> float | None:
        """The request's KV is here at `now`. Returns the new boundary event time when the
        schedule changed (the engine pushes it), None when the request waits for `target`."""
        b = self.batch
        if self.target < 0:  # idle: start at once
            b.t0 = now
        else:
            k = b.iterations_to(now - b.t0)
            if b.it + k >= self.target:
                self.joining.append(rid)
                return None
            self._run(k)
        b.add(rid, self.inp[rid], self.out[rid] - 1)
        return self.schedule()

    def _run(self, k: int) -> None:
        if k:
            b = self.batch
            start = b.t0
            dt = b.advance(k)
            n = b.n
            # `account`, inlined: this runs once per stretch, the hottest path of the engine.
            self.busy_s += dt
            self.num_iterations += k
            self.batch_integral += n * dt
            if n > self.max_batch:
                self.max_batch = n
            if self.spans is not None:
                self.spans.append((start, start + dt, "decode", n, k))

    def on_boundary(self, now: float) -> None:
        """The scheduled boundary: run up to it and retire the finished requests."""
        b = self.batch
        self._run(self.target - b.it)
        done = b.pop_finished()
        if done:
            finish, inp, out = self.rec.finish_s, self.inp, self.out
            t = b.t0
            released = 0
            for rid in done:
                finish[rid] = t
                released += inp[rid] + out[rid] - 1
            self.reserved -= released
            self.num_admitted -= len(done)
            self.finished.extend(done)

    def schedule(self) -> float | None:
        """Add the joining requests; return the time of the next boundary event (None: idle)."""
        b = self.batch
        if self.joining:
            inp, out = self.inp, self.out
            for rid in self.joining:
                b.add(rid, inp[rid], out[rid] - 1)
            self.joining.clear()
        if b.n == 0:
            self.target = -1
            return None
        k, end_s = b.next_stretch(1 << 62 if self.fast else 1)
        self.target = b.it + k
        return end_s
