"""Small factories for latency tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from servesim.latency import LatencyModel, build_latency_model
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec

SHARED_PROFILES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "profiles"


def make_latency(
    model: str = "llama-2-13b",
    gpu: str = "a100-80gb",
    tp: int = 1,
    pp: int = 1,
    profile: str | None = None,
    roofline: bool = False,
) -> LatencyModel:
    cluster = make_cluster(gpu, num_nodes=max(1, -(-tp * pp // 8)))
    return build_latency_model(
        get_model(model), cluster, ParallelSpec(tp, pp), profile=profile, roofline=roofline
    )


def assert_monotone(lat: LatencyModel, count: int, length: int, extra: int) -> None:
    """Prefill and decode times grow with the length and with the batch."""

    def prefill(n: int, ln: int) -> float:
        return lat.prefill_s(n, n * ln, n * ln * ln)

    assert prefill(count, length + extra) > prefill(count, length)
    assert prefill(count + 1, length) > prefill(count, length)
    assert lat.decode_s(count, count * (length + extra)) > lat.decode_s(count, count * length)
    assert lat.decode_s(count + 1, (count + 1) * length) > lat.decode_s(count, count * length)


def assert_breakdowns_add_up(lat: LatencyModel, length: int) -> None:
    """Prefill (4 prompts) and decode (16 sequences) breakdowns sum to the times."""
    args = (4, 4 * length, 4 * length * length)
    assert lat.prefill_breakdown(*args).total_s == pytest.approx(lat.prefill_s(*args))
    assert lat.decode_breakdown(16, 16 * length).total_s == pytest.approx(
        lat.decode_s(16, 16 * length)
    )
