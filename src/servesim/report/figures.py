"""Report data -> `Chart`s: the curves a paper would show, and what the cluster did over time.

Each builder returns None when its input files are absent, so a report shows what it can.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from servesim.report.candidates import Candidate, candidates_of, find_best
from servesim.report.charts import (
    METRIC_DASH,
    Chart,
    Ref,
    Series,
    cdf_points,
    finite_tuple,
    palette,
    thin,
)
from servesim.report.data import ReportData, RunData, numbers

DEFAULT_TARGET = 0.9
NESTED_KEYS = ("problem", "slo", "slos", "scenario", "settings", "config", "inputs")
NUM_VISIBLE_PER_MODE = 6
RUN_TITLES = {"best_colocated": "best colocated", "best_disaggregated": "best disaggregated"}


def lookup(sources: Iterable[dict[str, Any] | None], *names: str) -> float | None:
    """The first number under any of `names`, at the top of a source or one level down."""
    for source in sources:
        for scope in [source or {}, *((source or {}).get(k) for k in NESTED_KEYS)]:
            if not isinstance(scope, dict):
                continue
            for name in names:
                value = scope.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
    return None


def target_of(data: ReportData) -> float:
    """The attainment target (default 0.9)."""
    runs = [r.summary for r in data.runs]
    found = lookup([data.search, *runs], "attainment_target", "target_attainment", "attainment")
    return DEFAULT_TARGET if found is None else found


def slos_of(data: ReportData) -> tuple[float | None, float | None]:
    """(TTFT SLO s, TPOT SLO s) when the outputs name them."""
    sources = [data.search, *(r.summary for r in data.runs)]
    return (
        lookup(sources, "ttft_slo", "ttft_slo_s", "ttft"),
        lookup(sources, "tpot_slo", "tpot_slo_s", "tpot"),
    )


def run_title(run: RunData) -> str:
    return RUN_TITLES.get(run.label, run.label)


def _curve(data: ReportData, cid: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(data.curves.get("candidate_id", []))
    rates, values = numbers(data.curves, "rate_per_s"), numbers(data.curves, column)
    mask = ids == cid
    order = np.argsort(rates[mask], kind="stable")
    return rates[mask][order], values[mask][order]


def _per_gpu(candidates: list[Candidate]) -> bool:
    return bool(candidates) and all(c.num_gpus > 0 for c in candidates)


def attainment_vs_rate(data: ReportData) -> Chart | None:
    """Joint SLO attainment against rate per candidate, colocated against disaggregated."""
    if not data.curves.get("candidate_id"):
        return None
    candidates = candidates_of(data)
    known = {c.candidate_id for c in candidates}
    # curves of ids outside a known ranked table (e.g. prefill-only phases) are not placements
    extra = [] if known else list(dict.fromkeys(data.curves["candidate_id"]))
    candidates += [
        Candidate(i, "colocated", f"candidate {i}", 0.0, 10**9, ("colocated", (), ()))
        for i in extra
    ]
    per_gpu = _per_gpu(candidates)
    bests = {b.candidate_id for b in (find_best(data, k, candidates) for k in RUN_TITLES) if b}
    seen = {"colocated": 0, "disaggregated": 0}
    series = []
    for c in candidates:
        rates, joint = _curve(data, c.candidate_id, "attainment_joint")
        rank = seen[c.mode]
        seen[c.mode] += 1
        is_best = c.candidate_id in bests
        series.append(
            Series(
                name=("best: " if is_best else "") + c.label,
                x=finite_tuple(rates / c.num_gpus if per_gpu else rates),
                y=finite_tuple(joint),
                kind="line",
                color=palette(c.colocated, 0 if is_best else 1 + rank),
                width=3.5 if is_best else 1.5,
                markers=True,
                group=c.mode,
                visible=is_best or rank < NUM_VISIBLE_PER_MODE,
            )
        )
    target = target_of(data)
    return Chart(
        key="attainment_vs_rate",
        title="SLO attainment against request rate (blue: colocated, orange: disaggregated)",
        x_labels=("rate per GPU (requests/s/GPU)" if per_gpu else "rate (requests/s)",),
        y_labels=("joint SLO attainment",),
        series=tuple(series),
        refs=(Ref("y", target, f"target {target:.0%}"),),
        y_range=(0.0, 1.02),
        caption="Both TTFT and TPOT met. Candidates beyond the first few per mode are hidden; "
        "click a legend entry to show it.",
    )


def best_attainment_by_slo(data: ReportData) -> Chart | None:
    """TTFT, TPOT and joint attainment against rate for the best configurations: which SLO binds."""
    if not data.curves.get("candidate_id"):
        return None
    candidates = candidates_of(data)
    series = []
    for key, title in RUN_TITLES.items():
        best = find_best(data, key, candidates)
        if best is None:
            continue
        for metric in ("joint", "ttft", "tpot"):
            rates, values = _curve(data, best.candidate_id, f"attainment_{metric}")
            series.append(
                Series(
                    name=f"{title} {metric.upper() if metric != 'joint' else 'joint'}",
                    x=finite_tuple(rates),
                    y=finite_tuple(values),
                    color=palette(best.colocated, 0),
                    dash=METRIC_DASH[metric],
                    group=key,
                    markers=metric == "joint",
                )
            )
    if not any(s.x for s in series):
        return None
    target = target_of(data)
    return Chart(
        key="binding_slo",
        title="Which SLO binds: TTFT, TPOT and joint attainment of the best configurations",
        x_labels=("rate (requests/s)",),
        y_labels=("SLO attainment",),
        series=tuple(series),
        refs=(Ref("y", target, f"target {target:.0%}"),),
        y_range=(0.0, 1.02),
    )


def attainment_vs_slo_scale(data: ReportData) -> Chart | None:
    """Attainment with the SLOs multiplied by a factor, at the chosen rate."""
    series = []
    for run in data.runs:
        scale = numbers(run.slo_scale, "scale" if "scale" in run.slo_scale else "slo_scale")
        if scale.size == 0:
            continue
        colocated = run.label != "best_disaggregated"
        for metric in ("joint", "ttft", "tpot"):
            series.append(
                Series(
                    name=f"{run_title(run)} {metric.upper() if metric != 'joint' else 'joint'}",
                    x=finite_tuple(scale),
                    y=finite_tuple(numbers(run.slo_scale, f"attainment_{metric}")),
                    kind="line",
                    color=palette(colocated, 0),
                    dash=METRIC_DASH[metric],
                    width=3.0 if metric == "joint" else 1.5,
                    group=run.label,
                )
            )
    if not series:
        return None
    target = target_of(data)
    return Chart(
        key="attainment_vs_slo_scale",
        title="SLO attainment against SLO scale (both SLOs times the factor)",
        x_labels=("SLO scale",),
        y_labels=("SLO attainment",),
        series=tuple(series),
        refs=(Ref("y", target, f"target {target:.0%}"), Ref("x", 1.0, "given SLOs")),
        y_range=(0.0, 1.02),
    )


def request_latencies(records: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT s, TPOT s) of the served requests in a records table."""
    served = numbers(records, "rejected")
    keep = ~(np.nan_to_num(served, nan=0.0) > 0)
    first, arrival = numbers(records, "first_token_s")[keep], numbers(records, "arrival_s")[keep]
    finish, outputs = numbers(records, "finish_s")[keep], numbers(records, "output_tokens")[keep]
    ttft = first - arrival
    many = outputs > 1
    tpot = (finish[many] - first[many]) / (outputs[many] - 1)
    return ttft, tpot


def latency_cdfs(data: ReportData) -> Chart | None:
    """CDFs of TTFT and TPOT per run at its simulated rate, with the SLOs as vertical lines."""
    series = []
    for run in data.runs:
        if not run.records.get("arrival_s"):
            continue
        color = palette(run.label != "best_disaggregated", 0)
        for panel, values in enumerate(request_latencies(run.records)):
            x, y = cdf_points(values)
            series.append(
                Series(
                    name=run_title(run),
                    x=finite_tuple(x),
                    y=finite_tuple(y),
                    panel=panel,
                    color=color,
                    group=run.label,
                )
            )
    if not series:
        return None
    ttft_slo, tpot_slo = slos_of(data)
    refs = tuple(
        Ref("x", v, label, p)
        for p, v, label in ((0, ttft_slo, "TTFT SLO"), (1, tpot_slo, "TPOT SLO"))
        if v is not None
    )
    rates = [lookup([r.summary], "rate_per_s", "rate") for r in data.runs]
    at = ", ".join(
        f"{run_title(r)} at {v:.3g} req/s" for r, v in zip(data.runs, rates, strict=True) if v
    )
    return Chart(
        key="latency_cdf",
        title="TTFT and TPOT distributions" + (f" ({at})" if at else ""),
        x_labels=("TTFT (s)", "TPOT (s)"),
        y_labels=("fraction of requests", "fraction of requests"),
        series=tuple(series),
        refs=refs,
        panel_titles=("TTFT", "TPOT"),
        columns=True,
        y_range=(0.0, 1.02),
    )


def instance_timeline(run: RunData) -> Chart | None:
    """Batch size, queue length and KV tokens held, per instance, over simulated time."""
    if not run.samples:
        return None
    names = list(dict.fromkeys(s.instance for s in run.samples))
    series = []
    for i, name in enumerate(names):
        rows = [s for s in run.samples if s.instance == name]
        t = np.array([s.t_s for s in rows])
        for panel, field in enumerate(("batch_size", "queue_len", "kv_tokens")):
            x, y = thin(t, np.array([getattr(s, field) for s in rows], dtype=float))
            series.append(
                Series(
                    name=name,
                    x=finite_tuple(x),
                    y=finite_tuple(y),
                    panel=panel,
                    kind="step",
                    color=_cycle(i),
                    width=1.5,
                    group=name,
                )
            )
    return Chart(
        key=f"timeline_{run.label}",
        title=f"Per-instance timeline: {run_title(run)}",
        x_labels=("", "", "time (s)"),
        y_labels=("batch size", "queue length", "KV tokens"),
        series=tuple(series),
        shared_x=True,
    )


def _cycle(index: int) -> str:
    colors = (
        "#1f77b4",
        "#d95f02",
        "#2ca02c",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
    )
    return colors[index % len(colors)]


def network_chart(data: ReportData) -> Chart | None:
    """Link utilization (bars) and the distribution of KV-transfer times."""
    network = data.network or next((r.network for r in data.runs if r.network), None)
    links = [link for link in (network or {}).get("links", []) if isinstance(link, dict)]
    series = []
    if links:
        util = np.array([float(link.get("utilization") or 0.0) for link in links])
        series.append(
            Series(
                name="utilization",
                x=tuple(str(link.get("name", "?")) for link in links),
                y=finite_tuple(util),
                kind="bar",
                color="#2ca02c",
            )
        )
    for run in data.runs:
        kv = numbers(run.records, "kv_end_s") - numbers(run.records, "kv_start_s")
        x, y = cdf_points(kv[kv >= 0] if kv.size else kv)
        if x.size:
            series.append(
                Series(
                    name=f"KV transfer, {run_title(run)}",
                    x=finite_tuple(x),
                    y=finite_tuple(y),
                    panel=1,
                    color=palette(run.label != "best_disaggregated", 0),
                )
            )
    if not series:
        return None
    return Chart(
        key="network",
        title="Network: link utilization and KV-transfer times",
        x_labels=("link", "KV transfer time (s)"),
        y_labels=("utilization", "fraction of requests"),
        series=tuple(series),
        panel_titles=("link utilization", "KV-transfer time CDF"),
        columns=True,
    )


def queueing_chart(data: ReportData) -> Chart | None:
    """Mean TTFT against rate: one GPU, N-way inter-op (pipeline) and intra-op (tensor)."""
    rows = [r for r in (data.queueing or {}).get("rows", []) if isinstance(r, dict)]
    if not rows:
        return None
    rates = np.array([float(r.get("rate_per_s", np.nan)) for r in rows])
    colors = {"single": "#7f7f7f", "inter": "#d95f02", "intra": "#1f77b4"}
    names = {"single": "1 GPU", "inter": "inter-op (pipeline)", "intra": "intra-op (tensor)"}
    series = []
    for key, label in names.items():
        ttft = np.array([_maybe((r.get("ttft_s") or {}).get(key)) for r in rows])
        series.append(
            Series(
                name=label,
                x=finite_tuple(rates),
                y=finite_tuple(ttft),
                kind="line",
                color=colors[key],
            )
        )
    crossover = (data.queueing or {}).get("crossover_rate_per_s")
    refs = (Ref("x", float(crossover), "crossover"),) if isinstance(crossover, int | float) else ()
    return Chart(
        key="queueing",
        title="Mean TTFT against rate: intra-op vs inter-op (M/D/1)",
        x_labels=("rate (requests/s)",),
        y_labels=("mean TTFT (s)",),
        series=tuple(series),
        refs=refs,
        caption="Gaps mark rates at which the queue is unstable.",
    )


def _maybe(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def all_charts(data: ReportData) -> list[Chart]:
    """Every chart the data supports, in reading order."""
    charts = [
        attainment_vs_rate(data),
        best_attainment_by_slo(data),
        attainment_vs_slo_scale(data),
        latency_cdfs(data),
    ]
    charts += [instance_timeline(run) for run in data.runs]
    charts += [network_chart(data), queueing_chart(data)]
    return [c for c in charts if c is not None]
