"""Accuracy of the latency model against every measured row it can read in ../shared/data/profiles.

For each table: number of rows, median and p90 absolute percentage error of the roofline (datasheet
peaks, default efficiencies), of the fitted model (the profile fitted on the table's own source,
`<gpu>-<source>`, latency/sources.py), of the GPU's default profile (what the simulator uses), and
of a leave-one-model-out split (for each model in the table: refit that family on the source's
tables without the model's rows, predict them). Targets (issue 2): fitted median <= 5% on the
tables fitted, <= 15% on held-out models; roofline alone <= 30%.

    .venv/bin/python benchmarks/latency_accuracy.py [PROFILES_DIR] [--gpu NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from servesim.latency.calibrate import read_tables
from servesim.latency.fit import FAMILIES, FitResult, family_of
from servesim.latency.predict import abs_pct_errors
from servesim.latency.sources import fit_all, refit_family
from servesim.latency.tables import Array, Table

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "profiles"
MAX_LABELS_FOR_HOLDOUT = 4  # tables labelled by model (not by hundreds of GEMM shapes)


def _stats(errors: Array | None) -> str:
    if errors is None or len(errors) == 0:
        return f"{'-':>7} {'-':>7}"
    return f"{np.median(errors):7.1f} {np.percentile(errors, 90):7.1f}"


def _held_out(table: Table, tables: list[Table], fit: FitResult) -> Array | None:
    """Errors on each model of `table` when its family is refitted, on the table's source,
    without that model."""
    labels = sorted(set(table.labels.tolist()))
    family = family_of(table.kind)
    peers = {
        str(lab)
        for t in tables
        if t.fit and t.origin == table.origin and family_of(t.kind) == family
        for lab in t.labels.tolist()
    }
    by_model = family not in ("allreduce", "send")  # network rows are labelled by node, not model
    if table.name not in fit.fitted_on or not by_model or len(labels) > MAX_LABELS_FOR_HOLDOUT:
        return None
    if len(peers) < 2:
        return None
    parts = []
    for label in labels:
        eff = refit_family(tables, table.gpu, table.origin, family, fit, label).efficiency
        parts.append(abs_pct_errors(table.subset(table.labels == label), eff))
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--gpu", default=None, help="only this GPU")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"no measured tables at {args.folder}; nothing to compare")
        return 0
    start = time.perf_counter()
    tables = read_tables(args.folder)
    gpus = sorted({t.gpu for t in tables if args.gpu in (None, t.gpu)})
    columns = " | ".join(f"{c:^15}" for c in ("roofline", "fitted", "default", "held-out"))
    stats = " | ".join([f"{'median':>7} {'p90':>7}"] * 4)
    print(f"{'table':78} {'rows':>7} {'fit':>3} | {columns}\n{'':78} {'':>7} {'':>3} | {stats}")
    summary: dict[str, list[float]] = {"roofline": [], "fitted": [], "default": [], "held": []}
    for gpu in gpus:
        mine = [t for t in tables if t.gpu == gpu]
        fits = fit_all(mine, gpu)
        print(f"--- {gpu} (profiles: {', '.join(fits)}) ---")
        for t in mine:
            fit = fits.get(f"{gpu}-{t.origin}", fits[gpu])
            roof, fitted = abs_pct_errors(t), abs_pct_errors(t, fit.efficiency)
            default = abs_pct_errors(t, fits[gpu].efficiency)
            held = _held_out(t, mine, fit)
            used = t.name in fit.fitted_on
            print(
                f"{t.name[-78:]:78} {len(t):7d} {'yes' if used else 'no':>3} | {_stats(roof)} | "
                f"{_stats(fitted)} | {_stats(default)} | {_stats(held)}"
            )
            summary["roofline"].append(float(np.median(roof)))
            if used:
                summary["fitted"].append(float(np.median(fitted)))
                summary["default"].append(float(np.median(default)))
            if held is not None:
                summary["held"].append(float(np.median(held)))
    print(
        "\nTargets: roofline median <= 30%, fitted median <= 5% (fitted tables), "
        "held-out median <= 15%"
    )
    for key, limit in (("roofline", 30.0), ("fitted", 5.0), ("default", 5.0), ("held", 15.0)):
        values = summary[key]
        met = sum(v <= limit for v in values)
        print(
            f"  {key:9}: target met on {met} of {len(values)} tables "
            f"(median of table medians {np.median(values):.1f}%)"
            if values
            else f"  {key}: no tables"
        )
    print(f"families: {', '.join(FAMILIES)}; {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
