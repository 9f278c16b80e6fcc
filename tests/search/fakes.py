"""A synthetic evaluator: closed-form attainment curves, so search logic is tested fast.

Capacity of a prefill instance grows sub-linearly with TP and PP, decode differently, so the
best configurations differ by phase; attainment falls linearly once the rate passes 70% of the
capacity. The bound is the capacity (a true upper bound: the goodput is at most 0.735x it).
Prefill on one GPU is infeasible (its unloaded attainment bound is 0.5).
Every simulated point is counted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from servesim.search import RatePoint, SearchProblem, Shape, ShapeBounds
from servesim.search.shapes import GroupShape

CALLS: Counter[str] = Counter()


def _prefill_cap(g: GroupShape) -> float:
    return g.num_instances * 2.0 * g.tp**0.8 * g.pp**0.9


def _decode_cap(g: GroupShape) -> float:
    return g.num_instances * 3.0 * g.tp**0.6 * g.pp**0.97


def _caps(shape: Shape) -> tuple[float, float]:
    p = shape.group("prefill") or shape.group("colocated")
    d = shape.group("decode") or shape.group("colocated")
    cp = _prefill_cap(p) if p else math.inf
    cd = _decode_cap(d) if d else math.inf
    col = shape.group("colocated")
    if col is not None:  # time-shared: both phases on one instance
        both = 1.0 / (1.0 / cp + 1.0 / cd) * (1.15 if col.policy == "chunked" else 1.0)
        return both, both
    if shape.affinity == "high":
        cp *= 0.97  # KV over the slower inter-node links
    return cp, cd


def _attainment(rate: float, cap: float) -> float:
    return max(0.0, min(1.0, 1.0 - 2.0 * (rate / (0.7 * cap) - 1.0)))


@dataclass(frozen=True)
class FakeEvaluator:
    name: str = "fake"

    def bounds(self, problem: SearchProblem, shape: Shape) -> ShapeBounds:
        p = shape.group("prefill") or shape.group("colocated")
        ub = 0.5 if p is not None and p.tp * p.pp == 1 else 1.0
        cp, cd = _caps(shape)
        cap = {"ttft": cp, "tpot": cd}.get(shape.metric, min(cp, cd))
        return ShapeBounds(ub, cap)

    def point(self, problem: SearchProblem, shape: Shape, rate_per_s: float) -> RatePoint:
        CALLS[shape.key] += 1
        cp, cd = _caps(shape)
        a_ttft, a_tpot = _attainment(rate_per_s, cp), _attainment(rate_per_s, cd)
        return RatePoint(
            rate_per_s,
            a_ttft,
            a_tpot,
            min(a_ttft, a_tpot),
            0.1 * rate_per_s / cp,
            0.01 * rate_per_s / cd,
        )
