"""Operator primitives: the precomputed GEMM stack equals the sum of GEMMs; the fitter recovers
known factors from synthetic tables; all-reduces: ring traffic on the faster of two algorithms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.latency import ops
from servesim.latency.fit import fit_gpu
from servesim.latency.ops import Efficiency
from servesim.latency.predict import predict
from servesim.latency.readers import read_aic_allreduce
from servesim.latency.roofline import build_roofline
from servesim.latency.tables import Table
from servesim.specs import get_gpu, get_model, make_cluster
from servesim.specs.parallel import ParallelSpec

GPU = get_gpu("a100-80gb")
EFF = Efficiency(gemm_compute=0.75, gemm_half_tokens=90.0, gemm_memory=0.8, gemm_overhead_s=5e-6)
SHAPES = [
    (32.0, 12288.0, 4096.0),
    (32.0, 4096.0, 4096.0),
    (32.0, 22016.0, 4096.0),
    (32.0, 4096.0, 11008.0),
    (1.0, 32000.0, 4096.0),
]


@given(m=st.floats(min_value=0.5, max_value=1e5))
@settings(max_examples=200, deadline=None)
def test_gemm_stack_matches_sum_of_gemms(m: float) -> None:
    stack = ops.gemm_stack(SHAPES, GPU, EFF)
    direct = sum(c * float(ops.gemm_s(m, n, k, GPU, EFF)) for c, n, k in SHAPES)
    # exact but for the activation traffic of < 64 tokens; proportional beyond 16384 tokens
    assert stack(m) == pytest.approx(direct, rel=0.01 if m <= 16384 else 0.03)
    if m <= 16384:
        assert stack(m) <= direct * (1 + 1e-9)


def test_ring_allreduce_formula() -> None:
    eff = Efficiency(communication=0.5, collective_latency_s=1e-5)
    t = float(ops.allreduce_s(1e8, 4, 1e11, eff))
    assert t == pytest.approx(1e-5 + 2 * 3 / 4 * 1e8 / (0.5e11))
    assert float(ops.allreduce_s(1e8, 1, 1e11, eff)) == 0.0


def test_allreduce_takes_the_faster_algorithm() -> None:
    # Small kernel: 5 us + traffic at half the link; bulk ring: 60 us + traffic at 0.9 of it.
    eff = Efficiency(
        communication=0.5, collective_latency_s=5e-6, bulk_communication=0.9, bulk_latency_s=6e-5
    )
    link, ring = 1e11, 2 * 7 / 8
    for num_bytes in (1e5, 1e6, 1e7, 1e8, 1e9):
        small = 5e-6 + ring * num_bytes / (0.5 * link)
        bulk = 6e-5 + ring * num_bytes / (0.9 * link)
        assert float(ops.allreduce_s(num_bytes, 8, link, eff)) == pytest.approx(min(small, bulk))
    # Crossover: small messages on the small kernel, large ones on the ring.
    assert float(ops.allreduce_s(1e5, 8, link, eff)) < 6e-5
    assert float(ops.allreduce_s(1e9, 8, link, eff)) == pytest.approx(6e-5 + ring * 1e9 / 0.9e11)
    # Without a bulk algorithm (0, the default; profiles written before it) one formula holds.
    assert Efficiency().allreduce_algorithms() == ((10e-6, 0.70),)
    assert Efficiency.from_dict({"communication": 0.6}).allreduce_algorithms() == ((10e-6, 0.6),)
    with pytest.raises(InputError, match="bulk_communication"):
        Efficiency(bulk_communication=3.0)


def test_fit_recovers_both_allreduce_algorithms() -> None:
    truth = Efficiency(
        communication=0.55, collective_latency_s=5e-6, bulk_communication=0.85, bulk_latency_s=7e-5
    )
    sizes, tps = np.meshgrid(2.0 ** np.arange(10, 31), [2.0, 4.0, 8.0])
    x = {
        "num_bytes": sizes.ravel(),
        "tp": tps.ravel(),
        "link_bytes_per_s": np.full(sizes.size, 4.5e11),
    }
    labels = np.array(["s"] * sizes.size)
    table = Table(
        "synthetic/nccl_perf.csv", "allreduce", "a100-80gb", labels, x, np.ones(sizes.size)
    )
    table = Table(table.source, table.kind, table.gpu, labels, x, predict(table, truth))
    fitted = fit_gpu([table], "a100-80gb").efficiency
    assert fitted.communication == pytest.approx(truth.communication, rel=0.02)
    assert fitted.collective_latency_s == pytest.approx(truth.collective_latency_s, rel=0.05)
    assert fitted.bulk_communication == pytest.approx(truth.bulk_communication, rel=0.02)
    assert fitted.bulk_latency_s == pytest.approx(truth.bulk_latency_s, rel=0.05)


@pytest.mark.parametrize("tokens", [1, 64, 1024, 8192])
def test_roofline_allreduces_are_two_per_layer_each_on_its_fastest_algorithm(tokens: int) -> None:
    eff = Efficiency(
        communication=0.5, collective_latency_s=5e-6, bulk_communication=0.9, bulk_latency_s=6e-5
    )
    model, cluster = get_model("llama-3.1-70b"), make_cluster("h100-sxm")
    roofline = build_roofline(model, cluster, ParallelSpec(8, 1), eff)
    one_call = ops.allreduce_s(
        tokens * model.hidden_size * ops.ACT_BYTES, 8, cluster.intra_node_bytes_per_s, eff
    )
    breakdown = roofline.prefill_breakdown(1, tokens, tokens**2)
    assert breakdown.communication_s == pytest.approx(2 * model.num_layers * float(one_call))


def _synthetic_gemm_table(eff: Efficiency) -> Table:
    ms, ns, ks = np.meshgrid([1, 4, 16, 64, 256, 1024, 4096], [1024, 4096, 14336], [4096, 8192])
    x = {
        "m": ms.ravel().astype(float),
        "n": ns.ravel().astype(float),
        "k": ks.ravel().astype(float),
    }
    table = Table(
        "synthetic/gemm_perf.csv",
        "gemm",
        "a100-80gb",
        np.array(["s"] * len(x["m"])),
        x,
        np.ones(len(x["m"])),
    )
    measured = predict(table, eff)
    return Table(table.source, table.kind, table.gpu, table.labels, x, measured)


def test_fit_recovers_known_gemm_factors() -> None:
    result = fit_gpu([_synthetic_gemm_table(EFF)], "a100-80gb")
    fitted = result.efficiency
    assert fitted.gemm_compute == pytest.approx(EFF.gemm_compute, rel=0.02)
    assert fitted.gemm_memory == pytest.approx(EFF.gemm_memory, rel=0.02)
    assert fitted.gemm_half_tokens == pytest.approx(EFF.gemm_half_tokens, rel=0.1)
    assert result.fitted_on == ("synthetic/gemm_perf.csv [gemm]",)


def test_efficiency_rejects_bad_values() -> None:
    from servesim.errors import InputError

    with pytest.raises(InputError, match="gemm_compute"):
        Efficiency(gemm_compute=0.0)
    with pytest.raises(InputError, match="gemm_overhead_s"):
        Efficiency(gemm_overhead_s=-1.0)


def test_touched_experts_under_random_and_balanced_routing() -> None:
    # One token touches topk experts either way; random routing repeats experts as tokens grow,
    # balanced routing touches min(E, tokens * topk); both split evenly over ep GPUs.
    assert ops.touched_experts(1.0, 8.0, 128.0) == pytest.approx((8.0, 8.0))
    random, assigned = ops.touched_experts(16.0, 8.0, 128.0)
    assert random == pytest.approx(128.0 * (1.0 - (1.0 - 8.0 / 128.0) ** 16))
    assert random < 128.0 and assigned == 128.0
    assert ops.touched_experts(16.0, 8.0, 128.0, balanced=1.0)[0] == 128.0
    assert ops.touched_experts(4.0, 8.0, 128.0, ep=8.0, balanced=1.0) == pytest.approx((4.0, 4.0))
    arrays = ops.touched_experts(np.array([1.0, 64.0]), 8.0, 128.0, balanced=np.array([1.0, 1.0]))
    assert arrays[0].tolist() == [8.0, 128.0]


def _synthetic_moe_table(eff: Efficiency) -> Table:
    tokens, ep = np.meshgrid([1, 2, 4, 8, 16, 64, 256, 1024, 4096, 16384], [1, 8, 64])
    n = tokens.size
    x = {
        "num_tokens": tokens.ravel().astype(float),
        "hidden": np.full(n, 4096.0),
        "inter": np.full(n, 1536.0),
        "topk": np.full(n, 8.0),
        "num_experts": np.full(n, 128.0),
        "tp": np.ones(n),
        "ep": ep.ravel().astype(float),
        "balanced": np.ones(n),
    }
    table = Table("synthetic/moe_perf.csv", "moe", "a100-80gb", np.array(["s"] * n), x, np.ones(n))
    return Table(table.source, table.kind, table.gpu, table.labels, x, predict(table, eff))


def test_moe_routing_cost_is_paid_on_every_token_whatever_the_expert_split() -> None:
    eff = Efficiency(moe_token_s=2e-9)
    table = _synthetic_moe_table(eff)
    without = predict(table, Efficiency(moe_token_s=0.0))
    extra = predict(table, eff) - without
    np.testing.assert_allclose(extra, 2e-9 * table.x["num_tokens"] * 8.0, rtol=1e-9)


def test_fit_recovers_known_moe_factors() -> None:
    # A short ramp (20 tokens per expert) leaves small batches memory-bound, so every factor shows.
    truth = Efficiency(
        moe_compute=0.45,
        moe_half_tokens=20.0,
        moe_memory=0.85,
        moe_overhead_s=30e-6,
        moe_token_s=5e-9,
    )
    fitted = fit_gpu([_synthetic_moe_table(truth)], "a100-80gb").efficiency
    assert fitted.moe_compute == pytest.approx(truth.moe_compute, rel=0.05)
    assert fitted.moe_memory == pytest.approx(truth.moe_memory, rel=0.05)
    assert fitted.moe_overhead_s == pytest.approx(truth.moe_overhead_s, rel=0.1)
    assert fitted.moe_token_s == pytest.approx(truth.moe_token_s, rel=0.1)


@given(tokens=st.integers(min_value=1, max_value=4096), skew=st.floats(0.05, 2.5))
@settings(max_examples=100, deadline=None)
def test_skewed_routing_touches_fewer_experts_than_uniform(tokens: int, skew: float) -> None:
    uniform = ops.touched_experts(float(tokens), 8.0, 128.0)[0]
    skewed = ops.touched_experts(float(tokens), 8.0, 128.0, skew=skew)[0]
    more = ops.touched_experts(float(tokens + 1), 8.0, 128.0, skew=skew)[0]
    assert 8.0 - 1e-6 <= skewed <= uniform + 1e-6  # a token still routes to topk experts
    assert skewed <= more <= 128.0 + 1e-9


def test_skewed_routing_at_skew_zero_is_uniform() -> None:
    for tokens in (1.0, 4.0, 16.0, 256.0):
        uniform = ops.touched_experts(tokens, 8.0, 256.0)[0]
        assert ops.skewed_touched(tokens, 8, 256, 1e-9) == pytest.approx(uniform, rel=1e-6)
    # Zipf(1) over 128 experts: 16 tokens touch about 58 experts, not 82.
    assert ops.skewed_touched(16.0, 8, 128, 1.0) == pytest.approx(57.7, abs=0.5)


def test_allreduce_reader_counts_bytes_by_dtype(tmp_path: Path) -> None:
    # nccl-tests sizes are elements: an int8 message of N elements is N bytes, a half one 2N.
    folder = tmp_path / "h100_sxm" / "comm" / "nccl" / "2.27.3"
    folder.mkdir(parents=True)
    header = (
        "framework,version,device,op_name,kernel_source,nccl_dtype,num_gpus,message_size,latency"
    )
    rows = [
        "TRTLLM,2,NVIDIA H100 80GB HBM3,all_reduce,NCCL,half,8,1048576,0.04",
        "TRTLLM,2,NVIDIA H100 80GB HBM3,all_reduce,NCCL,int8,8,1048576,0.03",
        "TRTLLM,2,NVIDIA H100 80GB HBM3,all_gather,NCCL,half,8,1048576,0.02",
    ]
    (folder / "nccl_perf.csv").write_text("\n".join([header, *rows]) + "\n")
    (table,) = read_aic_allreduce(folder / "nccl_perf.csv", tmp_path, "h100-sxm")
    assert table.x["num_bytes"].tolist() == [2 * 1048576.0, 1048576.0]
    assert table.measured_s.tolist() == pytest.approx([40e-6, 30e-6])
