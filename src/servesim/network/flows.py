"""Flow-level (fluid) network: max-min fair sharing of links, recomputed only where it changed.

A flow moves `num_bytes` along a path of directed links. While it is active it holds a rate (its
max-min fair share over every link of its path, see `maxmin.py`). Rates change only when a flow
starts or completes, or when a link's background load changes; then only the flows connected to
that change (the connected component of flows sharing links, transitively) are recomputed.

Timing of one flow: it takes its share of the links from `start`; the first `latency` seconds
(the sum of its links' latencies) move no bytes; afterwards bytes drain at its current rate. So
one flow alone finishes at `start + latency + num_bytes / bandwidth`.

The engine owns the event heap. After each `start`/`complete`/`set_background` it calls
`pop_updates()`, which returns one `FlowUpdate(flow_id, version, finish_s)` per flow whose finish
time moved; heap entries whose version is no longer current (`is_current`) are stale and skipped
(lazy invalidation). At a current entry's time the engine calls `complete(now_s, flow_id)`.
`next_completion()` offers the same information for callers without a heap.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from servesim.errors import InputError, require
from servesim.network.maxmin import NO_LINK, max_min_rates

Path = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FlowUpdate:
    """A flow's new finish time (s); entries with an older `version` are stale."""

    flow_id: int
    version: int
    finish_s: float


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One completed flow. `bottleneck_link` is the link it was limited by for most bytes."""

    flow_id: int
    tag: object
    path: Path
    num_bytes: float
    start_s: float
    finish_s: float
    bottleneck_link: int

    @property
    def transfer_time_s(self) -> float:
        """Seconds from start to finish."""
        return self.finish_s - self.start_s


class _Flow:
    __slots__ = (
        "active_from_s",
        "bottleneck",
        "bytes_by_bottleneck",
        "finish_s",
        "num_bytes",
        "path",
        "rate",
        "remaining_bytes",
        "start_s",
        "tag",
        "updated_s",
        "version",
        "weight",
    )

    def __init__(
        self, path: Path, num_bytes: float, tag: object, now_s: float, latency_s: float
    ) -> None:
        self.path = path
        self.num_bytes = num_bytes
        self.remaining_bytes = num_bytes
        self.tag = tag
        self.start_s = now_s
        self.active_from_s = now_s + latency_s
        self.updated_s = now_s
        self.rate = 0.0
        self.bottleneck = NO_LINK
        self.bytes_by_bottleneck: dict[int, float] = {}
        self.version = 0
        self.finish_s = math.inf
        self.weight = 1


class FlowNetwork:
    """Active flows over links of fixed capacity; see the module docstring for the protocol."""

    def __init__(
        self,
        capacities_bytes_per_s: Sequence[float],
        latencies_s: Sequence[float] | None = None,
        background_bytes_per_s: Sequence[float] | None = None,
        *,
        incremental: bool = True,
    ) -> None:
        """`incremental=False` recomputes all flows on every change (the reference mode)."""
        num_links = len(capacities_bytes_per_s)
        self._capacity = [float(c) for c in capacities_bytes_per_s]
        latencies = [0.0] * num_links if latencies_s is None else latencies_s
        self._latency = [float(x) for x in latencies]
        self._background = [0.0] * num_links
        self._check_links()
        self._effective = list(self._capacity)
        self._incremental = incremental
        self._flows: dict[int, _Flow] = {}
        self._on_link: list[set[int]] = [set() for _ in range(num_links)]
        self._next_id = 0
        self._now_s = 0.0
        self._updates: set[int] = set()  # flows whose finish time moved since the last pop
        self._heap: list[tuple[float, int, int]] | None = None  # built by next_completion
        self._link_bytes = [0.0] * num_links
        self._link_rate = [0.0] * num_links
        self._series: list[list[tuple[float, float]]] = [[(0.0, 0.0)] for _ in range(num_links)]
        background = () if background_bytes_per_s is None else background_bytes_per_s
        require(
            len(background) in (0, num_links),
            "background_bytes_per_s",
            f"{len(background)} values",
            f"one per link ({num_links})",
        )
        for link, rate in enumerate(background):
            self._set_background_value(link, rate)

    def _check_links(self) -> None:
        for link, cap in enumerate(self._capacity):
            require(
                math.isfinite(cap) and cap > 0,
                f"capacities_bytes_per_s[{link}]",
                cap,
                "a finite number > 0",
            )
        require(
            len(self._latency) == len(self._capacity),
            "latencies_s",
            f"{len(self._latency)} values",
            f"one per link ({len(self._capacity)})",
        )
        for link, lat in enumerate(self._latency):
            require(
                math.isfinite(lat) and lat >= 0, f"latencies_s[{link}]", lat, "a finite number >= 0"
            )

    # ----------------------------------------------------------------- the event protocol

    def start(self, now_s: float, path: Path, num_bytes: float, tag: object = None) -> int:
        """Start a flow of `num_bytes` along `path` (link indices) at `now_s`; its id."""
        return self.start_many(now_s, [(path, num_bytes, tag)])[0]

    def start_many(
        self,
        now_s: float,
        flows: Iterable[tuple[Path, float, object]],
        latencies_s: Sequence[float] | None = None,
        weights: Sequence[int] | None = None,
    ) -> list[int]:
        """Start several flows at `now_s` with one recompute; their ids, in order.

        `latencies_s`, one per flow, replaces the latency of the flow's path (e.g. 0 for a flow
        that was already moving outside the network and is handed over). `weights`, one per
        flow (default 1), lets a flow stand for that many equal flows along its path: it gets
        that many fair shares (see `max_min_rates`), so k alike flows can be run as one.
        """
        self._check_clock(now_s)
        new_flows = [
            self._new_flow(now_s, tuple(path), num_bytes, tag) for path, num_bytes, tag in flows
        ]  # all checked before any is added
        if latencies_s is not None:  # hot path: messages are formatted only on failure
            if len(latencies_s) != len(new_flows):
                raise InputError(
                    "latencies_s", len(latencies_s), f"one per flow ({len(new_flows)})"
                )
            for flow, latency_s in zip(new_flows, latencies_s, strict=True):
                if not (math.isfinite(latency_s) and latency_s >= 0):
                    raise InputError("latencies_s", latency_s, "finite numbers >= 0")
                flow.active_from_s = now_s + latency_s
        if weights is not None:
            if len(weights) != len(new_flows):
                raise InputError("weights", len(weights), f"one per flow ({len(new_flows)})")
            for flow, weight in zip(new_flows, weights, strict=True):
                if not (isinstance(weight, int) and weight >= 1):
                    raise InputError("weights", weight, "integers >= 1")
                flow.weight = weight
        self._now_s = now_s
        ids = list(range(self._next_id, self._next_id + len(new_flows)))
        self._next_id += len(new_flows)
        seeds: set[int] = set()
        for flow_id, flow in zip(ids, new_flows, strict=True):
            self._flows[flow_id] = flow
            if not flow.path:
                self._set_finish(flow_id, flow, flow.active_from_s)
            for link in flow.path:
                self._on_link[link].add(flow_id)
            seeds.update(flow.path)
        self._recompute(now_s, seeds)
        return ids

    def complete(self, now_s: float, flow_id: int) -> FlowRecord:
        """Remove flow `flow_id`, which finishes at `now_s` (its current finish time)."""
        return self.complete_many(now_s, [flow_id])[0]

    def complete_many(self, now_s: float, flow_ids: Sequence[int]) -> list[FlowRecord]:
        """Remove several flows that all finish at `now_s`, with one recompute; their records."""
        flows = self._remove(now_s, flow_ids)
        return [self._record(fid, flow, now_s) for fid, flow in zip(flow_ids, flows, strict=True)]

    def finish_many(self, now_s: float, flow_ids: Sequence[int]) -> None:
        """`complete_many` for callers that need no records (the engine's transport)."""
        self._remove(now_s, flow_ids)

    def _remove(self, now_s: float, flow_ids: Sequence[int]) -> list[_Flow]:
        self._check_clock(now_s)
        flows = [self._finishing(now_s, flow_id) for flow_id in flow_ids]
        self._now_s = now_s
        seeds: set[int] = set()
        on_link, link_rate, updates = self._on_link, self._link_rate, self._updates
        for flow_id, flow in zip(flow_ids, flows, strict=True):
            del self._flows[flow_id]
            self._credit(flow, flow.remaining_bytes)
            for link in flow.path:
                link_rate[link] -= flow.rate
                on_link[link].discard(flow_id)
            updates.discard(flow_id)
            seeds.update(flow.path)
        self._recompute(now_s, seeds)
        return flows

    def _finishing(self, now_s: float, flow_id: int) -> _Flow:
        flow = self._flows.get(flow_id)
        require(flow is not None, "flow_id", flow_id, "an active flow")
        assert flow is not None
        tolerance_s = 1e-9 * max(1.0, abs(flow.finish_s))
        if now_s < flow.finish_s - tolerance_s:
            raise ValueError(
                f"flow {flow_id} completed at {now_s} before its finish time {flow.finish_s}"
            )
        return flow

    def set_background(self, now_s: float, link: int, rate_bytes_per_s: float) -> None:
        """Fix the background load on `link` from `now_s` on (it reduces the link's capacity)."""
        self._check_clock(now_s)
        self._set_background_value(link, rate_bytes_per_s)
        self._now_s = now_s
        self._recompute(now_s, {link})

    def pop_updates(self) -> list[FlowUpdate]:
        """Flows whose finish time moved since the last call, one entry each, by flow id."""
        flows = self._flows
        updates = [
            FlowUpdate(fid, flows[fid].version, flows[fid].finish_s)
            for fid in sorted(self._updates)
        ]
        self._updates.clear()
        return updates

    def pop_updated_ids(self) -> set[int]:
        """Ids of the flows whose finish time moved since the last call (`pop_updates` without
        building the entries; either call clears them)."""
        updated = self._updates
        self._updates = set()
        return updated

    def is_current(self, flow_id: int, version: int) -> bool:
        """Whether a heap entry (flow_id, version) is still valid."""
        flow = self._flows.get(flow_id)
        return flow is not None and flow.version == version

    def next_completion(self) -> tuple[float, int] | None:
        """(finish_s, flow_id) of the active flow that finishes first; None when there is none."""
        if self._heap is None:  # kept only once a caller asks (the engine owns its own heap)
            self._heap = [(f.finish_s, fid, f.version) for fid, f in self._flows.items()]
            heapq.heapify(self._heap)
        heap = self._heap
        while heap:
            finish_s, flow_id, version = heap[0]
            if self.is_current(flow_id, version):
                return finish_s, flow_id
            heapq.heappop(heap)
        return None

    # ----------------------------------------------------------------- queries

    @property
    def num_active(self) -> int:
        """Flows started and not yet completed."""
        return len(self._flows)

    def num_flows_on(self, link: int) -> int:
        """Active flows crossing `link`."""
        return len(self._on_link[link])

    def finish_time(self, flow_id: int) -> float:
        """Current finish time (s) of an active flow."""
        return self._flows[flow_id].finish_s

    def rate(self, flow_id: int) -> float:
        """Current rate (bytes/s) of an active flow."""
        return self._flows[flow_id].rate

    def rates(self) -> dict[int, float]:
        """Current rate (bytes/s) of every active flow with a non-empty path."""
        return {fid: flow.rate for fid, flow in self._flows.items() if flow.path}

    def paths(self) -> dict[int, Path]:
        """Path of every active flow."""
        return {fid: flow.path for fid, flow in self._flows.items()}

    def effective_capacities(self) -> list[float]:
        """Capacity minus background load of every link, bytes/s."""
        return list(self._effective)

    def link_bytes(self) -> list[float]:
        """Bytes carried by every link so far (completed flows, and active ones up to their
        last update; call `settle` first for an exact mid-run reading)."""
        return list(self._link_bytes)

    def link_rate_series(self, link: int) -> list[tuple[float, float]]:
        """(time_s, total flow rate bytes/s) change points of `link`, starting at (0, 0)."""
        return list(self._series[link])

    def settle(self, now_s: float) -> None:
        """Account the bytes of every active flow up to `now_s` (rates do not change)."""
        self._advance_clock(now_s)
        for flow in self._flows.values():
            self._advance(flow, now_s)

    # ----------------------------------------------------------------- internals

    def _advance_clock(self, now_s: float) -> None:
        self._check_clock(now_s)
        self._now_s = now_s

    def _check_clock(self, now_s: float) -> None:
        if not (math.isfinite(now_s) and now_s >= self._now_s):  # hot path: format on failure
            raise InputError("now_s", now_s, f"a finite time >= the previous call's {self._now_s}")

    def _new_flow(self, now_s: float, path: Path, num_bytes: float, tag: object) -> _Flow:
        if not (math.isfinite(num_bytes) and num_bytes >= 0):
            raise InputError("num_bytes", num_bytes, "a finite number >= 0")
        if len(set(path)) != len(path):
            raise InputError("path", path, "distinct link indices")
        num_links = len(self._capacity)
        latency = self._latency
        latency_s = 0.0
        for link in path:
            if not 0 <= link < num_links:
                raise InputError("path", path, f"link indices in [0, {num_links})")
            latency_s += latency[link]
        return _Flow(path, float(num_bytes), tag, now_s, latency_s)

    def _set_background_value(self, link: int, rate: float) -> None:
        require(
            0 <= link < len(self._capacity),
            "link",
            link,
            f"a link index in [0, {len(self._capacity)})",
        )
        require(
            math.isfinite(rate) and 0 <= rate < self._capacity[link],
            f"background_bytes_per_s[{link}]",
            rate,
            f"in [0, capacity {self._capacity[link]}) bytes/s",
        )
        self._background[link] = float(rate)
        self._effective[link] = self._capacity[link] - self._background[link]

    def _component(self, seeds: set[int]) -> tuple[list[int], set[int]]:
        """Flows connected to the seed links through shared links, and all their links."""
        if not self._incremental:
            links = seeds.union(*(flow.path for flow in self._flows.values()))
            return sorted(fid for fid, flow in self._flows.items() if flow.path), links
        on_link, all_flows = self._on_link, self._flows
        links, frontier = set(seeds), list(seeds)
        flows: set[int] = set()
        while frontier:
            new_flows = on_link[frontier.pop()] - flows
            if not new_flows:
                continue
            flows |= new_flows
            for fid in new_flows:
                for link in all_flows[fid].path:
                    if link not in links:
                        links.add(link)
                        frontier.append(link)
        return sorted(flows), links

    def _recompute(self, now_s: float, seeds: set[int]) -> None:
        flow_ids, links = self._component(seeds)
        if not flow_ids:  # e.g. the last flow on its links completed
            self._record_link_rates(now_s, links)
            return
        flows = [self._flows[fid] for fid in flow_ids]
        rates, bottlenecks = max_min_rates(
            [flow.path for flow in flows], self._effective, [flow.weight for flow in flows]
        )
        link_rate = self._link_rate
        for fid, flow, rate, bottleneck in zip(flow_ids, flows, rates, bottlenecks, strict=True):
            old_rate = flow.rate
            if rate == old_rate and bottleneck == flow.bottleneck:
                continue  # untouched flows keep their progress bookkeeping as it is
            self._advance(flow, now_s)  # bytes so far at the old rate
            flow.bottleneck = bottleneck
            if rate != old_rate:
                delta = rate - old_rate
                for link in flow.path:
                    link_rate[link] += delta
                flow.rate = rate
                active_from_s = flow.active_from_s
                begin_s = now_s if now_s > active_from_s else active_from_s
                self._set_finish(fid, flow, begin_s + flow.remaining_bytes / rate)
        self._record_link_rates(now_s, links)

    def _set_finish(self, flow_id: int, flow: _Flow, finish_s: float) -> None:
        flow.version += 1
        flow.finish_s = finish_s
        self._updates.add(flow_id)
        heap = self._heap
        if heap is None:
            return
        heapq.heappush(heap, (finish_s, flow_id, flow.version))
        if len(heap) > 4 * len(self._flows) + 64:  # drop stale entries, bound memory
            self._heap = [(f.finish_s, fid, f.version) for fid, f in self._flows.items()]
            heapq.heapify(self._heap)

    def _advance(self, flow: _Flow, now_s: float) -> None:
        updated_s, active_from_s = flow.updated_s, flow.active_from_s
        begin_s = updated_s if updated_s > active_from_s else active_from_s
        if now_s > begin_s and flow.rate > 0:
            moved = flow.rate * (now_s - begin_s)
            remaining = flow.remaining_bytes
            self._credit(flow, moved if moved < remaining else remaining)
        if now_s > updated_s:
            flow.updated_s = now_s

    def _credit(self, flow: _Flow, num_bytes: float) -> None:
        flow.remaining_bytes -= num_bytes
        for link in flow.path:
            self._link_bytes[link] += num_bytes
        by_link = flow.bytes_by_bottleneck
        by_link[flow.bottleneck] = by_link.get(flow.bottleneck, 0.0) + num_bytes

    def _record_link_rates(self, now_s: float, links: Iterable[int]) -> None:
        on_link, link_rate, all_series = self._on_link, self._link_rate, self._series
        for link in links:
            if not on_link[link]:
                link_rate[link] = 0.0  # no rounding residue on an idle link
            total, series = link_rate[link], all_series[link]
            last = series[-1][1]
            if total == last or abs(total - last) <= 1e-12 * max(abs(total), abs(last)):
                continue  # math.isclose(rel_tol=1e-12), inlined
            if series[-1][0] == now_s:
                series.pop()
            series.append((now_s, total))

    def _record(self, flow_id: int, flow: _Flow, now_s: float) -> FlowRecord:
        by_link = flow.bytes_by_bottleneck
        bottleneck = max(by_link, key=lambda lk: (by_link[lk], -lk)) if by_link else NO_LINK
        if not flow.path:
            bottleneck = NO_LINK
        return FlowRecord(
            flow_id, flow.tag, flow.path, flow.num_bytes, flow.start_s, now_s, bottleneck
        )
