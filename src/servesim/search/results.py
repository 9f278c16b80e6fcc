"""Search results: one `Candidate` per evaluated (or pruned) shape, and the ranked whole.

A candidate's simulated `unit` is replicated `copies` times into the deployed `shape`; its goodput
is the unit's goodput times the copies (or, for the final re-simulated configurations, the
goodput measured on the whole deployment, with copies = 1). Ranking: per-GPU goodput, highest
first, ties broken by the shape's stable key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from servesim.search.bounds import ShapeBounds
from servesim.search.goodput import GoodputResult, RatePoint
from servesim.search.shapes import Shape

STATUSES = ("evaluated", "infeasible", "pruned")
STAGES = ("colocated", "prefill", "decode", "high", "low", "final")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One shape the search considered.

    stage: where it came from ('colocated', 'prefill'/'decode' phase-only, 'high'/'low'
    disaggregated, 'final' = re-simulated whole deployment). status: 'evaluated', 'infeasible'
    (cannot meet the SLOs even unloaded) or 'pruned' (its bound cannot beat the best found).
    """

    stage: str
    unit: Shape
    copies: int
    bounds: ShapeBounds
    status: str
    result: GoodputResult | None = None
    num_simulated: int = 0
    note: str = ""

    @property
    def shape(self) -> Shape:
        return self.unit.scaled(self.copies)

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.shape.key}"

    @property
    def num_gpus(self) -> int:
        return self.shape.num_gpus

    @property
    def goodput_per_s(self) -> float | None:
        """Goodput of the deployed shape, req/s (None if unknown or only bounded)."""
        if self.result is None or not self.result.exact:
            return None
        return self.result.goodput_per_s * self.copies

    @property
    def goodput_per_gpu_per_s(self) -> float | None:
        g = self.goodput_per_s
        return None if g is None else g / self.num_gpus

    @property
    def unit_goodput_per_gpu_per_s(self) -> float | None:
        return None if self.result is None else self.result.goodput_per_s / self.unit.num_gpus

    @property
    def at_goodput(self) -> RatePoint | None:
        """The evaluated point at the goodput rate (None if the goodput is 0 or unknown)."""
        return self.result.point_at(self.result.goodput_per_s) if self.result else None

    @property
    def exact(self) -> bool:
        """False when the goodput search stopped early (the shape could not beat the best)."""
        return self.result is not None and self.result.exact

    @property
    def goodput_below_per_s(self) -> float | None:
        """For an early-stopped search: the deployment rate its goodput is known to be below."""
        miss = self.result.first_miss() if self.result and not self.result.exact else None
        return None if miss is None else miss.rate_per_s * self.copies

    def estimate_per_s(self) -> float:
        """Unit goodput if known, else the rate it is known to be below (0 if none)."""
        if self.result is None:
            return 0.0
        miss = self.result.first_miss()
        if self.result.exact or miss is None:
            return self.result.goodput_per_s
        return miss.rate_per_s

    def sort_key(self) -> tuple[int, float, str]:
        """Exact goodputs first, highest per GPU first; then early-stopped ones by their upper
        bound; then unevaluated ones; ties by the stable id."""
        if self.exact:
            return (0, -(self.goodput_per_gpu_per_s or 0.0), self.id)
        below = self.goodput_below_per_s
        if below is not None:
            return (1, -below / self.num_gpus, self.id)
        return (2, 0.0, self.id)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Everything a search found. `candidates` are deployable shapes, ranked; `phases` are the
    prefill-only and decode-only evaluations behind the disaggregated ones."""

    candidates: tuple[Candidate, ...]
    phases: tuple[Candidate, ...]
    best_colocated: Candidate | None
    best_disaggregated: Candidate | None
    num_simulations: int
    num_cached_points: int
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def best(self) -> Candidate | None:
        both = [c for c in (self.best_colocated, self.best_disaggregated) if c is not None]
        return min(both, key=Candidate.sort_key) if both else None

    @property
    def ratio(self) -> float | None:
        """Per-GPU goodput of the best disaggregated over the best colocated configuration."""
        d, c = self.best_disaggregated, self.best_colocated
        if d is None or c is None:
            return None
        dg, cg = d.goodput_per_gpu_per_s, c.goodput_per_gpu_per_s
        if dg is None or not cg:
            return None
        return dg / cg

    @property
    def all_evaluated(self) -> tuple[Candidate, ...]:
        return self.candidates + self.phases


def rank(candidates: list[Candidate]) -> tuple[Candidate, ...]:
    """Highest per-GPU goodput first; unevaluated ones last; ties by stable id."""
    return tuple(sorted(candidates, key=Candidate.sort_key))


def best_of(candidates: list[Candidate] | tuple[Candidate, ...], mode: str) -> Candidate | None:
    """The best evaluated candidate of `mode` with a goodput > 0."""
    ok = [c for c in candidates if c.shape.mode == mode and (c.goodput_per_s or 0) > 0]
    return min(ok, key=Candidate.sort_key) if ok else None


def bottleneck(c: Candidate) -> str:
    """What limits the candidate: 'prefill', 'decode', 'KV memory' or 'network'."""
    if c.result is None or c.result.first_miss() is None:
        return (
            "prefill"
            if c.unit.metric == "ttft"
            else ("decode" if c.unit.metric == "tpot" else _unloaded_side(c))
        )
    miss = c.result.first_miss()
    assert miss is not None
    if miss.attainment_ttft < miss.attainment_tpot:
        return "network" if miss.kv_share_of_ttft > 0.5 else "prefill"
    return "KV memory" if c.bounds.kv_limited else "decode"


def _unloaded_side(c: Candidate) -> str:
    return "decode" if "tpot" in c.note else "prefill"
