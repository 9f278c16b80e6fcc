"""Turn one request's KV-cache move (prefill instance -> decode instance) into flows.

Sharding: a stage of an instance holds a contiguous range of layers (split as evenly as
possible, earlier stages take the extra layer); each TP shard of a stage holds an equal fraction
of the KV heads, shard i the fraction [i/tp, (i+1)/tp). A prefill shard sends to every decode
shard whose layer range and head fraction overlap its own, the overlap's share of the bytes.
Fractions (not whole heads) keep the total exactly one copy of the KV cache, also when the
number of KV heads is not a multiple of TP.

Timing modes (see docs/network.md):
- 'after_prefill': every flow starts when the prefill ends.
- 'layerwise': layer l's KV exists when layer l's compute ends, compute time being spread
  evenly over the layers. Every flow starts when the first layer's compute ends, and the
  transfer counts as done no earlier than `not_before_s`: the end of compute of the flow's last
  layer, plus the path latency, plus that one layer's bytes at the path's uncontended bandwidth.
  With the same network state this is never slower than 'after_prefill'.

A request's KV is at the decode side at `max(flow finish, not_before_s)` over its flows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from servesim.errors import require
from servesim.network.placement import Stages
from servesim.network.topology import Topology

KV_MODES = ("after_prefill", "layerwise")


@dataclass(frozen=True)
class ShardFlow:
    """Bytes from one GPU to another; for KV, the layers [first_layer, first_layer+num_layers)."""

    src_gpu: int
    dst_gpu: int
    num_bytes: float
    first_layer: int = 0
    num_layers: int = 1


@dataclass(frozen=True)
class KvFlowPlan:
    """One shard flow with its path and timing: start at `start_s`, done >= `not_before_s`."""

    shard: ShardFlow
    path: tuple[int, ...]
    start_s: float
    not_before_s: float


def layer_ranges(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """[first, end) layer range of each of `pp` stages; earlier stages take the extra layers."""
    require(
        isinstance(num_layers, int) and num_layers >= pp,
        "num_layers",
        num_layers,
        f"an integer >= pp ({pp})",
    )
    base, extra = divmod(num_layers, pp)
    bounds = [0]
    for stage in range(pp):
        bounds.append(bounds[-1] + base + (stage < extra))
    return list(itertools.pairwise(bounds))


def split_between_shards(
    src_gpus: Sequence[int], dst_gpus: Sequence[int], num_bytes: float
) -> list[tuple[int, int, float]]:
    """(src, dst, bytes) for data sharded evenly over `src_gpus`, needed evenly by `dst_gpus`.

    Shard i of n holds the fraction [i/n, (i+1)/n); each pair gets its overlap's share. Used for
    KV heads and for activations between pipeline stages.
    """
    num_src, num_dst = len(src_gpus), len(dst_gpus)
    pieces = []
    for i, src in enumerate(src_gpus):
        for j, dst in enumerate(dst_gpus):
            # In units of 1/(num_src*num_dst): src i covers [i*num_dst, (i+1)*num_dst).
            low, high = max(i * num_dst, j * num_src), min((i + 1) * num_dst, (j + 1) * num_src)
            if high > low:
                pieces.append((src, dst, num_bytes * (high - low) / (num_src * num_dst)))
    return pieces


def kv_shard_flows(
    prefill: Stages, decode: Stages, num_tokens: int, kv_bytes_per_token: float, num_layers: int
) -> list[ShardFlow]:
    """Shard flows moving `num_tokens` tokens of KV (`kv_bytes_per_token` over all layers)."""
    require(
        isinstance(num_tokens, int) and num_tokens >= 0, "num_tokens", num_tokens, "an integer >= 0"
    )
    require(
        math.isfinite(kv_bytes_per_token) and kv_bytes_per_token > 0,
        "kv_bytes_per_token",
        kv_bytes_per_token,
        "a finite number > 0",
    )
    bytes_per_layer = num_tokens * kv_bytes_per_token / num_layers
    flows = []
    for p_stage, (p_first, p_end) in zip(
        prefill, layer_ranges(num_layers, len(prefill)), strict=True
    ):
        for d_stage, (d_first, d_end) in zip(
            decode, layer_ranges(num_layers, len(decode)), strict=True
        ):
            first, end = max(p_first, d_first), min(p_end, d_end)
            if end <= first:
                continue
            for src, dst, num_bytes in split_between_shards(
                p_stage, d_stage, bytes_per_layer * (end - first)
            ):
                flows.append(ShardFlow(src, dst, num_bytes, first, end - first))
    return flows


def activation_flows(
    stage_a: Sequence[int], stage_b: Sequence[int], num_bytes: float
) -> list[ShardFlow]:
    """Flows carrying `num_bytes` of activations from pipeline stage a to stage b."""
    return [
        ShardFlow(src, dst, part)
        for src, dst, part in split_between_shards(stage_a, stage_b, num_bytes)
    ]


def plan_kv_flows(
    topology: Topology,
    shards: Sequence[ShardFlow],
    mode: str,
    prefill_start_s: float,
    prefill_end_s: float,
    num_layers: int,
) -> list[KvFlowPlan]:
    """Path and timing of each KV shard flow under `mode` ('after_prefill' or 'layerwise')."""
    require(mode in KV_MODES, "kv_mode", mode, f"one of {', '.join(KV_MODES)}")
    require(
        math.isfinite(prefill_start_s) and prefill_start_s <= prefill_end_s,
        "prefill_end_s",
        prefill_end_s,
        f"a finite time >= prefill_start_s={prefill_start_s}",
    )
    layer_s = (prefill_end_s - prefill_start_s) / num_layers
    plans = []
    for shard in shards:
        path = topology.path(shard.src_gpu, shard.dst_gpu)
        if mode == "after_prefill":
            plans.append(KvFlowPlan(shard, path, prefill_end_s, prefill_end_s))
            continue
        last_layer_done_s = prefill_start_s + (shard.first_layer + shard.num_layers) * layer_s
        layer_bytes = shard.num_bytes / shard.num_layers
        one_layer_s = layer_bytes / topology.path_bandwidth_bytes_per_s(path)
        not_before_s = last_layer_done_s + topology.path_latency_s(path) + one_layer_s
        plans.append(KvFlowPlan(shard, path, prefill_start_s + layer_s, not_before_s))
    return plans


def kv_ready_s(plans: Sequence[KvFlowPlan], finish_s: Sequence[float]) -> float:
    """When the whole KV cache is at the decode side, given each plan's flow finish time."""
    return max(
        (max(f, plan.not_before_s) for plan, f in zip(plans, finish_s, strict=True)),
        default=-math.inf,
    )
