"""The event loop: one heap, owned by one `Engine`, ordered by (time, priority, sequence).

Same-time events run in priority order -- iteration boundaries and prefill batch ends first,
then pipeline slots, then KV-transfer ends, then arrivals -- and, within a priority, in the
order they were scheduled, so every run is deterministic. Open-loop arrivals are not pushed on
the heap: they stream from the workload's chunks and are merged with the heap's head.

An instance has at most one live boundary event; rescheduling bumps its version and the old
entry is skipped when popped. Transfers are versioned the same way, so a network model may move
a transfer's finish time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from itertools import count

import numpy as np

from servesim.engine.build import Instances
from servesim.engine.colocated import ColocatedInstance
from servesim.engine.decode import DecodeInstance
from servesim.engine.instance import Instance
from servesim.engine.prefill import PrefillInstance
from servesim.engine.records import RecordBuffer, Timeline
from servesim.engine.transport import DirectTransport, Transport
from servesim.workload.base import RequestChunk

# Priorities of same-time events (lower first).
PRIO_BOUNDARY, PRIO_SLOT, PRIO_TRANSFER, PRIO_ARRIVAL = 0, 1, 2, 3
# Event kinds.
K_DECODE, K_COLOCATED, K_PREFILL_END, K_SLOT, K_TRANSFER, K_ARRIVAL, K_KV_READY = range(7)

Event = tuple[float, int, int, int, object, object]


class Engine:
    """Runs one simulation over a set of instances."""

    def __init__(
        self,
        instances: Instances,
        rec: RecordBuffer,
        transport: Transport | None,
        kv_bytes_per_token: float,
        mode: str,
        check: bool = False,
        timeline: Timeline | None = None,
    ) -> None:
        self.inst = instances
        self.rec = rec
        self.transport = transport
        self.kv_bytes_per_token = kv_bytes_per_token
        self.mode = mode
        self.check = check
        self.timeline = timeline
        self.heap: list[Event] = []
        self._seq = count()
        self.now = 0.0
        self.num_finished = 0
        self.num_rejected = 0
        self.ploads = [0] * len(instances.prefill)  # queued + prefilling, per prefill instance
        self.dloads = [0] * len(instances.decode)  # routed and not finished, per decode instance
        self.cloads = [0] * len(instances.colocated)  # outstanding, per colocated instance
        self._tid_rid: dict[int, int] = {}
        self._tid_ver: dict[int, int] = {}
        # Closed-loop hook: called with (request id, time) when a request finishes or is rejected.
        self.on_finish: Callable[[int, float], None] | None = None
        self.handlers = (
            self._on_decode,
            self._on_colocated,
            self._on_prefill_end,
            self._on_slot,
            self._on_transfer,
            self._on_arrival_event,
            self._on_kv_ready,
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
            for j, t in enumerate(times):
                while heap and heap[0][0] <= t:
                    ev = heappop(heap)
                    self.now = ev[0]
                    handlers[ev[3]](ev)
                self.now = t
                if rejected[j]:
                    self.reject(first + j)
                else:
                    arrive(first + j, t)
        self.drain()

    def drain(self) -> None:
        """Process events until the heap is empty."""
        heap, handlers = self.heap, self.handlers
        while heap:
            ev = heappop(heap)
            self.now = ev[0]
            handlers[ev[3]](ev)

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

    def reject(self, rid: int) -> None:
        self.rec.rejected[rid] = 1
        self.num_rejected += 1
        if self.on_finish is not None:
            self.on_finish(rid, self.now)

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

    def _sample(self, inst: Instance) -> None:
        tl = self.timeline
        if tl is not None:
            tl.queue_samples.append((self.now, inst.index, inst.queue_depth(), inst.kv_used()))

    # ---- colocated ----------------------------------------------------------------------------
    def _arrive_colocated(self, rid: int, t: float) -> None:
        loads = self.cloads
        j = 0 if self._one_colocated else loads.index(min(loads))
        loads[j] += 1
        inst = self.inst.colocated[j]
        self.rec.prefill_instance[rid] = inst.index
        self.rec.decode_instance[rid] = inst.index
        t2 = inst.arrive(rid, t)
        if t2 is not None:
            inst.version += 1
            heappush(
                self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_COLOCATED, inst, inst.version)
            )
        if self.check:
            inst.check()

    def _on_colocated(self, ev: Event) -> None:
        inst: ColocatedInstance = ev[4]  # type: ignore[assignment]
        if inst.version != ev[5]:
            return
        t2 = inst.on_boundary(ev[0])
        if inst.finished:
            self._drain_finished(inst, self.cloads)
        if t2 is not None:
            inst.version += 1
            heappush(
                self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_COLOCATED, inst, inst.version)
            )
        if self.check:
            inst.check()
        if self.timeline is not None:
            self._sample(inst)

    # ---- prefill ------------------------------------------------------------------------------
    def _arrive_prefill(self, rid: int, t: float) -> None:
        loads = self.ploads
        j = 0 if self._one_prefill else loads.index(min(loads))
        loads[j] += 1
        inst = self.inst.prefill[j]
        self.rec.prefill_instance[rid] = inst.index
        inst.queue.append(rid)
        if inst.in_flight < inst.pp and t >= inst.slot_free_s:
            self._try_prefill(inst, t)

    def _try_prefill(self, inst: PrefillInstance, now: float) -> None:
        started = inst.try_start(now)
        if started is None:
            return
        end, slot, batch = started
        seq = self._seq
        heappush(self.heap, (end, PRIO_BOUNDARY, next(seq), K_PREFILL_END, inst, batch))
        if slot < end:
            heappush(self.heap, (slot, PRIO_SLOT, next(seq), K_SLOT, inst, None))
        if self.check:
            inst.check()
        if self.timeline is not None:
            self._sample(inst)

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

    # ---- disaggregated: routing and KV transfer -----------------------------------------------
    def _route_decode(self, batch: list[int], t: float) -> None:
        """Send a prefilled batch to the least-loaded decode instances; start what fits."""
        loads, decode, rec = self.dloads, self.inst.decode, self.rec
        out, dec_inst = rec.output_tokens, rec.decode_instance
        single = self._one_decode
        touched: list[DecodeInstance] = []
        for rid in batch:
            if out[rid] <= 1:  # the prefill made the only token: nothing to decode
                src = self.inst.prefill[self._local_index[rec.prefill_instance[rid]]]
                rec.first_token_s[rid] = t
                src.release(rec.input_tokens[rid])
                self._done(rid, t)
                continue
            j = 0 if single else loads.index(min(loads))
            loads[j] += 1
            d = decode[j]
            dec_inst[rid] = d.index
            d.pending.append(rid)
            if d not in touched:
                touched.append(d)
        for d in touched:
            for a in d.admit():
                self._start_transfer(a, d, t)

    def _start_transfer(self, rid: int, d: DecodeInstance, t: float) -> None:
        rec = self.rec
        rec.kv_start_s[rid] = t
        src = rec.prefill_instance[rid]
        num_bytes = rec.input_tokens[rid] * self.kv_bytes_per_token
        if self._direct is not None:
            bytes_per_s, latency_s = self._direct.link(src, d.index)
            end = t + latency_s + num_bytes / bytes_per_s
            heappush(self.heap, (end, PRIO_TRANSFER, next(self._seq), K_KV_READY, rid, None))
            return
        assert self.transport is not None
        moved = self.transport.start(t, rid, src, d.index, num_bytes)
        tid_rid = self._tid_rid
        for tid, _ in moved:
            if tid not in tid_rid:
                tid_rid[tid] = rid
        self._push_transfers(moved)

    def _push_transfers(self, moved: list[tuple[int, float]]) -> None:
        vers, heap, seq = self._tid_ver, self.heap, self._seq
        for tid, finish in moved:
            v = next(seq)
            vers[tid] = v
            heappush(heap, (finish, PRIO_TRANSFER, v, K_TRANSFER, tid, v))

    def _on_transfer(self, ev: Event) -> None:
        tid: int = ev[4]  # type: ignore[assignment]
        if self._tid_ver.get(tid) != ev[5]:
            return
        t = ev[0]
        del self._tid_ver[tid]
        assert self.transport is not None
        self._push_transfers(self.transport.complete(t, tid))
        if tid in self._tid_ver:  # re-armed by the transport: only a part (a shard flow) ended
            return
        self._kv_arrived(self._tid_rid.pop(tid), t)

    def _on_kv_ready(self, ev: Event) -> None:
        self._kv_arrived(ev[4], ev[0])  # type: ignore[arg-type]

    def _kv_arrived(self, rid: int, t: float) -> None:
        """The KV cache is on the decode instance: first token out, prefill KV freed, join."""
        rec, local = self.rec, self._local_index
        rec.kv_end_s[rid] = t
        rec.first_token_s[rid] = t
        src = self.inst.prefill[local[rec.prefill_instance[rid]]]
        d = self.inst.decode[local[rec.decode_instance[rid]]]
        if self.timeline is not None:
            self.timeline.transfers.append((rid, src.index, d.index, rec.kv_start_s[rid], t))
        src.kv -= rec.input_tokens[rid]
        if src.queue:
            self._try_prefill(src, t)
        t2 = d.join(rid, t)
        if t2 is not None:
            d.version += 1
            heappush(self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_DECODE, d, d.version))
        if self.check:
            d.check()
            src.check()

    # ---- decode -------------------------------------------------------------------------------
    def _schedule_decode(self, d: DecodeInstance) -> None:
        t2 = d.schedule()
        if t2 is not None:
            d.version += 1
            heappush(self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_DECODE, d, d.version))
        if self.check:
            d.check()

    def _arrive_decode(self, rid: int, t: float) -> None:
        rec = self.rec
        rec.first_token_s[rid] = t
        if rec.output_tokens[rid] <= 1:
            self._done(rid, t)
            return
        loads = self.dloads
        j = 0 if self._one_decode else loads.index(min(loads))
        loads[j] += 1
        d = self.inst.decode[j]
        rec.decode_instance[rid] = d.index
        d.pending.append(rid)
        for a in d.admit():
            t2 = d.join(a, t)
            if t2 is not None:
                d.version += 1
                heappush(self.heap, (t2, PRIO_BOUNDARY, next(self._seq), K_DECODE, d, d.version))
        if self.check:
            d.check()

    def _on_decode(self, ev: Event) -> None:
        d: DecodeInstance = ev[4]  # type: ignore[assignment]
        if d.version != ev[5]:
            return
        t = ev[0]
        d.on_boundary(t)
        if d.finished:
            self._drain_finished(d, self.dloads)
        if d.pending:
            admitted = d.admit()
            if self.mode == "disagg":
                for a in admitted:
                    self._start_transfer(a, d, t)
            else:
                d.joining.extend(admitted)  # at this boundary: `schedule` adds them
        self._schedule_decode(d)
        if self.timeline is not None:
            self._sample(d)

    # ---- closed loop --------------------------------------------------------------------------
    def _on_arrival_event(self, ev: Event) -> None:
        """A closed-loop arrival: the driver (ev[4]) creates the request."""
        ev[4].arrive(ev[0])  # type: ignore[attr-defined]

    def in_flight(self) -> int:
        """Requests inside the cluster, counted from the instances' own bookkeeping."""
        return int(np.sum(self.ploads) + np.sum(self.dloads) + np.sum(self.cloads))
