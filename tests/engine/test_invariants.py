"""Conservation, KV capacity, determinism and same-time ordering."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.engine import simulate
from servesim.engine.colocated import ColocatedInstance
from servesim.engine.events import PRIO_ARRIVAL, PRIO_BOUNDARY, PRIO_TRANSFER
from servesim.engine.loop import Engine
from servesim.engine.simulate import invariants_from_env
from servesim.workload import OpenLoopWorkload, Poisson, Uniform

from .factories import closed_workload, deployment, fixed_workload, run, stubs, uniform_workload

MODES = ["colocated", "disagg", "decode_only", "prefill_only"]


def test_suite_runs_with_invariant_checks() -> None:
    assert invariants_from_env()


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(MODES),
    st.sampled_from(["vllm", "chunked"]),
    st.sampled_from(["on_demand", "reserve"]),
    st.floats(1, 80),
    st.integers(1, 150),
    st.integers(600, 5000),
    st.integers(0, 1000),
)
def test_conservation_and_kv_capacity(
    mode: str, policy: str, kv_policy: str, rate: float, num: int, kv: int, seed: int
) -> None:
    kw: dict = {"kv_capacity_tokens": kv, "max_batch_seqs": 16}
    if mode == "colocated":
        kw["policy"] = policy
    else:
        kw["decode_kv_policy"] = kv_policy
    result = run(mode, uniform_workload(rate, num), seed=seed, **kw)  # checks invariants (env)
    c = result.counts
    assert c.arrived == num == c.finished + c.rejected + c.in_flight
    assert c.in_flight == 0
    for inst in result.instances:
        assert inst.max_kv_tokens <= inst.kv_capacity_tokens
        assert inst.max_batch_size <= (16 if inst.role != "prefill" else num)


def test_kv_violation_is_detected() -> None:
    """The invariant check fires when an instance claims more KV than it has."""
    inst = ColocatedInstance.__new__(ColocatedInstance)
    inst.index, inst.cap, inst.held = 0, 10, 0
    inst.batch = type("B", (), {"sum_ctx": 11})()
    with pytest.raises(AssertionError, match="KV"):
        inst.check()


def test_rejections_are_counted() -> None:
    # 300 + 40 tokens exceed a 320-token cache: rejected, never dropped silently.
    result = run("colocated", fixed_workload(5, 20, isl=300, osl=40), kv_capacity_tokens=320)
    assert result.counts.rejected == 20 and result.records.rejected.all()
    assert np.isnan(result.records.finish_s).all()
    beyond_context = run("disagg", fixed_workload(5, 10, isl=2000, osl=100))  # opt-13b: 2048
    assert beyond_context.counts.rejected == 10


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_records(mode: str) -> None:
    a = run(mode, uniform_workload(20, 300), seed=3, kv_capacity_tokens=2000)
    b = run(mode, uniform_workload(20, 300), seed=3, kv_capacity_tokens=2000)
    c = run(mode, uniform_workload(20, 300), seed=4, kv_capacity_tokens=2000)
    if mode != "prefill_only":
        assert a.counts.preempted > 0  # the preemption paths are covered too
    for name, col in a.records.as_dict().items():
        assert col.tobytes() == getattr(b.records, name).tobytes(), name
    assert a.records.arrival_s.tobytes() != c.records.arrival_s.tobytes()


def test_same_time_events_run_by_priority_then_insertion() -> None:
    dep = deployment("colocated")
    result_engine: Any = _bare_engine(dep)
    order: list[str] = []
    result_engine.handlers = tuple((lambda ev, k=k: order.append(f"{k}:{ev[4]}")) for k in range(6))
    for label, prio in (
        ("a", PRIO_ARRIVAL),
        ("t", PRIO_TRANSFER),
        ("b1", PRIO_BOUNDARY),
        ("b2", PRIO_BOUNDARY),
    ):
        result_engine.push(1.0, prio, 0, label)
    result_engine.push(0.5, PRIO_ARRIVAL, 0, "early")
    result_engine.drain()
    assert order == ["0:early", "0:b1", "0:b2", "0:t", "0:a"]


def _bare_engine(dep: Any) -> Engine:
    from servesim.engine.build import build_instances
    from servesim.engine.records import RecordBuffer

    rec = RecordBuffer()
    inst = build_instances(dep, rec, fast=True, latency_models=stubs("colocated"))
    return Engine(inst, rec, None, 1.0, "colocated")


def test_arrival_at_a_boundary_waits_for_it() -> None:
    """Deterministic arrivals every D: each lands exactly on the previous prefill's end and,
    boundaries running first, starts at once (no queueing)."""
    from .factories import StubLatency

    lat = StubLatency(prefill_base_s=0.25, prefill_per_token_s=0.0)
    result = run(
        "prefill_only",
        fixed_workload(4.0, 50, isl=64, osl=1, poisson=False),
        lat,
        max_prefill_tokens=64,
    )
    r = result.records
    assert np.allclose(r.prefill_start_s, r.arrival_s)
    assert np.allclose(r.first_token_s - r.arrival_s, 0.25)


def test_closed_loop_keeps_concurrency() -> None:
    result = run("colocated", closed_workload(4, 200))
    r = result.records
    assert result.counts.finished == 200
    # At any arrival, at most 4 requests are outstanding (including it).
    for t in r.arrival_s[::10]:
        outstanding = np.count_nonzero((r.arrival_s <= t) & (r.finish_s > t))
        assert outstanding <= 4
    assert np.all(np.diff(r.arrival_s) >= 0)


def test_closed_loop_think_time_delays_next_request() -> None:
    result = run("prefill_only", closed_workload(1, 20, think_s=0.5))
    r = result.records
    assert np.allclose(r.arrival_s[1:] - r.finish_s[:-1], 0.5)


def test_simulate_with_real_latency_model_all_modes() -> None:
    for mode in MODES:
        dep = deployment(mode, 2)
        res = simulate(dep, OpenLoopWorkload(Poisson(4), Uniform(10, 500, 2, 50), 200))
        assert res.counts.finished == 200 and res.end_s > 0
