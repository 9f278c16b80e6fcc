"""The event loop: one heap, owned by one `Engine`, ordered by (time, priority, sequence).

Same-time events run in priority order -- iteration boundaries and prefill batch ends first,
then pipeline slots, then KV-transfer ends, then arrivals -- and, within a priority, in the
order they were scheduled, so every run is deterministic. Open-loop arrivals are not pushed on
the heap: they stream from the workload's chunks and are merged with the heap's head. Requests
that arrive at one instant (a closed loop's first round, a lock-step wave, a trace with coarse
timestamps) reach an idle instance together: it decides after the last of them, as one pass of
a real engine's scheduler takes every waiting request.

An instance has at most one live boundary event; rescheduling bumps its version and the old
entry is skipped when popped. Transfers are versioned the same way, so a network model may move
a transfer's finish time. The disaggregated handoff (routing to decode instances, KV
transfers) lives in disagg.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from itertools import count

import numpy as np

from servesim.engine.build import Instances
from servesim.engine.colocated import ColocatedInstance
from servesim.engine.decode import DecodeInstance
from servesim.engine.disagg import Handoff
from servesim.engine.events import (
    K_COLOCATED,
    K_DECODE,
    K_PREFILL_END,
    K_SLOT,
    PRIO_ARRIVAL,
    PRIO_BOUNDARY,
    PRIO_SLOT,
    Event,
)
from servesim.engine.instance import Instance
from servesim.engine.prefill import PrefillInstance
from servesim.engine.records import RecordBuffer, Timeline
from servesim.engine.transport import DirectTransport, Transport
from servesim.workload.base import RequestChunk


class Engine(Handoff):
    """Runs one simulation over a set of instances."""

    def __init__(
        self,
        instances: Instances,
        rec: RecordBuffer,
        transport: Transport | None,
        kv_bytes: Callable[[int], float],
        mode: str,
        check: bool = False,
        timeline: Timeline | None = None,
    ) -> None:
        self.inst = instances
        self.rec = rec
        self.transport = transport
        self.kv_bytes = kv_bytes  # KV-cache bytes of one prompt of n tokens (the transfer size)
        self.mode = mode
        self.check = check
        self.timeline = timeline
        self.heap: list[Event] = []
        self._seq = count()
        self.now = 0.0
        self.num_finished = 0
        self.num_rejected = 0
        # More arrivals follow at this instant: idle instances they reach wait for the last one.
        self.burst = False
        self._deferred: list[Instance] = []
        self.ploads = [0] * len(instances.prefill)  # queued + prefilling, per prefill instance
        self.dloads = [0] * len(instances.decode)  # routed and not finished, per decode instance
        self.cloads = [0] * len(instances.colocated)  # outstanding, per colocated instance
        self._tid_rid: dict[int, int] = {}
        self._tid_ver: dict[int, int] = {}
        self._links: dict[tuple[int, int], tuple[float, float]] = {}  # (bytes/s, latency s)
        # Closed-loop hook: called with (request id, time) when a request finishes or is rejected.
        self.on_finish: Callable[[int, float], None] | None = None
        self.handlers = (
            self._on_decode,
            self._on_colocated,
            self._on_prefill_end,
            self._on_slot,
            self._on_transfer,
            self._on_arrival_event,
            self._on_wake,
        )
        # The default transport never moves a transfer: skip its ids and versions.
        self._direct = transport if isinstance(transport, DirectTransport) else None
        self._one_prefill = len(self.ploads) == 1
        self._one_decode = len(self.dloads) == 1
        self._one_colocated = len(self.cloads) == 1
        self.arrive = {
            "colocated": self._arrive_colocated,
            "disagg": self._arrive_prefill,
            "prefill_only": self._arrive_prefill,
            "decode_only": self._arrive_decode,
        }[mode]
        if self._direct is not None:  # transfer ends are known at their start
            for d in instances.decode:
                d.predicts = True
        # Position of each instance within its role's list (global index -> local index).
        self._local_index = [0] * len(instances.all)
        for group in (instances.prefill, instances.decode, instances.colocated):
            for j, inst in enumerate(group):
                self._local_index[inst.index] = j
        if timeline is not None:
            timeline.spans = []
            for inst in instances.all:
                inst.spans = []
                timeline.spans.append(inst.spans)

    # ---- the loop -----------------------------------------------------------------------------
    def push(self, t: float, prio: int, kind: int, a: object, b: object = None) -> None:
        heappush(self.heap, (t, prio, next(self._seq), kind, a, b))

    def run_open(self, chunks: Iterator[RequestChunk]) -> None:
        """Process a stream of arrivals and every event they cause."""
        heap, handlers, arrive = self.heap, self.handlers, self.arrive
        for chunk in chunks:
            first, times, rejected = self._admit_chunk(chunk)
            arrivals = chunk.arrival_s
            together = len(arrivals) > 1 and bool(np.any(arrivals[1:] == arrivals[:-1]))
            if not together and not any(rejected):  # the common case: a tighter loop
                for rid, t in enumerate(times, first):
                    while heap and heap[0][0] <= t:
                        ev = heappop(heap)
                        handlers[ev[3]](ev)
                    arrive(rid, t)
                continue
            last = len(times) - 1
            for j, t in enumerate(times):
                while heap and heap[0][0] <= t:
                    ev = heappop(heap)
                    handlers[ev[3]](ev)
                self.burst = j < last and times[j + 1] == t
                if rejected[j]:
                    self.reject(first + j, t)
                else:
                    arrive(first + j, t)
                if self._deferred and not self.burst:
                    self.start_deferred(t)
        self.drain()

    def start_deferred(self, t: float) -> None:
        """The last arrival of an instant is in: run the decisions it left waiting (a colocated
        instance's boundary now, a prefill instance's next batch)."""
        deferred, self._deferred = self._deferred, []
        for inst in deferred:
            if isinstance(inst, ColocatedInstance):
                self._schedule_colocated(inst, t)
            elif isinstance(inst, PrefillInstance):
                self._try_prefill(inst, t)

    def drain(self) -> None:
        """Process events until the heap is empty."""
        heap, handlers = self.heap, self.handlers
        while heap:
            ev = heappop(heap)
            handlers[ev[3]](ev)
            self.now = ev[0]

    def _admit_chunk(self, chunk: RequestChunk) -> tuple[int, list[float], list[bool]]:
        inp, out = chunk.input_tokens, chunk.output_tokens
        bad = (inp > self.inst.max_input_tokens) | (inp + out > self.inst.max_total_tokens)
        first = self.rec.extend(chunk.arrival_s.tolist(), inp.tolist(), out.tolist())
        return first, chunk.arrival_s.tolist(), bad.tolist()

    def limits_reject(self, input_tokens: int, output_tokens: int) -> bool:
        """True when a request can never be served."""
        return bool(
            input_tokens > self.inst.max_input_tokens
            or input_tokens + output_tokens > self.inst.max_total_tokens
        )

    def reject(self, rid: int, t: float) -> None:
        self.rec.rejected[rid] = 1
        self.num_rejected += 1
        if self.on_finish is not None:
            self.on_finish(rid, t)

    def _done(self, rid: int, t: float) -> None:
        self.rec.finish_s[rid] = t
        self.num_finished += 1
        if self.on_finish is not None:
            self.on_finish(rid, t)

    def _drain_finished(self, inst: DecodeInstance | ColocatedInstance, loads: list[int]) -> None:
        done = inst.finished
        loads[self._local_index[inst.index]] -= len(done)
        self.num_finished += len(done)
        if self.on_finish is not None:
            finish = self.rec.finish_s
            for rid in done:
                self.on_finish(rid, finish[rid])
        done.clear()

    def _sample(self, inst: Instance, t: float) -> None:
        tl = self.timeline
        if tl is not None:
            tl.queue_samples.append((t, inst.index, inst.queue_depth(), inst.kv_used(t)))

    # ---- colocated ----------------------------------------------------------------------------
    def _arrive_colocated(self, rid: int, t: float) -> None:
        loads = self.cloads
        j = 0 if self._one_colocated else loads.index(min(loads))
        loads[j] += 1
        inst = self.inst.colocated[j]
        self.rec.prefill_instance[rid] = inst.index
        self.rec.decode_instance[rid] = inst.index
        if self.burst or self._deferred:
            self._arrive_colocated_together(inst, rid, t)
        else:
            t2 = inst.arrive(rid, t)
            if t2 is not None:
                self._schedule_colocated(inst, t2)
        if self.check:
            inst.check()

    def _schedule_colocated(self, inst: ColocatedInstance, t: float) -> None:
        """`inst`'s next boundary at `t`; the one scheduled before is superseded."""
        inst.version += 1
        heappush(self.heap, (t, PRIO_BOUNDARY, next(self._seq), K_COLOCATED, inst, inst.version))

    def _arrive_colocated_together(self, inst: ColocatedInstance, rid: int, t: float) -> None:
        """An arrival with others at the same instant: a decision it needs now waits for the
        last of them (start_deferred)."""
        defer = self.burst or inst in self._deferred
        t2 = inst.arrive(rid, t, defer)
        if t2 is None:
            return
        if defer and t2 == t:
            inst.version += 1  # the boundary scheduled before is superseded
            if inst not in self._deferred:
                self._deferred.append(inst)
        else:
            self._schedule_colocated(inst, t2)

    def _on_colocated(self, ev: Event) -> None:
        inst: ColocatedInstance = ev[4]  # type: ignore[assignment]
        if inst.version != ev[5]:
            return
        t2 = inst.on_boundary(ev[0])
        if inst.finished:
            self._drain_finished(inst, self.cloads)
        if t2 is not None:
            self._schedule_colocated(inst, t2)
        if self.check:
            inst.check()
        if self.timeline is not None:
            self._sample(inst, ev[0])

    # ---- prefill ------------------------------------------------------------------------------
    def _arrive_prefill(self, rid: int, t: float) -> None:
        loads = self.ploads
        j = 0 if self._one_prefill else loads.index(min(loads))
        loads[j] += 1
        inst = self.inst.prefill[j]
        self.rec.prefill_instance[rid] = inst.index
        inst.queue.append(rid)
        if inst.in_flight < inst.pp and t >= inst.slot_free_s:
            if not self.burst:
                self._try_prefill(inst, t)
            elif inst not in self._deferred:
                self._deferred.append(inst)

    def _try_prefill(self, inst: PrefillInstance, now: float) -> None:
        started = inst.try_start(now)
        if started is None:
            rel = inst.releases
            if inst.blocked_kv and rel and rel[0][0] < inst.wake_s:
                self._wake_at(inst, rel[0][0])
            return
        end, slot, batch = started
        seq = self._seq
        heappush(self.heap, (end, PRIO_BOUNDARY, next(seq), K_PREFILL_END, inst, batch))
        if slot < end:
            heappush(self.heap, (slot, PRIO_SLOT, next(seq), K_SLOT, inst, None))
        if self.check:
            inst.check()
        if self.timeline is not None:
            self._sample(inst, now)

    def _on_slot(self, ev: Event) -> None:
        self._try_prefill(ev[4], ev[0])  # type: ignore[arg-type]

    def _on_prefill_end(self, ev: Event) -> None:
        t = ev[0]
        inst: PrefillInstance = ev[4]  # type: ignore[assignment]
        batch: list[int] = ev[5]  # type: ignore[assignment]
        inst.end_batch(t, batch)
        self.ploads[self._local_index[inst.index]] -= len(batch)
        if self.mode == "disagg":
            self._route_decode(batch, t)
        else:
            for rid in batch:
                self.rec.first_token_s[rid] = t
                inst.release(inst.inp[rid])
                self._done(rid, t)
        if inst.queue:
            self._try_prefill(inst, t)

    # ---- decode -------------------------------------------------------------------------------
    def _arrive_decode(self, rid: int, t: float) -> None:
        """Decode-only: the request arrives with its KV ready (first token at admission)."""
        rec = self.rec
        if rec.output_tokens[rid] <= 1:
            rec.first_token_s[rid] = t
            self._done(rid, t)
            return
        loads = self.dloads
        j = 0 if self._one_decode else loads.index(min(loads))
        loads[j] += 1
        d = self.inst.decode[j]
        rec.decode_instance[rid] = d.index
        self._decode_changed(d, d.route([rid], t))

    def _on_decode(self, ev: Event) -> None:
        d: DecodeInstance = ev[4]  # type: ignore[assignment]
        if d.version != ev[5]:
            return
        t = ev[0]
        t2 = d.on_event(t)
        if d.finished:
            self._drain_finished(d, self.dloads)
        # `_decode_changed`, inlined: once per decode event.
        if d.admitted:
            start = d.admit_s
            for a in d.admitted:
                t3 = self._start_transfer(a, d, start)
                if t3 is not None:
                    t2 = t3
            d.admitted.clear()
        if t2 is not None:
            d.version += 1
            heappush(self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_DECODE, d, d.version))
        if self.check:
            d.check()
        if self.timeline is not None:
            self._sample(d, t)

    # ---- closed loop --------------------------------------------------------------------------
    def _on_arrival_event(self, ev: Event) -> None:
        """A closed-loop arrival: the driver (ev[4]) creates the request."""
        t, heap = ev[0], self.heap
        self.burst = bool(heap) and heap[0][0] == t and heap[0][1] == PRIO_ARRIVAL
        ev[4].arrive(t)  # type: ignore[attr-defined]
        if self._deferred and not self.burst:
            self.start_deferred(t)

    def in_flight(self) -> int:
        """Requests inside the cluster, counted from the instances' own bookkeeping."""
        return int(np.sum(self.ploads) + np.sum(self.dloads) + np.sum(self.cloads))
