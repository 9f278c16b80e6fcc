"""The evaluation function: one shape's goodput, pure and picklable.

An `Evaluator` answers two questions about a shape under a problem: its bounds (without
simulating) and the attainment at one rate (one simulation). `SimEvaluator` asks the engine;
tests substitute synthetic evaluators. `run_task` is what executors ship to workers: it runs the
goodput bisection for one shape, reading and writing each rate point through the disk cache, so
an interrupted search resumes where it stopped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from servesim.search.bounds import (
    RequestLengths,
    ShapeBounds,
    attainment_upper_bound,
    decode_capacity_per_s,
    finite_horizon,
    prefill_capacity_per_s,
    unloaded_tpot_s,
    unloaded_ttft_s,
)
from servesim.search.cache import PointCache
from servesim.search.goodput import GoodputResult, RatePoint, find_goodput
from servesim.search.problem import SearchProblem
from servesim.search.shapes import GroupShape, Shape
from servesim.search.transport import low_affinity_transport


class Evaluator(Protocol):
    """Bounds and single-rate attainment of shapes. Implementations must be picklable."""

    def bounds(self, problem: SearchProblem, shape: Shape) -> ShapeBounds: ...

    def point(self, problem: SearchProblem, shape: Shape, rate_per_s: float) -> RatePoint: ...


@dataclass(frozen=True, slots=True)
class Task:
    """One goodput search: shape, problem, evaluator and the bound that starts the bracket."""

    evaluator: Evaluator
    problem: SearchProblem
    shape: Shape
    bound_per_s: float
    stop_below_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """A finished goodput search and how many simulations it actually ran (cache misses)."""

    result: GoodputResult
    num_simulated: int


def run_task(task: Task, cache_dir: str | None) -> TaskOutcome:
    """Goodput of `task.shape`; rate points come from the cache when present."""
    cache = PointCache(Path(cache_dir)) if cache_dir else None
    prefix = f"{task.problem.fingerprint()}|{task.evaluator!r}|{task.shape.key}"
    num_simulated = 0

    def evaluate(rate_per_s: float) -> RatePoint:
        nonlocal num_simulated
        key = f"{prefix}|{rate_per_s!r}"
        hit = cache.get(key) if cache else None
        if hit is not None:
            return hit
        num_simulated += 1
        point = task.evaluator.point(task.problem, task.shape, rate_per_s)
        if cache:
            cache.put(key, point)
        return point

    result = find_goodput(
        evaluate, task.bound_per_s, task.problem.bisection, task.shape.metric, task.stop_below_per_s
    )
    return TaskOutcome(result, num_simulated)


# ---- the engine-backed evaluator --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimEvaluator:
    """Bounds from the latency model, attainment from `servesim.engine.simulate`."""

    name: str = "engine"

    def bounds(self, problem: SearchProblem, shape: Shape) -> ShapeBounds:
        return shape_bounds(problem, shape)

    def point(self, problem: SearchProblem, shape: Shape, rate_per_s: float) -> RatePoint:
        records = simulate_shape(problem, shape, rate_per_s).records
        if shape.metric == "tpot":
            records = decode_wait_in_tpot(records)
        return rate_point(problem, records, rate_per_s)


def decode_wait_in_tpot(records: Any) -> Any:
    """Decode-only records with TPOT measured from arrival (when the KV cache arrived).

    A decode-only run emits the first token at admission, so a request waiting for KV memory
    would count its wait nowhere and an overloaded decode phase would look perfect. The decode
    phase is judged on TPOT alone (Algorithm 1), so the wait is charged to TPOT: conservative,
    since in the end-to-end disaggregated run that wait lands in TTFT instead.
    """
    return replace(records, first_token_s=records.arrival_s.copy())


def simulate_shape(problem: SearchProblem, shape: Shape, rate_per_s: float) -> Any:
    """One engine simulation of `shape` at `rate_per_s` (same seed, same requests).

    Low affinity keeps each unit's KV transfers inside a node (`low_affinity_transport`). A
    high-affinity deployment with both phases moves its KV caches as flows that share the
    cluster's links (`servesim.network`), so NIC bandwidth and contention count.
    """
    from servesim.engine import simulate
    from servesim.network.deployment import flow_transport

    deployment = build_deployment(problem, shape)
    transport: Any = None
    if shape.affinity == "low":
        transport = low_affinity_transport(problem.cluster, shape)
    elif shape.group("prefill") and shape.group("decode"):
        transport = flow_transport(deployment, "high")
    workload = problem.workload.build(rate_per_s)
    return simulate(deployment, workload, seed=problem.seed, transport=transport)


def build_deployment(problem: SearchProblem, shape: Shape) -> Any:
    """The engine's Deployment for a shape."""
    from servesim.engine import Deployment, InstanceGroup
    from servesim.specs.parallel import ParallelSpec

    groups = []
    for g in shape.groups:
        group = InstanceGroup(g.role, ParallelSpec(g.tp, g.pp), g.num_instances, policy=g.policy)
        if problem.max_batch_seqs is not None:
            group = replace(group, max_batch_seqs=problem.max_batch_seqs)
        if problem.max_prefill_tokens is not None:
            group = replace(group, max_prefill_tokens=problem.max_prefill_tokens)
        groups.append(group)
    return Deployment(
        problem.model,
        problem.cluster,
        tuple(groups),
        profile=problem.profile,
        kv_transfer=problem.kv_transfer,
    )


def rate_point(problem: SearchProblem, records: Any, rate_per_s: float) -> RatePoint:
    """Attainments and p90 latencies of one simulation's records."""
    from servesim.metrics import latencies, meets_slos

    ttft_ok, tpot_ok, joint_ok = meets_slos(records, problem.ttft_slo_s, problem.tpot_slo_s)
    ttft_s, tpot_s, _ = latencies(records)
    n = max(1, len(records))
    moved = np.isfinite(records.kv_end_s) & (ttft_s > 0)
    kv_s = records.kv_end_s[moved] - records.kv_start_s[moved]
    kv_share = float(np.mean(kv_s / ttft_s[moved])) if kv_s.size else 0.0
    return RatePoint(
        rate_per_s=rate_per_s,
        attainment_ttft=float(np.count_nonzero(ttft_ok)) / n,
        attainment_tpot=float(np.count_nonzero(tpot_ok)) / n,
        attainment_joint=float(np.count_nonzero(joint_ok)) / n,
        p90_ttft_s=_p90(ttft_s),
        p90_tpot_s=_p90(tpot_s),
        kv_share_of_ttft=kv_share,
    )


def _p90(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, 0.9)) if finite.size else math.nan


# ---- bounds from the latency model ------------------------------------------------------------
def shape_bounds(problem: SearchProblem, shape: Shape) -> ShapeBounds:
    """Unloaded attainment bound and throughput bound of `shape` (no simulation)."""
    req = RequestLengths.of(problem)
    prefill = shape.group("prefill") or shape.group("colocated")
    decode = shape.group("decode") or shape.group("colocated")
    ttft = _unloaded(problem, "ttft", prefill.tp, prefill.pp) if prefill else None
    tpot = _unloaded(problem, "tpot", decode.tp, decode.pp) if decode else None
    capacity, kv_limited = math.inf, False
    if prefill is not None and shape.metric != "tpot":
        capacity = prefill_capacity_per_s(_latency(problem, prefill.tp, prefill.pp), prefill, req)
    if decode is not None and shape.metric != "ttft":
        decode_cap, kv_limited = _decode_capacity(problem, decode, req)
        kv_limited = kv_limited and decode_cap < capacity
        capacity = min(capacity, decode_cap)
    ub = attainment_upper_bound(shape.metric, problem, ttft, tpot)
    return ShapeBounds(ub, finite_horizon(capacity, problem, req, shape.metric), kv_limited)


def _decode_capacity(
    problem: SearchProblem, group: GroupShape, req: RequestLengths
) -> tuple[float, bool]:
    from servesim.specs.parallel import ParallelSpec, memory_plan

    plan = memory_plan(
        problem.model,
        ParallelSpec(group.tp, group.pp),
        problem.cluster.gpu.memory_bytes,
        max_seqs=problem.max_batch_seqs,  # as the engine's decode instances reserve windows
    )
    return decode_capacity_per_s(
        _latency(problem, group.tp, group.pp),
        group,
        req,
        plan.kv_capacity_tokens,
        problem.tpot_slo_s,
        problem.max_batch_seqs,
    )


@functools.lru_cache(maxsize=256)
def _unloaded(problem: SearchProblem, kind: str, tp: int, pp: int) -> np.ndarray:
    """Per-request unloaded TTFT ('ttft') or TPOT ('tpot') on a TP x PP instance, seconds."""
    req = RequestLengths.of(problem)
    fn = unloaded_ttft_s if kind == "ttft" else unloaded_tpot_s
    return fn(_latency(problem, tp, pp), req)


@functools.lru_cache(maxsize=256)
def _latency(problem: SearchProblem, tp: int, pp: int) -> Any:
    from servesim.latency import build_latency_model
    from servesim.specs.parallel import ParallelSpec

    return build_latency_model(
        problem.model, problem.cluster, ParallelSpec(tp, pp), problem.profile
    )
