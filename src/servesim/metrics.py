"""Per-request records -> latency statistics, SLO attainment and throughput.

Definitions (seconds): TTFT = first token - arrival; TPOT = (finish - first token) /
(output tokens - 1), undefined for one-token outputs (left out of TPOT statistics and counted
as meeting the TPOT SLO); end-to-end = finish - arrival; queueing = prefill start - arrival.
Attainment is a share of all arrived requests: rejected and unfinished ones miss both SLOs.
Throughput counts finished requests over the span from the first arrival to the last finish.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from servesim.engine.records import Records, SimResult
from servesim.errors import require

PERCENTILES = (50, 90, 99)


def _records(result_or_records: SimResult | Records) -> Records:
    if isinstance(result_or_records, SimResult):
        return result_or_records.records
    return result_or_records


def _check_slos(ttft_slo_s: float, tpot_slo_s: float) -> None:
    for name, value in (("ttft_slo_s", ttft_slo_s), ("tpot_slo_s", tpot_slo_s)):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        require(ok and not math.isnan(value), name, value, "a number of seconds > 0")


def latencies(records: Records) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ttft_s, tpot_s, e2e_s) per request; NaN where undefined (TPOT of one-token outputs)."""
    ttft = records.first_token_s - records.arrival_s
    e2e = records.finish_s - records.arrival_s
    steps = records.output_tokens - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(steps > 0, (records.finish_s - records.first_token_s) / steps, np.nan)
    return ttft, tpot, e2e


def meets_slos(records: Records, ttft_slo_s: float, tpot_slo_s: float) -> tuple[np.ndarray, ...]:
    """Boolean arrays (ttft_ok, tpot_ok, joint_ok) over all requests."""
    ttft, tpot, _ = latencies(records)
    finished = ~np.isnan(records.finish_s)
    ttft_ok = finished & (ttft <= ttft_slo_s)
    tpot_ok = finished & ((records.output_tokens <= 1) | (tpot <= tpot_slo_s))
    return ttft_ok, tpot_ok, ttft_ok & tpot_ok


def attainment(records: Records, ttft_slo_s: float, tpot_slo_s: float) -> float:
    """Share of requests meeting both SLOs (0 when there are no requests)."""
    n = len(records)
    if n == 0:
        return 0.0
    return float(np.count_nonzero(meets_slos(records, ttft_slo_s, tpot_slo_s)[2])) / n


def distribution(values: np.ndarray) -> dict[str, float | None]:
    """mean, p50, p90, p99 of the defined values (None when there are none)."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    qs = np.percentile(v, PERCENTILES)
    return {
        "mean": float(v.mean()),
        **{f"p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)},
    }


def throughput(records: Records) -> dict[str, float]:
    """Finished requests and output tokens per second, from the first arrival to the last finish."""
    done = ~np.isnan(records.finish_s)
    if not done.any():
        return {"requests_per_s": 0.0, "output_tokens_per_s": 0.0}
    span = float(records.finish_s[done].max() - records.arrival_s.min())
    if span <= 0:
        return {"requests_per_s": math.inf, "output_tokens_per_s": math.inf}
    tokens = float(records.output_tokens[done].sum())
    return {"requests_per_s": int(done.sum()) / span, "output_tokens_per_s": tokens / span}


def summarize(
    result_or_records: SimResult | Records, ttft_slo_s: float, tpot_slo_s: float
) -> dict[str, Any]:
    """The JSON summary of a run: latency distributions, attainment, throughput, counts."""
    _check_slos(ttft_slo_s, tpot_slo_s)
    records = _records(result_or_records)
    ttft, tpot, e2e = latencies(records)
    ok = meets_slos(records, ttft_slo_s, tpot_slo_s)
    n = max(len(records), 1)
    finished = int(np.count_nonzero(~np.isnan(records.finish_s)))
    rejected = int(records.rejected.sum())
    return {
        "ttft_s": distribution(ttft),
        "tpot_s": distribution(tpot),
        "e2e_s": distribution(e2e),
        "queue_s": distribution(records.prefill_start_s - records.arrival_s),
        "attainment": {
            "ttft": float(np.count_nonzero(ok[0])) / n,
            "tpot": float(np.count_nonzero(ok[1])) / n,
            "joint": float(np.count_nonzero(ok[2])) / n,
        },
        "throughput": throughput(records),
        "requests": {
            "arrived": len(records),
            "finished": finished,
            "rejected": rejected,
            "preempted": int(records.num_preemptions.sum()),
        },
        "slo": {"ttft_s": float(ttft_slo_s), "tpot_s": float(tpot_slo_s)},
    }
