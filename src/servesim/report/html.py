"""Assemble the report: one self-contained HTML file (plotly.js inlined, no network access).

Every user-given string (folder and file names, model names, labels, table cells) passes
through `html.escape` before it reaches the page; figure data goes through `script_safe` JSON.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from servesim.report.charts import Chart
from servesim.report.data import ReportData, RunData
from servesim.report.figures import run_title
from servesim.report.plotly_render import figure_json, plotly_js, script_safe
from servesim.report.summary import summary_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;
  max-width:1180px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0}
h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:13px}
.summary{background:#f5f7fa;border-left:4px solid #1f77b4;padding:10px 14px;line-height:1.5}
.caption{color:#666;font-size:12px;margin:2px 0 0}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
tr.best td{font-weight:600;background:#fff8e6}
.scroll{overflow-x:auto;max-height:520px;overflow-y:auto}
"""

# Click a header to sort by that column; numbers sort as numbers, the rest as text.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
      table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
      function key(row){ var t = row.cells[col].textContent.trim(), n = parseFloat(t);
        return (t !== '' && isFinite(t)) ? n : t.toLowerCase(); }
      rows.sort(function(a, b){ var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return (typeof x === 'number' ? -1 : 1) * dir; }
        return (x < y ? -1 : x > y ? 1 : 0) * dir; });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""

DRAW_JS = """
FIGURES.forEach(function(fig, i){
  Plotly.newPlot('figure-' + i, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""

META_KEYS = (
    "model",
    "gpu",
    "workload",
    "trace",
    "nodes",
    "gpus_per_node",
    "nic_gbps",
    "requests",
    "ttft_slo",
    "ttft_slo_s",
    "tpot_slo",
    "tpot_slo_s",
    "attainment",
    "rate",
    "seed",
    "servesim_version",
)


def e(value: object) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _meta(data: ReportData) -> str:
    sources = [
        data.search or {},
        *((data.search or {}).get(k) for k in ("problem", "scenario", "settings", "inputs")),
    ]
    items: dict[str, object] = {}
    for source in sources:
        if isinstance(source, dict):
            items.update(
                {
                    k: v
                    for k, v in source.items()
                    if k in META_KEYS and not isinstance(v, dict | list)
                }
            )
    parts = [f"<b>{e(k)}</b>: {e(v)}" for k, v in items.items() if v is not None]
    return f'<p class="meta">{" &middot; ".join(parts)}</p>' if parts else ""


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def table_html(
    header: list[str],
    rows: list[list[object]],
    sortable: bool = False,
    best_rows: int = 0,
    caption: str = "",
) -> str:
    """An escaped HTML table; the first `best_rows` rows are highlighted."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        f"<tr{' class=best' if i < best_rows else ''}>"
        + "".join(f"<td>{e(_fmt(v))}</td>" for v in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    cls = ' class="sortable"' if sortable else ""
    cap = f'<p class="caption">{e(caption)}</p>' if caption else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>{cap}'


def _run_rows(run: RunData) -> list[list[object]]:
    rows: list[list[object]] = []
    for key, label in (("ttft_s", "TTFT s"), ("tpot_s", "TPOT s"), ("e2e_s", "E2E s")):
        stats = run.summary.get(key)
        if isinstance(stats, dict):
            rows.append(
                [
                    f"{run_title(run)}: {label}",
                    *(stats.get(q) for q in ("mean", "p50", "p90", "p99")),
                ]
            )
    return rows


def runs_html(data: ReportData) -> str:
    """Latency percentiles and attainment of each simulated run."""
    rows = [row for run in data.runs for row in _run_rows(run)]
    att = [
        [run_title(r), *(r.summary["attainment"].get(k) for k in ("ttft", "tpot", "joint"))]
        for r in data.runs
        if isinstance(r.summary.get("attainment"), dict)
    ]
    parts = []
    if rows:
        parts.append(table_html(["run / metric", "mean", "p50", "p90", "p99"], rows))
    if att:
        parts.append(
            table_html(["run", "TTFT attainment", "TPOT attainment", "joint attainment"], att)
        )
    return "<h2>Latency at the simulated rate</h2>" + "".join(parts) if parts else ""


def candidates_html(data: ReportData) -> str:
    """The ranked search table (best first), sortable by any column."""
    if data.candidates:
        header = list(data.candidates)
        rows: list[list[object]] = [list(r) for r in zip(*data.candidates.values(), strict=True)]
    else:
        flat = [c for c in (data.search or {}).get("candidates", []) if isinstance(c, dict)]
        header = list(
            dict.fromkeys(k for c in flat for k, v in c.items() if not isinstance(v, dict | list))
        )
        rows = [[c.get(k) for k in header] for c in flat]
    if not rows:
        return ""
    return "<h2>Ranked candidates</h2>" + table_html(
        header,
        rows,
        sortable=True,
        best_rows=1,
        caption="Best first (highlighted). Click a column header to sort.",
    )


def network_html(data: ReportData) -> str:
    """KV-transfer time statistics from network.json."""
    network = data.network or next((r.network for r in data.runs if r.network), None)
    stats = (network or {}).get("kv_transfer_s")
    if not isinstance(stats, dict):
        return ""
    keys = [k for k in ("mean", "p50", "p90", "p99", "bytes_moved") if k in stats]
    return "<h2>KV-cache transfer</h2>" + table_html(keys, [[stats[k] for k in keys]])


def figures_html(charts: list[Chart]) -> tuple[str, str]:
    """(the figure sections, the script that holds their data)."""
    sections = []
    for i, chart in enumerate(charts):
        cap = f'<p class="caption">{e(chart.caption)}</p>' if chart.caption else ""
        div = f'<div class="plot" id="figure-{i}" data-key="{e(chart.key)}"></div>'
        sections.append(f"<section>{div}{cap}</section>")
    data = "[" + ",".join(figure_json(c) for c in charts) + "]"
    return "".join(sections), f"var FIGURES = {data};"


def render_page(data: ReportData, charts: list[Chart], title: str) -> str:
    """The full HTML text of the report."""
    sections, figure_data = figures_html(charts)
    body = [
        f"<h1>{e(title)}</h1>",
        _meta(data),
        f'<p class="summary" id="summary">{e(summary_text(data))}</p>',
        "<h2>Figures</h2>" + sections if charts else "",
        runs_html(data),
        network_html(data),
        candidates_html(data),
        f'<p class="meta">Source folder: {e(data.root)}. Made by servesim.</p>',
    ]
    scripts: list[Any] = [plotly_js(), figure_data, DRAW_JS if charts else "", SORT_JS]
    script_html = "".join(f"<script>{s}</script>" for s in scripts if s)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}{script_html}</body></html>"
    )


def write_html(text: str, path: Path) -> Path:
    """Write the report to `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["e", "render_page", "script_safe", "table_html", "write_html"]
