"""`FlowTransport`: the engine's KV transport on top of the fluid flow model.

Instances are laid on concrete GPUs (see `network.deployment.flow_transport`). The KV cache of a
request moves as TP-shard flows (`kv_shard_flows`) from its prefill instance's GPUs to its
decode instance's GPUs. A transfer is done when all its flows are done and its layerwise floor
(if any) has passed.

Protocol with the engine (engine/transport.py): the engine holds one versioned event per
transfer. This transport reports for every transfer the time of its *next* event: the earliest
finish among its active flows, or its floor once they are all done. When the event fires,
`complete` retires the flows that end then and, unless the transfer is done, returns the
transfer itself with its next time (the engine re-arms it). So every flow ends at its exact
time. A rate change that brings another transfer's event earlier is reported at once; one that
only delays it is not (its old event fires early, finds nothing due and re-arms it).

In the flow network a transfer's exactly alike shard flows (same path, bytes and latency) run
as one flow of weight = their number, which max-min treats as that many flows.

Keeping the engine cheap: a transfer between a *uniform* pair of instances (all shard flows
equal in bytes, latency and bandwidth, the common case) whose links carry nothing else runs
*solo*, outside the flow network: one event, a few multiplications. Its links stay reserved
until its flows end; a transfer that needs one of them first hands the solo transfer over to
the flow network with the bytes it has left, then they share the links max-min fairly. The
result is the same as running every transfer through the flow network.

KV modes:
- 'after_prefill': the flows start when the engine starts the transfer (decode admission).
- 'layerwise': when the transfer starts at the prefill's end, each shard is timed as
  `plan_kv_flows` does (start after the first layer, floor after its last layer). The part of a
  flow that would have moved during the prefill at its path's uncontended bandwidth is credited
  to its links at once; the rest flows from the transfer's start (the decode admission, at or
  after the prefill's end). Alone on the network, admitted at the prefill's end, this equals
  the library's layerwise timing; under contention it is optimistic during the prefill, like
  `plan_kv_flows`. It assumes the decode side reserved room for the KV when the prefill began
  (layer-by-layer systems must), even when the engine admits the request later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from servesim.errors import require
from servesim.network.flows import FlowNetwork
from servesim.network.kv_transfer import KV_MODES, kv_shard_flows
from servesim.network.maxmin import max_min_rates
from servesim.network.placement import Stages
from servesim.network.topology import Topology

Flows = list[tuple["_Shard", float]]
"""(shard, bytes still to move) of one transfer."""
Window = tuple[float, float, float]
"""(prefill start s, prefill end s, time from which the pair's links are free s)."""


@dataclass(frozen=True, slots=True)
class _Shard:
    """One shard flow of an instance pair, as a fraction of the request's KV bytes."""

    path: tuple[int, ...]
    fraction: float
    first_layer: int
    num_layers: int
    latency_s: float
    path_bytes_per_s: float
    """Uncontended bandwidth of the path (its narrowest link)."""
    alone_bytes_per_s: float
    """Max-min rate when only the pair's own flows use the network."""


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a dict key per transfer
class _Pair:
    """The shard flows from one instance to another and every link they cross."""

    shards: tuple[_Shard, ...]
    links: tuple[int, ...]
    uniform: bool
    """All shards alike (bytes, latency, bandwidth, rate): they start and end together."""
    layer_spans: tuple[tuple[int, int], ...]
    """Distinct (end layer, number of layers) of the shards, for the layerwise floor."""
    index: int
    """Position in the transport's list of pairs."""


_Solo = tuple[_Pair, float, float, float, float]
"""A transfer of a uniform pair running alone on its links: (pair, bytes, bytes each shard
moves from the start on, start s, floor s). A plain tuple: it is made once per transfer."""


@dataclass(slots=True)
class _Transfer:
    """A transfer whose flows are in the flow network."""

    num_bytes: float
    floor_s: float
    active: list[int]
    next_s: float = 0.0


class FlowTransport:
    """KV transfers between placed instances, sharing links max-min fairly (engine Transport)."""

    def __init__(
        self,
        topology: Topology,
        placements: Sequence[Stages],
        num_layers: int,
        kv_mode: str = "after_prefill",
        background_bytes_per_s: Sequence[float] | None = None,
        *,
        solo: bool = True,
    ) -> None:
        """`placements[i]` holds the GPUs of global instance i (engine order); `solo=False`
        sends every transfer through the flow network (the reference for the fast path)."""
        require(kv_mode in KV_MODES, "kv_transfer", kv_mode, f"one of {', '.join(KV_MODES)}")
        require(num_layers >= 1, "num_layers", num_layers, "an integer >= 1")
        self.topology = topology
        self.placements = list(placements)
        self.num_layers = num_layers
        self.kv_mode = kv_mode
        self.network = FlowNetwork(
            topology.capacities_bytes_per_s(), topology.latencies_s(), background_bytes_per_s
        )
        self.bytes_moved = 0.0
        """KV bytes of completed transfers."""
        self.num_transfers = 0
        """Completed transfers."""
        self.num_solo = 0
        """Transfers that started solo (no flow-network work unless handed over later)."""
        num_links = len(topology.links())
        self._busy_until = [0.0] * num_links  # a solo transfer's flows use the link until then
        self._holder = [-1] * num_links  # the last solo transfer that reserved the link
        self._num_flows = [0] * num_links  # flows of the flow network on the link
        self._outside_bytes = [0.0] * num_links  # bytes moved outside the flow network
        self._pairs: dict[int, _Pair] = {}  # by src * num_instances + dst
        self._shard_bytes: list[float] = []  # per pair: bytes each of its shards moved solo
        self._solo: dict[int, _Solo] = {}
        self._transfers: dict[int, _Transfer] = {}
        self._owner: dict[int, tuple[int, tuple[int, ...]]] = {}  # flow -> (transfer, path)
        self._next_id = 0
        self._records: Any = None
        self._allow_solo = solo

    def bind_records(self, records: Any) -> None:
        """Give the transport the engine's record buffer (read: prefill start and end times)."""
        self._records = records

    # ---- the engine's Transport protocol --------------------------------------------------
    def start(
        self, now_s: float, request_id: int, src: int, dst: int, num_bytes: float
    ) -> list[tuple[int, float]]:
        """Start moving `num_bytes` of KV from instance `src` to `dst`; (id, next event s)."""
        tid = self._next_id
        self._next_id += 1
        pair = self._pairs.get(src * len(self.placements) + dst) or self._new_pair(src, dst)
        window = None
        if self.kv_mode == "layerwise":
            window = self._prefill_window(now_s, request_id, pair)
        if pair.uniform and self._allow_solo and self._links_free(now_s, pair):
            if window is None:  # the hot path, inlined
                shard = pair.shards[0]
                shard_bytes = shard.fraction * num_bytes
                end_s = now_s + shard.latency_s + shard_bytes / shard.alone_bytes_per_s
                self._solo[tid] = (pair, num_bytes, shard_bytes, now_s, now_s)
                self._reserve(tid, pair.links, end_s)
                return [(tid, end_s)]
            return [(tid, self._start_solo(now_s, tid, pair, num_bytes, window))]
        if window is None:
            flows, floor_s = [(s, s.fraction * num_bytes) for s in pair.shards], now_s
        else:
            flows, floor_s = self._layerwise_flows(pair, num_bytes, window)
            floor_s = max(floor_s, now_s)
        transfer = _Transfer(num_bytes, floor_s, [])
        self._transfers[tid] = transfer
        if flows:
            self._enter_network(now_s, tid, flows, pair.links)
        moved = self._moved(exclude=tid)
        transfer.next_s = self._next_event_s(transfer)
        return [(tid, transfer.next_s), *moved]

    def complete(self, now_s: float, transfer_id: int) -> list[tuple[int, float]]:
        """Retire the flows of `transfer_id` that end at `now_s`; re-arm it unless it is done."""
        solo = self._solo.pop(transfer_id, None)
        if solo is not None:  # its event is at max(flows' end, floor): it is done
            self._shard_bytes[solo[0].index] += solo[2]
            self.bytes_moved += solo[1]
            self.num_transfers += 1
            return []
        transfer = self._transfers[transfer_id]
        self._retire_due(now_s, transfer)
        moved = self._moved(exclude=transfer_id)
        if not transfer.active and transfer.floor_s <= now_s + _slack(now_s):
            del self._transfers[transfer_id]
            self.bytes_moved += transfer.num_bytes
            self.num_transfers += 1
            return moved
        transfer.next_s = self._next_event_s(transfer)
        return [(transfer_id, transfer.next_s), *moved]

    # ---- queries --------------------------------------------------------------------------
    @property
    def num_active(self) -> int:
        """Transfers started and not yet done."""
        return len(self._transfers) + len(self._solo)

    def link_bytes(self) -> list[float]:
        """KV bytes carried per link: flow-network flows (up to their last rate change), solo
        transfers once ended, and layerwise bytes moved during the prefill."""
        carried = [
            a + b for a, b in zip(self.network.link_bytes(), self._outside_bytes, strict=True)
        ]
        for pair in self._pairs.values():
            shard_bytes = self._shard_bytes[pair.index]
            for shard in pair.shards:
                for link in shard.path:
                    carried[link] += shard_bytes
        return carried

    # ---- internals: instance pairs and their flows ----------------------------------------
    def _new_pair(self, src: int, dst: int) -> _Pair:
        topo = self.topology
        unit = kv_shard_flows(self.placements[src], self.placements[dst], 1, 1.0, self.num_layers)
        paths = [topo.path(s.src_gpu, s.dst_gpu) for s in unit]
        rates, _ = max_min_rates(paths, self.network.effective_capacities())
        shards = tuple(
            _Shard(
                path,
                s.num_bytes,
                s.first_layer,
                s.num_layers,
                topo.path_latency_s(path),
                topo.path_bandwidth_bytes_per_s(path),
                rate,
            )
            for s, path, rate in zip(unit, paths, rates, strict=True)
        )
        alike = {(s.fraction, s.latency_s, s.path_bytes_per_s, s.alone_bytes_per_s) for s in shards}
        spans = tuple(sorted({(s.first_layer + s.num_layers, s.num_layers) for s in shards}))
        links = tuple(sorted({link for path in paths for link in path}))
        pair = _Pair(shards, links, len(alike) == 1 and bool(links), spans, len(self._pairs))
        self._pairs[src * len(self.placements) + dst] = pair
        self._shard_bytes.append(0.0)
        return pair

    def _prefill_window(self, now_s: float, request_id: int, pair: _Pair) -> Window | None:
        """(prefill start, prefill end, link time free from) for layerwise overlap, else None."""
        if self._records is None:
            return None
        start_s = float(self._records.prefill_start_s[request_id])  # numpy scalars are slow
        end_s = float(self._records.prefill_end_s[request_id])
        if not start_s <= end_s <= now_s + _slack(now_s):
            return None  # no prefill times
        busy, num_flows = self._busy_until, self._num_flows
        free_from_s = -math.inf
        for link in pair.links:  # a plain loop: this runs once per layerwise transfer
            link_free_s = now_s if num_flows[link] else busy[link]
            if link_free_s > free_from_s:
                free_from_s = link_free_s
        return start_s, end_s, free_from_s

    def _layerwise_shard(
        self,
        shard: _Shard,
        flow_bytes: float,
        window: Window,
        spans: Sequence[tuple[int, int]],
    ) -> tuple[float, float, float]:
        """`plan_kv_flows`'s layerwise timing for one shard (or alike shards ending at `spans`):
        (bytes sent during the prefill, floor s, end of the link time used s). Bytes move at the
        shard's alone rate, only in link time no other transfer has used or claimed."""
        start_s, end_s, free_from_s = window
        layer_s = (end_s - start_s) / self.num_layers
        send_from_s = max(start_s + layer_s, free_from_s)
        bandwidth, latency_s = shard.path_bytes_per_s, shard.latency_s
        floor_s = end_s
        for end_layer, num_layers in spans:
            floor_s = max(
                floor_s,
                start_s + end_layer * layer_s + latency_s + flow_bytes / num_layers / bandwidth,
            )
        rate = shard.alone_bytes_per_s
        sent = min(flow_bytes, rate * max(0.0, end_s - send_from_s))
        if sent >= flow_bytes:  # all of it moved during the prefill: done as if alone
            floor_s = max(floor_s, send_from_s + latency_s + flow_bytes / rate)
        return sent, floor_s, send_from_s + sent / rate

    def _layerwise_flows(
        self, pair: _Pair, num_bytes: float, window: Window
    ) -> tuple[Flows, float]:
        """(shard, bytes left at the prefill's end) and the transfer's floor."""
        flows: Flows = []
        floor_s = window[1]
        used_until_s = 0.0
        for shard in pair.shards:
            flow_bytes = shard.fraction * num_bytes
            span = ((shard.first_layer + shard.num_layers, shard.num_layers),)
            sent, shard_floor_s, shard_used_s = self._layerwise_shard(
                shard, flow_bytes, window, span
            )
            floor_s = max(floor_s, shard_floor_s)
            used_until_s = max(used_until_s, shard_used_s)
            self._credit_outside(shard.path, sent)
            if flow_bytes > sent:
                flows.append((shard, flow_bytes - sent))
        self._claim(pair.links, used_until_s)
        return flows, floor_s

    def _claim(self, links: tuple[int, ...], until_s: float) -> None:
        busy = self._busy_until
        for link in links:
            busy[link] = max(busy[link], until_s)

    def _credit_outside(self, path: tuple[int, ...], num_bytes: float) -> None:
        for link in path:
            self._outside_bytes[link] += num_bytes

    # ---- internals: solo transfers --------------------------------------------------------
    def _links_free(self, now_s: float, pair: _Pair) -> bool:
        busy, num_flows = self._busy_until, self._num_flows
        for link in pair.links:  # noqa: SIM110 -- a plain loop is faster on this hot path
            if busy[link] > now_s or num_flows[link]:
                return False
        return True

    def _start_solo(
        self,
        now_s: float,
        tid: int,
        pair: _Pair,
        num_bytes: float,
        window: Window | None,
    ) -> float:
        """Run a transfer of a uniform pair alone on its free links; its event time (s)."""
        shard = pair.shards[0]
        shard_bytes = shard.fraction * num_bytes
        floor_s = now_s
        if window is not None:
            sent, floor_s, used_until_s = self._layerwise_shard(
                shard, shard_bytes, window, pair.layer_spans
            )
            self._claim(pair.links, used_until_s)
            floor_s = max(floor_s, now_s)
            self._shard_bytes[pair.index] += sent
            shard_bytes -= sent
        self._solo[tid] = (pair, num_bytes, shard_bytes, now_s, floor_s)
        if shard_bytes <= 0:
            self.num_solo += 1
            return floor_s
        end_s = now_s + shard.latency_s + shard_bytes / shard.alone_bytes_per_s
        self._reserve(tid, pair.links, end_s)
        return max(end_s, floor_s)

    def _reserve(self, tid: int, links: tuple[int, ...], end_s: float) -> None:
        self.num_solo += 1
        busy, holder = self._busy_until, self._holder
        for link in links:
            busy[link] = end_s
            holder[link] = tid

    def _hand_over(self, now_s: float, links: tuple[int, ...]) -> tuple[list, list[float]]:
        """Move the solo transfers still using `links` into the flow network's care: the flow
        specs of what they have left at `now_s`, and their remaining latencies."""
        specs: list[tuple[tuple[int, ...], float, object]] = []
        latencies: list[float] = []
        held = {self._holder[link] for link in links if self._busy_until[link] > now_s}
        for tid in sorted(held):
            solo = self._solo.pop(tid, None)
            if solo is None:
                continue
            pair, num_bytes, shard_bytes, start_s, floor_s = solo
            self._transfers[tid] = _Transfer(num_bytes, floor_s, [], math.inf)  # re-armed
            for shard in pair.shards:
                active_from_s = start_s + shard.latency_s
                elapsed_s = max(0.0, now_s - active_from_s)
                sent = min(shard_bytes, shard.alone_bytes_per_s * elapsed_s)
                self._credit_outside(shard.path, sent)
                specs.append((shard.path, shard_bytes - sent, tid))
                latencies.append(max(0.0, active_from_s - now_s))
            for link in pair.links:
                self._busy_until[link] = now_s
        return specs, latencies

    # ---- internals: the flow network ------------------------------------------------------
    def _enter_network(self, now_s: float, tid: int, flows: Flows, links: tuple[int, ...]) -> None:
        """Start a transfer's flows in the network, with the solo transfers on its links."""
        specs, latencies = self._hand_over(now_s, links)
        specs += [(shard.path, num_bytes, tid) for shard, num_bytes in flows]
        latencies += [shard.latency_s for shard, _ in flows]
        weights = None
        if self._allow_solo:
            specs, latencies, weights = _merge_alike(specs, latencies)
        ids = self.network.start_many(now_s, specs, latencies, weights)
        for flow_id, (path, _, owner) in zip(ids, specs, strict=True):
            assert isinstance(owner, int)
            self._owner[flow_id] = (owner, path)
            self._transfers[owner].active.append(flow_id)
            for link in path:
                self._num_flows[link] += 1

    def _retire_due(self, now_s: float, transfer: _Transfer) -> None:
        """Complete every flow of `transfer` that ends at `now_s` (rates change as they go)."""
        network, limit = self.network, now_s + _slack(now_s)
        while transfer.active:
            due = [fid for fid in transfer.active if network.finish_time(fid) <= limit]
            if not due:
                return
            network.finish_many(now_s, due)
            for flow_id in due:
                transfer.active.remove(flow_id)
                for link in self._owner.pop(flow_id)[1]:
                    self._num_flows[link] -= 1
                    self._busy_until[link] = max(self._busy_until[link], now_s)

    def _next_event_s(self, transfer: _Transfer) -> float:
        if transfer.active:
            return min(self.network.finish_time(fid) for fid in transfer.active)
        return transfer.floor_s

    def _moved(self, exclude: int) -> list[tuple[int, float]]:
        """(transfer id, next event s) of the other transfers whose next event moved earlier.

        One that moved later is not reported: the engine's event for it fires early, `complete`
        finds nothing due and re-arms it at its true time. That saves re-arming every transfer
        on a shared link each time another joins it (their rates all drop)."""
        owner = self._owner
        touched = {owner[fid][0] for fid in self.network.pop_updated_ids() if fid in owner}
        touched.discard(exclude)
        moved = []
        for tid in sorted(touched):
            transfer = self._transfers[tid]
            next_s = self._next_event_s(transfer)
            if next_s < transfer.next_s:
                transfer.next_s = next_s
                moved.append((tid, next_s))
        return moved


Spec = tuple[tuple[int, ...], float, object]


def _merge_alike(
    specs: list[Spec], latencies: list[float]
) -> tuple[list[Spec], list[float], list[int]]:
    """Merge flows of one transfer that are exactly alike (path, bytes, latency) into one flow
    of weight k carrying k times the bytes: max-min gives it k times each one's rate, so it
    ends when they would, the other flows get the same rates, and the links the same bytes."""
    merged: dict[tuple[object, tuple[int, ...], float, float], int] = {}
    out: list[Spec] = []
    out_latencies: list[float] = []
    weights: list[int] = []
    for (path, num_bytes, owner), latency_s in zip(specs, latencies, strict=True):
        key = (owner, path, num_bytes, latency_s)
        index = merged.get(key)
        if index is None:
            merged[key] = len(out)
            out.append((path, num_bytes, owner))
            out_latencies.append(latency_s)
            weights.append(1)
        else:
            weights[index] += 1
    for index, weight in enumerate(weights):
        if weight > 1:
            path, num_bytes, owner = out[index]
            out[index] = (path, num_bytes * weight, owner)
    return out, out_latencies, weights


def _slack(now_s: float) -> float:
    """Two times closer than this are the same event (relative 1e-10)."""
    return 1e-10 * max(1.0, abs(now_s))
