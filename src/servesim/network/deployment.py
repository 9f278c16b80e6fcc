"""The network of an engine `Deployment`: its topology, placement and `FlowTransport`, and the
activation bytes its pipeline stages send each other.

Activations between pipeline stages are accounted, not timed: the latency models already hold
their time. Per token and stage boundary one hidden vector moves (`hidden_size` values of
`ACTIVATION_BYTES` bytes), split over the TP ranks as `activation_flows` does; prefill moves
every prompt token, decode one token per generated token after the first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from servesim.network.kv_transfer import activation_flows
from servesim.network.placement import InstanceShape, Stages, place_instances
from servesim.network.topology import Topology, gbps_to_bytes_per_s
from servesim.network.transport import FlowTransport

ACTIVATION_BYTES = 2
"""Bytes per activation value (bf16/fp16; fp8 weights still pass bf16 activations)."""


def instance_shapes(deployment: Any) -> list[InstanceShape]:
    """One `InstanceShape` per instance of an engine `Deployment`, in engine (global) order (an
    attention-DP stage as one group of its TP x DP GPUs)."""
    return [
        InstanceShape(g.parallel.tp * g.parallel.dp, g.parallel.pp, g.role)
        for g in deployment.groups
        for _ in range(g.num_instances)
    ]


def flow_transport(
    deployment: Any,
    affinity: str = "high",
    topology: Topology | None = None,
    background_gbps: Mapping[str, float] | None = None,
) -> FlowTransport:
    """A `FlowTransport` for an engine `Deployment`: topology from its cluster (unless given),
    instances placed with `affinity` ('high' or 'low'), KV mode from `deployment.kv_transfer`.

    `background_gbps` maps link names (e.g. 'n0.nic0.tx') to a constant background load, Gbps;
    it lowers what the link offers KV flows and is not counted in the link's bytes.
    """
    topo = topology if topology is not None else Topology.from_cluster(deployment.cluster)
    placements = place_instances(topo, instance_shapes(deployment), affinity)
    background = None
    if background_gbps:
        background = [0.0] * len(topo.links())
        for name, gbps in background_gbps.items():
            background[topo.link_index(name)] = gbps_to_bytes_per_s(gbps)
    return FlowTransport(
        topo, placements, deployment.model.num_layers, deployment.kv_transfer, background
    )


def tokens_through(records: Any, num_instances: int) -> np.ndarray:
    """Tokens each instance pushed through its pipeline: prompt tokens of the prefills it ran
    and generated tokens (after the first) of the decodes it ran."""
    tokens = np.zeros(num_instances)
    prefilled = ~np.isnan(records.prefill_end_s) & (records.prefill_instance >= 0)
    np.add.at(tokens, records.prefill_instance[prefilled], records.input_tokens[prefilled])
    decoded = ~np.isnan(records.finish_s) & (records.decode_instance >= 0)
    steps = np.maximum(records.output_tokens[decoded] - 1, 0)
    np.add.at(tokens, records.decode_instance[decoded], steps)
    return tokens


def activation_link_bytes(
    topology: Topology, placements: Sequence[Stages], tokens: np.ndarray, hidden_size: int
) -> list[float]:
    """Bytes per link of the activations that pass between pipeline stages."""
    carried = [0.0] * len(topology.links())
    for stages, num_tokens in zip(placements, tokens.tolist(), strict=True):
        num_bytes = num_tokens * hidden_size * ACTIVATION_BYTES
        for stage_a, stage_b in itertools.pairwise(stages):
            for flow in activation_flows(stage_a, stage_b, num_bytes):
                for link in topology.path(flow.src_gpu, flow.dst_gpu):
                    carried[link] += flow.num_bytes
    return carried
