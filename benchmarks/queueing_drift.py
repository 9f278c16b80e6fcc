"""How far the no-batching closed forms drift once prefill batching is on (L_m tokens a batch).

The closed forms of servesim.queueing assume that each prompt runs alone. The engine batches
FCFS prefill up to L_m prompt tokens (a longer prompt runs alone). This script simulates
prefill-only OPT-66B on A100-80GB with servesim's latency model, for 2-way intra-op (TP=2) and
2-way inter-op (PP=2), with Poisson arrivals, and prints the simulated mean TTFT against the
closed form at each load:

- fixed 512-token prompts (M/D/1), with L_m = 512 (no batching), 1024, 2048 and 4096;
- ShareGPT prompt lengths (M/G/1, moments of the sampled prefill times), with L_m = 1 (no
  batching), 512, 2048 and the engine's default (the saturating length of the latency model).

For the pipeline with ShareGPT prompts a last column gives a tandem queue without batching
(PP stages in series, each FCFS, each taking the busiest-stage time of the prompt), computed
here by recursion: the closed form is only an approximation there (a short prompt can wait at a
later stage behind a long one), and the engine's pipeline model (at most PP batches in flight)
is a further approximation.

The load is R * E[D_m] of the no-batching queue, so at load >= 1 the closed form is unstable,
while a batched instance may still keep up. Each cell is one run; at load 0.85 one 50,000-request
mean carries about 3% sampling noise, so differences below that are not meaningful.

Run: .venv/bin/python benchmarks/queueing_drift.py [--requests 50000] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from servesim.engine import Deployment, InstanceGroup, simulate
from servesim.queueing import PrefillOption, mean_ttft_or_none_s
from servesim.queueing.setup import LatencySource, LengthMix, prefill_setup
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import Fixed, LengthDistribution, OpenLoopWorkload, Poisson, get_lengths

LOADS = (0.3, 0.6, 0.85, 0.95, 1.1)
OPTIONS = {"intra": ParallelSpec(2, 1), "inter": ParallelSpec(1, 2)}


@dataclass(frozen=True)
class PromptsOnly:
    """A built-in workload's prompt lengths with one output token (prefill-only runs)."""

    workload: str
    name: str = "prompts"

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        inputs, _ = get_lengths(self.workload).sample(rng, n)
        return inputs, np.ones(n, dtype=np.int64)

    @property
    def mean_input_tokens(self) -> float:
        return get_lengths(self.workload).mean_input_tokens

    @property
    def mean_output_tokens(self) -> float:
        return 1.0


def simulated_mean_ttft_s(
    source: LatencySource,
    parallel: ParallelSpec,
    lengths: LengthDistribution,
    rate: float,
    max_prefill_tokens: int | None,
    requests: int,
    seed: int,
) -> float:
    """Mean TTFT (s) of one prefill-only run."""
    group = InstanceGroup("prefill", parallel, 1, max_prefill_tokens=max_prefill_tokens)
    deployment = Deployment(source.model, source.cluster, (group,))
    workload = OpenLoopWorkload(Poisson(rate), lengths, requests)
    records = simulate(deployment, workload, seed=seed).records
    return float(np.mean(records.first_token_s - records.arrival_s))


def tandem_mean_ttft_s(
    source: LatencySource,
    parallel: ParallelSpec,
    lengths: LengthDistribution,
    rate: float,
    requests: int,
    seed: int,
) -> float:
    """Mean TTFT (s) of PP FCFS stages in series, no batching, each taking D_m(L).

    Leaving the last stage at c_i, TTFT = c_i - a_i - (PP * D_m(L) - D_s(L)): the stages carry
    the queueing, the correction restores the prompt's latency D_s.
    """
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.standard_exponential(requests) / rate)
    inputs, _ = lengths.sample(rng, requests)
    lat = source.latency_model(parallel)
    values, index = np.unique(inputs, return_inverse=True)
    stage = np.array([lat.prefill_stage_s(1, int(n), int(n) ** 2) for n in values])[index]
    total = np.array([lat.prefill_s(1, int(n), int(n) ** 2) for n in values])[index]
    free = [0.0] * parallel.pp  # when each stage is next free
    ttft = np.empty(requests)
    for i, (a, s) in enumerate(zip(arrivals.tolist(), stage.tolist(), strict=True)):
        t = a
        for j in range(parallel.pp):
            t = max(t, free[j]) + s
            free[j] = t
        ttft[i] = t - a
    return float(np.mean(ttft - (parallel.pp * stage - total)))


def drift_table(
    source: LatencySource,
    option: PrefillOption,
    parallel: ParallelSpec,
    lengths: LengthDistribution,
    limits: tuple[int | None, ...],
    requests: int,
    seed: int,
    tandem: bool = False,
) -> list[list[str]]:
    """Rows: load, closed form, then simulated mean TTFT and its drift for each L_m."""
    rows = []
    for load in LOADS:
        rate = load / option.service.mean_s
        formula = mean_ttft_or_none_s(option, rate)
        row = [f"{load:g}", f"{rate:.3f}", "unstable" if formula is None else f"{formula:.3f}"]
        for limit in limits:
            sim = simulated_mean_ttft_s(source, parallel, lengths, rate, limit, requests, seed)
            drift = "" if formula is None else f" ({sim / formula - 1:+.1%})"
            row.append(f"{sim:.3f}{drift}")
        if tandem:
            sim = tandem_mean_ttft_s(source, parallel, lengths, rate, requests, seed)
            drift = "" if formula is None else f" ({sim / formula - 1:+.1%})"
            row.append(f"{sim:.3f}{drift}")
        rows.append(row)
    return rows


def print_table(
    title: str, limits: tuple[int | None, ...], rows: list[list[str]], tandem: bool = False
) -> None:
    names = [f"L_m={'default' if lm is None else lm}" for lm in limits]
    names += ["tandem, no batching"] if tandem else []
    header = ["load", "rate req/s", "closed form s", *names]
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--samples", type=int, default=200_000, help="prompts sampled for the M/G/1 moments"
    )
    args = parser.parse_args()
    source = LatencySource(get_model("opt-66b"), make_cluster("a100-80gb"))
    fixed = prefill_setup(source, LengthMix.fixed(512), 2).three
    prompts = PromptsOnly("sharegpt")
    sampled, _ = prompts.sample(np.random.default_rng(args.seed + 1), args.samples)
    spread = prefill_setup(source, LengthMix.from_samples(sampled), 2).three
    for name, parallel in OPTIONS.items():
        limits: tuple[int | None, ...] = (512, 1024, 2048, 4096)
        rows = drift_table(
            source, fixed.options[name], parallel, Fixed(512, 1), limits, args.requests, args.seed
        )
        print_table(f"OPT-66B, {name}-op {parallel}, 512-token prompts (M/D/1)", limits, rows)
        limits = (1, 512, 2048, None)
        tandem = parallel.pp > 1
        rows = drift_table(
            source,
            spread.options[name],
            parallel,
            prompts,
            limits,
            args.requests,
            args.seed,
            tandem,
        )
        print_table(
            f"OPT-66B, {name}-op {parallel}, ShareGPT prompts (M/G/1)", limits, rows, tandem
        )


if __name__ == "__main__":
    main()
