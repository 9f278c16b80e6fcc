"""Turn a Deployment into instances: latency models, KV capacities, L_m, rejection limits."""

from __future__ import annotations

from dataclasses import dataclass

from servesim.engine.colocated import ColocatedInstance
from servesim.engine.config import Deployment, InstanceGroup
from servesim.engine.decode import DecodeInstance
from servesim.engine.instance import Instance
from servesim.engine.prefill import PrefillInstance, saturating_prefill_tokens
from servesim.engine.records import RecordBuffer
from servesim.errors import InputError
from servesim.latency import build_latency_model
from servesim.latency.base import LatencyModel
from servesim.specs.parallel import check_parallel, memory_plan


@dataclass
class Instances:
    """The instances of a deployment, by role, plus the limits that reject a request."""

    prefill: list[PrefillInstance]
    decode: list[DecodeInstance]
    colocated: list[ColocatedInstance]
    all: list[Instance]
    max_input_tokens: int  # a longer prompt is rejected
    max_total_tokens: int  # input + output beyond this is rejected


def kv_capacity_tokens(deployment: Deployment, group: InstanceGroup) -> tuple[int, int]:
    """KV tokens one instance of `group` holds, and the most one request may hold (one
    attention DP rank's; the same without attention DP). Raises InputError if the weights do
    not fit."""
    role = group.role
    if group.kv_capacity_tokens is not None:
        return group.kv_capacity_tokens, group.kv_capacity_tokens
    check_parallel(
        deployment.model, group.parallel, deployment.cluster, max_request_tokens=1, role=role
    )
    plan = memory_plan(
        deployment.model,
        group.parallel,
        deployment.cluster.gpu.memory_bytes,
        block_tokens=deployment.block_tokens,
        # a running batch holds at most max_batch_seqs windows; prefill KV is charged per token
        max_seqs=group.max_batch_seqs if role != "prefill" else None,
    )
    return plan.instance_kv_tokens, plan.kv_capacity_tokens


def _latency(deployment: Deployment, group: InstanceGroup, given: dict | None) -> LatencyModel:
    if given is not None and group.role in given:
        return given[group.role]
    return build_latency_model(
        deployment.model,
        deployment.cluster,
        group.parallel,
        deployment.profile,
        backend=deployment.backend,
    )


def build_instances(
    deployment: Deployment,
    rec: RecordBuffer,
    fast: bool,
    latency_models: dict | None = None,
) -> Instances:
    """Instances in group order (global indices 0, 1, ...)."""
    if latency_models is not None:
        unknown = set(latency_models) - {g.role for g in deployment.groups}
        if unknown:
            raise InputError("latency_models", sorted(unknown), "keys among the deployment's roles")
    out = Instances([], [], [], [], 1 << 62, deployment.model.max_context_tokens)
    for group in deployment.groups:
        lat = _latency(deployment, group, latency_models)
        cap, request_cap = kv_capacity_tokens(deployment, group)
        lm = group.max_prefill_tokens or 0
        if not lm and group.role != "decode":
            lm = saturating_prefill_tokens(lat, min(deployment.model.max_context_tokens, 16384))
        for _ in range(group.num_instances):
            index = len(out.all)
            inst: Instance
            if group.role == "prefill":
                inst = PrefillInstance(index, lat, cap, lm, rec)
                out.prefill.append(inst)
                out.max_input_tokens = min(out.max_input_tokens, request_cap)
            elif group.role == "decode":
                inst = DecodeInstance(
                    index,
                    lat,
                    cap,
                    group.max_batch_seqs,
                    rec,
                    fast,
                    on_demand=group.decode_kv_policy == "on_demand",
                    watermark_tokens=int(group.kv_watermark * cap),
                    kv_local=deployment.mode == "decode_only",
                )
                out.decode.append(inst)
                out.max_total_tokens = min(out.max_total_tokens, request_cap + 1)
            else:
                budget = group.chunk_tokens if group.policy == "chunked" else lm
                chunked = group.policy == "chunked"
                inst = ColocatedInstance(
                    index, lat, cap, group.max_batch_seqs, budget, chunked, rec, fast
                )
                out.colocated.append(inst)
                out.max_total_tokens = min(out.max_total_tokens, request_cap)
            out.all.append(inst)
    return out
