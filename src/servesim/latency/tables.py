"""Measured latency tables, normalised to operator points, and the readers of Vidur's formats.

A `Table` holds rows of one operator kind (gemm, gemm_fp8, elementwise, attn_prefill,
attn_decode, moe, allreduce, send, e2e_prefill, e2e_decode) measured on one GPU: shape columns
as numpy arrays, the measured seconds, a label per row (the model the row comes from) for
leave-one-model-out splits, and the serving stack (`origin`) that measured it. `read_folder`
(latency/readers.py) walks a folder and reads every table it recognises.

Vidur (MIT): `mlp.csv` gives per-layer times (ms) of the linear layers and element-wise kernels
for (num_tokens, TP); `attention.csv` the attention kernel for prefill chunks and decode batches;
`network/<node>/{all_reduce,send_recv}.csv` collectives of `size` fp16 elements.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from servesim.latency.efficiency import ELEMENTWISE_KERNELS

Array = npt.NDArray[np.float64]
MS = 1e-3

# Folder names and device strings of the measured sets -> GPU catalog names.
GPU_ALIASES = {
    "a100": "a100-80gb",
    "a100_sxm": "a100-80gb",
    "a100-80gb": "a100-80gb",
    "h100": "h100-sxm",
    "h100_sxm": "h100-sxm",
    "h100-80gb": "h100-sxm",
    "a40": "a40",
    "a30": "a30",
}


# Top folders of one serving stack measured under several names.
ORIGIN_ALIASES = {
    "vidur_history": "vidur",
    "vidur_fork_akafaka": "vidur",
    "splitwise_sim": "splitwise",
}


@dataclass(frozen=True)
class Table:
    """Rows of one operator kind measured on one GPU."""

    source: str  # file path relative to the folder read
    kind: str
    gpu: str  # GPU catalog name
    labels: npt.NDArray[np.str_]  # model (or shape) each row comes from
    x: dict[str, Array]
    measured_s: Array
    fit: bool = True  # False: read and compared, but not fitted (e.g. inter-node rows)
    precision: str = "bf16"
    note: str = ""

    @property
    def origin(self) -> str:
        """The serving stack that measured the table: the top folder of its source ('vidur',
        'aiconfigurator', 'splitwise', 'distserve', 'distserve-vllm'; '' for a flat folder)."""
        path = Path(self.source)
        top = ORIGIN_ALIASES.get(path.parts[0], path.parts[0]) if len(path.parts) > 1 else ""
        if top == "distserve" and path.suffix == ".json":
            engine = path.name.split(".")[-2]
            return top if engine == "distserve" else f"{top}-{engine}"
        return top

    @property
    def name(self) -> str:
        return f"{self.source} [{self.kind}{', ' + self.note if self.note else ''}]"

    def __len__(self) -> int:
        return len(self.measured_s)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Table:
        return Table(
            self.source,
            self.kind,
            self.gpu,
            self.labels[mask],
            {k: v[mask] for k, v in self.x.items()},
            self.measured_s[mask],
            self.fit,
            self.precision,
            self.note,
        )


def make_table(
    source: str, kind: str, gpu: str, rows: list[dict[str, float | str]], **kw: object
) -> Table:
    """Build a Table from dict rows holding 'label', 'measured_s' and the shape columns."""
    keys = [k for k in rows[0] if k not in ("label", "measured_s")]
    return Table(
        source=source,
        kind=kind,
        gpu=gpu,
        labels=np.array([str(r["label"]) for r in rows]),
        x={k: np.array([float(r[k]) for r in rows]) for k in keys},
        measured_s=np.array([float(r["measured_s"]) for r in rows]),
        **kw,  # type: ignore[arg-type]
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def gpu_from_path(path: Path) -> str | None:
    """The GPU catalog name named by a folder of `path` (a100, h100_sxm, a30_single_gpu, ...)."""
    for part in reversed(path.parts):
        for alias in sorted(GPU_ALIASES, key=len, reverse=True):
            if part == alias or part.startswith(alias + "_") or part.startswith(alias + "-"):
                return GPU_ALIASES[alias]
    return None


# ---- Vidur mlp.csv ----------------------------------------------------------------------------
def _mlp_ops(r: dict[str, str]) -> Iterator[tuple[str, str, dict[str, float]]]:
    """(column, kind, shape) of each operator timed in one mlp.csv row, per GPU."""
    h, heads, kv = float(r["n_embd"]), float(r["n_head"]), float(r["n_kv_head"])
    ffn, tp, tokens = (
        float(r["n_expanded_embd"]),
        float(r["num_tensor_parallel_workers"]),
        float(r["num_tokens"]),
    )
    gated = r["use_gated_mlp"] == "True"
    d = h / heads
    q, kvg = heads / tp, max(1.0, kv / tp)
    yield "attn_pre_proj", "gemm", {"m": tokens, "n": (q + 2 * kvg) * d, "k": h}
    yield "attn_post_proj", "gemm", {"m": tokens, "n": h, "k": q * d}
    yield "mlp_up_proj", "gemm", {"m": tokens, "n": (2 if gated else 1) * ffn / tp, "k": h}
    yield "mlp_down_proj", "gemm", {"m": tokens, "n": h, "k": ffn / tp}
    act = (3 if gated else 2) * ffn / tp
    for column, kernel, width in (
        ("emb", "embedding", 2 * h),
        ("input_layernorm", "norm", 2 * h),
        ("post_attention_layernorm", "norm", 2 * h),
        ("attn_rope", "rotary", 2 * (q + kvg) * d),
        ("mlp_act", "activation", act),
        ("add", "residual", 3 * h),
    ):
        index = float(ELEMENTWISE_KERNELS.index(kernel))
        yield column, "elementwise", {"num_bytes": 2.0 * width * tokens, "kernel": index}


def read_vidur_mlp(path: Path, root: Path, gpu: str) -> list[Table]:
    rows = read_csv(path)
    label = path.parent.name
    by_kind: dict[str, list[dict[str, float | str]]] = {"gemm": [], "elementwise": []}
    for r in rows:
        for column, kind, shape in _mlp_ops(r):
            value = r.get(f"time_stats.{column}.median")
            if value:
                by_kind[kind].append({"label": label, "measured_s": float(value) * MS, **shape})
    source = str(path.relative_to(root))
    return [make_table(source, kind, gpu, pts) for kind, pts in by_kind.items() if pts]


# ---- Vidur attention.csv ------------------------------------------------------------------------
def read_vidur_attention(path: Path, root: Path, gpu: str) -> list[Table]:
    rows = read_csv(path)
    label = path.parent.name if path.parent.name != gpu.split("-")[0] else "llama-70b-shape"
    prefill: list[dict[str, float | str]] = []
    decode: list[dict[str, float | str]] = []
    for r in rows:
        tp = float(r["num_tensor_parallel_workers"])
        heads, kv = float(r["n_q_head"]), float(r["n_kv_head"])
        shape = {
            "num_heads": heads / tp,
            "num_kv_heads": max(1.0, kv / tp),
            "head_dim": float(r["n_embd"]) / heads,
            "kv_bytes": 2.0,
        }
        batch, ctx = float(r["batch_size"]), float(r["kv_cache_size"])
        if r["is_prefill"] == "True":
            chunk = float(r["prefill_chunk_size"])
            value = r["time_stats.attn_prefill.median"]
            pairs = batch * (chunk * ctx + chunk * (chunk + 1) / 2)
            prefill.append(
                {
                    "label": label,
                    "measured_s": float(value) * MS,
                    "num_seqs": batch,
                    "num_tokens": batch * chunk,
                    "num_pairs": pairs,
                    **shape,
                }
            )
        else:
            value = r["time_stats.attn_decode.median"]
            decode.append(
                {
                    "label": label,
                    "measured_s": float(value) * MS,
                    "num_seqs": batch,
                    "sum_ctx_tokens": batch * ctx,
                    **shape,
                }
            )
    source = str(path.relative_to(root))
    return [
        make_table(source, kind, gpu, pts)
        for kind, pts in (("attn_prefill", prefill), ("attn_decode", decode))
        if pts
    ]


# ---- Vidur network tables ------------------------------------------------------------
def read_vidur_network(path: Path, root: Path, gpu: str) -> list[Table]:
    """all_reduce.csv / send_recv.csv; rows spanning nodes are kept apart and not fitted."""
    from servesim.specs.cluster import make_cluster

    cluster = make_cluster(gpu)
    kind = "allreduce" if path.stem == "all_reduce" else "send"
    node = path.parent.name
    intra: list[dict[str, float | str]] = []
    inter: list[dict[str, float | str]] = []
    for r in read_csv(path):
        workers, per_node = float(r["num_workers"]), float(r["devices_per_node"])
        spans = per_node < workers
        link = cluster.inter_node_bytes_per_s if spans else cluster.intra_node_bytes_per_s
        point: dict[str, float | str] = {
            "label": node,
            "measured_s": float(r[f"time_stats.{path.stem}.median"]) * MS,
            "num_bytes": 2.0 * float(r["size"]),
            "tp": workers,
            "link_bytes_per_s": link,
        }
        (inter if spans else intra).append(point)
    source = str(path.relative_to(root))
    dgx = "dgx" in node or "single" in node
    tables = []
    if intra:
        tables.append(
            make_table(source, kind, gpu, intra, fit=dgx, note="" if dgx else "not fitted")
        )
    if inter:
        tables.append(
            make_table(source, kind, gpu, inter, fit=False, note="inter-node, not fitted")
        )
    return tables


Reader = Callable[[Path, Path, str], list[Table]]
