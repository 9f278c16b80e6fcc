"""The fast engine (closed-form decode stretches) agrees with the exact one (every iteration)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim.engine import SimResult
from servesim.metrics import summarize
from servesim.workload import OpenLoopWorkload, Poisson, Uniform

from .factories import StubLatency, closed_workload, run

TOLERANCE = 1e-3


def leaves(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(leaves(v, f"{prefix}{k}."))
        elif v is not None:
            out[prefix + k] = float(v)
    return out


def assert_agree(fast: SimResult, exact: SimResult) -> None:
    a = leaves(summarize(fast, 1.0, 0.05))
    b = leaves(summarize(exact, 1.0, 0.05))
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=TOLERANCE, abs_tol=1e-9), (key, a[key], b[key])
    assert fast.counts == exact.counts
    for f, e in (
        (fast.records.finish_s, exact.records.finish_s),
        (fast.records.first_token_s, exact.records.first_token_s),
    ):
        assert np.allclose(f, e, rtol=TOLERANCE, atol=1e-9, equal_nan=True)


scenario = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["colocated", "disagg", "decode_only", "prefill_only"]),
        "policy": st.sampled_from(["vllm", "chunked"]),
        "decode_kv_policy": st.sampled_from(["on_demand", "reserve"]),
        "watermark": st.sampled_from([0.0, 0.01, 0.1]),
        "rate": st.floats(1.0, 60.0),
        "num": st.integers(1, 120),
        "max_in": st.integers(1, 900),
        "max_out": st.integers(1, 80),
        "num_instances": st.integers(1, 3),
        "max_batch_seqs": st.integers(1, 40),
        "kv": st.integers(1000, 6000),
        "pp": st.integers(1, 3),
        "seed": st.integers(0, 2**16),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_fast_equals_exact(s: dict) -> None:
    workload = OpenLoopWorkload(
        Poisson(s["rate"]), Uniform(1, s["max_in"], 1, s["max_out"]), s["num"]
    )
    lat = StubLatency(pp=s["pp"])
    kw: dict[str, Any] = {
        "num_instances": s["num_instances"],
        "max_batch_seqs": s["max_batch_seqs"],
        "kv_capacity_tokens": s["kv"],
        "chunk_tokens": 256,
        "max_prefill_tokens": 512,
    }
    if s["mode"] == "colocated":
        kw["policy"] = s["policy"]
    else:
        kw["decode_kv_policy"] = s["decode_kv_policy"]
        kw["kv_watermark"] = s["watermark"]
    fast = run(s["mode"], workload, lat, exact=False, seed=s["seed"], **kw)
    exact = run(s["mode"], workload, lat, exact=True, seed=s["seed"], **kw)
    assert_agree(fast, exact)


def test_fast_equals_exact_under_preemption() -> None:
    workload = OpenLoopWorkload(Poisson(30.0), Uniform(100, 800, 50, 300), 400)
    for policy in ("vllm", "chunked"):
        kw: dict[str, Any] = {"kv_capacity_tokens": 4000, "policy": policy}
        fast = run("colocated", workload, exact=False, **kw)
        exact = run("colocated", workload, exact=True, **kw)
        assert fast.counts.preempted > 10
        assert_agree(fast, exact)


@pytest.mark.parametrize("mode", ["disagg", "decode_only"])
def test_fast_equals_exact_under_decode_preemption(mode: str) -> None:
    workload = OpenLoopWorkload(Poisson(30.0), Uniform(100, 800, 50, 300), 400)
    kw: dict[str, Any] = {"kv_capacity_tokens": 4000, "num_instances": 2}
    fast = run(mode, workload, exact=False, **kw)
    exact = run(mode, workload, exact=True, **kw)
    assert fast.counts.preempted > 10
    assert_agree(fast, exact)


def test_fast_equals_exact_closed_loop() -> None:
    for mode in ("colocated", "disagg", "decode_only"):
        fast = run(
            mode, closed_workload(8, 300, think_s=0.05), exact=False, kv_capacity_tokens=2000
        )
        exact = run(
            mode, closed_workload(8, 300, think_s=0.05), exact=True, kv_capacity_tokens=2000
        )
        assert_agree(fast, exact)


def test_fast_engine_does_fewer_iterations_events() -> None:
    """Long decodes: the fast engine jumps, so far fewer spans than iterations."""
    workload = OpenLoopWorkload(Poisson(2.0), Uniform(10, 20, 400, 500), 30)
    from servesim.engine import simulate

    from .factories import deployment, stubs

    fast = simulate(
        deployment("decode_only"), workload, timeline=True, latency_models=stubs("decode_only")
    )
    exact = simulate(
        deployment("decode_only"),
        workload,
        timeline=True,
        exact=True,
        latency_models=stubs("decode_only"),
    )
    assert fast.timeline is not None and exact.timeline is not None
    assert len(fast.timeline.spans[0]) * 20 < len(exact.timeline.spans[0])
    assert fast.instances[0].num_iterations == exact.instances[0].num_iterations
