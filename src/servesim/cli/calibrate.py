"""`servesim calibrate`: fit a GPU's latency profile to a folder of measured tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.latency.calibrate import calibrate as fit_folder
from servesim.latency.profiles import save_profile

EXAMPLES = """
Recognised files (found anywhere below DIR): Vidur mlp.csv, attention.csv, all_reduce.csv,
send_recv.csv; aiconfigurator gemm_perf.csv, context_/generation_attention_perf.csv, moe_perf.csv,
nccl_perf.csv, custom_allreduce_perf.csv; splitwise-sim perf_model.csv. The GPU is read from the
folder names (a100, h100_sxm, a30_single_gpu, ...) or the rows' device column.

Examples:

  servesim calibrate ../shared/data/profiles/vidur/profiling/compute/a40 -o a40.json

  servesim calibrate ../shared/data/profiles --gpu h100-sxm -o h100.json

  servesim latency --model llama-2-7b --gpu a40 --profile a40.json
"""


@app.command(
    help="Fit a latency profile to measured tables and print each table's fit error." + EXAMPLES
)
def calibrate(
    folder: Path = typer.Argument(..., help="Folder of measured tables (searched recursively)."),
    output: Path = typer.Option(..., "-o", "--output", help="Profile JSON file to write."),
    gpu: str | None = typer.Option(None, help="GPU to fit when the folder holds several."),
) -> None:
    profile, errors = fit_folder(folder, gpu)
    save_profile(profile, output)
    table = Table(title=f"fit of {profile.gpu}: absolute percentage error per table")
    for col in ("table", "fitted", "rows", "median %", "p90 %"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for e in errors:
        table.add_row(
            e.table,
            "yes" if e.fitted else "no",
            str(e.num_rows),
            f"{e.median_pct:.1f}",
            f"{e.p90_pct:.1f}",
        )
    Console(width=160).print(table)
    print(f"wrote {output}")
