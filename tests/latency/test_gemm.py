"""GEMM tile and wave quantisation, the precomputed stack, fp8 efficiency, element-wise kernels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.latency import gemm, ops
from servesim.latency.efficiency import Efficiency
from servesim.latency.profiles import load_profile
from servesim.specs import get_gpu

A100 = get_gpu("a100-80gb")
H100 = get_gpu("h100-sxm")
EFF = Efficiency(gemm_compute=0.8, gemm_half_tokens=0.0, gemm_tile_tokens=0.0)


def _waves(
    m: float,
    n: float = 4096,
    k: float = 4096,
    tile_tokens: float = 0.0,
    tiles: tuple[tuple[int, int], ...] = gemm.TILES,
) -> float:
    return float(gemm.wave_s(m, n, k, 108, 312e12 * 0.8, tile_tokens, tiles))


def test_wave_quantisation_makes_a_partial_wave_cost_a_whole_one() -> None:
    # 4096 x 4096 on A100, measured 204 us at m = 1024 and 305 us at m = 2048 (ratio 1.5, not
    # 2): m = 1024 leaves the last wave part-empty. With a tile cost the fastest tiles are large.
    ratio = _waves(2048, tile_tokens=64.0) / _waves(1024, tile_tokens=64.0)
    assert 1.4 < ratio < 1.75
    # a GEMM that fills exactly one wave of 128 x 128 tiles: one token more needs a second
    one_wave = 13 * 128  # 13 x 8 = 104 tiles of 128 x 128 (n = 1024): one wave on 108 SMs
    assert _waves(one_wave + 1, n=1024, tile_tokens=64.0) > 1.2 * _waves(
        one_wave, n=1024, tile_tokens=64.0
    )


@given(
    j=st.integers(0, 800),
    a=st.floats(0.01, 1.0),
    b=st.floats(0.01, 1.0),
    tiles=st.sampled_from([gemm.TILES, gemm.WEIGHT_ONLY_TILES]),
)
@settings(max_examples=100, deadline=None)
def test_compute_time_constant_within_a_bucket(
    j: int, a: float, b: float, tiles: tuple[tuple[int, int], ...]
) -> None:
    lo = gemm.BUCKET_TOKENS * j
    ma, mb = lo + a * gemm.BUCKET_TOKENS, lo + b * gemm.BUCKET_TOKENS
    assert _waves(ma, tiles=tiles) == pytest.approx(_waves(mb, tiles=tiles), rel=1e-12)


@given(m=st.floats(1, 20000), extra=st.floats(0, 5000), n=st.sampled_from([1024, 5120, 28672]))
@settings(max_examples=200, deadline=None)
def test_wave_time_monotone_in_tokens(m: float, extra: float, n: int) -> None:
    assert _waves(m + extra, n) >= _waves(m, n) * (1 - 1e-12)


@given(m=st.floats(0.5, 40000), extra=st.floats(0, 5000))
@settings(max_examples=200, deadline=None)
def test_stack_monotone_in_tokens(m: float, extra: float) -> None:
    stack = ops.gemm_stack([(40, 5120, 5120), (40, 27648, 5120), (40, 5120, 13824)], A100, EFF)
    assert stack(m + extra) >= stack(m) * (1 - 1e-12)


def test_wave_time_approaches_the_smooth_roofline_at_large_m() -> None:
    m, n, k = 65536.0, 8192.0, 8192.0
    smooth = 2 * m * n * k / (312e12 * 0.8)
    assert float(gemm.gemm_compute_s(m, n, k, A100, EFF)) == pytest.approx(smooth, rel=0.03)


def test_gpu_without_sm_count_uses_the_smooth_curve() -> None:
    gpu = replace(A100, num_sms=None)
    eff = replace(EFF, gemm_half_tokens=50.0)
    got = float(gemm.gemm_compute_s(100.0, 4096.0, 4096.0, gpu, eff))
    assert got == pytest.approx(2 * 4096 * 4096 * 150 / (312e12 * 0.8))


def test_fp8_gemms_use_their_own_efficiency_where_the_gpu_has_fp8() -> None:
    slow = replace(EFF, gemm_fp8_compute=0.4)
    big = (8192.0, 8192.0, 8192.0)
    assert float(gemm.gemm_compute_s(*big, H100, slow, "fp8")) == pytest.approx(
        2 * float(gemm.gemm_compute_s(*big, H100, replace(EFF, gemm_fp8_compute=0.8), "fp8"))
    )
    # A100 has no fp8 tensor cores: fp8 weights compute at the bf16 rate and efficiency
    assert float(gemm.gemm_compute_s(*big, A100, slow, "fp8")) == pytest.approx(
        float(gemm.gemm_compute_s(*big, A100, slow, "bf16"))
    )


def test_elementwise_kernels_have_their_own_factors() -> None:
    eff = Efficiency(rotary_memory=0.35, rotary_overhead_s=1e-5, norm_memory=0.7)
    num_bytes = np.array([1e8, 1e8])
    kernel = np.array([1.0, 0.0])  # rotary, norm
    got = ops.elementwise_kernels_s(num_bytes, kernel, A100, eff)
    assert got[0] == pytest.approx(float(ops.elementwise_s(1e8, A100, eff, "rotary")))
    assert got[1] == pytest.approx(float(ops.elementwise_s(1e8, A100, eff, "norm")))
    assert got[0] - 1e-5 == pytest.approx(2 * (got[1] - eff.norm_overhead_s))


# ---- fp8: quantise, then a scaled GEMM with a tile chosen by m ---------------------------------
FP8_EFF = Efficiency(
    gemm_compute=0.8,
    gemm_fp8_compute=0.7,
    gemm_fp8_half_tokens=60.0,
    gemm_fp8_overhead_s=2e-6,
    gemm_fp8_token_s=6e-9,
)
FP8_SHAPES = [(32.0, 10240.0, 8192.0), (32.0, 8192.0, 8192.0), (32.0, 57344.0, 8192.0)]


@given(m=st.floats(min_value=0.5, max_value=1e5))
@settings(max_examples=200, deadline=None)
def test_fp8_stack_matches_sum_of_gemms(m: float) -> None:
    stack = gemm.gemm_stack(FP8_SHAPES, H100, FP8_EFF, "fp8")
    direct = sum(c * float(gemm.gemm_s(m, n, k, H100, FP8_EFF, "fp8")) for c, n, k in FP8_SHAPES)
    assert stack(m) == pytest.approx(direct, rel=0.01 if m <= 16384 else 0.03)
    if m <= 16384:
        assert stack(m) <= direct * (1 + 1e-9)


@given(m=st.floats(1, 16384), extra=st.floats(1, 4096))
@settings(max_examples=100, deadline=None)
def test_fp8_quantisation_is_linear_in_tokens(m: float, extra: float) -> None:
    # a tiny GEMM (one tile, no weight traffic to speak of): time grows by the per-token cost
    quant_base, per_token = gemm.quant_line(32.0, H100, FP8_EFF, "fp8")
    assert quant_base == FP8_EFF.gemm_fp8_overhead_s
    bw = H100.memory_bw_bytes_per_s * FP8_EFF.gemm_memory
    assert float(per_token) == pytest.approx(6e-9 + 32 * gemm.QUANT_BYTES / bw)
    assert gemm.quant_line(32.0, A100, FP8_EFF, "fp8")[0] == 0.0  # no fp8 kernel on A100
    assert gemm.quant_line(32.0, H100, FP8_EFF, "bf16")[0] == 0.0


def test_fp8_tile_follows_m_without_split_k() -> None:
    rate = 1979e12 * 0.7
    # n = 128, k = 65536: one 128 x 128 tile at m = 129..256 walks all of k on one SM
    one_tile = 2 * 65536 * 128 * 128 * 132 / rate
    assert float(gemm.fp8_wave_s(200.0, 128.0, 65536.0, 132, rate)) == pytest.approx(one_tile)
    # m <= 64: two 64 x 64 tiles side by side, each a quarter of the work
    assert float(gemm.fp8_wave_s(64.0, 128.0, 65536.0, 132, rate)) == pytest.approx(one_tile / 4)
    # the bf16 kernels split k over the idle SMs instead
    assert float(gemm.wave_s(200.0, 128.0, 65536.0, 132, rate, 0.0)) < one_tile / 10


@pytest.mark.parametrize("profile", ["h100-sxm", "h100-sxm-aiconfigurator"])
@pytest.mark.parametrize("m", [1.0, 16.0, 1024.0, 8192.0])
def test_shipped_h100_profile_makes_fp8_faster_than_bf16(profile: str, m: float) -> None:
    # aiconfigurator H100 (vLLM 0.24, n = k = 8192): bf16 / fp8 = 1.71, 1.41, 1.39, 1.84 at
    # m = 1, 16, 1024, 8192 -- half the weight bytes at small m, fp8 tensor cores at large m
    eff = load_profile(profile).efficiency()
    bf16 = float(gemm.gemm_s(m, 8192.0, 8192.0, H100, eff, "bf16"))
    fp8 = float(gemm.gemm_s(m, 8192.0, 8192.0, H100, eff, "fp8"))
    assert 1.3 < bf16 / fp8 < 2.0
    if m == 8192.0:  # measured 0.836 ms
        assert 0.7e-3 < fp8 < 1.05e-3


def test_fp4_runs_the_scaled_kernel_at_the_fp4_peak_where_the_gpu_has_fp4() -> None:
    b200, h100 = get_gpu("b200"), get_gpu("h100-sxm")
    assert b200.peak_flops_per_s("fp4") == 2 * b200.peak_flops_per_s("fp8")
    # Hopper has no fp4 tensor cores: NVFP4 weights are widened and computed at the bf16 rate
    assert h100.peak_flops_per_s("fp4") == h100.peak_flops_per_s("bf16")
    assert gemm.has_scaled_kernel(b200, "fp4") and not gemm.has_scaled_kernel(h100, "fp4")
    big = (8192.0, 8192.0, 8192.0)
    fp4 = float(gemm.gemm_compute_s(*big, b200, EFF, "fp4"))
    assert fp4 == pytest.approx(0.5 * float(gemm.gemm_compute_s(*big, b200, EFF, "fp8")), rel=0.02)
    # a decode-sized GEMM streams 0.5625 bytes per weight (4 bits and one fp8 scale per 16)
    base_fp4, _ = gemm.gemm_memory_line(8192.0, 8192.0, b200, EFF, "fp4")
    base_fp8, _ = gemm.gemm_memory_line(8192.0, 8192.0, b200, EFF, "fp8")
    assert base_fp4 == pytest.approx(0.5625 * base_fp8)


def test_weight_only_kernels_ramp_in_proportion_to_their_weight_bytes() -> None:
    h100, b200, a100 = get_gpu("h100-sxm"), get_gpu("b200"), get_gpu("a100-80gb")
    assert gemm.is_weight_only(h100, "fp4") and gemm.is_weight_only(a100, "fp8")
    assert not gemm.is_weight_only(b200, "fp4") and not gemm.is_weight_only(h100, "fp8")
    assert not gemm.is_weight_only(h100, "bf16")
    assert gemm.ramp_tokens(160.0, h100, "fp4") == pytest.approx(160.0 * 0.5625 / 2)
    assert gemm.ramp_tokens(160.0, a100, "fp8") == pytest.approx(80.0)
    assert gemm.ramp_tokens(160.0, b200, "fp4") == 160.0


@pytest.mark.parametrize("m", [1.0, 16.0, 32.0])
def test_a_w4a16_decode_gemm_is_bound_by_its_weight_stream_on_hopper(m: float) -> None:
    # gpt-oss-120b's expert up-projection at TP2 (k = 2880, n = 2880): with the bf16 kernel's
    # 177-token ramp it would be compute-bound at twice its weight-read time
    eff = load_profile("h100-sxm").efficiency()
    n, k = 2880.0, 2880.0
    compute = float(gemm.gemm_compute_s(m, n, k, H100, eff, "fp4"))
    base, per_token = gemm.gemm_memory_line(n, k, H100, eff, "fp4")
    assert compute < base + per_token * m
    bf16_ramp = 2.0 * n * k * eff.gemm_half_tokens / gemm.compute_rate(H100, eff, "fp4")
    assert bf16_ramp > 1.5 * base


def test_weight_only_moe_ramps_less_than_the_bf16_moe() -> None:
    eff = load_profile("h100-sxm").efficiency()
    args = (32.0, 2880.0, 2880.0, 4, 128, H100, replace(eff, routing_skew=0.0))
    bf16_compute, _ = ops.moe_split(*args, tp=2, precision="bf16")
    fp4_compute, fp4_memory = ops.moe_split(*args, tp=2, precision="fp4")
    assert fp4_compute < 0.5 * bf16_compute
    assert fp4_compute < 1.2 * fp4_memory  # about as much ramp work as weight streaming
