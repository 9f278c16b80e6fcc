"""Each closed form against servesim's own engine, under the closed form's assumptions.

Poisson arrivals, FCFS, no batching (L_m = 1 token, so every prompt runs alone), one prefill
instance: one device (M/D/1 with a fixed prompt length, M/G/1 with a distribution of lengths),
one pipeline (PP = 2, a stub latency model with prefill_s = D_s and prefill_stage_s = D_m) and
one TP group (TP = 2, its time D/K from the latency model). 50,000 requests per load.

Two checks per form and load:

1. Request by request, the engine's TTFT equals latency + the Lindley-recursion wait computed
   here, independently, from the same arrival times and service times (to 1e-9): the engine
   is exactly the queue the closed form describes.
2. The engine's mean TTFT is within 2% of the closed form. Waits are strongly correlated, so
   the relative standard error of one 50,000-request mean is about 0.3% at load 0.3, 0.9% at
   0.6 and 3.5% at 0.85 (measured over 200 seeds): one run cannot resolve 2% at high load. The
   test pools independent 50,000-request runs until 2% is at least three standard errors:
   1 run at 0.3, 4 at 0.6, and 32 at 0.85 (marked slow: about 30 s).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from servesim.engine import Deployment, InstanceGroup, Records, simulate
from servesim.latency import LatencyModel
from servesim.queueing import PrefillOption, inter_op_even, mean_ttft_s
from servesim.queueing.setup import LatencySource, LengthMix, prefill_setup
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import Fixed, OpenLoopWorkload, Poisson, Uniform
from servesim.workload.base import LengthDistribution

NUM_REQUESTS = 50_000
LOADS = (0.3, 0.6, 0.85)
# Independent 50,000-request runs pooled per load (see the module docstring).
NUM_RUNS = {0.3: 1, 0.6: 4, 0.85: 32}

SOURCE = LatencySource(get_model("opt-13b"), make_cluster("a100-80gb"))
PROMPT_TOKENS = 512
SPREAD = Uniform(64, 1024, 1, 1)


@dataclass(frozen=True)
class ConstantPrefill:
    """A stub latency model: every prefill takes `latency_s`, its busiest stage `stage_s`."""

    latency_s: float
    stage_s: float
    pp: int

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.latency_s

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.stage_s


@dataclass(frozen=True)
class Case:
    """One closed form and the engine setup that matches its assumptions."""

    name: str
    parallel: ParallelSpec
    lengths: LengthDistribution
    option: PrefillOption
    stub: ConstantPrefill | None = None

    def latency_model(self) -> LatencyModel | ConstantPrefill:
        return self.stub if self.stub is not None else SOURCE.latency_model(self.parallel)

    def times_s(self, input_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latency, bottleneck service) of each request, seconds."""
        lat = self.latency_model()
        values, index = np.unique(input_tokens, return_inverse=True)
        latency = np.array([lat.prefill_s(1, int(n), int(n) ** 2) for n in values])
        stage = np.array([lat.prefill_stage_s(1, int(n), int(n) ** 2) for n in values])
        return latency[index], stage[index]


@functools.cache
def cases() -> dict[str, Case]:
    fixed = prefill_setup(SOURCE, LengthMix.fixed(PROMPT_TOKENS), 2).three
    spread_mix = LengthMix(tuple(range(64, 1025)), (1.0,) * (1025 - 64))  # exact, not sampled
    spread = prefill_setup(SOURCE, spread_mix, 2).three
    d = fixed.single.service.mean_s
    one_length = Fixed(PROMPT_TOKENS, 1)
    return {
        "md1": Case("M/D/1, one GPU", ParallelSpec(1, 1), one_length, fixed.single),
        "mg1": Case(
            "M/G/1, one GPU, uniform 64-1024 tokens", ParallelSpec(1, 1), SPREAD, spread.single
        ),
        "inter": Case(
            "inter-op, PP=2, D_s = D, D_m = D/2",
            ParallelSpec(1, 2),
            one_length,
            inter_op_even(d, 2),
            ConstantPrefill(d, d / 2, 2),
        ),
        "intra": Case("intra-op, TP=2, D/K", ParallelSpec(2, 1), one_length, fixed.intra),
    }


def lindley_waits_s(arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """FCFS single-server waits: w_i = max(0, w_{i-1} + s_{i-1} - (a_i - a_{i-1}))."""
    waits = np.zeros(arrival_s.size)
    gaps = np.diff(arrival_s).tolist()
    services = service_s.tolist()
    wait = 0.0
    for i, gap in enumerate(gaps, start=1):
        wait = max(0.0, wait + services[i - 1] - gap)
        waits[i] = wait
    return waits


@dataclass(frozen=True)
class Run:
    """One engine run and its references on the same sample path."""

    engine_ttft_s: np.ndarray
    reference_ttft_s: np.ndarray


def simulate_case(key: str, load: float, seed: int) -> Records:
    """The engine's records of one case at `load` (per-instance R*E[S_m])."""
    case = cases()[key]
    rate = load / case.option.service.mean_s
    deployment = Deployment(
        SOURCE.model,
        SOURCE.cluster,
        (InstanceGroup("prefill", case.parallel, 1, max_prefill_tokens=1),),
    )
    workload = OpenLoopWorkload(Poisson(rate), case.lengths, NUM_REQUESTS)
    stubs = None if case.stub is None else {"prefill": case.stub}
    records = simulate(deployment, workload, seed=seed, latency_models=stubs).records
    assert not records.rejected.any()
    return records


@functools.cache
def run(key: str, load: float, seed: int) -> Run:
    records = simulate_case(key, load, seed)
    latency, service = cases()[key].times_s(records.input_tokens)
    return Run(
        engine_ttft_s=records.first_token_s - records.arrival_s,
        reference_ttft_s=latency + lindley_waits_s(records.arrival_s, service),
    )


def engine_mean_ttft_s(key: str, load: float, seed: int) -> float:
    """Mean TTFT (s) of one engine run (seed 0 shares the per-request test's run)."""
    if seed == 0:
        return float(run(key, load, 0).engine_ttft_s.mean())
    records = simulate_case(key, load, seed)
    return float(np.mean(records.first_token_s - records.arrival_s))


def closed_form_s(key: str, load: float) -> float:
    """Mean TTFT (s) of the case's closed form at `load`."""
    option = cases()[key].option
    return mean_ttft_s(option, load / option.service.mean_s)


KEYS = ("md1", "mg1", "inter", "intra")


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("key", KEYS)
def test_engine_is_the_queue_request_by_request(key: str, load: float) -> None:
    result = run(key, load, 0)
    scale = cases()[key].option.latency_mean_s
    np.testing.assert_allclose(
        result.engine_ttft_s, result.reference_ttft_s, rtol=1e-9, atol=1e-9 * scale
    )


def mean_ttft_error(key: str, load: float) -> float:
    """Relative error of the pooled engine mean TTFT against the closed form."""
    means = [engine_mean_ttft_s(key, load, seed) for seed in range(NUM_RUNS[load])]
    return float(np.mean(means)) / closed_form_s(key, load) - 1


@pytest.mark.parametrize("load", [0.3, 0.6])
@pytest.mark.parametrize("key", KEYS)
def test_mean_ttft_within_two_percent_of_the_closed_form(key: str, load: float) -> None:
    assert abs(mean_ttft_error(key, load)) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_mean_ttft_within_two_percent_at_load_085(key: str) -> None:
    assert abs(mean_ttft_error(key, 0.85)) < 0.02
