"""The KV-cache transfer hook between a prefill and a decode instance.

The engine calls `Transport.start` when a decode instance admits a request whose KV sits on a
prefill instance, and `complete` when a transfer's finish event fires. Both return
(transfer_id, finish_s) for every transfer whose finish time is new or moved, so a model with
link sharing can slow down transfers already in flight; the engine keeps one versioned event
per transfer and ignores the superseded ones.

`DirectTransport` is the default: bytes / bandwidth + latency of the link between the two
instances, no contention. Instances are laid out first-fit on nodes in group order; two
instances inside one node talk over NVLink (PCIe without it), others over the NICs. A TP x PP
instance moves its shards in parallel, one link per GPU pair, so the bandwidth is multiplied by
the smaller of the two GPU counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from servesim.specs.cluster import ClusterSpec


class Transport(Protocol):
    """Moves KV caches between instances (global instance indices)."""

    def start(
        self, now_s: float, request_id: int, src: int, dst: int, num_bytes: float
    ) -> list[tuple[int, float]]:
        """Begin a transfer; return (transfer_id, finish_s) of it and of every moved transfer."""
        ...

    def complete(self, now_s: float, transfer_id: int) -> list[tuple[int, float]]:
        """A transfer's event fired; return the (transfer_id, finish_s) pairs that moved.

        Returning `transfer_id` itself re-arms it: only a part of it ended (e.g. one of its
        shard flows) and the KV is not on the decode side yet.
        """
        ...


def first_fit_nodes(gpus_per_instance: Sequence[int], gpus_per_node: int) -> list[tuple[int, ...]]:
    """Nodes each instance occupies: first fit in order; a larger-than-node instance takes
    whole fresh nodes."""
    free: list[int] = []
    placed: list[tuple[int, ...]] = []
    for need in gpus_per_instance:
        if need > gpus_per_node:
            first = len(free)
            count = -(-need // gpus_per_node)
            free.extend([0] * count)
            placed.append(tuple(range(first, first + count)))
            continue
        node = next((i for i, f in enumerate(free) if f >= need), None)
        if node is None:
            free.append(gpus_per_node)
            node = len(free) - 1
        free[node] -= need
        placed.append((node,))
    return placed


class DirectTransport:
    """Uncontended transfers: finish = start + latency + bytes / (per-link bandwidth x links)."""

    def __init__(
        self,
        cluster: ClusterSpec,
        gpus_per_instance: Sequence[int],
        nodes: Sequence[tuple[int, ...]] | None = None,
    ) -> None:
        """`nodes`: the nodes each instance occupies (default: first fit in instance order)."""
        if nodes is None:
            nodes = first_fit_nodes(gpus_per_instance, cluster.gpus_per_node)
        self._nodes = list(nodes)
        self._gpus = list(gpus_per_instance)
        self._cluster = cluster
        self._next_id = 0
        self._link_cache: dict[tuple[int, int], tuple[float, float]] = {}

    def link(self, src: int, dst: int) -> tuple[float, float]:
        """(bytes_per_s, latency_s) between two instances."""
        key = (src, dst)
        cached = self._link_cache.get(key)
        if cached is None:
            c = self._cluster
            same_node = len(self._nodes[src]) == 1 and self._nodes[src] == self._nodes[dst]
            per_link = c.intra_node_bytes_per_s if same_node else c.inter_node_bytes_per_s
            latency = c.intra_node_latency_s if same_node else c.inter_node_latency_s
            cached = (per_link * min(self._gpus[src], self._gpus[dst]), latency)
            self._link_cache[key] = cached
        return cached

    def start(
        self, now_s: float, request_id: int, src: int, dst: int, num_bytes: float
    ) -> list[tuple[int, float]]:
        bytes_per_s, latency_s = self.link(src, dst)
        self._next_id += 1
        return [(self._next_id, now_s + latency_s + num_bytes / bytes_per_s)]

    def complete(self, now_s: float, transfer_id: int) -> list[tuple[int, float]]:
        return []
