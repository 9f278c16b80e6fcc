"""GEMM cost with tile and wave quantisation, and a stack of GEMMs precomputed over token counts.

A GEMM of m tokens, k inputs and n outputs is cut into output tiles of tm x tn; the GPU runs them
in waves of one tile per SM, so the time steps up when a tile row or a wave is added (A100,
4096 x 4096: m = 1024 and 2048 take 2 and 3 waves of 128 x 256 tiles). Per tile shape:

    tiles = ceil(m / tm) * ceil(n / tn)
    split = min(floor(SMs / tiles), k / 256), at least 1   (split-K fills idle SMs)
    waves = ceil(tiles * split / SMs) / split
    time  = waves * 2 * k * tm * tn * (1 + t / tm + t / tn) / (peak / SMs * eff_max)

where t (`gemm_tile_tokens`) is the operand-load cost of a tile, which makes small tiles less
efficient; the kernel takes the fastest tile shape. A fixed ramp of `gemm_half_tokens` tokens of
work is added (launch and pipeline fill), and the GEMM costs its overhead plus the larger of that
compute time and its memory time (weights once, activations in and out). Without an SM count the
compute time is the smooth 2*n*k*(m + m_half) / (peak * eff_max).

fp8 GEMMs on a part with fp8 tensor cores are two kernels (vLLM's CUTLASS scaled_mm path,
aiconfigurator H100 `gemm_perf.csv`): the activations are quantised to fp8 first, a
memory-bound kernel of one block per token, then the scaled GEMM runs with a tile chosen by m
(`FP8_TILES`) and no split-K, at `gemm_fp8_compute` of the fp8 peak with its own ramp
`gemm_fp8_half_tokens`; weights stream at one byte each. The quantisation adds
`gemm_fp8_overhead_s` plus, per token, `gemm_fp8_token_s` and k * QUANT_BYTES of traffic:

    time = overhead + fp8_overhead + max(compute, memory) + m * (token_s + k * 3 / bandwidth)

On a part without fp8 tensor cores an fp8 GEMM is the bf16 kernel reading one-byte weights.
fp4 (NVFP4) GEMMs take the same scaled path at the fp4 peak where the part has fp4 tensor cores
(Blackwell), with 0.5625-byte weights and the fp8 kernel's factors (no fp4 table is measured),
and are the bf16 kernel reading those weights elsewhere; int4 (W4A16) GEMMs always are.

Such weight-only kernels (w8a16, w4a16: Marlin, Machete, Triton's mxfp4 matmul on Hopper) widen
the weights in registers and are built to stay bound by the narrow weight stream at small
batches, which a 2-byte kernel's ramp would forbid (fp4 weights and a 177-token ramp make a
decode GEMM compute-bound at twice its weight-read time). Their ramp, GEMM and MoE alike, is the
bf16 kernel's scaled by weight bytes / ACT_BYTES (`ramp_tokens`): the same ramp work per weight
byte streamed; and their GEMMs may take 16- and 32-row tiles (`WEIGHT_ONLY_TILES`). No
weight-only table is measured: this is an assumption about production kernels, checked end to
end on the gpt-oss rows on H100 (docs/validation.md; W4A16 on Blackwell runs other kernels, and
its rows measure slower); simple kernels are far from it (benchmarks/weight_only_gemm.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from servesim.latency.efficiency import Efficiency
from servesim.specs.gpu import GpuSpec
from servesim.specs.model import BYTES_PER_ELEMENT

ACT_BYTES = 2  # activations stay in bf16/fp16
TILES = ((64, 64), (64, 128), (128, 64), (128, 128), (128, 256), (256, 128))
# Weight-only kernels also run 16- and 32-row tiles at small m (Marlin's 16-row blocks)
WEIGHT_ONLY_TILES = ((16, 128), (16, 256), (32, 128), (32, 256), *TILES)
BUCKET_TOKENS = 16  # every tile height is a multiple, so compute time is constant on each bucket
NUM_BUCKETS = 1024  # buckets up to 16384 tokens; beyond, compute time grows in proportion
SPLIT_K_MIN = 256  # inputs per split-K slice
# fp8 scaled GEMM: (largest m, (tm, tn)) -- the tile grows with m; no split-K (vLLM sm90 configs)
FP8_TILES = ((64, (64, 64)), (128, (64, 128)), (math.inf, (128, 128)))
QUANT_BYTES = ACT_BYTES + 1  # quantising one activation: read bf16, write fp8


def has_scaled_kernel(gpu: GpuSpec, precision: str) -> bool:
    """Whether a GEMM runs the scaled low-precision path (quantise the activations, then an fp8
    or fp4 tensor-core GEMM): fp8 on a part with fp8 tensor cores, fp4 (NVFP4) on one with fp4
    tensor cores. fp4 has no measured tables: it takes the fp8 kernel's factors at the fp4 peak."""
    if precision == "fp8":
        return gpu.fp8_tflops is not None
    return precision == "fp4" and gpu.fp4_tflops is not None


def is_weight_only(gpu: GpuSpec, precision: str) -> bool:
    """Whether a GEMM of `precision` weights runs a weight-only kernel: weights narrower than the
    activations, widened to the bf16 tensor cores (no scaled kernel for them on this part)."""
    return BYTES_PER_ELEMENT[precision] < ACT_BYTES and not has_scaled_kernel(gpu, precision)


def ramp_tokens(tokens: float, gpu: GpuSpec, precision: str) -> float:
    """A kernel ramp of `tokens` (measured on bf16 or scaled kernels) for `precision` weights:
    scaled by weight bytes / ACT_BYTES for a weight-only kernel."""
    if is_weight_only(gpu, precision):
        return tokens * BYTES_PER_ELEMENT[precision] / ACT_BYTES
    return tokens


def compute_rate(gpu: GpuSpec, eff: Efficiency, precision: str = "bf16") -> float:
    """Achieved FLOP/s at large m: the precision's peak times its eff_max."""
    if has_scaled_kernel(gpu, precision):
        return gpu.peak_flops_per_s(precision) * eff.gemm_fp8_compute
    return gpu.peak_flops_per_s("bf16") * eff.gemm_compute


def wave_s(
    m: Any,
    n: Any,
    k: Any,
    num_sms: int,
    rate: float,
    tile_tokens: float,
    tiles: tuple[tuple[int, int], ...] = TILES,
) -> Any:
    """Seconds of the fastest of `tiles`' waves (no ramp, no overhead); floats or arrays."""
    m, n, k = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (m, n, k)))
    best = np.full(m.shape, np.inf)
    max_split = np.maximum(1.0, np.floor(k / SPLIT_K_MIN))
    for tm, tn in tiles:
        count = np.ceil(np.maximum(m, 1.0) / tm) * np.ceil(n / tn)
        split = np.clip(np.floor(num_sms / count), 1.0, max_split)
        waves = np.ceil(count * split / num_sms) / split
        tile_s = 2.0 * k * tm * tn * (1.0 + tile_tokens / tm + tile_tokens / tn) * num_sms / rate
        best = np.minimum(best, waves * tile_s)
    return best if best.ndim else float(best)


def fp8_wave_s(m: Any, n: Any, k: Any, num_sms: int, rate: float) -> Any:
    """Seconds of the fp8 scaled GEMM's waves: the tile is fixed by m, no split-K."""
    m, n, k = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (m, n, k)))
    m = np.maximum(m, 1.0)
    out = np.zeros(m.shape)
    lower = 0.0
    for upper, (tm, tn) in FP8_TILES:
        waves = np.ceil(np.ceil(m / tm) * np.ceil(n / tn) / num_sms)
        out = np.where((m > lower) & (m <= upper), waves * 2.0 * k * tm * tn * num_sms / rate, out)
        lower = upper
    return out if out.ndim else float(out)


def gemm_compute_s(
    m: Any, n: Any, k: Any, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16"
) -> Any:
    """Compute seconds of one GEMM (ramp included, overheads and fp8 quantisation excluded)."""
    rate = compute_rate(gpu, eff, precision)
    scaled = has_scaled_kernel(gpu, precision)
    half = eff.gemm_fp8_half_tokens if scaled else ramp_tokens(eff.gemm_half_tokens, gpu, precision)
    ramp = 2.0 * n * k * half / rate
    if gpu.num_sms is None:
        return ramp + 2.0 * n * k * m / rate
    if scaled:
        return ramp + fp8_wave_s(m, n, k, gpu.num_sms, rate)
    tiles = WEIGHT_ONLY_TILES if is_weight_only(gpu, precision) else TILES
    return ramp + wave_s(m, n, k, gpu.num_sms, rate, eff.gemm_tile_tokens, tiles)


def gemm_memory_line(
    n: float, k: float, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16"
) -> tuple[float, float]:
    """(memory_base_s, memory_s_per_token): weights once, activations in and out per token."""
    bw = gpu.memory_bw_bytes_per_s * eff.gemm_memory
    wb = BYTES_PER_ELEMENT[precision]
    return n * k * wb / bw, (k * wb + n * ACT_BYTES) / bw


def quant_line(k: Any, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16") -> tuple[float, Any]:
    """(quant_base_s, quant_s_per_token) of the activation quantisation of a scaled (fp8 or fp4)
    GEMM (zeros otherwise)."""
    if not has_scaled_kernel(gpu, precision):
        return 0.0, 0.0 * np.asarray(k, dtype=float)
    bw = gpu.memory_bw_bytes_per_s * eff.gemm_memory
    return eff.gemm_fp8_overhead_s, eff.gemm_fp8_token_s + np.asarray(k) * QUANT_BYTES / bw


def gemm_s(m: Any, n: Any, k: Any, gpu: GpuSpec, eff: Efficiency, precision: str = "bf16") -> Any:
    """Seconds of one GEMM of m tokens, k inputs, n outputs (floats or arrays)."""
    am, bm = gemm_memory_line(n, k, gpu, eff, precision)
    qa, qb = quant_line(k, gpu, eff, precision)
    compute = gemm_compute_s(m, n, k, gpu, eff, precision)
    return eff.gemm_overhead_s + qa + np.maximum(compute, am + bm * m) + qb * m


@dataclass(frozen=True, slots=True)
class GemmStack:
    """Sum over GEMMs of max(compute, memory) as a function of the token count m.

    `buckets[j]` covers m in (16j, 16(j+1)] and holds (compute_s, memory_base_s,
    memory_s_per_token): the summed constant compute time of the GEMMs that are compute-bound
    at the bucket's lower end, and the summed memory line of the others (exact for them, and
    within 64 tokens of activation traffic for the first). fp8 activation quantisation is
    memory traffic added to every GEMM: its per-token cost joins the memory slope, its launch
    the overhead. A call is one index and two multiply-adds; beyond the last bucket compute
    time grows in proportion to m.
    """

    buckets: tuple[tuple[float, float, float], ...]
    overhead_s: float

    def split(self, m: float) -> tuple[float, float]:
        """(compute_s, memory_s) of the whole stack at m tokens (overheads excluded)."""
        j = math.ceil(m * (1.0 / BUCKET_TOKENS)) - 1
        if j < 0:
            j = 0
        if j < NUM_BUCKETS:
            c, am, bm = self.buckets[j]
            return c, am + bm * m
        c, am, bm = self.buckets[-1]
        return c * m * (1.0 / (BUCKET_TOKENS * NUM_BUCKETS)), am + bm * m

    def __call__(self, m: float) -> float:
        compute, memory = self.split(m)
        return self.overhead_s + compute + memory


def gemm_stack(
    shapes: list[tuple[float, float, float]], gpu: GpuSpec, eff: Efficiency, precision: str = "bf16"
) -> GemmStack:
    """Precompute the stack of GEMMs given as (count, n, k); cached, since instances of one
    model share their stacks and fits of non-GEMM factors rebuild instances many times."""
    factors = tuple(getattr(eff, name) for name in GEMM_FIELDS)
    return _cached_stack(tuple(shapes), gpu, factors, precision)


GEMM_FIELDS = (
    "gemm_compute",
    "gemm_half_tokens",
    "gemm_memory",
    "gemm_overhead_s",
    "gemm_tile_tokens",
    "gemm_fp8_compute",
    "gemm_fp8_half_tokens",
    "gemm_fp8_overhead_s",
    "gemm_fp8_token_s",
)


@lru_cache(maxsize=512)
def _cached_stack(
    shapes: tuple[tuple[float, float, float], ...],
    gpu: GpuSpec,
    factors: tuple[float, ...],
    precision: str,
) -> GemmStack:
    eff = Efficiency(**dict(zip(GEMM_FIELDS, factors, strict=True)))
    used = [(c, n, k) for c, n, k in shapes if c > 0]
    lower = np.arange(NUM_BUCKETS, dtype=float) * BUCKET_TOKENS
    upper = lower + BUCKET_TOKENS
    compute = np.zeros(NUM_BUCKETS)
    mem_base = np.zeros(NUM_BUCKETS)
    mem_slope = np.zeros(NUM_BUCKETS)
    overhead_s = 0.0
    for count, n, k in used:
        c = np.asarray(gemm_compute_s(upper, n, k, gpu, eff, precision))
        am, bm = gemm_memory_line(n, k, gpu, eff, precision)
        bound = c >= am + bm * lower
        compute += count * np.where(bound, c, 0.0)
        mem_base += count * np.where(bound, 0.0, am)
        qa, qb = quant_line(k, gpu, eff, precision)
        mem_slope += count * (np.where(bound, 0.0, bm) + float(qb))
        overhead_s += count * (eff.gemm_overhead_s + qa)
    buckets = tuple(
        (float(c), float(a), float(b)) for c, a, b in zip(compute, mem_base, mem_slope, strict=True)
    )
    return GemmStack(buckets, overhead_s)
