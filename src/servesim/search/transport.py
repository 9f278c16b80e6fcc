"""KV transport of a low node-affinity deployment: each unit's transfers stay inside a node.

Algorithm 2 places stage s of a unit's prefill and decode instances on the same node, so the KV
cache of every stage moves over NVLink, all stages' shards in parallel. A transfer between
instances of different units (when the dispatcher crosses units) goes over the NICs.
Uncontended: the engine's DirectTransport with each unit as one node.
"""

from __future__ import annotations

from servesim.engine.transport import DirectTransport
from servesim.search.shapes import Shape
from servesim.specs.cluster import ClusterSpec


def low_affinity_transport(cluster: ClusterSpec, shape: Shape) -> DirectTransport:
    """Transfers between instances (global indices, group order) of a low-affinity shape."""
    units: list[tuple[int, ...]] = []
    gpus: list[int] = []
    for group in shape.groups:
        per_unit = max(1, group.num_instances // shape.num_units)
        units += [(i // per_unit,) for i in range(group.num_instances)]
        gpus += [group.gpus_per_instance] * group.num_instances
    return DirectTransport(cluster, gpus, nodes=units)
