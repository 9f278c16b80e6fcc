"""Calibration: read a folder of measured tables, fit one GPU's profiles, report per-table error.

`calibrate` fits the GPU's default profile (a folder measured by one serving stack gives that
stack's profile); `calibrate_sources` fits the default and one profile per source
(latency/sources.py), as shipped in latency/data/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servesim.errors import InputError
from servesim.latency.fit import FitResult
from servesim.latency.predict import abs_pct_errors
from servesim.latency.profiles import Profile
from servesim.latency.readers import read_folder
from servesim.latency.sources import fit_all, fit_default
from servesim.latency.tables import Table


@dataclass(frozen=True, slots=True)
class TableError:
    """Absolute percentage error of one table under one model."""

    table: str
    gpu: str
    fitted: bool
    num_rows: int
    median_pct: float
    p90_pct: float


def table_error(table: Table, errors: np.ndarray, fitted: bool) -> TableError:
    return TableError(
        table.name,
        table.gpu,
        fitted,
        len(errors),
        float(np.median(errors)),
        float(np.percentile(errors, 90)),
    )


def usable(table: Table) -> Table:
    mask = np.isfinite(table.measured_s) & (table.measured_s > 0)
    return table if mask.all() else table.subset(mask)


def read_tables(folder: Path, gpu: str | None = None) -> list[Table]:
    """Every recognised table under `folder` (an InputError when there is none)."""
    if not folder.is_dir():
        raise InputError("folder", str(folder), "an existing folder of measured tables")
    tables = [usable(t) for t in read_folder(folder, gpu)]
    tables = [t for t in tables if len(t)]
    if not tables:
        raise InputError(
            "folder",
            str(folder),
            "a folder holding mlp.csv, attention.csv, all_reduce.csv, "
            "send_recv.csv, gemm_perf.csv, *_attention_perf.csv, moe_perf.csv, nccl_perf.csv, "
            "custom_allreduce_perf.csv or perf_model.csv",
        )
    return tables


def _gpu_tables(folder: Path, gpu: str | None) -> tuple[str, list[Table]]:
    tables = read_tables(folder)
    found = sorted({t.gpu for t in tables})
    if gpu is None and len(found) > 1:
        raise InputError("gpu", None, f"one of the GPUs measured in {folder}: {', '.join(found)}")
    target = gpu or found[0]
    if target not in found:
        raise InputError("gpu", target, f"one of the GPUs measured in {folder}: {', '.join(found)}")
    return target, [t for t in tables if t.gpu == target]


def _profile(result: FitResult, source: str = "") -> Profile:
    return Profile(
        gpu=result.gpu,
        kind="efficiency",
        params=result.efficiency.as_dict(),
        fitted_on=result.fitted_on,
        source=source,
    )


def calibrate(folder: Path, gpu: str | None = None) -> tuple[Profile, list[TableError]]:
    """Fit the default profile of the one GPU measured in `folder` (or `gpu` among several)."""
    target, mine = _gpu_tables(folder, gpu)
    result = fit_default(mine, target)
    errors = [
        table_error(t, abs_pct_errors(t, result.efficiency), t.name in result.fitted_on)
        for t in mine
    ]
    return _profile(result), errors


def calibrate_sources(folder: Path, gpu: str | None = None) -> dict[str, Profile]:
    """Profile name -> profile: the GPU's default and `<gpu>-<source>` per source measured."""
    target, mine = _gpu_tables(folder, gpu)
    return {
        name: _profile(result, name.removeprefix(target).removeprefix("-"))
        for name, result in fit_all(mine, target).items()
    }
