"""The queueing inputs of a real setup, taken from servesim's latency model.

For a model on a GPU and a degree N: D is the prefill time of one prompt on one GPU
(TP = PP = 1); the N-way inter-op option is PP = N, with latency D_s = prefill_s and
bottleneck stage D_m = prefill_stage_s; the N-way intra-op option is TP = N, whose prefill
time includes the all-reduces on the node's link, so K = D / prefill_s(TP = N) is the modelled
speedup rather than a guess. A fixed input length gives M/D/1 queues; a length distribution
gives each option the moments of its own prefill times (M/G/1).

The decode side evaluates per-token latency and throughput against batch size at TP = N and at
PP = N, capped by the KV cache that fits, and the largest batch meeting a TPOT SLO.
Whether each configuration fits in GPU memory is reported, not enforced: the one-GPU option
of a large model is a reference point of the analysis even where it cannot run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from servesim.errors import InputError, require
from servesim.latency import LatencyModel, build_latency_model
from servesim.queueing.compare import ThreeWay, three_way_from_moments
from servesim.queueing.decode import DecodePoint, decode_curve, max_batch_for_tpot_slo
from servesim.queueing.mg1 import ServiceMoments, moments_of_lengths
from servesim.specs.cluster import ClusterSpec
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec, check_parallel, memory_plan


@dataclass(frozen=True)
class LatencySource:
    """Where latencies come from: model, cluster and the latency-model options."""

    model: ModelSpec
    cluster: ClusterSpec
    profile: str | None = None
    roofline: bool = False

    def latency_model(self, parallel: ParallelSpec) -> LatencyModel:
        """The latency model of one TP x PP instance."""
        return build_latency_model(
            self.model, self.cluster, parallel, profile=self.profile, roofline=self.roofline
        )

    def check_shape(self, parallel: ParallelSpec, role: str) -> None:
        """Raise InputError when TP x PP breaks a structural rule (heads, node size, layers).

        With no request to hold, `check_parallel`'s memory rule cannot fail, so only the
        structural rules remain; memory is reported by `fit_note` instead.
        """
        check_parallel(self.model, parallel, self.cluster, max_request_tokens=0, role=role)

    def fit_note(self, parallel: ParallelSpec, max_request_tokens: int) -> str | None:
        """None when the instance fits in memory with one longest request, else the reason."""
        try:
            check_parallel(self.model, parallel, self.cluster, max_request_tokens)
        except InputError as err:
            return err.allowed
        return None


@dataclass(frozen=True)
class LengthMix:
    """Prompt lengths (tokens) with their probabilities; one length for M/D/1."""

    lengths_tokens: tuple[int, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        require(
            len(self.lengths_tokens) == len(self.weights) and len(self.weights) > 0,
            "lengths_tokens",
            len(self.lengths_tokens),
            "one weight per length, at least one",
        )
        require(
            min(self.lengths_tokens) >= 1,
            "input_len",
            min(self.lengths_tokens),
            "an integer >= 1 token",
        )

    @classmethod
    def fixed(cls, input_tokens: int) -> LengthMix:
        """Every prompt has `input_tokens` tokens."""
        return cls((input_tokens,), (1.0,))

    @classmethod
    def from_samples(cls, lengths_tokens: np.ndarray) -> LengthMix:
        """The empirical distribution of sampled prompt lengths."""
        values, counts = np.unique(np.asarray(lengths_tokens, dtype=np.int64), return_counts=True)
        return cls(tuple(int(v) for v in values), tuple(float(c) for c in counts))

    @property
    def max_tokens(self) -> int:
        return max(self.lengths_tokens)

    @property
    def mean_tokens(self) -> float:
        p = np.asarray(self.weights) / sum(self.weights)
        return float(p @ np.asarray(self.lengths_tokens, dtype=float))

    def moments(self, time_s: Callable[[int], float]) -> ServiceMoments:
        """Moments of time_s(L) over the mix."""
        return moments_of_lengths(self.lengths_tokens, self.weights, time_s)


def _one_prompt(fn: Callable[[int, int, int], float]) -> Callable[[int], float]:
    """A latency-model method of (num_seqs, sum_tokens, sum_sq_tokens) as a function of L."""
    return lambda n: fn(1, n, n * n)


@dataclass(frozen=True)
class PrefillSetup:
    """The three options of a real setup, with how each was configured and whether it fits."""

    three: ThreeWay
    parallel: dict[str, ParallelSpec]
    fit_notes: dict[str, str | None]


def prefill_setup(source: LatencySource, mix: LengthMix, ways: int) -> PrefillSetup:
    """D, D_s, D_m and K from the latency model, for an N = `ways` degree."""
    require(ways >= 2, "ways", ways, "an integer >= 2 (the parallel degree N)")
    parallel = {
        "single": ParallelSpec(1, 1),
        "inter": ParallelSpec(1, ways),
        "intra": ParallelSpec(ways, 1),
    }
    for name, par in parallel.items():
        source.check_shape(par, f"{name}-op" if name != "single" else name)
    notes = {name: source.fit_note(par, mix.max_tokens) for name, par in parallel.items()}
    one, pipe, tensor = (source.latency_model(parallel[k]) for k in ("single", "inter", "intra"))
    three = three_way_from_moments(
        single=mix.moments(_one_prompt(one.prefill_s)),
        pipeline_latency=mix.moments(_one_prompt(pipe.prefill_s)),
        stage=mix.moments(_one_prompt(pipe.prefill_stage_s)),
        intra=mix.moments(_one_prompt(tensor.prefill_s)),
        ways=ways,
    )
    return PrefillSetup(three, parallel, notes)


@dataclass(frozen=True)
class DecodeSide:
    """Decode analysis of one configuration at `ctx_tokens` context per sequence."""

    parallel: ParallelSpec
    ctx_tokens: int
    max_batch_size: int
    points: list[DecodePoint]
    max_batch_for_slo: int | None
    at_slo: DecodePoint | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "tp": self.parallel.tp,
            "pp": self.parallel.pp,
            "ctx_tokens": self.ctx_tokens,
            "max_batch_size": self.max_batch_size,
            "points": [vars(p) for p in self.points],
            "max_batch_for_tpot_slo": self.max_batch_for_slo,
            "at_tpot_slo": None if self.at_slo is None else vars(self.at_slo),
        }


def batch_grid(max_batch_size: int) -> list[int]:
    """Powers of two up to `max_batch_size`, and `max_batch_size` itself."""
    grid = [1 << k for k in range(max_batch_size.bit_length()) if 1 << k <= max_batch_size]
    return grid if grid[-1] == max_batch_size else [*grid, max_batch_size]


def kv_batch_cap(
    source: LatencySource, parallel: ParallelSpec, ctx_tokens: int, max_seqs: int | None = None
) -> int:
    """Sequences of `ctx_tokens` whose KV cache fits on the instance (0 when none); with
    `max_seqs`, sliding-window layers reserve a window for each of that many sequences."""
    plan = memory_plan(source.model, parallel, source.cluster.gpu.memory_bytes, max_seqs=max_seqs)
    return plan.kv_capacity_tokens // ctx_tokens


def decode_side(
    source: LatencySource,
    parallel: ParallelSpec,
    ctx_tokens: int,
    tpot_slo_s: float,
    max_batch_size: int,
) -> DecodeSide | None:
    """TPOT and throughput against batch size; None when not one sequence fits in memory.

    The batch is capped by `max_batch_size` and by the KV cache that fits.
    """
    require(ctx_tokens >= 1, "context_len", ctx_tokens, "an integer >= 1 token")
    require(max_batch_size >= 1, "max_batch", max_batch_size, "an integer >= 1")
    cap = min(max_batch_size, kv_batch_cap(source, parallel, ctx_tokens, max_batch_size))
    if cap < 1:
        return None
    lat = source.latency_model(parallel)
    best = max_batch_for_tpot_slo(lat, tpot_slo_s, ctx_tokens, cap)
    at_slo = None if best is None else decode_curve(lat, [best], ctx_tokens)[0]
    return DecodeSide(
        parallel, ctx_tokens, cap, decode_curve(lat, batch_grid(cap), ctx_tokens), best, at_slo
    )
