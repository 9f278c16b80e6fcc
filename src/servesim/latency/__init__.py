"""Latency models: how long one prefill or decode iteration takes for (model, GPU, parallelism).

`build_latency_model` is the one entry point: the operator-level model of latency/roofline.py
with the GPU's fitted efficiency profile (shipped in latency/data/, or any profile JSON), the
plain roofline when asked for or when no profile exists for the GPU, or DistServe's fitted form
for a 'distserve' profile.
"""

from __future__ import annotations

from servesim.errors import InputError
from servesim.latency.backends import load_backend
from servesim.latency.base import Breakdown, LatencyModel, prefill_attn_pairs
from servesim.latency.distserve import DistServeModel, build_distserve
from servesim.latency.profiles import Profile, load_profile, resolve_efficiency, resolve_profile
from servesim.latency.roofline import Efficiency, RooflineModel, build_roofline
from servesim.specs.cluster import ClusterSpec
from servesim.specs.model import QUANTIZED_DTYPES, ModelSpec
from servesim.specs.parallel import ParallelSpec

__all__ = [
    "Breakdown",
    "DistServeModel",
    "Efficiency",
    "LatencyModel",
    "Profile",
    "RooflineModel",
    "build_latency_model",
    "build_roofline",
    "load_profile",
    "prefill_attn_pairs",
    "resolve_efficiency",
]


def build_latency_model(
    model: ModelSpec,
    cluster: ClusterSpec,
    parallel: ParallelSpec,
    profile: str | None = None,
    roofline: bool = False,
    precision: str | None = None,
    backend: str | None = None,
) -> LatencyModel:
    """The latency model of a TP x PP instance of `model` on `cluster`.

    `profile` names a shipped profile or a JSON file (default: the GPU's shipped profile);
    `roofline=True` ignores profiles and uses the datasheet roofline. `precision` is the GEMM
    precision ('bf16', 'fp8', 'fp4' or 'int4'); by default that of the model's weights.
    `backend` names a serving-engine profile (latency/backends.py) whose fitted overheads and
    kernel efficiencies are applied on top of the profile.
    """
    if precision is None:
        precision = model.dtype if model.dtype in QUANTIZED_DTYPES else "bf16"
    loaded = None if roofline else resolve_profile(profile, cluster.gpu.name)
    if loaded is not None and loaded.kind == "distserve":
        if backend is not None:
            raise InputError("backend", backend, "not combinable with a DistServe-form profile")
        if parallel.ep > 1 or parallel.dp > 1:
            raise InputError(
                "parallel", str(parallel), "no EP or attention DP with a DistServe-form profile"
            )
        return build_distserve(model, parallel, loaded)
    efficiency = loaded.efficiency() if loaded is not None else None
    if backend is not None:
        efficiency = load_backend(backend).apply(efficiency or Efficiency())
    return build_roofline(model, cluster, parallel, efficiency, precision)
