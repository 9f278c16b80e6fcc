"""KV transport of a low node-affinity deployment: each unit's transfers stay inside a node.

Algorithm 2 places stage s of a unit's prefill and decode instances on the same node, so the KV
cache of every stage moves over NVLink, all stages' shards in parallel. A transfer between
instances of different units (when the dispatcher crosses units) goes over the NICs.
Uncontended, like the engine's DirectTransport; it implements the engine's Transport protocol.
"""

from __future__ import annotations

from servesim.search.shapes import Shape
from servesim.specs.cluster import ClusterSpec


class LowAffinityTransport:
    """Transfers between instances (global indices, group order) of a low-affinity shape."""

    def __init__(self, cluster: ClusterSpec, shape: Shape) -> None:
        self._cluster = cluster
        self._unit: list[int] = []
        self._gpus: list[int] = []
        for group in shape.groups:
            per_unit = max(1, group.num_instances // shape.num_units)
            self._unit += [i // per_unit for i in range(group.num_instances)]
            self._gpus += [group.gpus_per_instance] * group.num_instances
        self._next_id = 0

    def link(self, src: int, dst: int) -> tuple[float, float]:
        """(bytes_per_s, latency_s) between two instances."""
        c = self._cluster
        if self._unit[src] == self._unit[dst]:
            per_link, latency_s = c.intra_node_bytes_per_s, c.intra_node_latency_s
        else:
            per_link, latency_s = c.inter_node_bytes_per_s, c.inter_node_latency_s
        return per_link * min(self._gpus[src], self._gpus[dst]), latency_s

    def start(
        self, now_s: float, request_id: int, src: int, dst: int, num_bytes: float
    ) -> list[tuple[int, float]]:
        bytes_per_s, latency_s = self.link(src, dst)
        self._next_id += 1
        return [(self._next_id, now_s + latency_s + num_bytes / bytes_per_s)]

    def complete(self, now_s: float, transfer_id: int) -> list[tuple[int, float]]:
        return []
