"""Write a search's `--out DIR`: the files the report command reads.

search.json        the --json object
candidates.csv     the ranked table
curves.csv         attainment vs rate of every simulated candidate
best_colocated/, best_disaggregated/
    summary.json   metrics.summarize of one simulation at the goodput rate
    records.csv    per-request records of that simulation
    slo_scale.csv  attainment vs SLO scale factor (both SLOs scaled, 0.5 .. 2) at that rate
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from servesim.search.evaluate import simulate_shape
from servesim.search.export import CURVE_COLUMNS, TABLE_COLUMNS, curve_rows, result_dict, table_rows
from servesim.search.problem import SearchProblem
from servesim.search.results import Candidate, SearchResult

SLO_SCALES = tuple(round(0.5 + 0.1 * i, 2) for i in range(16))
"""SLO scale factors of slo_scale.csv: 0.5, 0.6, ..., 2.0."""


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_search(
    out_dir: Path, result: SearchResult, problem: SearchProblem, simulate_best: bool = True
) -> None:
    """Write every file of `out_dir` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "search.json", result_dict(result, problem))
    write_csv(out_dir / "candidates.csv", TABLE_COLUMNS, table_rows(result))
    write_csv(out_dir / "curves.csv", CURVE_COLUMNS, curve_rows(result))
    if not simulate_best:
        return
    for name, cand in (
        ("best_colocated", result.best_colocated),
        ("best_disaggregated", result.best_disaggregated),
    ):
        if cand is not None and cand.goodput_per_s:
            write_best(out_dir / name, problem, cand)


def write_best(folder: Path, problem: SearchProblem, cand: Candidate) -> None:
    """Simulate `cand`'s whole deployment at its goodput rate and write the three files."""
    from servesim.metrics import summarize

    folder.mkdir(parents=True, exist_ok=True)
    rate = float(cand.goodput_per_s or 0.0)
    sim = simulate_shape(problem, cand.shape, rate)
    summary = summarize(sim.records, problem.ttft_slo_s, problem.tpot_slo_s)
    write_json(
        folder / "summary.json",
        _jsonable(
            {
                "candidate_id": cand.id,
                "rate_per_s": rate,
                "num_gpus": cand.num_gpus,
                "summary": summary,
            }
        ),
    )
    columns = sim.records.as_dict()
    write_csv(folder / "records.csv", list(columns), _record_rows(columns))
    write_csv(
        folder / "slo_scale.csv",
        (
            "slo_scale",
            "ttft_slo_s",
            "tpot_slo_s",
            "attainment_ttft",
            "attainment_tpot",
            "attainment_joint",
        ),
        slo_scale_rows(problem, sim.records),
    )


def slo_scale_rows(problem: SearchProblem, records: Any) -> list[dict[str, float]]:
    """Attainment with both SLOs multiplied by each factor of SLO_SCALES."""
    from servesim.metrics import attainment

    rows = []
    for scale in SLO_SCALES:
        ttft, tpot = problem.ttft_slo_s * scale, problem.tpot_slo_s * scale
        rows.append(
            {
                "slo_scale": scale,
                "ttft_slo_s": ttft,
                "tpot_slo_s": tpot,
                "attainment_ttft": attainment(records, ttft, math.inf),
                "attainment_tpot": attainment(records, math.inf, tpot),
                "attainment_joint": attainment(records, ttft, tpot),
            }
        )
    return rows


def _record_rows(columns: dict[str, np.ndarray]) -> Iterable[dict[str, Any]]:
    lists = {k: v.tolist() for k, v in columns.items()}
    for i in range(len(next(iter(lists.values()), []))):
        yield {
            k: ("" if isinstance(v[i], float) and math.isnan(v[i]) else v[i])
            for k, v in lists.items()
        }


def _jsonable(obj: Any) -> Any:
    """Dataclasses, numpy scalars and NaN made JSON-safe (NaN and infinities become null)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
