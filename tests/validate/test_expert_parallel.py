"""Expert parallelism: ParallelSpec's EP degree, its rules, and the MoE cost of an EP instance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.latency import Efficiency, build_roofline
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec, check_parallel

QWEN_MOE = "qwen3-235b-a22b"


def test_ep_defaults_to_one_and_must_divide_tp() -> None:
    assert ParallelSpec(4, 2) == ParallelSpec(4, 2, 1)
    assert str(ParallelSpec(4, 2)) == "tp4pp2" and str(ParallelSpec(8, 1, 4)) == "tp8pp1ep4"
    assert ParallelSpec(8, 1, 4).moe_tp == 2 and ParallelSpec(8, 1, 4).num_gpus == 8
    with pytest.raises(InputError, match="ep"):
        ParallelSpec(8, 1, 3)
    with pytest.raises(InputError, match="ep"):
        ParallelSpec(8, 1, 0)


def test_check_parallel_rules_for_ep() -> None:
    cluster = make_cluster("h100-sxm", gpus_per_node=8, num_nodes=1)
    moe = get_model(QWEN_MOE).with_precision("fp8", "fp8")
    check_parallel(moe, ParallelSpec(8, 1, 8), cluster, max_request_tokens=2048)
    with pytest.raises(InputError, match="has no experts"):
        check_parallel(get_model("llama-3.1-8b"), ParallelSpec(2, 1, 2), cluster)
    with pytest.raises(InputError, match="routed experts"):
        check_parallel(moe, ParallelSpec(6, 1, 3), cluster, max_request_tokens=2048)


def _pair(ep: int):  # type: ignore[no-untyped-def]
    cluster = make_cluster("h100-sxm", gpus_per_node=8, num_nodes=1)
    moe = get_model(QWEN_MOE).with_precision("fp8", "fp8")
    eff = Efficiency()
    return (
        build_roofline(moe, cluster, ParallelSpec(8, 1, ep), eff, "fp8"),
        build_roofline(moe, cluster, ParallelSpec(8, 1, 1), eff, "fp8"),
    )


def test_ep_moves_the_same_work_per_gpu_as_tp() -> None:
    """Uniform routing and TP attention: E/EP experts of TP/EP shards on T*k/EP assignments
    stream the same expert bytes and FLOPs as E experts of TP shards on T*k assignments; only the
    token activations an EP rank reads shrink (its own assignments), and no all-to-all is added."""
    ep_model, tp_model = _pair(8)
    for n in (1, 8, 64):
        ep_s, tp_s = ep_model.decode_s(n, n * 2048), tp_model.decode_s(n, n * 2048)
        assert ep_s <= tp_s and ep_s == pytest.approx(tp_s, rel=0.03)
    ep_s = ep_model.prefill_s(4, 4096, 4 * 1024**2)
    tp_s = tp_model.prefill_s(4, 4096, 4 * 1024**2)
    assert ep_s <= tp_s  # a TP rank reads every assignment's activations, an EP rank its own
    assert ep_model.decode_breakdown(8, 8 * 2048).communication_s == pytest.approx(
        tp_model.decode_breakdown(8, 8 * 2048).communication_s
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 256), st.integers(0, 10**6), st.integers(1, 10**5))
def test_ep_decode_is_linear_in_context(n: int, ctx: int, extra: int) -> None:
    model, _ = _pair(4)
    base, slope = model.decode_coeffs(n)
    assert model.decode_s(n, ctx) == pytest.approx(base + slope * ctx)
    assert model.decode_s(n, ctx + extra) - model.decode_s(n, ctx) == pytest.approx(
        slope * extra, rel=1e-6, abs=1e-12
    )
