"""Draw a `Chart` as a plotly figure, serialized as JSON that is safe inside an HTML <script>.

plotly reads a small HTML subset in labels (`<b>`, `<br>`, entities), so every user string is
HTML-escaped here and shows as typed. SVG traces only (no WebGL), so the report renders in any
browser, headless ones included.
"""

from __future__ import annotations

import html
import json
from typing import Any

from servesim.report.charts import Chart, Ref, Series

PLOT_HEIGHT_PX = 420
PANEL_HEIGHT_PX = 230
DASH = {None: "solid", "dash": "dash", "dot": "dot"}


def esc(text: str) -> str:
    """A raw string as plotly label text that displays exactly as typed."""
    return html.escape(text, quote=False)


def _axis(chart: Chart, panel: int, letter: str) -> str:
    if chart.columns:
        return letter if panel == 0 else f"{letter}{panel + 1}"
    if letter == "x" and chart.shared_x:
        return "x"
    return letter if panel == 0 else f"{letter}{panel + 1}"


def _trace(chart: Chart, series: Series) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "name": esc(series.name),
        "x": list(series.x),
        "y": list(series.y),
        "xaxis": _axis(chart, series.panel, "x"),
        "yaxis": _axis(chart, series.panel, "y"),
        "legendgroup": esc(series.group or series.name),
        "visible": True if series.visible else "legendonly",
    }
    if series.kind == "bar":
        trace.update(type="bar", marker={"color": series.color})
        trace["x"] = [esc(str(v)) for v in series.x]
        return trace
    mode = "lines+markers" if series.markers else "lines"
    trace.update(type="scatter", mode="markers" if series.kind == "markers" else mode)
    if series.markers:
        trace["marker"] = {"color": series.color, "size": 4 + series.width}
    trace["line"] = {
        "color": series.color,
        "width": series.width,
        "dash": DASH[series.dash],
        "shape": "hv" if series.kind == "step" else "linear",
    }
    return trace


def _domains(count: int, gap: float) -> list[list[float]]:
    size = (1.0 - gap * (count - 1)) / count
    return [[i * (size + gap), i * (size + gap) + size] for i in range(count)]


def _layout(chart: Chart) -> dict[str, Any]:
    n = chart.num_panels
    height = PLOT_HEIGHT_PX if chart.columns or n == 1 else PANEL_HEIGHT_PX * n + 80
    layout: dict[str, Any] = {
        "title": {"text": esc(chart.title), "font": {"size": 15}},
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 60, "b": 55},
        "template": "plotly_white",
        "hovermode": "closest",
        "legend": {"font": {"size": 11}},
        "shapes": [],
        "annotations": [],
    }
    domains = _domains(n, 0.08 if chart.columns else 0.06)
    for p in range(n):
        xname, yname = _axis(chart, p, "x"), _axis(chart, p, "y")
        xkey, ykey = f"xaxis{xname[1:]}", f"yaxis{yname[1:]}"
        xaxis: dict[str, Any] = {
            "title": {"text": esc(chart.x_labels[p] if p < len(chart.x_labels) else "")},
            "anchor": yname,
        }
        yaxis: dict[str, Any] = {"title": {"text": esc(chart.y_labels[p])}, "anchor": xname}
        if chart.columns:
            xaxis["domain"] = domains[p]
        else:
            yaxis["domain"] = domains[n - 1 - p]
        if chart.y_range is not None:
            yaxis["range"] = list(chart.y_range)
        if chart.shared_x and p > 0 and not chart.columns:
            layout[ykey] = yaxis
            continue
        layout[xkey], layout[ykey] = xaxis, yaxis
    if chart.shared_x and not chart.columns:
        layout["xaxis"]["anchor"] = _axis(chart, n - 1, "y")
        layout["xaxis"]["title"] = {"text": esc(chart.x_labels[-1])}
    for ref in chart.refs:
        _add_ref(chart, layout, ref)
    return layout


def _add_ref(chart: Chart, layout: dict[str, Any], ref: Ref) -> None:
    xref, yref = _axis(chart, ref.panel, "x"), _axis(chart, ref.panel, "y")
    if ref.axis == "y":
        shape = {
            "type": "line",
            "xref": f"{xref} domain",
            "x0": 0,
            "x1": 1,
            "yref": yref,
            "y0": ref.value,
            "y1": ref.value,
        }
        note = {
            "xref": f"{xref} domain",
            "x": 1,
            "xanchor": "right",
            "yref": yref,
            "y": ref.value,
            "yanchor": "bottom",
        }
    else:
        shape = {
            "type": "line",
            "yref": f"{yref} domain",
            "y0": 0,
            "y1": 1,
            "xref": xref,
            "x0": ref.value,
            "x1": ref.value,
        }
        note = {"yref": f"{yref} domain", "y": 1, "yanchor": "bottom", "xref": xref, "x": ref.value}
    shape["line"] = {"color": "#444", "width": 1.5, "dash": "dash"}
    layout["shapes"].append(shape)
    layout["annotations"].append(
        {**note, "text": esc(ref.label), "showarrow": False, "font": {"size": 11}}
    )


def figure_json(chart: Chart) -> str:
    """`{"data": [...], "layout": {...}}` as JSON with <, > and & escaped for a <script> block."""
    traces, seen = [], set()
    for series in chart.series:
        trace = _trace(chart, series)
        trace["showlegend"] = series.name not in seen  # one legend entry per name across panels
        seen.add(series.name)
        traces.append(trace)
    figure = {"data": traces, "layout": _layout(chart)}
    text = json.dumps(figure, separators=(",", ":"), allow_nan=False)
    return script_safe(text)


def script_safe(text: str) -> str:
    """JSON text that cannot close or confuse an HTML <script> element."""
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())
