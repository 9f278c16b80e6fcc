"""Calibration: read a folder of measured tables, fit one GPU's profile, report per-table error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servesim.errors import InputError
from servesim.latency.fit import fit_gpu
from servesim.latency.predict import abs_pct_errors
from servesim.latency.profiles import Profile
from servesim.latency.readers import read_folder
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


def calibrate(folder: Path, gpu: str | None = None) -> tuple[Profile, list[TableError]]:
    """Fit the profile of the one GPU measured in `folder` (or `gpu` among several)."""
    tables = read_tables(folder)
    found = sorted({t.gpu for t in tables})
    if gpu is None and len(found) > 1:
        raise InputError("gpu", None, f"one of the GPUs measured in {folder}: {', '.join(found)}")
    target = gpu or found[0]
    if target not in found:
        raise InputError("gpu", target, f"one of the GPUs measured in {folder}: {', '.join(found)}")
    mine = [t for t in tables if t.gpu == target]
    result = fit_gpu(mine, target)
    profile = Profile(
        gpu=target,
        kind="efficiency",
        params=result.efficiency.as_dict(),
        fitted_on=result.fitted_on,
    )
    errors = [
        table_error(t, abs_pct_errors(t, result.efficiency), t.name in result.fitted_on)
        for t in mine
    ]
    return profile, errors
