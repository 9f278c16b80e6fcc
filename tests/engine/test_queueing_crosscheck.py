"""The prefill queue against M/D/1: one instance, batch size 1, constant service time D."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.metrics import summarize

from .factories import StubLatency, fixed_workload, run

SERVICE_S = 0.1
ISL = 512


def md1_mean_ttft_s(rate_per_s: float, service_s: float) -> float:
    rho = rate_per_s * service_s
    return service_s + rate_per_s * service_s**2 / (2 * (1 - rho))


@pytest.mark.parametrize(("load", "num"), [(0.3, 50_000), (0.6, 50_000), (0.85, 200_000)])
def test_prefill_mean_ttft_matches_md1(load: float, num: int) -> None:
    rate = load / SERVICE_S
    latency = StubLatency(prefill_base_s=SERVICE_S, prefill_per_token_s=0.0)
    result = run(
        "prefill_only",
        fixed_workload(rate, num, isl=ISL, osl=1),
        latency,
        seed=7,
        max_prefill_tokens=ISL,
    )
    ttft = result.records.first_token_s - result.records.arrival_s
    assert result.counts.finished == num
    assert np.allclose(result.records.prefill_end_s - result.records.prefill_start_s, SERVICE_S)
    expected = md1_mean_ttft_s(rate, SERVICE_S)
    assert abs(ttft.mean() / expected - 1) < 0.02
    assert summarize(result, 10.0, 1.0)["ttft_s"]["mean"] == pytest.approx(ttft.mean())
