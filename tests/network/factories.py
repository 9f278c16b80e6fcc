"""Factories for network integration tests: small disaggregated deployments, stub latencies."""

from __future__ import annotations

from dataclasses import dataclass

from servesim.engine import Deployment, InstanceGroup, SimResult, simulate
from servesim.network import FlowTransport, flow_transport
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import Deterministic, Fixed, OpenLoopWorkload, Poisson

MODEL = get_model("opt-13b")


@dataclass(frozen=True)
class StubLatency:
    """Linear iteration times (seconds), so that transfers are easy to see in TTFT."""

    prefill_base_s: float = 0.02
    prefill_per_token_s: float = 1e-4
    decode_base_s: float = 0.01
    pp: int = 1

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.prefill_base_s + self.prefill_per_token_s * sum_tokens

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.prefill_s(num_seqs, sum_tokens, sum_sq_tokens)

    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        return self.decode_base_s + 1e-4 * num_seqs, 1e-7

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        return base + slope * sum_ctx_tokens


def disagg(
    nic_gbps: float = 25.0,
    tp: tuple[int, int] = (2, 2),
    num_instances: tuple[int, int] = (4, 2),
    kv_transfer: str = "after_prefill",
    num_nodes: int = 2,
) -> Deployment:
    """opt-13b, prefill and decode groups on A100 nodes of 8 GPUs with `nic_gbps` NICs."""
    cluster = make_cluster("a100-80gb", num_nodes=num_nodes, nic_gbps=nic_gbps)
    groups = (
        InstanceGroup("prefill", ParallelSpec(tp[0], 1), num_instances[0]),
        InstanceGroup("decode", ParallelSpec(tp[1], 1), num_instances[1]),
    )
    return Deployment(MODEL, cluster, groups, kv_transfer=kv_transfer)


def workload(
    rate: float, num: int, isl: int = 512, osl: int = 16, poisson: bool = True
) -> OpenLoopWorkload:
    arrivals = Poisson(rate) if poisson else Deterministic(rate)
    return OpenLoopWorkload(arrivals, Fixed(isl, osl), num)


def run(
    dep: Deployment,
    wl: object,
    affinity: str = "high",
    transport: FlowTransport | None = None,
    seed: int = 0,
) -> tuple[SimResult, FlowTransport]:
    """Simulate with a FlowTransport (stub latencies); the result and the transport."""
    tr = transport if transport is not None else flow_transport(dep, affinity)
    stubs = {"prefill": StubLatency(), "decode": StubLatency()}
    return simulate(dep, wl, seed=seed, transport=tr, latency_models=stubs), tr  # type: ignore[arg-type]
