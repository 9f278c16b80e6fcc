"""Measure a weight-only (w4a16) GEMM against a bf16 GEMM on a CUDA GPU, next to servesim's model.

servesim models weight-only kernels (fp4 or fp8 weights widened to the bf16 tensor cores, as on
Hopper) with the bf16 kernel's ramp scaled by weight bytes / 2 and 16- or 32-row tiles
(latency/gemm.py). This script times, for a few decode-sized shapes and token counts m:

- PyTorch's bf16 matmul (cuBLAS);
- a plain Triton w4a16 GEMM written here (`_w4a16_kernel`: 4-bit weights with one bf16 scale per
  group of 128 inputs, 0.5156 bytes per weight, widened in registers, 16-row tiles, split-K;
  vLLM's MXFP4 experts on Hopper are Triton kernels too, but tuned far beyond this one);
- PyTorch's int4 weight-only kernel (`torch._weight_int4pack_mm`, tinygemm: a matrix-vector
  kernel whose cost grows with m);

each replayed from a CUDA graph (no launch gaps), cycling through enough weight copies that
none stays in L2. It prints the times, the weight-stream time at the datasheet bandwidth, and
what servesim predicts with the shipped profile of `--gpu` for bf16 and fp4 weights (0.5625
bytes per weight).

Needs PyTorch with CUDA; without them it says so and exits 1. servesim itself never needs it.

    python benchmarks/weight_only_gemm.py --gpu h100-sxm
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable
from typing import Any

SHAPES = (  # (label, k inputs, n outputs)
    ("expert up (gpt-oss-sized)", 3072, 6144),
    ("llama-70b mlp up TP4", 8192, 7168),
    ("llama-70b mlp up TP1", 8192, 28672),
)
TOKENS = (1, 4, 16, 32, 64, 128, 256)
GROUP = 128  # inputs per scale
REPLAYS = 24  # GEMMs per graph
TRIALS = 30  # graph replays timed
ROTATE_BYTES = 400e6  # weight copies cycled through, well above any L2


def _time_graph(calls: list[Callable[[], Any]], torch: Any) -> float:
    """Seconds per call, `calls` cycled REPLAYS times in one CUDA graph, median of TRIALS."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(REPLAYS):
            calls[i % len(calls)]()
    for _ in range(3):
        graph.replay()
    times = []
    for _ in range(TRIALS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / REPLAYS)
    times.sort()
    return times[len(times) // 2]


def _triton_w4a16(torch: Any) -> Callable[..., Any]:
    """A w4a16 GEMM in Triton: out[m, n] = x[m, k] @ dequant(packed)[k, n], split over K."""
    import triton
    import triton.language as tl

    @triton.jit
    def _w4a16_kernel(  # type: ignore[no-untyped-def]
        x,
        packed,
        scales,
        out,
        m,
        n,
        k,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        SPLIT_K: tl.constexpr,
        GROUP_K: tl.constexpr,
    ):
        pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        k_per_split = k // SPLIT_K
        for k0 in range(pid_k * k_per_split, (pid_k + 1) * k_per_split, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            a = tl.load(x + rm[:, None] * k + rk[None, :], mask=rm[:, None] < m, other=0.0)
            rk2 = k0 // 2 + tl.arange(0, BLOCK_K // 2)
            b = tl.load(packed + rk2[:, None] * n + rn[None, :])  # two 4-bit values per byte
            lo = (b & 0xF).to(tl.int8) - 8
            hi = (b >> 4).to(tl.int8) - 8
            w = tl.reshape(tl.permute(tl.join(lo, hi), (0, 2, 1)), (BLOCK_K, BLOCK_N))
            scale = tl.load(scales + (k0 // GROUP_K) * n + rn)
            w = w.to(tl.bfloat16) * scale[None, :]
            acc += tl.dot(a, w)
        mask = (rm[:, None] < m) & (rn[None, :] < n)
        tl.atomic_add(out + rm[:, None] * n + rn[None, :], acc, mask=mask)

    def run(x: Any, packed: Any, scales: Any, out: Any, config: tuple[int, int, int, int]) -> None:
        block_m, block_n, block_k, split_k = config
        m, k = x.shape
        n = out.shape[1]
        grid = (math.ceil(m / block_m), n // block_n, split_k)
        out.zero_()
        _w4a16_kernel[grid](
            x,
            packed,
            scales,
            out,
            m,
            n,
            k,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            BLOCK_K=block_k,
            SPLIT_K=split_k,
            GROUP_K=GROUP,
            num_warps=4,
            num_stages=4,
        )

    return run


def _configs(m: int, k: int) -> list[tuple[int, int, int, int]]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K) tried; the fastest is kept. The tile height is the
    smallest of 16, 32, 64 rows that holds m (64 beyond)."""
    block_m = 16 if m <= 16 else 32 if m <= 32 else 64
    return [
        (block_m, block_n, block_k, split_k)
        for block_n in (64, 128)
        for block_k in (64, 128)
        for split_k in (1, 2, 4, 8)
        if k % (split_k * block_k) == 0 and (k // split_k) % GROUP == 0
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="h100-sxm", help="servesim GPU for the predictions")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("weight_only_gemm: needs PyTorch with CUDA (and Triton); servesim does not")
        return 1
    if not torch.cuda.is_available():
        print("weight_only_gemm: needs a CUDA GPU; none is visible")
        return 1

    from servesim.latency import gemm
    from servesim.latency.profiles import resolve_efficiency
    from servesim.specs import get_gpu

    gpu = get_gpu(args.gpu)
    eff = resolve_efficiency(None, args.gpu)
    assert eff is not None
    bw = gpu.memory_bw_bytes_per_s
    w4a16 = _triton_w4a16(torch)
    name = torch.cuda.get_device_name()
    print(f"device: {name}; servesim GPU {args.gpu}; torch {torch.__version__}")
    header = (
        "shape",
        "m",
        "bf16 us",
        "triton w4a16 us",
        "tinygemm int4 us",
        "bf16 stream us",
        "w4a16 stream us",
        "servesim bf16 us",
        "servesim fp4 us",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    torch.manual_seed(0)
    for label, k, n in SHAPES:
        copies = max(2, math.ceil(ROTATE_BYTES / (k * n * 2)))
        weights = [torch.randn(k, n, dtype=torch.bfloat16, device="cuda") for _ in range(copies)]
        copies4 = max(2, math.ceil(ROTATE_BYTES / (k * n * 0.5)))
        packed = [
            torch.randint(0, 256, (k // 2, n), dtype=torch.uint8, device="cuda")
            for _ in range(copies4)
        ]
        scales = torch.rand(k // GROUP, n, dtype=torch.bfloat16, device="cuda")
        tiny = [torch._convert_weight_to_int4pack(p.t().contiguous(), 8) for p in packed[:copies4]]
        tiny_sz = torch.rand(k // GROUP, n, 2, dtype=torch.bfloat16, device="cuda")
        for m in TOKENS:
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            out = torch.zeros(m, n, dtype=torch.float32, device="cuda")
            bf16_s = _time_graph([functools.partial(torch.mm, x, w) for w in weights], torch)
            triton_s = min(
                _time_graph([functools.partial(w4a16, x, p, scales, out, c) for p in packed], torch)
                for c in _configs(m, k)
            )
            tiny_mm = torch._weight_int4pack_mm
            tiny_s = _time_graph(
                [functools.partial(tiny_mm, x, t, GROUP, tiny_sz) for t in tiny], torch
            )
            predicted = [float(gemm.gemm_s(m, n, k, gpu, eff, p)) for p in ("bf16", "fp4")]
            cells = (
                label,
                str(m),
                f"{bf16_s * 1e6:.1f}",
                f"{triton_s * 1e6:.1f}",
                f"{tiny_s * 1e6:.1f}",
                f"{k * n * 2 / bw * 1e6:.1f}",
                f"{k * n * (0.5 + 2 / GROUP) / bw * 1e6:.1f}",
                f"{predicted[0] * 1e6:.1f}",
                f"{predicted[1] * 1e6:.1f}",
            )
            print(" | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
