"""Readers of aiconfigurator's and splitwise-sim's tables, and auto-detection over a folder.

aiconfigurator (Apache-2.0), latencies in ms, message sizes in elements:
`gemm_perf.csv` (m, n, k), `context_attention_perf.csv` / `generation_attention_perf.csv`
(batch, isl or step, heads per GPU), `moe_perf.csv` (fused MoE), `nccl_perf.csv` and
`custom_allreduce_perf.csv` (all-reduce). splitwise-sim (MIT) `perf_model.csv`: end-to-end prompt
time (ms) and time per output token (ms) of Llama-2-70B and BLOOM-176B at TP 2-8.
"""

from __future__ import annotations

from pathlib import Path

from servesim.latency.tables import (
    GPU_ALIASES,
    MS,
    Reader,
    Table,
    gpu_from_path,
    make_table,
    read_csv,
    read_vidur_attention,
    read_vidur_mlp,
    read_vidur_network,
)
from servesim.specs.cluster import make_cluster

Rows = list[dict[str, float | str]]


def _gpu_of_device(device: str, fallback: str) -> str:
    text = device.lower()
    for key, name in (("a100", "a100-80gb"), ("h100", "h100-sxm"), ("a40", "a40"), ("a30", "a30")):
        if key in text:
            return name
    return fallback


# gemm_dtype -> (table kind, precision, note); block-scaled fp8 is a different kernel family
# (per-128-block scales) that the model does not describe: read and compared, not fitted.
_AIC_GEMM_DTYPES = {
    "bfloat16": ("gemm", "bf16", ""),
    "fp8": ("gemm_fp8", "fp8", "fp8"),
    "fp8_block": ("gemm_fp8", "fp8", "fp8 block-scaled, not fitted"),
}


def read_aic_gemm(path: Path, root: Path, gpu: str) -> list[Table]:
    by_dtype: dict[str, Rows] = {}
    for r in read_csv(path):
        if r["gemm_dtype"] not in _AIC_GEMM_DTYPES:
            continue
        by_dtype.setdefault(r["gemm_dtype"], []).append(
            {
                "label": f"n{r['n']}k{r['k']}",
                "measured_s": float(r["latency"]) * MS,
                "m": float(r["m"]),
                "n": float(r["n"]),
                "k": float(r["k"]),
            }
        )
    source = str(path.relative_to(root))
    tables = []
    for dtype, rows in by_dtype.items():
        kind, precision, note = _AIC_GEMM_DTYPES[dtype]
        fit = not note.endswith("not fitted")
        tables.append(make_table(source, kind, gpu, rows, fit=fit, precision=precision, note=note))
    return tables


def _attention_shape(r: dict[str, str]) -> dict[str, float]:
    return {
        "num_heads": float(r["num_heads"]),
        "num_kv_heads": float(r["num_key_value_heads"]),
        "head_dim": float(r["head_dim"]),
        "kv_bytes": 1.0 if "fp8" in r["kv_cache_dtype"] else 2.0,
    }


def read_aic_attention(path: Path, root: Path, gpu: str) -> list[Table]:
    """Context (prefill) or generation (decode) attention; sliding-window rows are skipped."""
    prefill = path.name.startswith("context")
    rows: Rows = []
    for r in read_csv(path):
        if float(r.get("window_size") or 0) > 0:
            continue
        shape = _attention_shape(r)
        label = f"h{r['num_heads']}kv{r['num_key_value_heads']}d{r['head_dim']}"
        batch = float(r["batch_size"])
        point: dict[str, float | str] = {
            "label": label,
            "measured_s": float(r["latency"]) * MS,
            "num_seqs": batch,
        }
        if prefill:
            isl = float(r["isl"])
            point.update(num_tokens=batch * isl, num_pairs=batch * isl * (isl + 1) / 2, **shape)
        else:
            point.update(sum_ctx_tokens=batch * float(r["step"]), **shape)
        rows.append(point)
    kind = "attn_prefill" if prefill else "attn_decode"
    return [make_table(str(path.relative_to(root)), kind, gpu, rows)] if rows else []


# moe_dtype -> (precision, note) of the fused-MoE rows read: bf16, and the block-scaled fp8 of
# fp8 checkpoints (Qwen3-FP8, DeepSeek-V3/R1) as fp8 weights. Per-tensor fp8 and 4-bit kernels
# are other kernel families, not read.
_AIC_MOE_DTYPES = {"bfloat16": ("bf16", ""), "fp8_block": ("fp8", "fp8 block-scaled")}


def read_aic_moe(path: Path, root: Path, gpu: str) -> list[Table]:
    """Fused-MoE rows, one table per dtype read. Rows measured with balanced routing (every
    expert the same load) are read when the file has them, and modelled as such; otherwise the
    power-law rows are read and modelled with the latency model's skewed routing
    (`routing_skew`)."""
    raw = [r for r in read_csv(path) if r["moe_dtype"] in _AIC_MOE_DTYPES]
    balanced = any(r["distribution"] == "balanced" for r in raw)
    by_dtype: dict[str, Rows] = {}
    for r in raw:
        if balanced and r["distribution"] != "balanced":
            continue
        by_dtype.setdefault(r["moe_dtype"], []).append(
            {
                "label": f"moe{r['hidden_size']}x{r['inter_size']}e{r['num_experts']}k{r['topk']}",
                "measured_s": float(r["latency"]) * MS,
                "num_tokens": float(r["num_tokens"]),
                "hidden": float(r["hidden_size"]),
                "inter": float(r["inter_size"]),
                "topk": float(r["topk"]),
                "num_experts": float(r["num_experts"]),
                "tp": float(r["moe_tp_size"]),
                "ep": float(r["moe_ep_size"]),
                "balanced": 1.0 if balanced else 0.0,
            }
        )
    source = str(path.relative_to(root))
    routing = "balanced" if balanced else "power-law rows as skewed routing"
    tables = []
    for dtype, rows in by_dtype.items():
        precision, note = _AIC_MOE_DTYPES[dtype]
        note = f"{note}, {routing}" if note else routing
        tables.append(make_table(source, "moe", gpu, rows, precision=precision, note=note))
    return tables


# Bytes per element of the collectives' dtypes (the tables give message sizes in elements).
_COMM_DTYPE_BYTES = {"half": 2.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "float": 4.0}


def read_aic_allreduce(path: Path, root: Path, gpu: str) -> list[Table]:
    """NCCL all_reduce rows, or vLLM custom all-reduce (CUDA-graph rows fitted, eager rows not);
    message sizes are in elements of the row's dtype (rows of other dtypes are not read)."""
    link = make_cluster(gpu).intra_node_bytes_per_s
    groups: dict[str, Rows] = {}
    for r in read_csv(path):
        dtype = r.get("nccl_dtype") or r.get("allreduce_dtype") or "half"  # no column: 16-bit
        if r["op_name"] != "all_reduce" or dtype not in _COMM_DTYPE_BYTES:
            continue
        eager = r.get("backend", "") == "vllm_eager"
        groups.setdefault("eager" if eager else "", []).append(
            {
                "label": r.get("backend") or "nccl",
                "measured_s": float(r["latency"]) * MS,
                "num_bytes": _COMM_DTYPE_BYTES[dtype] * float(r["message_size"]),
                "tp": float(r["num_gpus"]),
                "link_bytes_per_s": link,
            }
        )
    source = str(path.relative_to(root))
    return [
        make_table(
            source, "allreduce", gpu, rows, fit=not eager, note="eager, not fitted" if eager else ""
        )
        for eager, rows in groups.items()
    ]


# ---- splitwise-sim perf_model.csv -------------------------------------------------------------
SPLITWISE_MODELS = {"llama2-70b": "llama-2-70b", "bloom-176b": "bloom-176b"}


def read_splitwise(path: Path, root: Path, gpu: str) -> list[Table]:
    """End-to-end rows, one Table per (GPU, phase); power-capped H100 rows are not fitted."""
    groups: dict[tuple[str, str, bool], Rows] = {}
    for r in read_csv(path):
        capped = r["hardware"].endswith("pcap")
        name = GPU_ALIASES.get(r["hardware"].removesuffix("-pcap"), r["hardware"])
        b, p, t = float(r["batch_size"]), float(r["prompt_size"]), float(r["token_size"])
        base: dict[str, float | str] = {
            "label": SPLITWISE_MODELS.get(r["model"], r["model"]),
            "tp": float(r["tensor_parallel"]),
            "num_seqs": b,
        }
        groups.setdefault((name, "e2e_prefill", capped), []).append(
            {
                **base,
                "measured_s": float(r["prompt_time"]) * MS,
                "num_tokens": b * p,
                "sum_sq_tokens": b * p * p,
            }
        )
        groups.setdefault((name, "e2e_decode", capped), []).append(
            {**base, "measured_s": float(r["token_time"]) * MS, "sum_ctx_tokens": b * (p + t / 2)}
        )
    source = str(path.relative_to(root))
    return [
        make_table(
            source,
            kind,
            name,
            rows,
            fit=not capped,
            note="power-capped, not fitted" if capped else "",
        )
        for (name, kind, capped), rows in groups.items()
    ]


# ---- DistServe's fitted coefficients, sampled on a grid of batches -------------------------------
_DS_PREFILL = [(b, n) for b in (1, 2, 4, 8) for n in (128, 256, 512, 1024, 2048) if b * n <= 8192]
_DS_DECODE = [(b, c) for b in (1, 4, 16, 64, 128, 256) for c in (128, 512, 1024, 2048)]


def read_distserve(path: Path, root: Path, gpu: str) -> list[Table]:
    """profiler-<gpu>.<engine>.json: DistServe's per-(model, TP) fit, evaluated on a grid of
    batches (prompt lengths up to OPT's 2048) -- their fit, not raw measurements."""
    import json

    from servesim.latency.distserve import build_distserve, distserve_profile
    from servesim.specs.catalog import get_model
    from servesim.specs.parallel import ParallelSpec

    profile = distserve_profile(json.loads(path.read_text()), str(path.name), gpu or "a100-80gb")
    prefill: Rows = []
    decode: Rows = []
    for key, per_tp in profile.params.items():
        label = key.rsplit("/", 1)[-1].lower()
        for tp in per_tp:
            m = build_distserve(get_model(label), ParallelSpec(int(tp), 1), profile)
            base: dict[str, float | str] = {"label": label, "tp": float(tp)}
            prefill += [
                {
                    **base,
                    "num_seqs": b,
                    "measured_s": m.prefill_s(b, b * n, b * n * n),
                    "num_tokens": b * n,
                    "sum_sq_tokens": b * n * n,
                }
                for b, n in _DS_PREFILL
            ]
            decode += [
                {**base, "num_seqs": b, "measured_s": m.decode_s(b, b * c), "sum_ctx_tokens": b * c}
                for b, c in _DS_DECODE
            ]
    source = str(path.relative_to(root))
    return [
        make_table(source, "e2e_prefill", profile.gpu, prefill, note="DistServe fit"),
        make_table(source, "e2e_decode", profile.gpu, decode, note="DistServe fit"),
    ]


# ---- auto-detection ------------------------------------------------------------
READERS: dict[str, Reader] = {
    "mlp.csv": read_vidur_mlp,
    "attention.csv": read_vidur_attention,
    "all_reduce.csv": read_vidur_network,
    "send_recv.csv": read_vidur_network,
    "gemm_perf.csv": read_aic_gemm,
    "context_attention_perf.csv": read_aic_attention,
    "generation_attention_perf.csv": read_aic_attention,
    "moe_perf.csv": read_aic_moe,
    "nccl_perf.csv": read_aic_allreduce,
    "custom_allreduce_perf.csv": read_aic_allreduce,
    "perf_model.csv": read_splitwise,
}


def _first_device(path: Path) -> str:
    with path.open() as fh:
        header = fh.readline().strip().split(",")
        values = fh.readline().strip().split(",")
    return dict(zip(header, values, strict=False)).get("device", "")


def read_folder(root: Path, gpu: str | None = None) -> list[Table]:
    """Every table under `root` whose file name a reader knows; the GPU comes from the folder
    names (a100, h100_sxm, ...), the rows' device column, or `gpu` when given."""
    tables: list[Table] = []
    for path in sorted(root.rglob("*")):
        is_distserve = path.name.startswith("profiler-") and path.name.endswith(".json")
        reader = read_distserve if is_distserve else READERS.get(path.name)
        if reader is None:
            continue
        name = (
            gpu
            or gpu_from_path(path.relative_to(root))
            or gpu_from_path(root.resolve())
            or (_gpu_of_device(_first_device(path), "") if path.suffix == ".csv" else "")
        )
        if not name and reader not in (read_splitwise, read_distserve):
            continue
        tables.extend(reader(path, root, name))
    return tables
