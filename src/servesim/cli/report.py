"""`servesim report`: turn a search or simulate output folder into an HTML report (and PNGs)."""

from __future__ import annotations

from pathlib import Path

import typer

from servesim.cli.app import app, err_console, fail

EXAMPLES = """
Examples:

  servesim search --model opt-13b --out runs/opt13b && servesim report runs/opt13b -o report.html

  servesim report runs/opt13b -o report.html --png figures/

  servesim simulate --model opt-13b --rate 4 --out runs/sim && servesim report runs/sim -o sim.html
"""


@app.command(
    help="Write one self-contained HTML report (opens offline) from an output folder." + EXAMPLES
)
def report(
    folder: Path = typer.Argument(
        ..., help="Folder written by `search --out` or `simulate --out`."
    ),
    out: Path = typer.Option(Path("report.html"), "-o", "--out", help="HTML file to write."),
    png: Path | None = typer.Option(
        None, "--png", help="Also write static PNG figures into this folder."
    ),
    title: str | None = typer.Option(None, help="Page title (default: the folder name)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success."),
) -> None:
    from servesim.report import MissingExtraError, build_pngs, build_report

    try:
        written = [build_report(folder, out, title)]
        if png is not None:
            written += build_pngs(folder, png)
    except MissingExtraError as err:
        fail(str(err))
    if not quiet:
        for path in written:
            err_console.print(f"wrote {path}", markup=False)
