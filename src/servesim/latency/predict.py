"""Predicted seconds for every row of a measured `Table`, from a GPU spec and an `Efficiency`.

Operator tables go through the primitives of latency/ops.py; end-to-end tables (prompt time and
time per output token of a whole model) through the instance model of latency/roofline.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from servesim.latency import ops
from servesim.latency.ops import Efficiency
from servesim.latency.roofline import RooflineModel, build_roofline
from servesim.latency.tables import Array, Table
from servesim.specs.catalog import get_model
from servesim.specs.cluster import make_cluster
from servesim.specs.gpu import GpuSpec, get_gpu
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec

# BLOOM-176B (bigscience/bloom config.json): not in the catalog, needed for splitwise-sim's table.
BLOOM_176B = ModelSpec(
    name="bloom-176b",
    model_type="bloom",
    num_layers=70,
    hidden_size=14336,
    num_heads=112,
    num_kv_heads=112,
    head_dim=128,
    ffn_size=4 * 14336,
    vocab_size=250880,
    max_context_tokens=2048,
    gated_mlp=False,
    attention_bias=True,
    tie_embeddings=True,
)


def _model(label: str) -> ModelSpec:
    return BLOOM_176B if label == "bloom-176b" else get_model(label)


def _gemm(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    return np.asarray(ops.gemm_s(t.x["m"], t.x["n"], t.x["k"], gpu, eff, t.precision))


def _elementwise(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    kernel = t.x.get("kernel")
    if kernel is None:
        return np.asarray(ops.elementwise_s(t.x["num_bytes"], gpu, eff))
    return np.asarray(ops.elementwise_kernels_s(t.x["num_bytes"], kernel, gpu, eff))


def _attn_prefill(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    x = t.x
    return np.asarray(
        ops.attention_prefill_s(
            x["num_seqs"],
            x["num_tokens"],
            x["num_pairs"],
            x["num_heads"],
            x["num_kv_heads"],
            x["head_dim"],
            gpu,
            eff,
            x["kv_bytes"],
        )
    )


def _attn_decode(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    x = t.x
    return np.asarray(
        ops.attention_decode_s(
            x["num_seqs"],
            x["sum_ctx_tokens"],
            x["num_heads"],
            x["num_kv_heads"],
            x["head_dim"],
            gpu,
            eff,
            x["kv_bytes"],
        )
    )


def _moe(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    x = t.x
    return np.asarray(
        ops.moe_s(
            x["num_tokens"],
            x["hidden"],
            x["inter"],
            x["topk"],
            x["num_experts"],
            gpu,
            eff,
            x["tp"],
            x["ep"],
            t.precision,
            x.get("balanced", 0.0),
        )
    )


def _allreduce(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    return np.asarray(ops.allreduce_s(t.x["num_bytes"], t.x["tp"], t.x["link_bytes_per_s"], eff))


def _send(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    return np.asarray(ops.send_s(t.x["num_bytes"], t.x["link_bytes_per_s"], eff))


def _instances(t: Table, gpu: GpuSpec, eff: Efficiency) -> dict[tuple[str, int], RooflineModel]:
    cluster = make_cluster(gpu)
    keys = {(str(label), int(tp)) for label, tp in zip(t.labels, t.x["tp"], strict=True)}
    return {
        (label, tp): build_roofline(_model(label), cluster, ParallelSpec(tp, 1), eff)
        for label, tp in keys
    }


def _e2e_prefill(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    models = _instances(t, gpu, eff)
    x = t.x
    return np.array(
        [
            models[(str(label), int(tp))].prefill_s(int(n), int(tok), int(sq))
            for label, tp, n, tok, sq in zip(
                t.labels, x["tp"], x["num_seqs"], x["num_tokens"], x["sum_sq_tokens"], strict=True
            )
        ]
    )


def _e2e_decode(t: Table, gpu: GpuSpec, eff: Efficiency) -> Array:
    models = _instances(t, gpu, eff)
    x = t.x
    return np.array(
        [
            models[(str(label), int(tp))].decode_s(int(n), float(ctx))  # type: ignore[arg-type]
            for label, tp, n, ctx in zip(
                t.labels, x["tp"], x["num_seqs"], x["sum_ctx_tokens"], strict=True
            )
        ]
    )


PREDICTORS: dict[str, Callable[[Table, GpuSpec, Efficiency], Array]] = {
    "gemm": _gemm,
    "gemm_fp8": _gemm,
    "elementwise": _elementwise,
    "attn_prefill": _attn_prefill,
    "attn_decode": _attn_decode,
    "moe": _moe,
    "allreduce": _allreduce,
    "send": _send,
    "e2e_prefill": _e2e_prefill,
    "e2e_decode": _e2e_decode,
}


def predict(table: Table, eff: Efficiency | None = None) -> Array:
    """Predicted seconds of every row of `table` on its GPU (roofline defaults when eff is None)."""
    return PREDICTORS[table.kind](table, get_gpu(table.gpu), eff or Efficiency())


def abs_pct_errors(table: Table, eff: Efficiency | None = None) -> Array:
    """|predicted - measured| / measured * 100 per row."""
    return np.abs(predict(table, eff) / table.measured_s - 1.0) * 100.0
