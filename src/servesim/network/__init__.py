"""Network model: topology, placement of instances on GPUs, transfers and fluid link sharing."""

from servesim.network.deployment import flow_transport, instance_shapes
from servesim.network.flows import FlowNetwork, FlowRecord, FlowUpdate
from servesim.network.kv_transfer import (
    KV_MODES,
    KvFlowPlan,
    ShardFlow,
    activation_flows,
    kv_ready_s,
    kv_shard_flows,
    plan_kv_flows,
)
from servesim.network.link_metrics import (
    LinkStats,
    bottleneck_link,
    link_stats,
    link_utilization,
    transfer_time_by_tag,
    utilization_over_time,
)
from servesim.network.maxmin import max_min_rates
from servesim.network.placement import InstanceShape, Stages, pair_prefill_decode, place_instances
from servesim.network.replay import FlowSpec, replay_flows
from servesim.network.summary import network_summary
from servesim.network.topology import TOPOLOGY_PRESETS, Link, Topology, gbps_to_bytes_per_s
from servesim.network.transport import FlowTransport

__all__ = [
    "KV_MODES",
    "TOPOLOGY_PRESETS",
    "FlowNetwork",
    "FlowRecord",
    "FlowSpec",
    "FlowTransport",
    "FlowUpdate",
    "InstanceShape",
    "KvFlowPlan",
    "Link",
    "LinkStats",
    "ShardFlow",
    "Stages",
    "Topology",
    "activation_flows",
    "bottleneck_link",
    "flow_transport",
    "gbps_to_bytes_per_s",
    "instance_shapes",
    "kv_ready_s",
    "kv_shard_flows",
    "link_stats",
    "link_utilization",
    "max_min_rates",
    "network_summary",
    "pair_prefill_decode",
    "place_instances",
    "plan_kv_flows",
    "replay_flows",
    "transfer_time_by_tag",
    "utilization_over_time",
]
