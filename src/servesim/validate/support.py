"""Which measured rows servesim can simulate, and why not the others.

`classify(row)` returns a `Target` (the catalog model, GPU and precision to simulate) or the
reason the row is unsupported. Every row gets one or the other: nothing is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.errors import InputError
from servesim.specs import get_gpu, get_model
from servesim.specs.model import ModelSpec
from servesim.validate.silicon import Side, SiliconRow

# aiconfigurator system names -> GPU catalog names, and the size of their NVLink domain.
SYSTEMS = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200-sxm",
    "a100_sxm": "a100-80gb",
    "b200_sxm": "b200",
    "b300_sxm": "b300",
    "gb200": "gb200",
    "gb300": "gb300",
}
NVLINK_DOMAIN_GPUS = {"gb200": 72, "gb300": 72}
DEFAULT_NODE_GPUS = 8
WEIGHT_PRECISIONS = {
    "": "bf16",
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8": "fp8",
    "fp4": "fp4",
    "int4": "int4",
}
SUPPORTED_QUANT_MODES = ("", "bf16", "fp16", "fp8", "fp8_block", "nvfp4", "int4_wo")
DUPLICATE_REASON = "duplicate of an earlier row (same setup, TTFT and TPOT): counted once"
RELABEL_REASON = (
    "same TTFT and TPOT as a row of another parallelism: one measurement under two labels,"
    " counted once under the one with the fewest GPUs"
)


@dataclass(frozen=True, slots=True)
class Target:
    """What to simulate for a supported row."""

    model: ModelSpec  # catalog architecture (precision applied later, per backend)
    model_name: str  # catalog short name (the leave-one-model-out key)
    gpu: str  # GPU catalog name
    weight_precision: str  # bf16, fp16, fp8, fp4 or int4
    node_gpus: int  # GPUs sharing one NVLink domain


@dataclass(frozen=True, slots=True)
class Support:
    """A row's verdict: `target` when supported, else `reason`."""

    target: Target | None
    reason: str | None

    @property
    def supported(self) -> bool:
        return self.target is not None


def _unsupported(reason: str) -> Support:
    return Support(None, reason)


def _model(row: SiliconRow) -> tuple[ModelSpec, str] | str:
    try:
        model = get_model(row.model)
    except InputError:
        return f"model not in the catalog: {row.model}"
    return model, model.name


def _precision(row: SiliconRow) -> str:
    """Weight precision, or '' when the quantization is unsupported."""
    weights = WEIGHT_PRECISIONS.get(row.precision.lower(), "")
    modes = (row.gemm_quant_mode.lower(), row.moe_quant_mode.lower())
    if not weights or any(m not in SUPPORTED_QUANT_MODES for m in modes):
        return ""
    return weights


def _parallel_reason(row: SiliconRow, model: ModelSpec) -> str | None:
    for side in row.sides:
        if side.attention_dp > 1 and not model.is_moe:
            return "attention data parallelism (attention DP > 1) of a dense model not modelled"
        if model.is_moe and side.moe_tp * side.moe_ep != side.tp * side.attention_dp:
            return "MoE TP x EP differing from the attention TP x DP not modelled"
    return None


def expert_parallel(side: Side, model: ModelSpec) -> int:
    """The EP degree servesim simulates: the row's for an MoE model, 1 for a dense one (EP on a
    dense model means nothing)."""
    return side.moe_ep if model.is_moe else 1


# W4A16 on Blackwell runs Marlin-class kernels built on the pre-Blackwell tensor-core
# instructions, a rate servesim has no figure for. Simulated as weight-only at the bf16 rate (what
# serves Hopper), the Kimi-K2.5 INT4 rows on B200 measure 1.4-1.85x the predicted TPOT
# (docs/validation.md); kept out of the fits and the tables rather than mixed into Kimi's group.
INT4_ON_BLACKWELL_REASON = (
    "int4 (W4A16) on a Blackwell part: its Marlin-class kernels' rate is not modelled"
)


def classify(row: SiliconRow) -> Support:
    """A supported row's Target, or the reason it is unsupported."""
    found = _model(row)
    if isinstance(found, str):
        return _unsupported(found)
    model, name = found
    gpu = SYSTEMS.get(row.system.lower())
    if gpu is None:
        return _unsupported(f"system not in the GPU catalog: {row.system}")
    spec = get_gpu(gpu)
    weights = _precision(row)
    if not weights:
        quant = row.precision or row.gemm_quant_mode or "?"
        return _unsupported(
            f"precision {quant} (gemm {row.gemm_quant_mode or '-'}, moe "
            f"{row.moe_quant_mode or '-'}) not supported: bf16/fp16/fp8/nvfp4/int4 (W4A16) only"
        )
    if weights == "int4" and spec.fp4_tflops is not None:
        return _unsupported(INT4_ON_BLACKWELL_REASON)
    if not all(side.workers_recorded for side in row.sides):
        return _unsupported(
            "disaggregated worker counts not recorded (prefill/decode_num_workers empty)"
        )
    reason = _parallel_reason(row, model)
    if reason:
        return _unsupported(reason)
    if row.duplicate_of is not None:
        return _unsupported(DUPLICATE_REASON)
    if row.relabel_of is not None:
        return _unsupported(RELABEL_REASON)
    node_gpus = NVLINK_DOMAIN_GPUS.get(row.system.lower(), DEFAULT_NODE_GPUS)
    return Support(Target(model, name, gpu, weights, node_gpus), None)
