"""Small factories for engine tests: stub latency models, deployments and workloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servesim.engine import Deployment, InstanceGroup, SimResult, simulate
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import Deterministic, Fixed, OpenLoopWorkload, Poisson, Uniform
from servesim.workload.synthetic import ClosedLoopWorkload

MODEL = get_model("opt-13b")
CLUSTER = make_cluster("a100-80gb", num_nodes=2)


@dataclass(frozen=True)
class StubLatency:
    """Linear iteration times, easy to reason about (seconds)."""

    prefill_base_s: float = 0.02
    prefill_per_token_s: float = 2e-5
    decode_base_s: float = 0.01
    decode_per_seq_s: float = 1e-4
    decode_per_ctx_s: float = 1e-7
    pp: int = 1

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.prefill_base_s + self.prefill_per_token_s * sum_tokens

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.prefill_s(num_seqs, sum_tokens, sum_sq_tokens) / self.pp

    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        return self.decode_base_s + self.decode_per_seq_s * num_seqs, self.decode_per_ctx_s

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        return base + slope * sum_ctx_tokens

    def mixed_s(
        self,
        num_prefill_tokens: int,
        prefill_attn_pairs: float,
        num_decode_seqs: int,
        sum_ctx_tokens: int,
    ) -> float:
        return (
            self.decode_base_s
            + self.prefill_per_token_s * num_prefill_tokens
            + self.decode_per_seq_s * num_decode_seqs
            + self.decode_per_ctx_s * sum_ctx_tokens
        )


def group(role: str, num_instances: int = 1, tp: int = 1, pp: int = 1, **kw: Any) -> InstanceGroup:
    return InstanceGroup(role, ParallelSpec(tp, pp), num_instances, **kw)


def deployment(mode: str, num_instances: int = 1, **kw: Any) -> Deployment:
    """A deployment of opt-13b on two A100 nodes; `kw` goes to every group."""
    roles = {
        "colocated": ("colocated",),
        "disagg": ("prefill", "decode"),
        "prefill_only": ("prefill",),
        "decode_only": ("decode",),
    }[mode]
    groups = tuple(group(r, num_instances, **kw) for r in roles)
    return Deployment(MODEL, CLUSTER, groups)


def stubs(mode: str, latency: StubLatency | None = None) -> dict[str, StubLatency]:
    lat = latency or StubLatency()
    return {
        r: lat
        for r in ("prefill", "decode", "colocated")
        if r
        in {
            "colocated": ("colocated",),
            "disagg": ("prefill", "decode"),
            "prefill_only": ("prefill",),
            "decode_only": ("decode",),
        }[mode]
    }


def fixed_workload(
    rate: float, num: int, isl: int = 256, osl: int = 32, poisson: bool = True
) -> OpenLoopWorkload:
    arrivals = Poisson(rate) if poisson else Deterministic(rate)
    return OpenLoopWorkload(arrivals, Fixed(isl, osl), num)


def uniform_workload(
    rate: float, num: int, max_in: int = 600, max_out: int = 60
) -> OpenLoopWorkload:
    return OpenLoopWorkload(Poisson(rate), Uniform(1, max_in, 1, max_out), num)


def closed_workload(concurrency: int, num: int, think_s: float = 0.0) -> ClosedLoopWorkload:
    return ClosedLoopWorkload(concurrency, Uniform(1, 400, 1, 40), num, think_s)


def run(
    mode: str,
    workload: Any,
    latency: StubLatency | None = None,
    exact: bool = False,
    seed: int = 0,
    num_instances: int = 1,
    **kw: Any,
) -> SimResult:
    """Simulate `workload` on a `mode` deployment with stub latencies."""
    dep = deployment(mode, num_instances, **kw)
    return simulate(
        dep,
        workload,
        seed=seed,
        exact=exact,
        latency_models=stubs(mode, latency),
    )
