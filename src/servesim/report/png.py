"""Draw `Chart`s as static PNG files with matplotlib (Agg backend; no display, no browser).

Text is drawn as typed: mathtext is off, so a `$` in a model name cannot break a figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from servesim.report.charts import Chart, Series

DPI = 150
LINESTYLE = {None: "-", "dash": "--", "dot": ":"}


def _values(values: tuple[Any, ...]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _draw_series(ax: Any, series: Series) -> None:
    if not series.visible:
        return
    if series.kind == "bar":
        ax.bar([str(v) for v in series.x], _values(series.y), color=series.color, label=series.name)
        ax.tick_params(axis="x", labelrotation=30)
        return
    x, y = _values(series.x), _values(series.y)
    style = {
        "color": series.color,
        "linewidth": series.width * 0.7,
        "linestyle": LINESTYLE[series.dash],
        "label": series.name,
    }
    if series.kind == "step":
        ax.step(x, y, where="post", **style)
    elif series.kind == "markers":
        ax.plot(x, y, marker="o", linestyle="none", color=series.color, label=series.name)
    else:
        ax.plot(x, y, marker="o" if series.markers else None, markersize=3, **style)


def _draw_refs(chart: Chart, axes: list[Any]) -> None:
    for ref in chart.refs:
        ax = axes[ref.panel]
        line = ax.axhline if ref.axis == "y" else ax.axvline
        line(ref.value, color="#444", linestyle="--", linewidth=1)


def draw(chart: Chart, path: Path) -> Path:
    """Render one chart to `path` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = chart.num_panels
    shape = (1, n) if chart.columns else (n, 1)
    size = (5.2 * n, 4.2) if chart.columns else (9.0, 2.6 * n + 1.4 if n > 1 else 4.8)
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig, grid = plt.subplots(
            *shape, figsize=size, sharex=chart.shared_x and not chart.columns, squeeze=False
        )
        axes = list(grid.flat)
        for series in chart.series:
            _draw_series(axes[series.panel], series)
        _draw_refs(chart, axes)
        for p, ax in enumerate(axes):
            ax.set_xlabel(chart.x_labels[p] if p < len(chart.x_labels) else "")
            ax.set_ylabel(chart.y_labels[p])
            if p < len(chart.panel_titles):
                ax.set_title(chart.panel_titles[p], fontsize=10)
            if chart.y_range is not None:
                ax.set_ylim(*chart.y_range)
            ax.grid(alpha=0.3)
        _legend(chart, axes)
        fig.suptitle(chart.title, fontsize=11)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path


def _legend(chart: Chart, axes: list[Any]) -> None:
    target = axes[0] if chart.shared_x or chart.columns else axes[-1]
    handles, _labels = target.get_legend_handles_labels()
    if handles:
        target.legend(fontsize=7, loc="best", ncol=2 if len(handles) > 8 else 1)


def write_pngs(charts: list[Chart], folder: Path) -> list[Path]:
    """One PNG per chart, named after its key, in `folder`."""
    return [draw(chart, folder / f"{_safe(chart.key)}.png") for chart in charts]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
