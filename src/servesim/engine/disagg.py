"""The disaggregated handoff: prefilled requests go to decode instances, their KV moves.

A prefilled request goes to the decode instance with the fewest requests routed to it and not
finished (ties: lowest index); that instance admits it (decode.py) and the engine starts the
transfer of its KV. With the default `DirectTransport` a transfer's end is known when it starts:
the records are written at once, the decode instance is told when the request joins
(`DecodeInstance.expect`) and the prefill instance frees the KV lazily at the end, a queue
blocked on KV being woken then -- no event per transfer. Any other `Transport` (which may move
a transfer's end, e.g. with link sharing) gets one versioned event per transfer instead.

`Handoff` is a part of `Engine` (loop.py), split out for size; it owns no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from heapq import heappush

from servesim.engine.build import Instances
from servesim.engine.decode import DecodeInstance
from servesim.engine.events import (
    INF,
    K_DECODE,
    K_TRANSFER,
    K_WAKE,
    PRIO_BOUNDARY,
    PRIO_TRANSFER,
    Event,
)
from servesim.engine.prefill import PrefillInstance
from servesim.engine.records import RecordBuffer, Timeline
from servesim.engine.transport import DirectTransport, Transport


class Handoff:
    """Routing to decode instances and KV transfers (a part of `Engine`)."""

    heap: list[Event]
    inst: Instances
    rec: RecordBuffer
    transport: Transport | None
    kv_bytes: Callable[[int], float]
    check: bool
    timeline: Timeline | None
    dloads: list[int]
    _seq: Iterator[int]
    _direct: DirectTransport | None
    _links: dict[tuple[int, int], tuple[float, float]]
    _local_index: list[int]
    _one_decode: bool
    _tid_rid: dict[int, int]
    _tid_ver: dict[int, int]

    def _done(self, rid: int, t: float) -> None:
        raise NotImplementedError  # Engine's

    def _try_prefill(self, inst: PrefillInstance, now: float) -> None:
        raise NotImplementedError  # Engine's

    def _route_decode(self, batch: list[int], t: float) -> None:
        """Send a prefilled batch to the least-loaded decode instances (in batch order)."""
        loads, decode, rec = self.dloads, self.inst.decode, self.rec
        out, dec_inst = rec.output_tokens, rec.decode_instance
        single = self._one_decode
        routed: dict[DecodeInstance, list[int]] = {}
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
            if d in routed:
                routed[d].append(rid)
            else:
                routed[d] = [rid]
        for d, rids in routed.items():
            self._decode_changed(d, d.route(rids, t))

    def _decode_changed(self, d: DecodeInstance, t2: float | None) -> None:
        """After a decode instance acted: start its admitted transfers, push its event."""
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

    def _start_transfer(self, rid: int, d: DecodeInstance, t: float) -> float | None:
        """Start moving a request's KV to `d` at `t`; returns a new event time of `d`, if any.

        With the default transport the end is known now: the records are written, the prefill
        instance frees the KV at the end (lazily, waking a queue blocked on KV) and the decode
        instance is told when the request joins, so no event is needed for the transfer.
        """
        rec = self.rec
        rec.kv_start_s[rid] = t
        src = rec.prefill_instance[rid]
        num_bytes = self.kv_bytes(int(rec.input_tokens[rid]))
        if self._direct is not None:
            link = self._links.get((src, d.index))
            if link is None:
                link = self._links[(src, d.index)] = self._direct.link(src, d.index)
            end = t + link[1] + num_bytes / link[0]
            rec.kv_end_s[rid] = end
            rec.first_token_s[rid] = end
            p = self.inst.prefill[self._local_index[src]]
            heappush(p.releases, (end, rec.input_tokens[rid]))
            if p.blocked_kv and end < p.wake_s:
                self._wake_at(p, end)
            if self.timeline is not None:
                self.timeline.transfers.append((rid, src, d.index, t, end))
            return d.expect(rid, end)
        assert self.transport is not None
        moved = self.transport.start(t, rid, src, d.index, num_bytes)
        tid_rid = self._tid_rid
        for tid, _ in moved:
            if tid not in tid_rid:
                tid_rid[tid] = rid
        self._push_transfers(moved)
        return None

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
        self._decode_changed(d, d.join(rid, t))
        if self.check:
            src.check()

    def _wake_at(self, inst: PrefillInstance, t: float) -> None:
        """A prefill queue blocked on KV retries when known KV leaves the instance."""
        inst.wake_s = t
        heappush(self.heap, (t, PRIO_TRANSFER, next(self._seq), K_WAKE, inst, None))

    def _on_wake(self, ev: Event) -> None:
        inst: PrefillInstance = ev[4]  # type: ignore[assignment]
        if inst.wake_s == ev[0]:
            inst.wake_s = INF
        if inst.queue:
            self._try_prefill(inst, ev[0])
