"""The placement search: colocated, DistServe Algorithm 1 (high affinity) and 2 (low affinity).

Stages, each a batch of independent goodput searches handed to the executor:
1. colocated: every fitting TP x PP under each batching policy, one instance simulated, goodput
   scaled by the replicas that fill the cluster (or serve `--rate`);
2. phases: prefill-only and decode-only goodput of every fitting TP x PP;
3. high affinity: the best per-GPU prefill and decode configurations, balanced n:m;
   low affinity: per pipeline degree, pairs of intra-node prefill/decode configurations whose
   stages share a node, instance counts filling a node segment, simulated jointly;
4. final: the best colocated, high- and low-affinity configurations simulated end to end on the
   whole deployment (KV transfer included); those goodputs are the reported ones.

Pruning never simulates a shape that cannot meet the SLOs unloaded; and, in rounds of a fixed
size (so that no decision depends on the number of workers), it skips shapes whose throughput
bound per GPU is below the best goodput per GPU measured in earlier rounds of the same stage,
and stops a goodput search early once a missed rate shows the shape cannot beat that best
(its goodput is then a lower bound, marked inexact).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from servesim.errors import InputError, require
from servesim.search.bounds import ShapeBounds
from servesim.search.enumerate import (
    balance,
    fitting_configs,
    low_affinity_copies,
    low_affinity_unit,
    replicas_for_rate,
    replicas_to_fill,
)
from servesim.search.evaluate import Evaluator, Task
from servesim.search.executor import Executor
from servesim.search.problem import SearchProblem
from servesim.search.results import Candidate, SearchResult, best_of, rank
from servesim.search.shapes import (
    POLICIES,
    Shape,
    colocated,
    decode_only,
    disaggregated,
    prefill_only,
)
from servesim.specs.parallel import ParallelSpec

AFFINITY_CHOICES = ("high", "low", "both", "none")
FIRST_ROUND_SIZE = 2
"""Shapes in a stage's first round: a small one, so a goodput to beat is known early."""


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """affinity: which disaggregated algorithms run ('none': colocated only). policies: colocated
    batching policies. rate_per_s: replicate to serve this rate (None: fill the cluster).
    prune: skip shapes by bounds. round_size: shapes per pruning round (fixed for determinism).
    max_instance_gpus: cap on GPUs per instance (None: a node, or 4x the fewest that fit)."""

    affinity: str = "both"
    policies: tuple[str, ...] = POLICIES
    rate_per_s: float | None = None
    prune: bool = True
    round_size: int = 8
    max_instance_gpus: int | None = None

    def __post_init__(self) -> None:
        require(
            self.affinity in AFFINITY_CHOICES,
            "affinity",
            self.affinity,
            f"one of {', '.join(AFFINITY_CHOICES)}",
        )
        for policy in self.policies:
            require(policy in POLICIES, "policy", policy, f"one of {', '.join(POLICIES)}")
        require(
            self.rate_per_s is None or self.rate_per_s > 0, "rate", self.rate_per_s, "a rate > 0"
        )
        require(self.round_size >= 1, "round_size", self.round_size, "an integer >= 1")


Progress = Callable[[int], None]
"""Called with a number of finished (or skipped) goodput searches."""


class Planner:
    """Runs one search. `executor` evaluates the batches; `progress` counts finished tasks."""

    def __init__(
        self,
        problem: SearchProblem,
        evaluator: Evaluator,
        options: SearchOptions,
        executor: Executor,
        progress: Progress | None = None,
    ) -> None:
        self.problem, self.evaluator, self.options = problem, evaluator, options
        self.executor = executor
        self.progress = progress or (lambda _n: None)
        self.configs = fitting_configs(problem, options.max_instance_gpus)
        self.num_simulations = 0
        self.num_cached = 0
        self._bounds_memo: dict[Shape, ShapeBounds] = {}

    def planned_tasks(self) -> int:
        """An upper bound on the goodput searches this search runs (for a progress total)."""
        n = len(self.configs) * len(self.options.policies) + 1
        if self.options.affinity != "none":
            n += 2 * len(self.configs) + 2
        if self.options.affinity in ("low", "both"):
            n += len(self._low_pairs())
        return n

    def run(self) -> SearchResult:
        start = time.perf_counter()
        rows = self._colocated()
        phases: list[Candidate] = []
        disagg: list[Candidate] = []
        if self.options.affinity != "none":
            phases = self._phases()
            if self.options.affinity in ("low", "both"):
                disagg = self._low(phases)
        finals = self._finals(rows, phases, disagg)
        final_keys = {c.shape.key for c in finals}
        ranked = rank([c for c in rows + disagg if c.shape.key not in final_keys] + finals)
        result = SearchResult(
            candidates=ranked,
            phases=rank(phases),
            best_colocated=best_of(ranked, "colocated"),
            best_disaggregated=best_of(ranked, "disaggregated"),
            num_simulations=self.num_simulations,
            num_cached_points=self.num_cached,
            wall_s=time.perf_counter() - start,
        )
        if result.best is None:
            raise no_configuration_meets(self.problem, result)
        return result

    # ---- stages --------------------------------------------------------------------------
    def _colocated(self) -> list[Candidate]:
        units = [
            (colocated(p.tp, p.pp, policy), self._fill(p.num_gpus))
            for policy in self.options.policies
            for p in self.configs
        ]
        rows = self._evaluate("colocated", units, prune=self.options.prune)
        return [self._for_rate(c) for c in rows]

    def _phases(self) -> list[Candidate]:
        # A phase instance must leave room for one instance of the other phase.
        room = self.problem.cluster.num_gpus - min(p.num_gpus for p in self.configs)
        configs = [p for p in self.configs if p.num_gpus <= room]
        prune = self.options.prune
        prefill = self._evaluate("prefill", [(prefill_only(p.tp, p.pp), 1) for p in configs], prune)
        decode = self._evaluate("decode", [(decode_only(p.tp, p.pp), 1) for p in configs], prune)
        return prefill + decode

    def _low_pairs(self) -> list[tuple[ParallelSpec, ParallelSpec]]:
        m = self.problem.cluster.gpus_per_node
        return [
            (p, d) for p in self.configs for d in self.configs if p.pp == d.pp and p.tp + d.tp <= m
        ]

    def _low(self, phases: list[Candidate]) -> list[Candidate]:
        goodput = {
            (c.stage, c.unit.groups[0].tp, c.unit.groups[0].pp): c.estimate_per_s()
            for c in phases
            if c.estimate_per_s() > 0
        }
        units: list[tuple[Shape, int]] = []
        cluster = self.problem.cluster
        for p, d in self._low_pairs():
            gp, gd = goodput.get(("prefill", p.tp, p.pp)), goodput.get(("decode", d.tp, d.pp))
            unit = low_affinity_unit(p, gp, d, gd, cluster.gpus_per_node) if gp and gd else None
            copies = (
                low_affinity_copies(unit, cluster.num_nodes, cluster.gpus_per_node) if unit else 0
            )
            if unit is None or copies == 0:
                self.progress(1)
                continue
            units.append((unit, copies))
        return self._evaluate("low", units, prune=self.options.prune)

    def _high(self, phases: list[Candidate]) -> Shape | None:
        """Algorithm 1: the best per-GPU prefill and decode configurations, balanced n:m."""
        prefill = best_measured(phases, "prefill")
        decode = best_measured(phases, "decode")
        if prefill is None or decode is None:
            return None
        p, d = prefill.unit.groups[0], decode.unit.groups[0]
        gp, gd = prefill.estimate_per_s(), decode.estimate_per_s()
        n, m = balance(p, gp, d, gd, self.problem.cluster.num_gpus, self.options.rate_per_s)
        if n * p.gpus_per_instance + m * d.gpus_per_instance > self.problem.cluster.num_gpus:
            return None
        return disaggregated(p.with_instances(n), d.with_instances(m), "high")

    def _finals(
        self, rows: list[Candidate], phases: list[Candidate], disagg: list[Candidate]
    ) -> list[Candidate]:
        shapes: list[tuple[Shape, int]] = []
        best_col = best_of(rows, "colocated")
        if best_col is not None:
            shapes.append((best_col.shape, 1))
        if self.options.affinity in ("high", "both"):
            high = self._high(phases)
            if high is not None:
                shapes.append((high, 1))
        best_low = best_of(disagg, "disaggregated")
        if best_low is not None:
            shapes.append((best_low.shape, 1))
        return self._evaluate("final", shapes, prune=False)

    # ---- evaluation with pruning ----------------------------------------------------------
    def _evaluate(self, stage: str, units: list[tuple[Shape, int]], prune: bool) -> list[Candidate]:
        """Goodput of every unit, skipping infeasible ones and (if `prune`) hopeless ones."""
        out: dict[str, Candidate] = {}
        todo: list[tuple[Shape, int, float]] = []
        for unit, copies in units:
            bounds = self._bounds(unit)
            if not bounds.feasible(self.problem.target):
                out[unit.key] = Candidate(
                    stage,
                    unit,
                    copies,
                    bounds,
                    "infeasible",
                    note=infeasible_note(self.problem, self.evaluator, unit),
                )
                self.progress(1)
            else:
                todo.append((unit, copies, bounds.capacity_per_s / unit.num_gpus))
        todo.sort(key=lambda t: (-t[2], t[0].key))
        best_per_gpu = 0.0
        size = min(FIRST_ROUND_SIZE, self.options.round_size)
        while todo:
            batch, todo = todo[:size], todo[size:]
            size = self.options.round_size
            for cand in self._run(stage, batch, best_per_gpu if prune else 0.0):
                out[cand.unit.key] = cand
                best_per_gpu = max(best_per_gpu, cand.unit_goodput_per_gpu_per_s or 0.0)
            if prune:
                keep = [t for t in todo if t[2] >= best_per_gpu]
                for unit, copies, _ in (t for t in todo if t[2] < best_per_gpu):
                    out[unit.key] = Candidate(stage, unit, copies, self._bounds(unit), "pruned")
                    self.progress(1)
                todo = keep
        return [out[unit.key] for unit, _ in units]

    def _run(
        self, stage: str, batch: list[tuple[Shape, int, float]], beat_per_gpu: float
    ) -> list[Candidate]:
        """Goodput searches of `batch`; each stops early once it cannot beat `beat_per_gpu`."""
        tasks = [
            Task(
                self.evaluator,
                self.problem,
                unit,
                self._bounds(unit).capacity_per_s,
                beat_per_gpu * unit.num_gpus,
            )
            for unit, _, _ in batch
        ]
        outcomes = self.executor.run(tasks, on_done=lambda: self.progress(1))
        cands = []
        for (unit, copies, _), task, outcome in zip(batch, tasks, outcomes, strict=True):
            self.num_simulations += outcome.num_simulated
            self.num_cached += outcome.result.num_simulations - outcome.num_simulated
            cands.append(
                Candidate(
                    stage,
                    unit,
                    copies,
                    self._bounds(task.shape),
                    "evaluated",
                    outcome.result,
                    outcome.num_simulated,
                )
            )
        return cands

    def _bounds(self, unit: Shape) -> ShapeBounds:
        if unit not in self._bounds_memo:
            self._bounds_memo[unit] = self.evaluator.bounds(self.problem, unit)
        return self._bounds_memo[unit]

    def _fill(self, unit_gpus: int) -> int:
        return replicas_to_fill(unit_gpus, self.problem.cluster.num_gpus)

    def _for_rate(self, c: Candidate) -> Candidate:
        if c.result is None or self.options.rate_per_s is None:
            return c
        copies = replicas_for_rate(c.result.goodput_per_s, self.options.rate_per_s, c.copies)
        return Candidate(
            c.stage, c.unit, copies, c.bounds, c.status, c.result, c.num_simulated, c.note
        )


def best_measured(cands: list[Candidate], stage: str) -> Candidate | None:
    """The highest per-GPU goodput of `stage` (exact searches only; ties by key)."""
    ok = [c for c in cands if c.stage == stage and c.exact and (c.goodput_per_s or 0) > 0]
    return min(ok, key=Candidate.sort_key) if ok else None


def infeasible_note(problem: SearchProblem, evaluator: Evaluator, unit: Shape) -> str:
    """Which SLO rules a shape out unloaded: 'ttft', 'tpot' or both."""
    binding = []
    for metric, single in (("ttft", _only(unit, "prefill")), ("tpot", _only(unit, "decode"))):
        if single is not None and not evaluator.bounds(problem, single).feasible(problem.target):
            binding.append(metric)
    return "+".join(binding) or "joint"


def _only(unit: Shape, role: str) -> Shape | None:
    """The phase-only view of a shape's `role` side (a colocated group serves both)."""
    group = unit.group(role) or unit.group("colocated")
    return None if group is None else Shape((group.__class__(role, group.tp, group.pp),))


def no_configuration_meets(problem: SearchProblem, result: SearchResult) -> InputError:
    """Error for SLOs that nothing meets: the best attainment reached, where, and what binds."""
    best = (-1.0, "no configuration", "TTFT")
    for c in result.candidates:
        if c.result is not None:
            for p in c.result.points:
                side = "TTFT" if p.attainment_ttft < p.attainment_tpot else "TPOT"
                best = max(
                    best, (p.attainment_joint, f"{c.shape.key} at {p.rate_per_s:.3g} req/s", side)
                )
        elif c.status == "infeasible":
            side = {"tpot": "TPOT", "ttft+tpot": "TTFT and TPOT"}.get(c.note, "TTFT")
            best = max(best, (c.bounds.attainment_ub, f"{c.shape.key} unloaded", side))
    att, where, side = best
    return InputError(
        "slo",
        f"ttft {problem.ttft_slo_s:g}s / tpot {problem.tpot_slo_s:g}s",
        f"no configuration reaches {problem.target:.0%} attainment; best {att:.1%} by {where}; "
        f"the {side} SLO{'s bind' if ' and ' in side else ' binds'}; relax it or add GPUs",
    )
