"""Error statistics of a validation run: per group, the median and p90 absolute percentage error
of TTFT and TPOT, and the unsupported rows counted by reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servesim.errors import InputError
from servesim.validate.runner import RowResult

GROUP_FIELDS = ("system", "model", "catalog_model", "backend", "mode", "precision")
DEFAULT_GROUP_BY = ("system", "model", "backend", "mode")
MIN_TARGET_ROWS = 20  # the targets apply to groups of at least this many rows


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Errors of one group of supported rows, in percent."""

    key: tuple[str, ...]
    num_rows: int
    median_ape_ttft: float
    p90_ape_ttft: float
    median_ape_tpot: float
    p90_ape_tpot: float

    def as_dict(self, group_by: Sequence[str]) -> dict[str, object]:
        out: dict[str, object] = dict(zip(group_by, self.key, strict=True))
        out.update(
            num_rows=self.num_rows,
            median_ape_ttft=self.median_ape_ttft,
            p90_ape_ttft=self.p90_ape_ttft,
            median_ape_tpot=self.median_ape_tpot,
            p90_ape_tpot=self.p90_ape_tpot,
        )
        return out


def parse_group_by(text: str) -> tuple[str, ...]:
    """'system,model' -> ('system', 'model'); every name must be a known field."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in GROUP_FIELDS:
            raise InputError(
                "group-by", name, f"comma-separated fields among {', '.join(GROUP_FIELDS)}"
            )
    if not names:
        raise InputError("group-by", text, f"at least one of {', '.join(GROUP_FIELDS)}")
    return names


def group_value(result: RowResult, name: str) -> str:
    if name == "catalog_model":
        return result.model_name or "-"
    if name == "precision":
        return result.row.precision or "bf16"
    return str(getattr(result.row, name))


def summarize_errors(apes: np.ndarray) -> tuple[float, float]:
    """(median, p90) of absolute percentage errors."""
    return float(np.median(apes)), float(np.percentile(apes, 90))


def group_stats(
    results: Sequence[RowResult], group_by: Sequence[str] = DEFAULT_GROUP_BY
) -> list[GroupStats]:
    """Statistics of each group of supported rows, sorted by group key."""
    groups: dict[tuple[str, ...], list[RowResult]] = {}
    for result in results:
        if result.supported:
            groups.setdefault(tuple(group_value(result, n) for n in group_by), []).append(result)
    out = []
    for key in sorted(groups):
        members = groups[key]
        ttft = summarize_errors(np.array([r.ape_ttft for r in members]))
        tpot = summarize_errors(np.array([r.ape_tpot for r in members]))
        out.append(GroupStats(key, len(members), ttft[0], ttft[1], tpot[0], tpot[1]))
    return out


def overall_stats(results: Sequence[RowResult]) -> GroupStats | None:
    """All supported rows as one group (None when there are none)."""
    groups = group_stats(results, ())
    return groups[0] if groups else None


def unsupported_counts(results: Sequence[RowResult]) -> list[tuple[str, int]]:
    """(reason, number of rows), most frequent first."""
    counts = Counter(r.reason for r in results if not r.supported and r.reason)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
