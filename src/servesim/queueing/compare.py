"""DistServe's three-way prefill comparison: one device, N-way inter-op and N-way intra-op.

A `ThreeWay` holds the three `PrefillOption`s for one degree N; the functions here turn it into
what the `servesim queueing` command prints: a sensible grid of arrival rates, mean TTFT per
rate (None where a queue is unstable), the crossover rate of intra-op and inter-op, and the
highest rate at which each option meets a TTFT SLO. `three_way_from_numbers` builds the
options from raw numbers (D, K, N); `servesim.queueing.setup` builds them from a latency model.
Units: seconds and requests/s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from servesim.errors import require
from servesim.queueing.mg1 import ServiceMoments
from servesim.queueing.percentiles import max_rate_for_ttft_quantile_s
from servesim.queueing.prefill import (
    PrefillOption,
    crossover_rate_per_s,
    inter_op,
    intra_op,
    max_rate_for_mean_ttft_s,
    mean_ttft_or_none_s,
    single_device,
)

OPTION_NAMES: tuple[str, ...] = ("single", "inter", "intra")


@dataclass(frozen=True)
class ThreeWay:
    """The prefill options DistServe's section 3.1 compares, for one parallel degree.

    single: one device, service D. inter: an N-way pipeline, latency D_s and bottleneck stage
    D_m. intra: N-way tensor parallelism, service D/K. ways: the degree N.
    """

    single: PrefillOption
    inter: PrefillOption
    intra: PrefillOption
    ways: int

    def __post_init__(self) -> None:
        require(self.ways >= 1, "ways", self.ways, "an integer >= 1")

    @property
    def options(self) -> dict[str, PrefillOption]:
        """The three options by their short name ('single', 'inter', 'intra')."""
        return {"single": self.single, "inter": self.inter, "intra": self.intra}

    @property
    def speedup(self) -> float:
        """K: mean service time on one device over mean service time with intra-op."""
        return self.single.service.mean_s / self.intra.service.mean_s

    @property
    def is_deterministic(self) -> bool:
        """True when every service time is fixed (M/D/1), so percentiles are exact."""
        return all(option.service.is_deterministic for option in self.options.values())


def _positive(field: str, value: float) -> None:
    require(math.isfinite(value) and value > 0, field, value, "a finite number > 0")


def three_way_from_numbers(
    service_s: float,
    speedup: float,
    ways: int = 2,
    stage_s: float | None = None,
    pipeline_latency_s: float | None = None,
) -> ThreeWay:
    """Options from raw numbers: D (s), K, N; an even pipeline (D_s = D, D_m = D/N) by default.

    `stage_s` (D_m) and `pipeline_latency_s` (D_s) override the even split, e.g. to charge
    the transfers between stages.
    """
    _positive("service_s", service_s)
    _positive("speedup", speedup)
    require(ways >= 2, "ways", ways, "an integer >= 2 (the parallel degree N)")
    d_m = service_s / ways if stage_s is None else stage_s
    d_s = service_s if pipeline_latency_s is None else pipeline_latency_s
    _positive("stage_s", d_m)
    _positive("pipeline_latency_s", d_s)
    return ThreeWay(
        single=single_device(service_s, "single"),
        inter=inter_op(d_s, d_m, "inter"),
        intra=intra_op(service_s, speedup, "intra"),
        ways=ways,
    )


def three_way_from_moments(
    single: ServiceMoments,
    pipeline_latency: ServiceMoments,
    stage: ServiceMoments,
    intra: ServiceMoments,
    ways: int,
) -> ThreeWay:
    """Options from service-time moments (M/G/1): each option's own modelled times.

    `pipeline_latency` is D_s (only its mean enters the mean TTFT), `stage` is D_m and
    `intra` the service time at TP = N, so K = E[D] / E[D_intra].
    """
    return ThreeWay(
        single=single_device(single, "single"),
        inter=inter_op(pipeline_latency, stage, "inter"),
        intra=single_device(intra, "intra"),
        ways=ways,
    )


def _round_sig(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant figures (for readable grid rates)."""
    if value <= 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(value)))


def rate_grid_per_s(three: ThreeWay, num_rates: int = 10) -> list[float]:
    """`num_rates` evenly spaced rates up to N times the one-device stability limit, N/E[D].

    The grid spans the whole interesting range: intra-op and inter-op both stay stable up to
    about N/D, and the one-device queue turns unstable at 1/D, a tenth of the way in for N = 10.
    """
    require(num_rates >= 1, "num_rates", num_rates, "an integer >= 1")
    top_per_s = three.ways * three.single.stable_below_per_s
    return [_round_sig(top_per_s * k / num_rates) for k in range(1, num_rates + 1)]


@dataclass(frozen=True)
class RateRow:
    """Mean TTFT (s) of each option at one total rate; None where its queue is unstable."""

    rate_per_s: float
    ttft_s: dict[str, float | None]
    load: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: rate_per_s, ttft_s and load keyed by option name."""
        return {"rate_per_s": self.rate_per_s, "ttft_s": self.ttft_s, "load": self.load}


def ttft_rows(three: ThreeWay, rates_per_s: Sequence[float]) -> list[RateRow]:
    """One `RateRow` per rate (rates must be finite and >= 0; InputError otherwise)."""
    rows = []
    for rate in rates_per_s:
        require(math.isfinite(rate) and rate >= 0, "rates", rate, "finite arrival rates >= 0 req/s")
        opts = three.options
        rows.append(
            RateRow(
                rate_per_s=rate,
                ttft_s={name: mean_ttft_or_none_s(opt, rate) for name, opt in opts.items()},
                load={name: opt.load(rate) for name, opt in opts.items()},
            )
        )
    return rows


def intra_inter_crossover_per_s(three: ThreeWay) -> float | None:
    """Lowest rate (req/s) at which intra-op and inter-op have equal mean TTFT, or None."""
    return crossover_rate_per_s(three.intra, three.inter)


def slo_rates_per_s(three: ThreeWay, ttft_slo_s: float) -> dict[str, float]:
    """Highest total rate (req/s) at which each option's mean TTFT is <= `ttft_slo_s`."""
    return {name: max_rate_for_mean_ttft_s(opt, ttft_slo_s) for name, opt in three.options.items()}


def slo_quantile_rates_per_s(
    three: ThreeWay, ttft_slo_s: float, level: float = 0.9
) -> dict[str, float] | None:
    """Highest rate at which the `level` TTFT quantile meets the SLO; None unless M/D/1.

    Exact for fixed service times only: two moments do not fix an M/G/1 percentile.
    """
    if not three.is_deterministic:
        return None
    return {
        name: max_rate_for_ttft_quantile_s(opt, ttft_slo_s, level, tol_rel=1e-6)
        for name, opt in three.options.items()
    }
