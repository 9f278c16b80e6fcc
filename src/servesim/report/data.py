"""Read the output folder of `servesim search --out DIR` or `servesim simulate --out DIR`.

A search folder holds `search.json`, `candidates.csv`, `curves.csv` and one sub-folder per
chosen configuration (`best_colocated/`, `best_disaggregated/`), each with `summary.json`,
`records.csv`, `slo_scale.csv` and optionally `instances.csv`. A simulate folder holds one run's
files at its top. `network.json` and `queueing.json` are read wherever present. Every file is
optional except that the folder must hold at least one of them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from servesim.errors import InputError
from servesim.report.timeline import InstanceSample, read_instance_samples

RUN_FOLDERS = ("best_colocated", "best_disaggregated")
RUN_FILES = ("summary.json", "records.csv", "slo_scale.csv", "instances.csv")

Table = dict[str, list[str]]


@dataclass(frozen=True)
class RunData:
    """One simulated configuration: its summary, per-request records and optional extras."""

    label: str
    summary: dict[str, Any] = field(default_factory=dict)
    records: Table = field(default_factory=dict)
    slo_scale: Table = field(default_factory=dict)
    samples: tuple[InstanceSample, ...] = ()
    network: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything found in one output folder."""

    root: Path
    search: dict[str, Any] | None = None
    candidates: Table = field(default_factory=dict)
    curves: Table = field(default_factory=dict)
    runs: tuple[RunData, ...] = ()
    network: dict[str, Any] | None = None
    queueing: dict[str, Any] | None = None


def read_table(path: Path) -> Table:
    """A CSV file as columns of strings (header order kept); empty when the file is absent."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        columns: Table = {name: [] for name in header}
        for row in reader:
            for name, value in zip(header, row, strict=False):
                columns[name].append(value)
    return columns


def numbers(table: Table, column: str) -> np.ndarray:
    """A column as floats; empty cells, 'nan', 'none' and non-numbers become NaN."""
    return np.array([_to_float(v) for v in table.get(column, [])], dtype=float)


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        low = text.strip().lower()
        if low in ("true", "false"):
            return float(low == "true")
        return float("nan")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is absent; InputError when it is not valid JSON."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(
            path.name, str(path), f"valid JSON ({err.msg} at line {err.lineno})"
        ) from None
    if not isinstance(value, dict):
        raise InputError(path.name, str(path), "a JSON object")
    return value


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Lift a nested `summary` object (as `search --out` writes it) to the top level."""
    inner = summary.get("summary")
    if not isinstance(inner, dict):
        return summary
    return {**{k: v for k, v in summary.items() if k != "summary"}, **inner}


def read_run(folder: Path, label: str) -> RunData | None:
    """One run folder, or None when it holds none of the run files."""
    if not any((folder / name).is_file() for name in RUN_FILES):
        return None
    samples_path = folder / "instances.csv"
    return RunData(
        label=label,
        summary=flatten_summary(read_json(folder / "summary.json") or {}),
        records=read_table(folder / "records.csv"),
        slo_scale=read_table(folder / "slo_scale.csv"),
        samples=tuple(read_instance_samples(samples_path)) if samples_path.is_file() else (),
        network=read_json(folder / "network.json"),
    )


def load_report_data(root: Path) -> ReportData:
    """Read a search or simulate output folder; InputError when it holds nothing to report."""
    if not root.is_dir():
        raise InputError(
            "DIR", str(root), "an existing folder written by `search --out` or `simulate --out`"
        )
    runs = [read_run(root / name, name) for name in RUN_FOLDERS]
    top = read_run(root, root.name or "simulation")
    found = [r for r in [*runs, top] if r is not None]
    data = ReportData(
        root=root,
        search=read_json(root / "search.json"),
        candidates=read_table(root / "candidates.csv"),
        curves=read_table(root / "curves.csv"),
        runs=tuple(found),
        network=read_json(root / "network.json"),
        queueing=read_json(root / "queueing.json"),
    )
    if not (
        data.search or data.candidates or data.curves or data.runs or data.network or data.queueing
    ):
        raise InputError(
            "DIR",
            str(root),
            "a folder with search.json, candidates.csv, curves.csv, summary.json or records.csv",
        )
    return data
