"""A decode instance: continuous batching, the batch advanced in closed-form stretches.

KV admission, preemption and recompute (the 'on_demand' and 'reserve' policies) are in
decode_kv.py.

A request waiting for admission keeps its KV on the prefill instance. Once admitted its KV is
pulled (the engine starts the transfers listed in `admitted`); in decode-only runs
(`kv_local`) the KV is already here, so it joins at once and its first token is the admission
time. A request whose KV arrived joins the running batch at the first boundary at or after it.

The instance keeps one scheduled event, at boundary `target`: the next finish, the last
iteration before the cache runs out ('on_demand'), the boundary where the next known KV arrival
joins, or the next iteration (exact mode); or the end of a recompute iteration. With the
default transport the engine tells the instance each transfer's end when it starts (`expect`);
with another transport a KV arrival calls `join`. Either way a join that lands strictly before
`target` moves the event to its boundary; one landing on `target` waits there for the event.

A request routed to an empty queue ('on_demand') is admitted at the first boundary at or after
its arrival (the scheduler acts at boundaries): the event moves there, or, when transfer ends
are known (`predicts`), the admission is decided at once from the state that boundary will have
-- before `target` nothing else happens there -- and the transfer starts at that boundary.
"""

from __future__ import annotations

from heapq import heappop, heappush

from servesim.engine.decode_kv import DECODE, IDLE, RECOMPUTE, WAIT, DecodeKV
from servesim.engine.records import RecordBuffer
from servesim.latency.base import LatencyModel

NO_LIMIT = 1 << 62
# A KV arrival this close before a boundary joins at it (float rounding of boundary times).
JOIN_EPS_S = 1e-9


class DecodeInstance(DecodeKV):
    """Decode-only instance: routing, joins and closed-form stretches (KV policy: DecodeKV)."""

    __slots__ = ("fast", "incoming", "joining", "predicts", "wait_s")

    def __init__(
        self,
        index: int,
        latency: LatencyModel,
        kv_capacity_tokens: int,
        max_seqs: int,
        rec: RecordBuffer,
        fast: bool,
        *,
        on_demand: bool = True,
        watermark_tokens: int = 0,
        kv_local: bool = False,
    ) -> None:
        super().__init__(
            index, latency, kv_capacity_tokens, max_seqs, rec, on_demand, watermark_tokens
        )
        self.kv_local = kv_local  # decode-only: KV is here on arrival, no transfer
        self.fast = fast
        # With a transport whose transfers never move, the engine tells each transfer's end
        # when it starts (`expect`): (kv_end_s, request) of those still under way.
        self.predicts = False
        self.incoming: list[tuple[float, int]] = []
        self.wait_s = 0.0  # WAIT: the event time
        self.joining: list[int] = []  # KV arrived, joining at the next boundary

    # ---- routing and admission ----------------------------------------------------------------
    def route(self, rids: list[int], now: float) -> float | None:
        """Requests are routed here at `now`. Returns the new boundary event time when the
        schedule changed (the engine pushes it); transfers to start are left in `admitted`."""
        quiet = not self.pending
        self.pending.extend(rids)
        if not self.on_demand:
            return self._route_reserve(now)
        if self.state == IDLE or self.state == WAIT:
            self.batch.t0 = now
            return self.schedule(now)
        if quiet and self.state == DECODE:  # admission at the first boundary at or after now
            b = self.batch
            k = b.iterations_to(now - b.t0)
            if b.it + k < self.target:
                if self.predicts:
                    return self._admit_ahead(k)
                self.target = b.it + k
                return b.t0 + b.duration_s(k)
        return None  # admitted at the scheduled event (a queue already waiting: a finish)

    def _admit_ahead(self, k: int) -> float | None:
        """Decide now what the boundary k iterations ahead would do: before `target` there is
        no finish, no overflow and (known arrivals) no KV landing, so that boundary only admits.
        The transfers start there (`admit_s`); a request that does not fit waits for a finish,
        as it would."""
        b = self.batch
        admitted = self._admit(b.n * k)
        if not admitted:
            return None
        self.admitted.extend(admitted)
        self.admit_s = b.t0 + b.duration_s(k)
        self.admit_it = b.it + k
        k_full = (self.cap - b.sum_ctx - self.held) // b.n if self.fast else 1
        if b.it + k_full >= self.target:
            return None
        self.target = b.it + k_full
        return b.t0 + b.duration_s(k_full)

    def _route_reserve(self, now: float) -> float | None:
        admitted = self._admit()
        if not self.kv_local:
            self.admitted.extend(admitted)
            self.admit_s = now
            self.admit_it = self.batch.it
            return None
        first = self.rec.first_token_s
        t2 = None
        for rid in admitted:
            first[rid] = now
            t = self.join(rid, now)
            if t is not None:
                t2 = t
        return t2

    def join(self, rid: int, now: float) -> float | None:
        """The request's KV is here at `now`. Returns the new boundary event time when the
        schedule changed (the engine pushes it), None when the request waits for the event."""
        b = self.batch
        if self.state == IDLE or self.state == WAIT:
            b.t0 = now
        elif self.state == RECOMPUTE:
            self.joining.append(rid)
            return None
        else:  # cut the stretch at the first boundary at or after now, if before target
            k = b.iterations_to(now - b.t0)
            if b.it + k >= self.target:
                self.joining.append(rid)
                return None
            self._run(k)
        length = self.inp[rid]
        if self.on_demand:
            self.held -= length
        b.add(rid, length, self.out[rid] - 1)
        return self.schedule(b.t0)

    def _run(self, k: int) -> None:
        """Run k iterations with the current membership (`DecodeBatch.advance` and `account`,
        inlined: once per stretch, the hottest path)."""
        b = self.batch
        n, start, s = b.n, b.t0, b.sum_ctx
        try:
            base, slope = b._coeffs[n]
        except IndexError:
            base, slope = b.coeffs(n)
        dt = k * base + slope * (k * s + n * k * (k - 1) * 0.5)
        b.t0 = start + dt
        s += n * k
        b.sum_ctx = s
        b.it += k
        self.busy_s += dt
        self.num_iterations += k
        self.batch_integral += n * dt
        if n > self.max_batch:
            self.max_batch = n
        if self.spans is not None:
            self.spans.append((start, start + dt, "decode", n, k))
        if self.on_demand and s + self.held > self.max_kv:
            self.max_kv = s + self.held

    def on_boundary(self, now: float) -> None:
        """The scheduled event: end the recompute iteration, or run the decode stretch up to
        its boundary and retire the finished requests."""
        state = self.state
        if state != DECODE:
            if state == RECOMPUTE:
                self._end_recompute(now)
            else:  # WAIT
                self.batch.t0 = now
            return
        b = self.batch
        k = self.target - b.it
        if k:
            self._run(k)
        heap = b._heap
        if heap and heap[0][0] <= b.it:
            self._retire()

    def _retire(self) -> None:
        """Record the requests finishing at the current boundary and free their slots."""
        done = self.batch.pop_finished()
        if done:
            finish, t = self.rec.finish_s, self.batch.t0
            if self.on_demand:
                for rid in done:
                    finish[rid] = t
            else:
                inp, out = self.inp, self.out
                reserved = self.reserved
                for rid in done:
                    finish[rid] = t
                    reserved -= inp[rid] + out[rid] - 1
                self.reserved = reserved
            self.num_admitted -= len(done)
            self.finished.extend(done)

    def on_event(self, now: float) -> float | None:
        """The scheduled event: `on_boundary`, then `schedule` (one call on the hottest path)."""
        if self.state == DECODE:
            b = self.batch
            k = self.target - b.it
            if k:
                self._run(k)
            heap = b._heap
            if heap and heap[0][0] <= b.it:
                self._retire()
        else:
            self.on_boundary(now)
        return self.schedule(now)

    def schedule(self, now: float) -> float | None:
        """At a boundary: add the joining requests, preempt on overflow, admit, then start the
        next recompute, stretch or iteration; returns when it ends (None: idle)."""
        b = self.batch
        if self.joining:
            self._add_joining()
        inc = self.incoming
        if inc and inc[0][0] <= now + JOIN_EPS_S:
            self._land(now)
        if self.on_demand:
            free = self.cap - b.sum_ctx - self.held
            if b.n > free:
                self._make_room()  # a boundary that preempts admits nobody
                free = self.cap - b.sum_ctx - self.held
            elif self.pending:
                self._dispatch(self._admit(), now)
                if self.recomputing:
                    return self._recompute(now)
                free = self.cap - b.sum_ctx - self.held
            n = b.n
            if not n:
                return self._idle()
            k = free // n if self.fast else 1  # the last iteration before the cache is full
        else:
            if self.pending:
                self._dispatch(self._admit(), now)
            n = b.n
            if not n:
                return self._idle()
            k = NO_LIMIT if self.fast else 1
        if inc and k > 1:  # stop at the boundary where the next known KV arrival joins
            k_in = b.iterations_to(inc[0][0] - b.t0)
            if k_in < k:
                k = k_in
        # `DecodeBatch.next_stretch`, inlined: up to the next finish.
        k_finish = b.to_next_finish() if b._num_removed else b._heap[0][0] - b.it
        if k_finish < k:
            k = k_finish
        try:
            base, slope = b._coeffs[n]
        except IndexError:
            base, slope = b.coeffs(n)
        self.state = DECODE
        self.target = b.it + k
        return b.t0 + k * base + slope * (k * b.sum_ctx + n * k * (k - 1) * 0.5)

    def _idle(self) -> float | None:
        self.target = -1
        if self.incoming:
            self.state = WAIT
            self.wait_s = self.incoming[0][0]
            return self.wait_s
        self.state = IDLE
        return None

    def expect(self, rid: int, end_s: float) -> float | None:
        """A transfer to here started; its KV lands at `end_s` and the request joins at the
        first boundary at or after it. Returns the new event time when the schedule changed."""
        heappush(self.incoming, (end_s, rid))
        state = self.state
        if state == DECODE:
            b = self.batch
            # It joins after the boundary where it was admitted (`admit_it`).
            k = b.iterations_to(end_s - b.t0, self.admit_it - b.it + 1)
            if b.it + k < self.target:
                self.target = b.it + k
                return b.t0 + b.duration_s(k)
            return None
        if state == IDLE or (state == WAIT and end_s < self.wait_s):
            self.state = WAIT
            self.wait_s = end_s
            return end_s
        return None  # WAIT for an earlier arrival, or RECOMPUTE: that event comes first

    def _land(self, now: float) -> None:
        """Known KV arrivals up to `now` join the batch."""
        b, inc, inp, out = self.batch, self.incoming, self.inp, self.out
        while inc and inc[0][0] <= now + JOIN_EPS_S:
            rid = heappop(inc)[1]
            if self.on_demand:
                self.held -= inp[rid]
            b.add(rid, inp[rid], out[rid] - 1)

    def _add_joining(self) -> None:
        b, inp, out = self.batch, self.inp, self.out
        for rid in self.joining:
            if self.on_demand:
                self.held -= inp[rid]
            b.add(rid, inp[rid], out[rid] - 1)
        self.joining.clear()
