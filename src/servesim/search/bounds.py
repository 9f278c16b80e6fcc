"""Bounds that let the search skip simulations: unloaded attainment and a throughput bound.

Unloaded attainment: queueing and batching only add time, so a request whose prompt alone
takes longer than the TTFT SLO to prefill on an idle instance, or whose decode steps alone
exceed the TPOT SLO, misses at every rate. The fraction of the workload's actual requests
(common random numbers: the same requests at every rate) that could meet the SLOs unloaded is
an upper bound on attainment; below the target the shape is infeasible without simulating.

Throughput bound: no deployment serves more requests per second than its busiest phase can
process at its most efficient batch, within the KV memory and (for decode) the TPOT SLO. A
finite simulation of N requests can look healthy slightly above that rate (the backlog has not
built up yet), so the bound adds that finite-horizon slack and a safety factor for the latency
model's nonlinearity. It starts the bisection and prunes shapes that cannot beat the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servesim.latency import LatencyModel
from servesim.search.problem import SearchProblem
from servesim.search.shapes import GroupShape

SAFETY_FACTOR = 1.5
"""Margin on the throughput bound for effects the simple bound does not see."""
MAX_HORIZON_GAIN = 4.0
"""Most a finite run's hidden backlog may raise the bound (when the slack exceeds 1/capacity)."""
PREFILL_BOUND_TOKENS = 8192
"""Prefill batch (tokens) assumed in the bound: at least as large as any engine budget."""


@dataclass(frozen=True, slots=True)
class ShapeBounds:
    """attainment_ub: best attainment reachable at any rate; capacity_per_s: goodput bound."""

    attainment_ub: float
    capacity_per_s: float
    kv_limited: bool = False

    def feasible(self, target: float) -> bool:
        return self.attainment_ub >= target


@dataclass(frozen=True, slots=True)
class RequestLengths:
    """The workload's requests, as float arrays (tokens)."""

    inputs: np.ndarray
    outputs: np.ndarray

    @staticmethod
    def of(problem: SearchProblem) -> RequestLengths:
        inputs, outputs = problem.workload.lengths(problem.seed)
        return RequestLengths(inputs.astype(np.float64), outputs.astype(np.float64))

    @property
    def mean_decode_steps(self) -> float:
        return float(np.maximum(self.outputs - 1, 0).mean())


def unloaded_ttft_s(lat: LatencyModel, req: RequestLengths) -> np.ndarray:
    """Per request: prefill time of its prompt alone on an idle instance, seconds."""
    uniq, inverse = np.unique(req.inputs.astype(np.int64), return_inverse=True)
    times = np.array([lat.prefill_s(1, int(n), int(n) * int(n)) for n in uniq])
    return times[inverse]


def unloaded_tpot_s(lat: LatencyModel, req: RequestLengths) -> np.ndarray:
    """Per request: mean decode-step time with the sequence alone, seconds (0 if one token)."""
    base_s, slope_s = lat.decode_coeffs(1)
    mean_ctx = req.inputs + req.outputs / 2.0
    return np.where(req.outputs > 1, base_s + slope_s * mean_ctx, 0.0)


def attainment_upper_bound(
    metric: str, problem: SearchProblem, ttft_s: np.ndarray | None, tpot_s: np.ndarray | None
) -> float:
    """Fraction of requests that meet the SLO(s) of `metric` unloaded."""
    ok: np.ndarray | bool = True
    if ttft_s is not None and metric in ("joint", "ttft"):
        ok = ok & (ttft_s <= problem.ttft_slo_s)
    if tpot_s is not None and metric in ("joint", "tpot"):
        ok = ok & (tpot_s <= problem.tpot_slo_s)
    return float(np.mean(ok))


def prefill_capacity_per_s(lat: LatencyModel, group: GroupShape, req: RequestLengths) -> float:
    """Requests/s the group's prefill can process at best: full batches on the busiest stage."""
    mean_l = float(req.inputs.mean())
    mean_l2 = float((req.inputs**2).mean())
    k = max(1, int(PREFILL_BOUND_TOKENS // mean_l))
    stage_s = lat.prefill_stage_s(k, round(k * mean_l), round(k * mean_l2))
    return group.num_instances * k / stage_s


def decode_capacity_per_s(
    lat: LatencyModel,
    group: GroupShape,
    req: RequestLengths,
    kv_capacity_tokens: int,
    tpot_slo_s: float | None,
    max_batch_seqs: int | None,
) -> tuple[float, bool]:
    """Requests/s the group's decode can finish (the largest useful batch, all stages busy),
    and whether the KV memory, rather than the batch limit or the TPOT SLO, sets that batch."""
    if req.mean_decode_steps <= 0:
        return math.inf, False
    ctx = float((req.inputs + req.outputs / 2.0).mean())
    kv_batch = max(1, int(kv_capacity_tokens // ctx))
    batch = kv_batch if max_batch_seqs is None else min(kv_batch, max_batch_seqs * group.pp)
    if tpot_slo_s is not None:
        batch = min(batch, _tpot_batch_limit(lat, ctx, tpot_slo_s, batch))
    step_s = lat.decode_s(batch, round(batch * ctx / 2))  # half the context: a generous step
    capacity = group.num_instances * group.pp * batch / (step_s * req.mean_decode_steps)
    return capacity, batch == kv_batch


def _tpot_batch_limit(lat: LatencyModel, ctx: float, tpot_slo_s: float, upper: int) -> int:
    """Largest batch whose step (at half the mean context) fits the TPOT SLO; at least 1."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if lat.decode_s(mid, round(mid * ctx / 2)) <= tpot_slo_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


def finite_horizon(
    capacity_per_s: float, problem: SearchProblem, req: RequestLengths, metric: str
) -> float:
    """A goodput bound from a capacity: add the backlog a finite run of N requests can hide.

    Late requests of an overloaded run wait roughly i * (1/rate_served - 1/rate_offered); they
    still meet the SLO while that wait fits in the TTFT SLO (or, spread over the decode steps,
    in the TPOT SLO), so a short run passes slightly above capacity.
    """
    if not math.isfinite(capacity_per_s):
        return capacity_per_s
    slack_s = problem.tpot_slo_s * req.mean_decode_steps if metric == "tpot" else problem.ttft_slo_s
    inv = 1.0 / capacity_per_s - slack_s / max(1.0, problem.target * problem.workload.num_requests)
    bound = 1.0 / inv if inv > 0 else math.inf
    return SAFETY_FACTOR * min(bound, MAX_HORIZON_GAIN * capacity_per_s)
