"""Reports and figures from search and simulation outputs; nothing here simulates.

- `build_report(folder, out)`: one self-contained HTML file (plotly, inlined; opens offline);
- `build_pngs(folder, png_dir)`: the same figures as static PNGs (matplotlib, Agg);
- `write_chrome_trace(result, path)`: a simulated timeline as Chrome trace-event JSON.

plotly and matplotlib come with the `report` extra and are imported only when needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from servesim.report.data import ReportData, load_report_data
from servesim.report.figures import all_charts
from servesim.report.timeline import (
    InstanceSample,
    IterationSpan,
    Timeline,
    TransferSpan,
    timeline_of,
    write_instance_samples,
)
from servesim.report.trace import busy_time_s, chrome_trace, write_chrome_trace


class MissingExtraError(ImportError):
    """A plotting library of the `report` extra is not installed; the message says how to fix it."""


def require(module: str) -> None:
    """Raise MissingExtraError (one line) unless `module` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{module} is not installed; install the report extra: pip install 'servesim[report]'"
        )


def build_report(folder: Path | str, out: Path | str, title: str | None = None) -> Path:
    """Write the HTML report of a search/simulate output `folder` to `out`; returns `out`."""
    require("plotly")
    from servesim.report.html import render_page, write_html

    data = load_report_data(Path(folder))
    page = render_page(
        data, all_charts(data), title or f"servesim report: {data.root.name or data.root}"
    )
    return write_html(page, Path(out))


def build_pngs(folder: Path | str, png_dir: Path | str) -> list[Path]:
    """Write one PNG per figure of the report of `folder` into `png_dir`."""
    require("matplotlib")
    from servesim.report.png import write_pngs

    data = load_report_data(Path(folder))
    return write_pngs(all_charts(data), Path(png_dir))


__all__ = [
    "InstanceSample",
    "IterationSpan",
    "MissingExtraError",
    "ReportData",
    "Timeline",
    "TransferSpan",
    "build_pngs",
    "build_report",
    "busy_time_s",
    "chrome_trace",
    "load_report_data",
    "timeline_of",
    "write_chrome_trace",
    "write_instance_samples",
]
