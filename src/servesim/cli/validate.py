"""`servesim validate`: simulate measured serving benchmarks; report the error per row and group."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.cli.common import print_json
from servesim.errors import InputError, require
from servesim.latency.backends import BACKEND_NAMES, BackendProfile, load_backend
from servesim.validate.fit import Fit
from servesim.validate.runner import RowResult, evaluate, shipped_backends
from servesim.validate.silicon import DEFAULT_BENCHMARK, Benchmark, read_silicon
from servesim.validate.stats import (
    DEFAULT_GROUP_BY,
    GroupStats,
    group_stats,
    overall_stats,
    parse_group_by,
    unsupported_counts,
)

EXAMPLES = """
Examples:

  servesim validate ../shared/data/profiles/aiconfigurator/silicon_sample.csv

  servesim validate silicon.csv --group-by system,backend --json > errors.json

  servesim validate silicon.csv --backend trtllm --max-requests 128 --workers 2

  servesim validate silicon.csv --holdout model --workers 2   # refit, leaving each model out

  servesim validate silicon.csv --holdout model --fit-seed 1   # other training rows drawn

  servesim validate silicon.csv --save-profiles fitted/ --workers 2   # fit and write profiles

  servesim validate my_runs.csv --rounds 50 --warmup-rounds 2   # rows measured by aiperf with
  --num-requests 50*C --warmup-request-count 2*C
"""

Opt = typer.Option


@app.command(
    help="Compare simulated and measured TTFT/TPOT of end-to-end serving benchmarks." + EXAMPLES
)
def validate(
    file: Path = typer.Argument(
        ..., help="CSV of measured rows (aiconfigurator silicon_sample.csv format)."
    ),
    backend: str | None = Opt(
        None,
        help="Simulate every row with this backend profile: vllm, sglang, "
        "trtllm or a JSON file (default: each row's own backend).",
    ),
    group_by: str = Opt(
        ",".join(DEFAULT_GROUP_BY),
        help="Fields that form a group: system, model, catalog_model, backend, mode, precision.",
    ),
    rounds: int = Opt(
        DEFAULT_BENCHMARK.rounds,
        help="Measured requests per client: the harness's request count divided by C (the "
        "rows do not record it; the default is aiconfigurator's assumption). Fits use it too.",
    ),
    warmup_rounds: int = Opt(
        DEFAULT_BENCHMARK.warmup_rounds,
        help="Warm-up requests per client, sent before the measured ones and left out of the "
        "means.",
    ),
    max_requests: int | None = Opt(
        None,
        help="At most this many requests per row (default: (warm-up + rounds) per client).",
    ),
    holdout: str | None = Opt(
        None,
        help="'model': refit the backend profiles leaving each catalog "
        "model out and predict its rows with them.",
    ),
    save_profiles: Path | None = Opt(
        None,
        help="Fit the backend profiles and the silicon GPU profiles on all supported rows, "
        "write them into this folder laid out as servesim's latency/data "
        "(backends/<name>.json, <gpu>.json), and validate with them.",
    ),
    fit_seed: int = Opt(
        0,
        help="Seed of the random subsets of training rows the refits draw (--holdout, "
        "--save-profiles); vary it to see how much the errors depend on the rows drawn.",
    ),
    workers: int = Opt(1, help="Worker processes."),
    rows_shown: bool = Opt(True, "--rows/--no-rows", help="Print the per-row table."),
    as_json: bool = Opt(False, "--json", help="Print one JSON object."),
    quiet: bool = Opt(False, "--quiet", help="No progress bar."),
) -> None:
    keys = parse_group_by(group_by)
    require(max_requests is None or max_requests >= 1, "max-requests", max_requests, ">= 1")
    require(fit_seed >= 0, "fit-seed", fit_seed, ">= 0")
    require(workers >= 1, "workers", workers, ">= 1")
    bench = Benchmark(rounds, warmup_rounds)
    rows = read_silicon(file, bench)
    if holdout not in (None, "model"):
        raise InputError("holdout", holdout, "model")
    if holdout and backend:
        raise InputError(
            "backend", backend, "not with --holdout (the holdout fits each row's own backend)"
        )
    if fit_seed and not (holdout or save_profiles):
        raise InputError(
            "fit-seed", fit_seed, "only with --holdout or --save-profiles (nothing is refitted)"
        )
    fitted = None
    if save_profiles is not None:
        if backend or holdout:
            raise InputError("save-profiles", str(save_profiles), "not with --backend or --holdout")
        fitted = _fit_and_save(rows, save_profiles, workers, quiet or as_json, fit_seed)
    results, fitted = _run(
        rows, backend, holdout, max_requests, workers, quiet or as_json, fitted, fit_seed
    )
    groups = group_stats(results, keys)
    if as_json:
        fits = fitted.summary() if fitted else None
        print_json(report_json(results, groups, keys, holdout, fits, bench))
    else:
        print_report(results, groups, keys, rows_shown, bench)


def _fit_and_save(rows: list[Any], folder: Path, workers: int, quiet: bool, seed: int) -> Fit:
    """Fit on every row; write backends/<name>.json and a silicon profile per fitted GPU family
    into `folder`."""
    from servesim.latency.backends import save_backend
    from servesim.latency.profiles import save_profile, silicon_profile
    from servesim.progress import progress_bar
    from servesim.validate.fit import fit_on_all

    (folder / "backends").mkdir(parents=True, exist_ok=True)
    with progress_bar(None, "fitting profiles", quiet) as advance:
        fit = fit_on_all(rows, None, workers, advance, seed)
    for name, profile in fit.profiles().items():
        save_backend(profile, folder / "backends" / f"{name}.json")
    for family, gpu_scales in fit.scales[""].items():
        gpu_profile = silicon_profile(family, gpu_scales.scales(), gpu_scales.fitted_on)
        save_profile(gpu_profile, folder / f"{family}.json")
    return fit


def _run(
    rows: list[Any],
    backend: str | None,
    holdout: str | None,
    max_requests: int | None,
    workers: int,
    quiet: bool,
    fitted: Fit | None = None,
    seed: int = 0,
) -> tuple[list[RowResult], Fit | None]:
    """Each row's result, and the fit that made the profiles (None for shipped ones)."""
    from servesim.progress import progress_bar

    if holdout:
        from servesim.validate.fit import leave_one_model_out

        with progress_bar(None, "fitting (leave one model out)", quiet) as advance:
            return leave_one_model_out(rows, None, max_requests, workers, advance, seed)
    profiles: dict[str, BackendProfile] = shipped_backends()
    effs = None
    if fitted is not None:
        profiles, effs = fitted.profiles(), fitted.effs[""]
    override = None
    if backend is not None:
        profile = load_backend(backend)
        override = profile.name if backend.lower() in BACKEND_NAMES else "custom"
        profiles[override] = profile
    with progress_bar(len(rows), "simulating rows", quiet) as advance:
        results = evaluate(rows, profiles, override, max_requests, workers, advance, effs)
    return results, fitted


def _num(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 4)


def row_json(r: RowResult) -> dict[str, Any]:
    p = r.prediction
    return {
        "id": r.row.id,
        "line": r.row.line,
        "system": r.row.system,
        "model": r.row.model,
        "backend": r.row.backend,
        "simulated_backend": r.backend,
        "mode": r.row.mode,
        "isl": r.row.isl,
        "osl": r.row.osl,
        "concurrency": r.row.concurrency,
        "supported": r.supported,
        "reason": r.reason,
        "predicted_ttft_ms": _num(p.ttft_ms) if p else None,
        "predicted_tpot_ms": _num(p.tpot_ms) if p else None,
        "measured_ttft_ms": r.row.measured_ttft_ms,
        "measured_tpot_ms": r.row.measured_tpot_ms,
        "ape_ttft": _num(r.ape_ttft) if p else None,
        "ape_tpot": _num(r.ape_tpot) if p else None,
    }


def _group_json(g: GroupStats, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in g.as_dict(keys).items()}


def report_json(
    results: list[RowResult],
    groups: list[GroupStats],
    keys: tuple[str, ...],
    holdout: str | None = None,
    fits: list[dict[str, Any]] | None = None,
    bench: Benchmark = DEFAULT_BENCHMARK,
) -> dict[str, Any]:
    """The report as one JSON object; `fits` (from --holdout or --save-profiles) lists each
    fit's GPU scales and backend numbers, `benchmark` the harness the rows were simulated as."""
    overall = overall_stats(results)
    return {
        "num_rows": len(results),
        "num_supported": sum(r.supported for r in results),
        "holdout": holdout,
        "benchmark": {"rounds": bench.rounds, "warmup_rounds": bench.warmup_rounds},
        "group_by": list(keys),
        "overall": _group_json(overall, ()) if overall else None,
        "groups": [_group_json(g, keys) for g in groups],
        "unsupported": [
            {"reason": reason, "num_rows": n} for reason, n in unsupported_counts(results)
        ],
        "rows": [row_json(r) for r in results],
        "fits": fits,
    }


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def print_report(
    results: list[RowResult],
    groups: list[GroupStats],
    keys: tuple[str, ...],
    show_rows: bool,
    bench: Benchmark = DEFAULT_BENCHMARK,
) -> None:
    console = Console()
    if show_rows:
        table = Table(title="Rows: predicted vs measured (ms)")
        for col in (
            "line",
            "id",
            "backend",
            "C",
            "TTFT pred",
            "TTFT meas",
            "TTFT err",
            "TPOT pred",
            "TPOT meas",
            "TPOT err",
        ):
            table.add_column(col, justify="left" if col in ("id", "backend") else "right")
        for r in results:
            if r.prediction is not None:
                p = r.prediction
                table.add_row(
                    str(r.row.line),
                    r.row.id,
                    r.backend,
                    str(r.row.concurrency),
                    f"{p.ttft_ms:.1f}",
                    f"{r.row.measured_ttft_ms:.1f}",
                    _pct(r.ape_ttft),
                    f"{p.tpot_ms:.2f}",
                    f"{r.row.measured_tpot_ms:.2f}",
                    _pct(r.ape_tpot),
                )
        console.print(table)
    gtable = Table(title="Absolute percentage error per group")
    for col in (*keys, "rows", "TTFT median", "TTFT p90", "TPOT median", "TPOT p90"):
        gtable.add_column(col, justify="left" if col in keys else "right")
    for g in groups:
        gtable.add_row(
            *g.key,
            str(g.num_rows),
            _pct(g.median_ape_ttft),
            _pct(g.p90_ape_ttft),
            _pct(g.median_ape_tpot),
            _pct(g.p90_ape_tpot),
        )
    overall = overall_stats(results)
    if overall:
        gtable.add_row(
            *(["all"] + [""] * (len(keys) - 1)),
            str(overall.num_rows),
            _pct(overall.median_ape_ttft),
            _pct(overall.p90_ape_ttft),
            _pct(overall.median_ape_tpot),
            _pct(overall.p90_ape_tpot),
        )
    console.print(gtable)
    unsupported = unsupported_counts(results)
    num_unsupported = sum(n for _, n in unsupported)
    console.print(
        f"{len(results) - num_unsupported} of {len(results)} rows simulated "
        f"({bench.warmup_rounds} warm-up and {bench.rounds} measured requests per client); "
        f"{num_unsupported} unsupported:",
        highlight=False,
    )
    for reason, n in unsupported:
        console.print(f"  {n:5d}  {reason}", highlight=False, markup=False)
