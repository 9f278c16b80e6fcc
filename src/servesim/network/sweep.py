"""Goodput against one network figure: the NIC bandwidth of a disaggregated deployment.

For every NIC bandwidth the deployment's cluster is rebuilt with it, and the goodput (the
highest rate whose joint SLO attainment reaches the target) is found by the search's bisection
(`servesim.search.goodput.find_goodput`), each point a simulation through a `FlowTransport`.
The same requests arrive at every rate and bandwidth (common random numbers), so the curve is
monotone up to batching effects. At a fixed probe rate the KV transfer time and its share of
TTFT show where the network binds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servesim.errors import require
from servesim.metrics import latencies, meets_slos
from servesim.network.deployment import flow_transport
from servesim.network.summary import e2e_share, transfer_times_s, ttft_share
from servesim.search.goodput import BisectionSpec, RatePoint, find_goodput

WorkloadAt = Callable[[float], Any]
"""Rate (req/s) -> the engine workload at that rate (same seed, same requests)."""


@dataclass(frozen=True)
class SloSpec:
    """The SLOs a request must meet, seconds."""

    ttft_s: float
    tpot_s: float


@dataclass(frozen=True)
class BandwidthPoint:
    """Goodput at one NIC bandwidth, and the network's part of TTFT at the probe rate."""

    nic_gbps: float
    goodput_per_s: float
    num_simulations: int
    probe_rate_per_s: float
    kv_transfer_mean_s: float
    kv_transfer_p99_s: float
    ttft_share: float
    """Total KV transfer time / total TTFT at the probe rate."""
    e2e_share: float
    """Total KV transfer time / total end-to-end latency at the probe rate."""
    p90_ttft_s: float
    bottleneck: str | None
    """Most utilized link at the probe rate."""


def with_nic_gbps(deployment: Any, nic_gbps: float) -> Any:
    """`deployment` on the same cluster with NICs of `nic_gbps`."""
    require(math.isfinite(nic_gbps) and nic_gbps > 0, "nic_gbps", nic_gbps, "a bandwidth > 0")
    cluster = dataclasses.replace(deployment.cluster, nic_gbps=nic_gbps)
    return dataclasses.replace(deployment, cluster=cluster)


def simulate_with_network(
    deployment: Any, workload: Any, affinity: str = "high", seed: int = 0
) -> tuple[Any, Any]:
    """(SimResult, FlowTransport) of one run with the flow model on."""
    from servesim.engine import simulate

    transport = flow_transport(deployment, affinity)
    return simulate(deployment, workload, seed=seed, transport=transport), transport


def rate_point(records: Any, rate_per_s: float, slo: SloSpec) -> RatePoint:
    """Attainments and p90 latencies of one run, as the goodput search wants them."""
    ttft_ok, tpot_ok, joint_ok = meets_slos(records, slo.ttft_s, slo.tpot_s)
    n = max(1, len(records))
    ttft, tpot, _ = latencies(records)
    return RatePoint(
        rate_per_s,
        np.count_nonzero(ttft_ok) / n,
        np.count_nonzero(tpot_ok) / n,
        np.count_nonzero(joint_ok) / n,
        _p90(ttft),
        _p90(tpot),
    )


def goodput_vs_nic(
    deployment: Any,
    workload_at: WorkloadAt,
    nic_gbps: Sequence[float],
    slo: SloSpec,
    *,
    bound_per_s: float,
    probe_rate_per_s: float,
    affinity: str = "high",
    bisection: BisectionSpec | None = None,
    seed: int = 0,
) -> list[BandwidthPoint]:
    """Goodput (req/s) of `deployment` at every NIC bandwidth in `nic_gbps` (Gbps).

    `bound_per_s` is a rough upper bound on the goodput (the search starts below it and widens
    if needed); `probe_rate_per_s` is the rate at which transfer times are reported.
    """
    require(len(nic_gbps) > 0, "nic_gbps", list(nic_gbps), "at least one bandwidth")
    spec = bisection or BisectionSpec()
    points = []
    for gbps in nic_gbps:
        sized = with_nic_gbps(deployment, gbps)

        def evaluate(rate_per_s: float, sized: Any = sized) -> RatePoint:
            result, _ = simulate_with_network(sized, workload_at(rate_per_s), affinity, seed)
            return rate_point(result.records, rate_per_s, slo)

        found = find_goodput(evaluate, bound_per_s, spec, "joint")
        points.append(
            _probe(
                sized,
                workload_at,
                gbps,
                found.goodput_per_s,
                found.num_simulations,
                probe_rate_per_s,
                slo,
                affinity,
                seed,
            )
        )
    return points


def _probe(
    deployment: Any,
    workload_at: WorkloadAt,
    gbps: float,
    goodput_per_s: float,
    num_simulations: int,
    rate_per_s: float,
    slo: SloSpec,
    affinity: str,
    seed: int,
) -> BandwidthPoint:
    from servesim.network.summary import network_summary

    result, transport = simulate_with_network(deployment, workload_at(rate_per_s), affinity, seed)
    records = result.records
    times = transfer_times_s(records)
    share = ttft_share(records)
    share_e2e = e2e_share(records)
    summary = network_summary(transport, result, deployment.model.hidden_size, affinity)
    bottleneck = summary["bottleneck"]
    return BandwidthPoint(
        nic_gbps=gbps,
        goodput_per_s=goodput_per_s,
        num_simulations=num_simulations + 1,
        probe_rate_per_s=rate_per_s,
        kv_transfer_mean_s=float(times.mean()) if times.size else math.nan,
        kv_transfer_p99_s=float(np.percentile(times, 99)) if times.size else math.nan,
        ttft_share=math.nan if share is None else share,
        e2e_share=math.nan if share_e2e is None else share_e2e,
        p90_ttft_s=rate_point(records, rate_per_s, slo).p90_ttft_s,
        bottleneck=None if bottleneck is None else bottleneck["name"],
    )


def _p90(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, 0.9)) if finite.size else math.nan
