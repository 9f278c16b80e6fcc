"""Search candidates as the report needs them: id, mode, readable label, GPUs, rank.

Reads `candidates.csv` (flat columns such as `prefill_tp`) and falls back to `search.json`'s
`candidates` list (nested `prefill`/`decode` objects). Configurations are matched by their
shape, so the report finds the best colocated and disaggregated candidates even when the JSON
summary carries no id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from servesim.report.data import ReportData, Table

ID_COLUMNS = ("candidate_id", "id")
PHASES = ("prefill", "decode")
SHAPE_KEYS = ("tp", "pp", "instances")

Shape = tuple[str, tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Candidate:
    """One searched configuration."""

    candidate_id: str
    mode: str  # "colocated" or "disaggregated"
    label: str
    num_gpus: float
    rank: int
    shape: Shape

    @property
    def colocated(self) -> bool:
        return self.mode == "colocated"


def normalize_mode(mode: object) -> str:
    """'colocated' or 'disaggregated' (any 'disagg*' spelling)."""
    return "disaggregated" if str(mode).lower().startswith("disagg") else "colocated"


def _int(value: object) -> int:
    try:
        number = float(str(value))
    except ValueError:
        return 0
    return int(number) if math.isfinite(number) else 0


def _phase(config: dict[str, Any], phase: str) -> tuple[int, ...]:
    nested = config.get(phase)
    if isinstance(nested, dict):
        return tuple(_int(nested.get(k, 0)) for k in SHAPE_KEYS)
    return tuple(_int(config.get(f"{phase}_{k}", 0)) for k in SHAPE_KEYS)


def shape_of(config: dict[str, Any]) -> Shape:
    """(mode, prefill (tp, pp, instances), decode (tp, pp, instances)) of a config dict or row."""
    mode = normalize_mode(config.get("mode", "colocated"))
    decode = _phase(config, "decode") if mode == "disaggregated" else (0, 0, 0)
    return mode, _phase(config, "prefill"), decode


def label_of(shape: Shape) -> str:
    """'TP2 PP1 x4' for colocated; 'P: TP2 PP1 x2 | D: TP1 PP1 x4' for disaggregated."""
    mode, prefill, decode = shape

    def part(p: tuple[int, ...]) -> str:
        return f"TP{p[0]} PP{p[1]} x{p[2]}"

    return part(prefill) if mode == "colocated" else f"P: {part(prefill)} | D: {part(decode)}"


def _row_dicts(table: Table) -> list[dict[str, str]]:
    names = list(table)
    count = len(table[names[0]]) if names else 0
    return [{n: table[n][i] for n in names} for i in range(count)]


def _gpus(config: dict[str, Any], shape: Shape) -> float:
    given = config.get("num_gpus")
    if given not in (None, ""):
        return float(str(given))
    _, p, d = shape
    return float(p[0] * p[1] * p[2] + d[0] * d[1] * d[2])


def _candidate(config: dict[str, Any], index: int) -> Candidate:
    cid = next((str(config[c]) for c in ID_COLUMNS if config.get(c) not in (None, "")), str(index))
    shape = shape_of(config)
    rank = _int(config.get("rank", index + 1)) or index + 1
    label = label_of(shape)
    if config.get("policy") and shape[0] == "colocated":
        label = f"{label} ({config['policy']})"
    if config.get("affinity") and shape[0] == "disaggregated":
        label = f"{label} ({config['affinity']} affinity)"
    return Candidate(cid, shape[0], label, _gpus(config, shape), rank, shape)


def candidates_of(data: ReportData) -> list[Candidate]:
    """Every candidate, in ranked order (best first)."""
    rows: list[dict[str, Any]] = _row_dicts(data.candidates)
    if not rows and data.search:
        rows = [c for c in data.search.get("candidates", []) if isinstance(c, dict)]
    found = [_candidate(row, i) for i, row in enumerate(rows)]
    return sorted(found, key=lambda c: c.rank)


def find_best(data: ReportData, key: str, candidates: list[Candidate]) -> Candidate | None:
    """The candidate that `search.json[key]` names (by id, else by shape), if any."""
    best = (data.search or {}).get(key)
    if not isinstance(best, dict):
        return None
    cid = next((str(best[c]) for c in ID_COLUMNS if best.get(c) not in (None, "")), None)
    shape = shape_of(best)
    by_id = [c for c in candidates if cid is not None and c.candidate_id == cid]
    by_shape = [c for c in candidates if c.shape == shape]
    match = by_id or by_shape
    return match[0] if match else _candidate(best, -1)
