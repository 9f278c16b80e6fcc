"""The report's summary in words: the best mode, its gain over colocated, and the binding SLO."""

from __future__ import annotations

from typing import Any

from servesim.report.candidates import label_of, normalize_mode, shape_of
from servesim.report.data import ReportData, RunData
from servesim.report.figures import run_title, target_of


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _describe(best: dict[str, Any]) -> str:
    mode = normalize_mode(best.get("mode"))
    gpus = _num(best.get("num_gpus"))
    on = f" on {gpus:.0f} GPUs" if gpus else ""
    return f"{mode} ({label_of(shape_of(best))}){on}"


def _goodput(best: dict[str, Any]) -> str:
    total, per_gpu = _num(best.get("goodput_per_s")), _num(best.get("goodput_per_gpu_per_s"))
    if total is None or per_gpu is None:
        return ""
    return f" with a goodput of {total:.3g} requests/s ({per_gpu:.3g} per GPU)"


def _gain(search: dict[str, Any]) -> str:
    colo, disagg = search.get("best_colocated"), search.get("best_disaggregated")
    if not isinstance(colo, dict):
        return "No colocated configuration met the SLOs: there is no colocated baseline."
    if not isinstance(disagg, dict):
        return "No disaggregated configuration met the SLOs; colocated serving is all there is."
    a, b = _num(colo.get("goodput_per_gpu_per_s")), _num(disagg.get("goodput_per_gpu_per_s"))
    if not a or b is None:
        return ""
    ratio = b / a
    verdict = (
        f"disaggregation gains {ratio - 1:.0%}" if ratio > 1 else "colocated serving wins here"
    )
    return (
        f"The best disaggregated configuration reaches {ratio:.2f}x the per-GPU goodput of "
        f"the best colocated one, {_describe(colo)} at {a:.3g} requests/s per GPU: {verdict}."
    )


def binding_slo(run: RunData) -> str | None:
    """'TTFT' or 'TPOT', whichever attainment is lower in the run's summary; None if unknown."""
    attainment = run.summary.get("attainment")
    if not isinstance(attainment, dict):
        return None
    ttft, tpot = _num(attainment.get("ttft")), _num(attainment.get("tpot"))
    if ttft is None or tpot is None:
        return None
    return "TTFT" if ttft < tpot else "TPOT"


def _binding(run: RunData | None, best: dict[str, Any]) -> str:
    bottleneck = best.get("bottleneck")
    text = (
        f"The search names {bottleneck} as the bottleneck. "
        if isinstance(bottleneck, str) and bottleneck
        else ""
    )
    if run is None or binding_slo(run) is None:
        return text.strip()
    att = run.summary["attainment"]
    return text + (
        f"At its simulated rate {att['ttft']:.1%} of requests meet the TTFT SLO and "
        f"{att['tpot']:.1%} the TPOT SLO, so {binding_slo(run)} is the binding constraint."
    )


def summary_text(data: ReportData) -> str:
    """One paragraph describing what the outputs show, in plain words (not escaped)."""
    search = data.search or {}
    best = search.get("best")
    runs = {r.label: r for r in data.runs}
    if isinstance(best, dict):
        mode = normalize_mode(best.get("mode"))
        first = (
            f"The best configuration is {_describe(best)}{_goodput(best)} at a "
            f"{target_of(data):.0%} joint SLO attainment target."
        )
        parts = [first, _gain(search), _binding(runs.get(f"best_{mode}"), best)]
        return " ".join(p for p in parts if p)
    if data.runs:
        return " ".join(_run_sentence(r) for r in data.runs)
    return "The folder holds no search result or simulation summary; see the figures below."


def _run_sentence(run: RunData) -> str:
    att = run.summary.get("attainment")
    if not isinstance(att, dict) or _num(att.get("joint")) is None:
        return f"{run_title(run).capitalize()}: per-request records only."
    binding = binding_slo(run)
    tail = f"; {binding} is the binding constraint" if binding else ""
    return f"{run_title(run).capitalize()}: {att['joint']:.1%} of requests meet both SLOs{tail}."
