"""Simulate one measured row as the closed-loop benchmark it was: C clients, fixed ISL and OSL.

The deployment mirrors the row: aggregated rows are one group of identical colocated workers
(TP x PP each); disaggregated rows have their prefill and decode worker counts and parallelism.
The serving engine's differences (scheduling policy, chunk budget, overheads, kernel
efficiencies, fp8 KV cache) come from its `BackendProfile`.

The harness is the row's `bench` (`silicon.Benchmark`; by default aiconfigurator's assumption,
`servesim validate --rounds/--warmup-rounds` to change it): all C clients send their first
request at time 0 (a burst: the first C prompts queue behind each other), each client sends
`warmup_rounds + rounds` requests in all and the mean is taken over every request but the first
`warmup_rounds` per client. Fixed lengths would keep a deterministic simulation in lock-step
waves forever, while a real server drifts out of step within a round or two (timing jitter,
uneven batching); so after the burst the clients are spread evenly over one request cycle (the
k-th request to finish in the first round waits k/C of an estimated cycle before its next
request). TTFT is the mean plus the backend's front-end `request_overhead_s` and its
`first_token_steps` decode steps (each request's own TPOT) between the prefill and the client.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from servesim.engine import Deployment, InstanceGroup, simulate
from servesim.latency import Efficiency, build_roofline, resolve_efficiency
from servesim.latency.backends import BackendProfile
from servesim.latency.base import LatencyModel
from servesim.specs import ModelSpec, make_cluster
from servesim.specs.cluster import ClusterSpec
from servesim.specs.parallel import ParallelSpec, check_parallel
from servesim.validate.silicon import DEFAULT_BENCHMARK, Benchmark, Side, SiliconRow
from servesim.validate.support import Target, expert_parallel
from servesim.workload import ClosedLoopWorkload, Fixed


@dataclass(frozen=True, slots=True)
class StaggeredClosedLoop(ClosedLoopWorkload):
    """A closed loop whose clients, after the first (burst) round, are spread over `cycle_s`:
    the k-th request to finish waits k * cycle_s / concurrency before the client's next request
    (k < concurrency); every later request follows its predecessor at once."""

    cycle_s: float = 0.0

    def think_time_stream(self, seed: int, chunk_size: int = 65536) -> Iterator[np.ndarray]:
        times = np.zeros(self.num_requests)
        first = min(self.concurrency, self.num_requests)
        times[:first] = np.arange(first) * (self.cycle_s / self.concurrency)
        for start in range(0, self.num_requests, chunk_size):
            yield times[start : start + chunk_size]


@dataclass(frozen=True, slots=True)
class Prediction:
    """Simulated means of one row, in milliseconds, over `num_measured` steady-state requests:
    `ttft_ms` as the client sees it, `engine_ttft_ms` from arrival at the engine to its first
    token (without the backend's front end and first-token steps)."""

    ttft_ms: float
    tpot_ms: float
    num_requests: int
    num_measured: int
    engine_ttft_ms: float = math.nan


Number = float | np.ndarray


def client_ttft_ms(
    engine_ttft_ms: Number, tpot_ms: Number, request_overhead_s: Number, first_token_steps: Number
) -> Number:
    """A mean TTFT as the benchmark's client sees it: the engine's plus a backend's front end and
    its first-token steps (each request's own TPOT; their mean is the mean TPOT's). Numbers or
    arrays that broadcast together."""
    return engine_ttft_ms + 1e3 * request_overhead_s + first_token_steps * tpot_ms


def num_requests_for(
    concurrency: int, max_requests: int | None = None, bench: Benchmark = DEFAULT_BENCHMARK
) -> int:
    """Requests to simulate: (warm-up + measured rounds) per client, at most `max_requests`
    (never fewer than the clients)."""
    wanted = (bench.warmup_rounds + bench.rounds) * concurrency
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


def _group(
    role: str, side: Side, row: SiliconRow, target: Target, backend: BackendProfile
) -> InstanceGroup:
    """One worker group; with attention DP each rank schedules its own batch (the row's batch
    size is per rank) within its own token budget, so an instance has DP times both."""
    dp = side.attention_dp
    max_seqs = side.batch_size * dp if side.batch_size else row.concurrency
    parallel = ParallelSpec(side.tp, side.pp, expert_parallel(side, target.model), dp)
    if role == "decode":
        return InstanceGroup(role, parallel, side.num_workers, max_batch_seqs=max_seqs)
    return InstanceGroup(
        role,
        parallel,
        side.num_workers,
        policy=backend.policy,
        max_batch_seqs=max_seqs,
        max_prefill_tokens=backend.chunk_tokens * dp,
        chunk_tokens=backend.chunk_tokens * dp,
    )


def build_row(
    row: SiliconRow, target: Target, backend: BackendProfile, gpu_eff: Efficiency | None = None
) -> tuple[Deployment, dict[str, LatencyModel]]:
    """The deployment of `row` and its latency models (raises InputError if it cannot run).
    The GPU's efficiency factors are `gpu_eff`, by default its shipped profile's."""
    model = row_model(target, backend)
    cluster = row_cluster(target, row)
    if row.agg is not None:
        groups: tuple[InstanceGroup, ...] = (_group("colocated", row.agg, row, target, backend),)
    else:
        assert row.prefill is not None and row.decode is not None
        groups = (
            _group("prefill", row.prefill, row, target, backend),
            _group("decode", row.decode, row, target, backend),
        )
    if gpu_eff is None:
        gpu_eff = resolve_efficiency(None, target.gpu) or Efficiency()
    eff = backend.apply(gpu_eff)
    models: dict[str, LatencyModel] = {}
    for group in groups:
        check_parallel(
            model, group.parallel, cluster, max_request_tokens=row.isl + row.osl, role=group.role
        )
        models[group.role] = build_roofline(
            model, cluster, group.parallel, eff, target.weight_precision
        )
    return Deployment(model, cluster, groups), models


def measured_window(
    num_requests: int, concurrency: int, bench: Benchmark = DEFAULT_BENCHMARK
) -> slice:
    """Indices (by arrival order) of the measured requests: all but the warm-up (the warm-up
    is kept when a cap on the requests leaves nothing else)."""
    skip = bench.warmup_rounds * concurrency
    return slice(skip if skip < num_requests else 0, num_requests)


def cycle_estimate_s(row: SiliconRow, models: dict[str, LatencyModel]) -> float:
    """One request's rough end-to-end time at full concurrency: a lone prefill plus OSL - 1
    decode steps of C sequences at mid-generation context (used only to spread the clients)."""
    prefill = models.get("colocated") or models["prefill"]
    decode = models.get("colocated") or models["decode"]
    side = row.agg or row.decode
    workers = side.num_workers if side is not None else 1
    batch = max(1, math.ceil(row.concurrency / workers))
    ctx = batch * (row.isl + row.osl // 2)
    return prefill.prefill_s(1, row.isl, row.isl * row.isl) + (row.osl - 1) * decode.decode_s(
        batch, ctx
    )


def predict_row(
    row: SiliconRow,
    target: Target,
    backend: BackendProfile,
    max_requests: int | None = None,
    seed: int = 0,
    gpu_eff: Efficiency | None = None,
) -> Prediction:
    """Simulate `row` as its harness (`row.bench`) drove it, under `backend` (on `gpu_eff`, by
    default the GPU's shipped profile); raises InputError when the deployment cannot run."""
    deployment, models = build_row(row, target, backend, gpu_eff)
    n = num_requests_for(row.concurrency, max_requests, row.bench)
    cycle_s = backend.desync * cycle_estimate_s(row, models) if backend.desync else 0.0
    workload = StaggeredClosedLoop(row.concurrency, Fixed(row.isl, row.osl), n, cycle_s=cycle_s)
    rec = simulate(deployment, workload, seed=seed, latency_models=models).records
    order = np.argsort(rec.arrival_s, kind="stable")[measured_window(n, row.concurrency, row.bench)]
    done = order[~np.isnan(rec.finish_s[order])]
    if len(done) == 0:
        return Prediction(math.nan, math.nan, n, 0)
    decode_tokens = np.maximum(rec.output_tokens[done] - 1, 1)
    tpot_ms = 1e3 * float(((rec.finish_s[done] - rec.first_token_s[done]) / decode_tokens).mean())
    engine_ttft_ms = 1e3 * float((rec.first_token_s[done] - rec.arrival_s[done]).mean())
    ttft_ms = float(
        client_ttft_ms(
            engine_ttft_ms, tpot_ms, backend.request_overhead_s, backend.first_token_steps
        )
    )
    return Prediction(ttft_ms, tpot_ms, n, len(done), engine_ttft_ms)
