"""Search results as plain data: the `--json` object, the ranked table, the curves.

`result_dict` is the JSON object (`best`, `best_colocated`, `best_disaggregated`, `ratio`,
`candidates`, `phases`, the problem and counts). `table_rows` / `curve_rows` are the rows of
candidates.csv and curves.csv. Colocated configurations put their one kind of instance under
`prefill` and leave `decode` null.
"""

from __future__ import annotations

import math
from typing import Any

from servesim import __version__
from servesim.search.problem import SearchProblem
from servesim.search.results import Candidate, SearchResult, bottleneck
from servesim.search.shapes import GroupShape

TABLE_COLUMNS = (
    "rank",
    "candidate_id",
    "status",
    "mode",
    "policy",
    "affinity",
    "prefill_tp",
    "prefill_pp",
    "prefill_instances",
    "decode_tp",
    "decode_pp",
    "decode_instances",
    "num_gpus",
    "goodput_per_s",
    "goodput_per_gpu_per_s",
    "goodput_below_per_s",
    "p90_ttft_s",
    "p90_tpot_s",
    "bottleneck",
    "num_simulations",
)
CURVE_COLUMNS = (
    "candidate_id",
    "rate_per_s",
    "attainment_ttft",
    "attainment_tpot",
    "attainment_joint",
)


def _num(x: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become null."""
    return None if x is None or not math.isfinite(x) else x


def _group(g: GroupShape | None) -> dict[str, int] | None:
    return None if g is None else {"tp": g.tp, "pp": g.pp, "instances": g.num_instances}


def candidate_dict(c: Candidate) -> dict[str, Any]:
    """One candidate as the JSON output describes it."""
    shape = c.shape
    col = shape.group("colocated")
    at = c.at_goodput
    return {
        "id": c.id,
        "stage": c.stage,
        "status": c.status,
        "mode": shape.mode,
        "policy": col.policy if col else None,
        "affinity": shape.affinity,
        "prefill": _group(col or shape.group("prefill")),
        "decode": None if col else _group(shape.group("decode")),
        "num_gpus": shape.num_gpus,
        "goodput_per_s": _num(c.goodput_per_s),
        "goodput_per_gpu_per_s": _num(c.goodput_per_gpu_per_s),
        "goodput_exact": c.exact,
        "goodput_below_per_s": _num(c.goodput_below_per_s),
        "p90_ttft_s": _num(at.p90_ttft_s) if at else None,
        "p90_tpot_s": _num(at.p90_tpot_s) if at else None,
        "bottleneck": bottleneck(c),
        "simulated_unit": c.unit.key,
        "copies": c.copies,
        "attainment_upper_bound": c.bounds.attainment_ub,
        "throughput_bound_per_s": _num(c.bounds.capacity_per_s * c.copies),
        "num_simulations": c.num_simulated,
    }


def problem_dict(problem: SearchProblem) -> dict[str, Any]:
    cluster = problem.cluster
    return {
        "model": problem.model.name,
        "gpu": cluster.gpu.name,
        "nodes": cluster.num_nodes,
        "gpus_per_node": cluster.gpus_per_node,
        "nic_gbps": cluster.nic_gbps,
        "workload": problem.workload.label,
        "requests": problem.workload.num_requests,
        "ttft_slo_s": problem.ttft_slo_s,
        "tpot_slo_s": problem.tpot_slo_s,
        "attainment": problem.target,
        "rel_tol": problem.bisection.rel_tol,
        "seed": problem.seed,
    }


def result_dict(result: SearchResult, problem: SearchProblem) -> dict[str, Any]:
    """The `--json` object."""

    def one(c: Candidate | None) -> dict[str, Any] | None:
        return None if c is None else candidate_dict(c)

    return {
        "servesim_version": __version__,
        "problem": problem_dict(problem),
        "best": one(result.best),
        "best_colocated": one(result.best_colocated),
        "best_disaggregated": one(result.best_disaggregated),
        "disaggregated_over_colocated": _num(result.ratio),
        "num_candidates": len(result.candidates),
        "num_evaluated": sum(c.status == "evaluated" for c in result.all_evaluated),
        "num_pruned": sum(c.status != "evaluated" for c in result.all_evaluated),
        "num_simulations": result.num_simulations,
        "num_cached_points": result.num_cached_points,
        "wall_s": result.wall_s,
        "candidates": [candidate_dict(c) for c in result.candidates],
        "phases": [candidate_dict(c) for c in result.phases],
    }


def table_rows(result: SearchResult) -> list[dict[str, Any]]:
    """Rows of candidates.csv, ranked (unevaluated candidates last)."""
    rows = []
    for rank, c in enumerate(result.candidates, start=1):
        d = candidate_dict(c)
        p, q = d["prefill"] or {}, d["decode"] or {}
        rows.append(
            {
                "rank": rank,
                "candidate_id": c.id,
                "status": c.status,
                "mode": d["mode"],
                "policy": d["policy"] or "",
                "affinity": d["affinity"] or "",
                "prefill_tp": p.get("tp", ""),
                "prefill_pp": p.get("pp", ""),
                "prefill_instances": p.get("instances", ""),
                "decode_tp": q.get("tp", ""),
                "decode_pp": q.get("pp", ""),
                "decode_instances": q.get("instances", ""),
                "num_gpus": d["num_gpus"],
                "goodput_per_s": _blank(d["goodput_per_s"]),
                "goodput_per_gpu_per_s": _blank(d["goodput_per_gpu_per_s"]),
                "goodput_below_per_s": _blank(d["goodput_below_per_s"]),
                "p90_ttft_s": _blank(d["p90_ttft_s"]),
                "p90_tpot_s": _blank(d["p90_tpot_s"]),
                "bottleneck": d["bottleneck"],
                "num_simulations": c.num_simulated,
            }
        )
    return rows


def curve_rows(result: SearchResult) -> list[dict[str, Any]]:
    """Rows of curves.csv: every simulated (candidate, rate) point, phases included. Rates are
    those of the simulated unit times its copies (the deployment's rate)."""
    rows = []
    for c in result.all_evaluated:
        for p in c.result.points if c.result else ():
            rows.append(
                {
                    "candidate_id": c.id,
                    "rate_per_s": p.rate_per_s * c.copies,
                    "attainment_ttft": p.attainment_ttft,
                    "attainment_tpot": p.attainment_tpot,
                    "attainment_joint": p.attainment_joint,
                }
            )
    return rows


def _blank(x: float | None) -> float | str:
    return "" if x is None else x
