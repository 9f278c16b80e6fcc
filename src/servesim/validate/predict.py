"""Simulate one measured row as the closed-loop benchmark it was: C clients, fixed ISL and OSL.

The deployment mirrors the row: aggregated rows are one group of identical colocated workers
(TP x PP each); disaggregated rows have their prefill and decode worker counts and parallelism.
The serving engine's differences (scheduling policy, chunk budget, overheads, kernel
efficiencies, fp8 KV cache) come from its `BackendProfile`. TTFT and TPOT are means over the
requests of the steady state (TTFT plus the backend's front-end `request_overhead_s`): the
first C requests (all sent at time 0) and the last C (sent while clients stop) are left out
when there are enough requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servesim.engine import Deployment, InstanceGroup, simulate
from servesim.latency import Efficiency, build_roofline, resolve_efficiency
from servesim.latency.backends import BackendProfile
from servesim.latency.base import LatencyModel
from servesim.specs import ModelSpec, make_cluster
from servesim.specs.cluster import ClusterSpec
from servesim.specs.parallel import ParallelSpec, check_parallel
from servesim.validate.silicon import Side, SiliconRow
from servesim.validate.support import Target
from servesim.workload import ClosedLoopWorkload, Fixed

MIN_REQUESTS = 64
REQUESTS_PER_CLIENT = 4


@dataclass(frozen=True, slots=True)
class Prediction:
    """Simulated means of one row, in milliseconds, over `num_measured` steady-state requests."""

    ttft_ms: float
    tpot_ms: float
    num_requests: int
    num_measured: int


def num_requests_for(concurrency: int, max_requests: int | None = None) -> int:
    """Requests to simulate: REQUESTS_PER_CLIENT per client, at least MIN_REQUESTS, at most
    `max_requests` (never fewer than the clients)."""
    wanted = max(MIN_REQUESTS, REQUESTS_PER_CLIENT * concurrency)
    if max_requests is not None:
        wanted = min(wanted, max(max_requests, concurrency))
    return wanted


def row_model(target: Target, backend: BackendProfile) -> ModelSpec:
    weights = target.weight_precision
    return target.model.with_precision(weights, backend.kv_precision(weights))


def row_cluster(target: Target, row: SiliconRow) -> ClusterSpec:
    node = target.node_gpus
    return make_cluster(
        target.gpu,
        gpus_per_node=node,
        nics_per_node=node,
        num_nodes=max(1, math.ceil(row.num_gpus / node)),
    )


def _group(role: str, side: Side, row: SiliconRow, backend: BackendProfile) -> InstanceGroup:
    max_seqs = side.batch_size or row.concurrency
    if role == "decode":
        return InstanceGroup(
            role, ParallelSpec(side.tp, side.pp), side.num_workers, max_batch_seqs=max_seqs
        )
    return InstanceGroup(
        role,
        ParallelSpec(side.tp, side.pp),
        side.num_workers,
        policy=backend.policy,
        max_batch_seqs=max_seqs,
        max_prefill_tokens=backend.chunk_tokens,
        chunk_tokens=backend.chunk_tokens,
    )


def build_row(
    row: SiliconRow, target: Target, backend: BackendProfile
) -> tuple[Deployment, dict[str, LatencyModel]]:
    """The deployment of `row` and its latency models (raises InputError if it cannot run)."""
    model = row_model(target, backend)
    cluster = row_cluster(target, row)
    if row.agg is not None:
        groups: tuple[InstanceGroup, ...] = (_group("colocated", row.agg, row, backend),)
    else:
        assert row.prefill is not None and row.decode is not None
        groups = (
            _group("prefill", row.prefill, row, backend),
            _group("decode", row.decode, row, backend),
        )
    eff = backend.apply(resolve_efficiency(None, target.gpu) or Efficiency())
    models: dict[str, LatencyModel] = {}
    for group in groups:
        check_parallel(
            model, group.parallel, cluster, max_request_tokens=row.isl + row.osl, role=group.role
        )
        models[group.role] = build_roofline(
            model, cluster, group.parallel, eff, target.weight_precision
        )
    return Deployment(model, cluster, groups), models


def steady_window(num_requests: int, concurrency: int) -> slice:
    """Indices (by arrival order) of the steady-state requests."""
    if num_requests >= 3 * concurrency:
        return slice(concurrency, num_requests - concurrency)
    if num_requests > concurrency:
        return slice(concurrency, num_requests)
    return slice(0, num_requests)


def predict_row(
    row: SiliconRow,
    target: Target,
    backend: BackendProfile,
    max_requests: int | None = None,
    seed: int = 0,
) -> Prediction:
    """Simulate `row` under `backend`; raises InputError when the deployment cannot run."""
    deployment, models = build_row(row, target, backend)
    n = num_requests_for(row.concurrency, max_requests)
    workload = ClosedLoopWorkload(row.concurrency, Fixed(row.isl, row.osl), n)
    rec = simulate(deployment, workload, seed=seed, latency_models=models).records
    order = np.argsort(rec.arrival_s, kind="stable")[steady_window(n, row.concurrency)]
    done = order[~np.isnan(rec.finish_s[order])]
    ttft = rec.first_token_s[done] - rec.arrival_s[done]
    decode_tokens = np.maximum(rec.output_tokens[done] - 1, 1)
    tpot = (rec.finish_s[done] - rec.first_token_s[done]) / decode_tokens
    if len(done) == 0:
        return Prediction(math.nan, math.nan, n, 0)
    ttft_s = float(ttft.mean()) + backend.request_overhead_s
    return Prediction(1e3 * ttft_s, 1e3 * float(tpot.mean()), n, len(done))
