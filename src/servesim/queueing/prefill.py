"""Mean TTFT of prefill parallelism options: one device, inter-op, intra-op, replication.

Each option is a `PrefillOption`: a delay from the start of service to the first token
(`latency_mean_s`, D_s for a pipeline) and the time a request holds the bottleneck server
(`service`, D_m for a pipeline; the whole execution for one device or intra-op). Requests
arrive as a Poisson stream at R req/s, split evenly and at random over `num_instances`
identical instances, and are served FCFS without batching. Then

    mean TTFT = latency_mean_s + (R/N)*E[D_m^2] / (2*(1 - (R/N)*E[D_m]))

which is M/D/1 for a fixed input length and Pollaczek-Khinchine for a distribution of lengths.
Also here: the exact crossover rate of two options and the highest rate meeting a mean SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from servesim.errors import require
from servesim.queueing.mg1 import (
    ServiceMoments,
    UnstableQueueError,
    check_rate,
    deterministic,
)


@dataclass(frozen=True)
class PrefillOption:
    """A prefill placement seen as a queue.

    latency_mean_s: mean time from the start of service to the first token (D_s).
    service: moments of the time a request holds the bottleneck server (D_m).
    num_instances: identical replicas; each receives rate/num_instances (random split).
    name: a label for tables.
    """

    latency_mean_s: float
    service: ServiceMoments
    num_instances: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.latency_mean_s) and self.latency_mean_s > 0,
            "latency_mean_s",
            self.latency_mean_s,
            "a finite latency > 0 s",
        )
        require(self.num_instances >= 1, "num_instances", self.num_instances, "an integer >= 1")

    @property
    def stable_below_per_s(self) -> float:
        """Total arrival rate (req/s) at which each instance's load reaches 1."""
        return self.num_instances / self.service.mean_s

    def load(self, rate_per_s: float) -> float:
        """Per-instance load (R/N)*E[D_m]."""
        return rate_per_s / self.num_instances * self.service.mean_s


def _as_moments(service: ServiceMoments | float) -> ServiceMoments:
    return service if isinstance(service, ServiceMoments) else deterministic(service)


def single_device(service: ServiceMoments | float, name: str = "single") -> PrefillOption:
    """One device: the request holds the server for its whole execution time D."""
    moments = _as_moments(service)
    return PrefillOption(moments.mean_s, moments, 1, name)


def inter_op(
    latency: ServiceMoments | float, stage: ServiceMoments | float, name: str = "inter-op"
) -> PrefillOption:
    """N-way pipeline: request latency D_s (all stages) and bottleneck stage time D_m."""
    latency_moments, stage_moments = _as_moments(latency), _as_moments(stage)
    require(
        stage_moments.mean_s <= latency_moments.mean_s * (1 + 1e-12),
        "stage",
        stage_moments.mean_s,
        f"a stage time <= the latency {latency_moments.mean_s:.6g} s",
    )
    return PrefillOption(latency_moments.mean_s, stage_moments, 1, name)


def inter_op_even(
    service: ServiceMoments | float, num_stages: int, name: str = ""
) -> PrefillOption:
    """N-way pipeline with equal stages and no overhead: D_s = D, D_m = D/N."""
    require(num_stages >= 1, "num_stages", num_stages, "an integer >= 1")
    moments = _as_moments(service)
    return inter_op(moments, moments.scaled(1.0 / num_stages), name or f"inter-op x{num_stages}")


def intra_op(service: ServiceMoments | float, speedup: float, name: str = "") -> PrefillOption:
    """Intra-op (tensor) parallelism with speedup K: execution time D/K holds all devices."""
    require(math.isfinite(speedup) and speedup > 0, "speedup", speedup, "a finite value > 0")
    moments = _as_moments(service).scaled(1.0 / speedup)
    return PrefillOption(moments.mean_s, moments, 1, name or f"intra-op K={speedup:g}")


def replicated(option: PrefillOption, num_instances: int) -> PrefillOption:
    """`num_instances` copies of `option` (which may itself be replicated) sharing the rate."""
    require(num_instances >= 1, "num_instances", num_instances, "an integer >= 1")
    total = option.num_instances * num_instances
    return replace(option, num_instances=total, name=f"{option.name} x{total} replicas")


def check_stable_option(option: PrefillOption, rate_per_s: float) -> float:
    """Per-instance load at `rate_per_s`; raise `UnstableQueueError` when it is >= 1."""
    check_rate(rate_per_s)
    load = option.load(rate_per_s)
    if load >= 1.0 or rate_per_s >= option.stable_below_per_s:  # either side of rounding
        raise UnstableQueueError(rate_per_s, load, option.stable_below_per_s)
    return load


def mean_wait_s(option: PrefillOption, rate_per_s: float) -> float:
    """Mean time a request waits before its service starts, in seconds."""
    load = check_stable_option(option, rate_per_s)
    per_instance = rate_per_s / option.num_instances
    return per_instance * option.service.second_moment_s2 / (2.0 * (1.0 - load))


def mean_ttft_s(option: PrefillOption, rate_per_s: float) -> float:
    """Mean TTFT = latency + mean wait, in seconds (raises `UnstableQueueError`)."""
    return option.latency_mean_s + mean_wait_s(option, rate_per_s)


def mean_ttft_or_none_s(option: PrefillOption, rate_per_s: float) -> float | None:
    """`mean_ttft_s`, or None where the queue is unstable (for tables)."""
    try:
        return mean_ttft_s(option, rate_per_s)
    except UnstableQueueError:
        return None


def inter_op_mean_ttft_s(rate_per_s: float, latency_s: float, stage_s: float) -> float:
    """Pipeline mean TTFT: D_s + R*D_m^2 / (2*(1 - R*D_m)), in seconds."""
    return mean_ttft_s(inter_op(latency_s, stage_s), rate_per_s)


def intra_op_mean_ttft_s(rate_per_s: float, service_s: float, speedup: float) -> float:
    """Intra-op mean TTFT: D/K + R*D^2 / (2*K*(K - R*D)), in seconds."""
    return mean_ttft_s(intra_op(service_s, speedup), rate_per_s)


def replicated_mean_ttft_s(rate_per_s: float, service_s: float, num_instances: int) -> float:
    """M/D/1 mean TTFT with R/N substituted for R (N devices, random split), in seconds."""
    return mean_ttft_s(replicated(single_device(service_s), num_instances), rate_per_s)


def max_rate_for_mean_ttft_s(option: PrefillOption, ttft_slo_s: float) -> float:
    """Highest total rate (req/s) whose mean TTFT is <= `ttft_slo_s`, solved exactly.

    With slack B = SLO - latency, (R/N)*E[S^2] = 2*B*(1 - (R/N)*E[S]) gives
    R = N * 2B / (E[S^2] + 2B*E[S]); 0.0 when the latency alone reaches the SLO.
    """
    require(
        math.isfinite(ttft_slo_s) and ttft_slo_s > 0, "ttft_slo_s", ttft_slo_s, "a finite SLO > 0 s"
    )
    slack_s = ttft_slo_s - option.latency_mean_s
    if slack_s <= 0:
        return 0.0
    moments = option.service
    per_instance = 2 * slack_s / (moments.second_moment_s2 + 2 * slack_s * moments.mean_s)
    return option.num_instances * per_instance


def _queue_coefficients(option: PrefillOption) -> tuple[float, float, float]:
    """(latency, E[S]/N, E[S^2]/N): mean TTFT = lat + R*m2 / (2*(1 - R*m1)) in total rate R."""
    n = option.num_instances
    return option.latency_mean_s, option.service.mean_s / n, option.service.second_moment_s2 / n


def _quadratic_roots(c2: float, c1: float, c0: float) -> list[float]:
    """Real roots of c2*x^2 + c1*x + c0 = 0, without cancellation."""
    scale = max(abs(c2), abs(c1), abs(c0))
    if scale == 0:
        return []
    if abs(c2) <= 1e-14 * scale:
        return [] if c1 == 0 else [-c0 / c1]
    disc = c1 * c1 - 4 * c2 * c0
    if disc < 0:
        return []
    q = -0.5 * (c1 + math.copysign(math.sqrt(disc), c1))
    roots = [q / c2]
    if q != 0:
        roots.append(c0 / q)
    return sorted(roots)


def crossover_rates_per_s(a: PrefillOption, b: PrefillOption) -> list[float]:
    """All rates in (0, stable limit of both) where the mean TTFTs of `a` and `b` are equal.

    Multiplying T_a(R) = T_b(R) by 2*(1 - R*a1)*(1 - R*b1) (> 0 where both are stable) gives
    c2*R^2 + c1*R + c0 = 0 with d = lat_a - lat_b,
    c2 = 2d*a1*b1 + a1*b2 - a2*b1, c1 = a2 - b2 - 2d*(a1 + b1), c0 = 2d.
    """
    lat_a, a1, a2 = _queue_coefficients(a)
    lat_b, b1, b2 = _queue_coefficients(b)
    d = lat_a - lat_b
    limit = min(a.stable_below_per_s, b.stable_below_per_s)
    if math.isclose(a1, b1, rel_tol=1e-12):
        if math.isclose(a2, b2, rel_tol=1e-12):
            return []  # the curves differ by the constant d everywhere
        # Same bottleneck: the quadratic has the spurious factor (1 - R*a1); what is left is
        # linear, 2d*(1 - R*a1) + R*(a2 - b2) = 0.
        roots = _quadratic_roots(0.0, a2 - b2 - 2 * d * a1, 2 * d)
    else:
        c2 = 2 * d * a1 * b1 + a1 * b2 - a2 * b1
        roots = _quadratic_roots(c2, a2 - b2 - 2 * d * (a1 + b1), 2 * d)
    # The region is open: a root within rounding of the limit is an artefact of the factor.
    return [r for r in roots if 0 < r < limit * (1 - 1e-12)]


def crossover_rate_per_s(a: PrefillOption, b: PrefillOption) -> float | None:
    """Lowest rate (req/s) in the stable region where `a` and `b` have equal mean TTFT.

    None when the curves never meet there (e.g. 2-way intra-op with K >= 2 always wins).
    """
    rates = crossover_rates_per_s(a, b)
    return rates[0] if rates else None
