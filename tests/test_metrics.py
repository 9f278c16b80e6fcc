"""Metrics from hand-made records: TTFT, TPOT, attainment, throughput, the JSON keys."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from servesim.engine.records import Records
from servesim.errors import InputError
from servesim.metrics import attainment, latencies, summarize

NAN = math.nan


def make_records(rows: list[tuple[float, float, float, int, bool]]) -> Records:
    """rows: (arrival, first_token, finish, output_tokens, rejected)."""
    n = len(rows)
    arrival, first, finish, out, rej = (np.array(c) for c in zip(*rows, strict=True))
    nan = np.full(n, NAN)
    return Records(
        request_id=np.arange(n),
        arrival_s=arrival.astype(float),
        prefill_start_s=arrival + 0.0,
        prefill_end_s=first.astype(float),
        kv_start_s=nan,
        kv_end_s=nan,
        first_token_s=first.astype(float),
        finish_s=finish.astype(float),
        input_tokens=np.full(n, 10),
        output_tokens=out.astype(np.int64),
        prefill_instance=np.zeros(n, np.int64),
        decode_instance=np.zeros(n, np.int64),
        num_preemptions=np.zeros(n, np.int64),
        rejected=rej.astype(bool),
    )


RECORDS = make_records(
    [
        (0.0, 0.5, 2.5, 11, False),  # ttft 0.5, tpot 0.2
        (1.0, 1.2, 1.2, 1, False),  # one output token: TPOT undefined, meets the TPOT SLO
        (2.0, 4.0, 5.0, 6, False),  # ttft 2.0 (misses 1.0), tpot 0.2
        (3.0, NAN, NAN, 5, True),  # rejected: misses both
    ]
)


def test_latencies() -> None:
    ttft, tpot, e2e = latencies(RECORDS)
    assert np.allclose(ttft[:3], [0.5, 0.2, 2.0])
    assert np.allclose(tpot[[0, 2]], [0.2, 0.2]) and np.isnan(tpot[1]) and np.isnan(tpot[3])
    assert np.allclose(e2e[:3], [2.5, 0.2, 3.0])


def test_attainment_counts_rejected_as_missing() -> None:
    assert attainment(RECORDS, 1.0, 0.25) == pytest.approx(2 / 4)
    assert attainment(RECORDS, 1.0, 0.1) == pytest.approx(1 / 4)  # only the 1-token request
    assert attainment(RECORDS, 10.0, 1.0) == pytest.approx(3 / 4)


def test_summary_keys_and_values() -> None:
    s = summarize(RECORDS, 1.0, 0.25)
    json.dumps(s)
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(s[key]) == {"mean", "p50", "p90", "p99"}
    assert s["ttft_s"]["mean"] == pytest.approx((0.5 + 0.2 + 2.0) / 3)
    assert s["tpot_s"]["p50"] == pytest.approx(0.2)
    assert s["attainment"] == {"ttft": 0.5, "tpot": 0.75, "joint": 0.5}
    assert s["requests"] == {"arrived": 4, "finished": 3, "rejected": 1, "preempted": 0}
    assert s["throughput"]["requests_per_s"] == pytest.approx(3 / 5.0)
    assert s["throughput"]["output_tokens_per_s"] == pytest.approx(18 / 5.0)


def test_empty_and_bad_slos() -> None:
    empty = make_records([(0.0, NAN, NAN, 3, True)])
    s = summarize(empty, 1.0, 1.0)
    assert s["ttft_s"]["mean"] is None and s["throughput"]["requests_per_s"] == 0.0
    with pytest.raises(InputError, match="ttft_slo_s"):
        summarize(RECORDS, 0.0, 1.0)
    with pytest.raises(InputError, match="tpot_slo_s"):
        summarize(RECORDS, 1.0, float("nan"))
