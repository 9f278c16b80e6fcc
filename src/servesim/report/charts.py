"""A library-neutral description of a figure, drawn by plotly (HTML) and by matplotlib (PNG).

Builders in `figures.py` turn report data into `Chart`s; `plotly_render.py` and `png.py` draw
them. Strings in a chart are raw user text; each renderer escapes them for its own medium.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOCATED_COLORS = ("#1f77b4", "#4f97cf", "#7fb4e0", "#a9cdee", "#c9def3")
DISAGG_COLORS = ("#d95f02", "#f07f2a", "#f7a15a", "#fbbf8a", "#fdd9b5")
METRIC_DASH = {"joint": None, "ttft": "dash", "tpot": "dot"}
MAX_CDF_POINTS = 400
MAX_TIMELINE_POINTS = 2000


@dataclass(frozen=True)
class Series:
    """One trace. `kind` is line, step (held until the next point), markers or bar.

    `markers` also marks each data point on a line (sparse, measured points such as a
    bisection's simulated rates).
    """

    name: str
    x: tuple[float | str | None, ...]
    y: tuple[float | None, ...]
    panel: int = 0
    kind: str = "line"
    color: str | None = None
    width: float = 2.0
    dash: str | None = None  # None (solid), "dash" or "dot"
    visible: bool = True
    group: str | None = None
    markers: bool = False


@dataclass(frozen=True)
class Ref:
    """A horizontal (axis 'y') or vertical (axis 'x') reference line on one panel."""

    axis: str
    value: float
    label: str
    panel: int = 0


@dataclass(frozen=True)
class Chart:
    """A figure of one or more panels, laid out in one row (`columns`) or one column."""

    key: str
    title: str
    x_labels: tuple[str, ...]
    y_labels: tuple[str, ...]
    series: tuple[Series, ...]
    refs: tuple[Ref, ...] = ()
    panel_titles: tuple[str, ...] = ()
    columns: bool = False
    shared_x: bool = False
    y_range: tuple[float, float] | None = None
    caption: str = ""

    @property
    def num_panels(self) -> int:
        return len(self.y_labels)


def finite_tuple(values: np.ndarray) -> tuple[float | None, ...]:
    """Floats with NaN/inf as None (a gap in the line, and valid JSON)."""
    return tuple(float(v) if np.isfinite(v) else None for v in values)


def cdf_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted value, cumulative fraction), thinned to at most MAX_CDF_POINTS quantiles."""
    values = np.sort(values[np.isfinite(values)])
    if values.size == 0:
        return values, values
    fractions = np.arange(1, values.size + 1) / values.size
    if values.size > MAX_CDF_POINTS:
        index = np.unique(np.linspace(0, values.size - 1, MAX_CDF_POINTS).round().astype(int))
        return values[index], fractions[index]
    return values, fractions


def thin(
    x: np.ndarray, y: np.ndarray, limit: int = MAX_TIMELINE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th point so at most `limit` remain (the last point is kept)."""
    if x.size <= limit:
        return x, y
    index = np.unique(np.append(np.arange(0, x.size, -(-x.size // limit)), x.size - 1))
    return x[index], y[index]


def palette(colocated: bool, rank: int) -> str:
    """Colors by mode: blues for colocated, oranges for disaggregated, lighter by rank."""
    colors = COLOCATED_COLORS if colocated else DISAGG_COLORS
    return colors[min(rank, len(colors) - 1)]
