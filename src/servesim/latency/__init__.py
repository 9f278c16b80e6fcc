"""Latency models: how long one prefill or decode iteration takes for (model, GPU, parallelism).

`build_latency_model` is the one entry point: the roofline from specs, corrected by a fitted
profile (a JSON file of efficiency factors fitted to measured tables) when one is given or ships
for the GPU.
"""

from __future__ import annotations

from servesim.latency.base import Breakdown, LatencyModel, prefill_attn_pairs
from servesim.latency.profiles import resolve_efficiency
from servesim.latency.roofline import Efficiency, RooflineModel, build_roofline
from servesim.specs.cluster import ClusterSpec
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec

__all__ = [
    "Breakdown", "Efficiency", "LatencyModel", "RooflineModel", "build_latency_model",
    "build_roofline", "prefill_attn_pairs",
]


def build_latency_model(
    model: ModelSpec,
    cluster: ClusterSpec,
    parallel: ParallelSpec,
    profile: str | None = None,
    roofline: bool = False,
    precision: str = "bf16",
) -> LatencyModel:
    """The latency model of a TP x PP instance of `model` on `cluster`.

    `profile` names a shipped profile or a JSON file; `roofline=True` ignores profiles.
    """
    efficiency = None if roofline else resolve_efficiency(profile, cluster.gpu.name)
    return build_roofline(model, cluster, parallel, efficiency, precision)

