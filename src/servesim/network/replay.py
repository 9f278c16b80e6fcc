"""Run a fixed list of flows through a `FlowNetwork` with a tiny event loop of its own.

The engine interleaves flows with compute events; this helper is for everything that only needs
the network: the KV transfer of one request on an otherwise idle cluster, the tests and the
benchmarks. Flows with equal start times start together (one recompute).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servesim.network.flows import FlowNetwork, FlowRecord, Path


@dataclass(frozen=True)
class FlowSpec:
    """One flow to replay: when it starts (s), its path (link indices) and its size (bytes)."""

    start_s: float
    path: Path
    num_bytes: float


def replay_flows(network: FlowNetwork, specs: Sequence[FlowSpec]) -> list[FlowRecord]:
    """Start every spec at its time, run until all complete; records in the order of `specs`."""
    order = sorted(range(len(specs)), key=lambda i: (specs[i].start_s, i))
    records: list[FlowRecord | None] = [None] * len(specs)
    spec_of_flow: dict[int, int] = {}
    next_start = 0
    while next_start < len(order) or network.num_active:
        upcoming = network.next_completion()
        start_s = specs[order[next_start]].start_s if next_start < len(order) else None
        if start_s is not None and (upcoming is None or start_s <= upcoming[0]):
            batch = _same_time(specs, order, next_start)
            ids = network.start_many(
                start_s, [(specs[i].path, specs[i].num_bytes, i) for i in batch]
            )
            spec_of_flow.update(zip(ids, batch, strict=True))
            next_start += len(batch)
        else:
            assert upcoming is not None
            finish_s, flow_id = upcoming
            records[spec_of_flow[flow_id]] = network.complete(finish_s, flow_id)
        network.pop_updates()  # this loop asks next_completion() instead of keeping a heap
    return [record for record in records if record is not None]


def _same_time(specs: Sequence[FlowSpec], order: list[int], first: int) -> list[int]:
    start_s = specs[order[first]].start_s
    batch = []
    for i in order[first:]:
        if specs[i].start_s != start_s:
            break
        batch.append(i)
    return batch
