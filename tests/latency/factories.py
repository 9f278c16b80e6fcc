"""Small factories for latency tests."""

from __future__ import annotations

from pathlib import Path

from servesim.latency import LatencyModel, build_latency_model
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec

SHARED_PROFILES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "profiles"


def make_latency(
    model: str = "llama-2-13b",
    gpu: str = "a100-80gb",
    tp: int = 1,
    pp: int = 1,
    profile: str | None = None,
    roofline: bool = False,
) -> LatencyModel:
    cluster = make_cluster(gpu, num_nodes=max(1, -(-tp * pp // 8)))
    return build_latency_model(
        get_model(model), cluster, ParallelSpec(tp, pp), profile=profile, roofline=roofline
    )
