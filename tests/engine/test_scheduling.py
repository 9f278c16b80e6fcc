"""Batching and scheduling rules of each instance kind, checked on the records."""

from __future__ import annotations

from typing import Any

import numpy as np

from servesim.engine import simulate
from servesim.engine.prefill import saturating_prefill_tokens
from servesim.latency import build_latency_model
from servesim.specs.parallel import ParallelSpec
from servesim.workload import Fixed, OpenLoopWorkload, Poisson, Uniform
from servesim.workload.synthetic import ClosedLoopWorkload

from .factories import CLUSTER, MODEL, StubLatency, deployment, fixed_workload, run, stubs


def test_prefill_batches_fill_up_to_lm_and_long_prompts_run_alone() -> None:
    # A burst at once (rate huge): batches of 300-token prompts under L_m = 1000 hold 3.
    result = run(
        "prefill_only",
        fixed_workload(1e6, 30, isl=300, osl=1, poisson=False),
        max_prefill_tokens=1000,
    )
    starts = result.records.prefill_start_s
    _, sizes = np.unique(starts, return_counts=True)
    # The first request finds an idle instance; the other 29 go 3 by 3 (the last batch has 2).
    assert sizes.tolist() == [1] + [3] * 9 + [2]
    alone = run(
        "prefill_only",
        fixed_workload(1e6, 5, isl=1500, osl=1, poisson=False),
        max_prefill_tokens=1000,
    )
    assert len(np.unique(alone.records.prefill_start_s)) == 5


def test_pipeline_keeps_pp_batches_in_flight() -> None:
    lat = StubLatency(prefill_base_s=0.3, prefill_per_token_s=0.0, pp=3)
    result = run(
        "prefill_only",
        fixed_workload(1e6, 9, isl=100, osl=1, poisson=False),
        lat,
        max_prefill_tokens=100,
        pp=3,
    )
    r = result.records
    assert np.allclose(np.diff(r.prefill_start_s), 0.1)  # a new batch every stage time
    assert np.allclose(r.prefill_end_s - r.prefill_start_s, 0.3)  # latency: all stages


def test_reserving_decode_waits_when_kv_is_full() -> None:
    # Each request reserves 100 + 50 - 1 tokens; 300 fit -> at most two run at once.
    result = run(
        "decode_only",
        fixed_workload(1e6, 6, isl=100, osl=50, poisson=False),
        kv_capacity_tokens=300,
        decode_kv_policy="reserve",
    )
    inst = result.instances[0]
    assert inst.max_batch_size == 2 and inst.max_kv_tokens == 298
    r = result.records
    # The third request starts only when the first has finished: 49 more iterations of >= 10 ms.
    assert r.finish_s[2] >= r.finish_s[0] + 49 * 0.01
    # Decode-only: the first token is the admission, so the wait is TTFT and TPOT is decoding.
    assert r.first_token_s[2] == r.finish_s[0]
    assert r.first_token_s[2] - r.arrival_s[2] >= 49 * 0.01


def test_on_demand_decode_admits_on_current_context() -> None:
    # 100-token contexts: the first two fit with the watermark (3 tokens), a third does not.
    result = run(
        "decode_only",
        fixed_workload(1e6, 6, isl=100, osl=50, poisson=False),
        kv_capacity_tokens=300,
    )
    assert result.instances[0].max_batch_size == 2 and result.counts.preempted == 0
    roomy = run("decode_only", fixed_workload(1e6, 6, isl=100, osl=50, poisson=False))
    assert roomy.instances[0].max_batch_size == 6


def test_on_demand_decode_preempts_the_newest_and_recomputes() -> None:
    """A and B (400 in, 400 out) share 1000 tokens: B joins after A's first iteration, both grow
    until the cache is full, B is preempted with 100 tokens made, waits for A to finish, then
    recomputes 500 tokens (prompt + generated) and decodes its last 299 tokens alone."""
    lat = StubLatency()
    for exact in (False, True):
        res = simulate(
            deployment("decode_only", kv_capacity_tokens=1000, kv_watermark=0.0),
            fixed_workload(1e6, 2, isl=400, osl=400, poisson=False),
            timeline=True,
            exact=exact,
            latency_models=stubs("decode_only", lat),
        )
        r = res.records
        assert r.num_preemptions.tolist() == [0, 1] and res.counts.finished == 2
        assert np.isclose(
            r.first_token_s[1], r.arrival_s[0] + lat.decode_s(1, 400)
        )  # after A's 1st
        assert res.timeline is not None
        recomputes = [s for s in res.timeline.spans[0] if s[2] == "prefill"]
        assert len(recomputes) == 1
        start, end, _, size, _ = recomputes[0]
        assert start == r.finish_s[0] and size == 1
        assert np.isclose(end - start, lat.prefill_s(1, 500, 500 * 500))
        tail = sum(lat.decode_s(1, c) for c in range(500, 799))
        assert np.isclose(r.finish_s[1], end + tail)
        assert res.instances[0].max_kv_tokens <= 1000


def test_on_demand_decode_batches_more_than_reserving() -> None:
    workload = OpenLoopWorkload(Poisson(40.0), Uniform(10, 300, 50, 400), 300)
    kw: dict = {"kv_capacity_tokens": 4000}
    on_demand = run("disagg", workload, **kw)
    reserve = run("disagg", workload, decode_kv_policy="reserve", **kw)
    assert reserve.counts.preempted == 0
    assert on_demand.instances[1].mean_batch_size > 1.3 * reserve.instances[1].mean_batch_size
    assert on_demand.counts.finished == reserve.counts.finished == 300


def test_decode_batch_cap() -> None:
    result = run(
        "decode_only", fixed_workload(1e6, 10, isl=10, osl=20, poisson=False), max_batch_seqs=3
    )
    assert result.instances[0].max_batch_size == 3


def test_decode_times_follow_the_closed_form() -> None:
    lat = StubLatency(decode_base_s=0.01, decode_per_seq_s=0.0, decode_per_ctx_s=1e-5)
    result = run("decode_only", fixed_workload(1.0, 1, isl=100, osl=11), lat)
    # 10 iterations with contexts 100..109: 10 * 0.01 + 1e-5 * sum(100..109)
    expected = 0.1 + 1e-5 * sum(range(100, 110))
    assert np.isclose(result.records.finish_s[0] - result.records.arrival_s[0], expected)


def test_disagg_ttft_includes_the_kv_transfer() -> None:
    result = run("disagg", fixed_workload(2.0, 20, isl=512, osl=8))
    r = result.records
    assert np.allclose(r.first_token_s, r.kv_end_s)
    transfer = r.kv_end_s - r.kv_start_s
    expected = 512 * MODEL.kv_bytes_per_token / CLUSTER.intra_node_bytes_per_s
    assert np.allclose(transfer, expected + CLUSTER.intra_node_latency_s)
    assert np.all(r.kv_start_s >= r.prefill_end_s)


def test_disagg_moves_a_sliding_window_layers_kv_only_inside_its_window() -> None:
    from dataclasses import replace

    from servesim.engine import Deployment
    from servesim.specs import get_model

    windowed = get_model("gpt-oss-120b").with_precision("fp4")  # fits one GPU of CLUSTER
    isl = 512  # past gpt-oss's 128-token window
    moved = {}
    for model in (windowed, replace(windowed, sliding_window_tokens=0, window_layers=())):
        dep = Deployment(model, CLUSTER, deployment("disagg").groups)
        r = simulate(dep, fixed_workload(2.0, 4, isl=isl, osl=4), latency_models=stubs("disagg"))
        moved[model.sliding_window_tokens] = (r.records.kv_end_s - r.records.kv_start_s)[0]
    latency = CLUSTER.intra_node_latency_s
    expected = windowed.kv_bytes_per_seq(isl) / CLUSTER.intra_node_bytes_per_s + latency
    assert np.isclose(moved[128], expected)
    # 18 full layers keep 512 tokens, 18 windowed layers 128: (18 * 512 + 18 * 128) / (36 * 512)
    assert np.isclose((moved[128] - latency) / (moved[0] - latency), 0.625)


def test_disagg_routes_to_shortest_queue_and_least_loaded() -> None:
    result = run("disagg", fixed_workload(1e6, 40, isl=200, osl=30, poisson=False), num_instances=4)
    r = result.records
    assert set(np.unique(r.prefill_instance)) == {0, 1, 2, 3}
    assert set(np.unique(r.decode_instance)) == {4, 5, 6, 7}
    assert np.bincount(r.decode_instance - 4).tolist() == [10, 10, 10, 10]


def test_colocated_vllm_preempts_under_kv_pressure() -> None:
    workload = OpenLoopWorkload(Poisson(50.0), Fixed(200, 300), 60)
    result = run("colocated", workload, kv_capacity_tokens=3000)
    assert result.counts.preempted > 0
    assert result.counts.finished == 60
    assert result.instances[0].max_kv_tokens <= 3000
    roomy = run("colocated", workload, kv_capacity_tokens=60000)
    assert roomy.counts.preempted == 0


def test_vllm_never_mixes_prefill_and_decode_but_chunked_does() -> None:
    workload = OpenLoopWorkload(Poisson(20.0), Uniform(100, 900, 10, 50), 100)
    dep = deployment("colocated")
    vllm = simulate(dep, workload, timeline=True, latency_models=stubs("colocated"))
    dep_c = deployment("colocated", policy="chunked", chunk_tokens=256)
    chunked = simulate(dep_c, workload, timeline=True, latency_models=stubs("colocated"))
    assert vllm.timeline is not None and chunked.timeline is not None
    kinds_v = {s[2] for s in vllm.timeline.spans[0]}
    kinds_c = {s[2] for s in chunked.timeline.spans[0]}
    assert kinds_v == {"prefill", "decode"}
    assert "mixed" in kinds_c and "prefill" not in kinds_c
    assert chunked.counts.finished == vllm.counts.finished == 100


def test_chunked_splits_long_prompts() -> None:
    result = run(
        "colocated",
        fixed_workload(0.1, 3, isl=1000, osl=2, poisson=False),
        policy="chunked",
        chunk_tokens=256,
    )
    # 1000 tokens in chunks of 256: four iterations before the first token.
    lat = StubLatency()
    chunks = [256, 256, 256, 232]
    expected = sum(lat.mixed_s(c, 0.0, 0, 0) for c in chunks)
    r = result.records
    assert np.allclose(r.first_token_s - r.arrival_s, expected)


def test_timeline_collects_spans_queue_and_transfers() -> None:
    res = simulate(
        deployment("disagg"),
        fixed_workload(5.0, 30, isl=100, osl=10),
        timeline=True,
        latency_models=stubs("disagg"),
    )
    tl = res.timeline
    assert tl is not None
    assert len(tl.transfers) == 30 and len(tl.spans) == 2
    assert all(end >= start for start, end, *_ in tl.spans[1])
    assert tl.queue_samples


def test_default_lm_is_the_knee_of_the_prefill_curve() -> None:
    lat = build_latency_model(MODEL, CLUSTER, ParallelSpec(1, 1))
    lm = saturating_prefill_tokens(lat, 2048)
    assert 256 <= lm <= 1024  # REFERENCE.md: about 512 tokens for a 13B model on an A100
    rate = lambda t: t / lat.prefill_s(1, t, t * t)  # noqa: E731
    assert rate(2 * lm) < 1.15 * rate(lm)  # doubling past L_m gains less than 15%
    assert all(rate(2 * t) >= 1.15 * rate(t) for t in range(16, lm, 16))  # the shortest such
    assert saturating_prefill_tokens(lat, 16384) == lm  # the scanned range does not move it


def test_lm_of_a_linear_prefill_time() -> None:
    # T = a + b*t with a / b = 1000 tokens: doubling gains < 15% once t > 2.83 * 1000.
    lat: Any = StubLatency()
    assert saturating_prefill_tokens(lat, 16384) == 2848
    assert saturating_prefill_tokens(lat, 1000) == 1000  # capped


def test_instance_stats() -> None:
    res = run("colocated", fixed_workload(5.0, 100, isl=100, osl=20))
    s = res.instances[0]
    assert 0 < s.busy_s <= res.end_s
    assert 0 < s.utilization(res.end_s) <= 1
    assert s.num_iterations >= 100 * 19 / s.max_batch_size
    assert 1 <= s.mean_batch_size <= s.max_batch_size


class _Burst:
    """Open-loop requests that all arrive at the same instant (a trace at coarse resolution)."""

    def __init__(self, num: int, isl: int = 300, osl: int = 4) -> None:
        self.num, self.isl, self.osl = num, isl, osl

    def chunks(self, seed: int, chunk_size: int = 65536) -> Any:
        from servesim.workload.base import RequestChunk

        yield RequestChunk(
            np.zeros(self.num),
            np.full(self.num, self.isl, dtype=np.int64),
            np.full(self.num, self.osl, dtype=np.int64),
        )


def test_simultaneous_arrivals_at_an_idle_instance_are_scheduled_together() -> None:
    """A real scheduler pass takes every waiting request: a burst of 6 x 300 tokens under
    L_m = 1000 runs as 3 + 3, not 1 + 3 + 2 (the first arrival is not started alone)."""
    for mode in ("prefill_only", "disagg"):
        result = run(mode, _Burst(6), max_prefill_tokens=1000)
        _, sizes = np.unique(result.records.prefill_start_s, return_counts=True)
        assert sizes.tolist() == [3, 3], mode
    colocated = run("colocated", _Burst(6), policy="vllm", max_prefill_tokens=1000)
    _, sizes = np.unique(colocated.records.prefill_start_s, return_counts=True)
    assert sizes.tolist() == [3, 3]
    # A burst spread over two instances: each starts its share at once.
    two = run("colocated", _Burst(6), num_instances=2, policy="vllm", max_prefill_tokens=1000)
    assert np.all(two.records.prefill_start_s == 0.0)
    assert sorted(np.bincount(two.records.prefill_instance).tolist()) == [3, 3]
    # Closed loop: the C first requests of the clients arrive together at t = 0.
    closed = run("colocated", ClosedLoopWorkload(4, Fixed(300, 4), 4), policy="vllm")
    assert np.all(closed.records.prefill_start_s == 0.0)
