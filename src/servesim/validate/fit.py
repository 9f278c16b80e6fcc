"""Fit backend profiles on measured rows, and evaluate them leave-one-model-out.

A backend's few numbers (`FITTED_PARAMS` of latency/backends.py) are chosen by coordinate search
in log space to minimize a robust error over that backend's training rows:
mean(min(|ln(pred/measured)|, CAP)) of TPOT plus TTFT_WEIGHT times the same for TTFT, plus a
penalty SCALE_PRIOR * sum(ln(scale / center)^2) that keeps the efficiency scales near a center
unless the rows insist (a backend fitted on few models or GPUs must not carry their quirks to the
others). The scheduling policy is the engine's documented default, not fitted. The same numbers
serve every row of the backend: nothing is tuned per row.

The front end (`FRONT_END`: request_overhead_s and first_token_steps) is not searched: it is added
to a row's TTFT after the simulation, so for each trial of the other numbers the fit takes the
front end that is best on a fine grid (`Outcomes.solve_front_end`), and the trial's loss is the
loss with it. The final front end is solved on every training row of the backend, not only the
subset the search simulates: it costs one more simulation per row.

The fit has three levels. First one set of `shared` numbers (SHARED_PARAMS: the efficiency
scales, per-iteration overheads and the front end) is fitted on the training rows of every
backend together (each row run with its own engine's policy, KV precision and drift), centered
on scales of 1: what every engine has in common with the operator-level model. It uses the rows
of GPUs whose efficiency profile was fitted on operator tables (H100), when there are enough.
Second, each GPU family without operator tables (the Blackwell parts: B200, B300, GB200, GB300)
gets its own compute, memory and attention scales (`GpuScales`, shipped as a "silicon" GPU
profile), fitted on that family's rows of every backend with the shared numbers, centered on 1:
without them the backends absorbed Blackwell's gaps and carried them to H100. Third, each
backend is fitted from the shared numbers and centered on them, on its rows of every GPU (each
on its GPU's factors), so a backend with few rows stays close to what all engines do, and one
with fewer than MIN_FIT_ROWS rows, or rows of fewer than MIN_FIT_MODELS models, takes the shared
numbers as they are (with too few rows in all, the priors): fitted on one model's rows, a
backend's numbers absorb that model's quirks (SGLang's rows are DeepSeek on Blackwell and
Qwen3-32B on H100; either alone predicted the other badly). A GPU family follows the same
two-model rule. So does a backend whose training rows are all on GPUs without operator tables:
its numbers would carry their calibration gaps to the others (SGLang fitted on its Blackwell
rows alone, with Qwen3-32B held out, put a 451 ms front end and a 16% TPOT error on H100).

`leave_one_model_out` refits every level, for each catalog model M, on the rows of the other
models and predicts M's rows with those profiles, so the errors say how servesim does on a model
it has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, TypeVar

import numpy as np

from servesim.errors import InputError
from servesim.latency import Efficiency
from servesim.latency.backends import (
    FITTED_PARAMS,
    MAX_FIRST_TOKEN_STEPS,
    BackendProfile,
    scale_efficiency,
)
from servesim.latency.profiles import operator_efficiency, profile_family, silicon_base
from servesim.validate.predict import Number, client_ttft_ms, predict_row
from servesim.validate.runner import GpuEfficiencies, RowResult, evaluate_row, ordered_map
from servesim.validate.silicon import SiliconRow
from servesim.validate.support import Target, classify

CAP = 1.5  # log errors above this (4.5x off) count as this
TTFT_WEIGHT = 0.5  # TTFT is noisier (queueing, front end) than TPOT
SCALE_PRIOR = 0.05  # a scale of 0.5 or 2 costs as much as 2.4% more mean log error
SCALES = ("compute_scale", "memory_scale", "attention_scale")
# What the shared level fits: the kernels, the per-iteration work and the front end. How the
# benchmark's clients drift (desync) is each engine's own scheduling trait.
SHARED_PARAMS = (
    "iteration_overhead_s",
    "seq_overhead_s",
    "request_overhead_s",
    "first_token_steps",
    *SCALES,
)
MAX_SHARED_ROWS = 120  # training rows of the shared and GPU fits (a fixed random subset if more)
MIN_FIT_ROWS = 20
MIN_FIT_MODELS = 2  # a backend's or GPU's own numbers need rows of two models
MAX_FIT_ROWS = 80  # training rows per backend (a fixed random subset when more)
FIT_MAX_REQUESTS: int | None = None  # fits simulate the same benchmark as the evaluation
STEPS = (4.0, 2.0, 1.41, 1.19)  # multiplicative step of each coordinate-search pass
BOUNDS = {
    "iteration_overhead_s": (0.0, 0.05),
    "seq_overhead_s": (0.0, 1e-3),
    "request_overhead_s": (0.0, 1.0),
    "first_token_steps": (0.0, float(MAX_FIRST_TOKEN_STEPS)),
    # Scales stay where the scaled efficiencies remain physical (<= ~1 of the datasheet peak for
    # the GPU profiles' GEMM ~0.75 and attention ~0.55 fractions, and the roofline's 0.7 / 0.5).
    "compute_scale": (0.2, 1.3),
    "memory_scale": (0.3, 1.15),
    "attention_scale": (0.2, 1.7),
    "desync": (0.0, 1.0),
}
ZERO_STEP = {
    "iteration_overhead_s": 1e-4,
    "seq_overhead_s": 1e-6,
    "request_overhead_s": 5e-3,
    "first_token_steps": 0.25,
    "desync": 0.05,
}

# Added to a row's TTFT after its simulation (predict.client_ttft_ms): for any trial of the other
# numbers, the best front end is found on this grid from one simulation per row, not searched.
FRONT_END = ("request_overhead_s", "first_token_steps")
FRONT_END_GRID_S = np.concatenate(([0.0], np.geomspace(1e-3, BOUNDS["request_overhead_s"][1], 101)))
FRONT_END_GRID_STEPS = np.arange(0.0, MAX_FIRST_TOKEN_STEPS + 0.125, 0.25)

Case = tuple[SiliconRow, Target]

# Where every fit starts: each engine's documented defaults and the roofline's overheads. vLLM V1
# chunks prompts into mixed prefill + decode batches; SGLang runs prefill batches apart from decode
# batches (mixed chunks are off by default) and first; TensorRT-LLM's in-flight batching puts
# context and generation requests in one batch (whole prompts: aiconfigurator's generated configs
# set enable_chunked_prefill false); an 8192-token batch budget (max_num_tokens); fp8 KV cache in
# TensorRT-LLM fp8 checkpoints. Fits never start from fitted files, so held-out rows cannot leak
# into a leave-one-model-out fit.
PRIORS = {
    "vllm": BackendProfile("vllm", "chunked", 8192, fp8_kv_cache=False, desync=0.5),
    "sglang": BackendProfile("sglang", "vllm", 8192, fp8_kv_cache=False, desync=0.5),
    "trtllm": BackendProfile("trtllm", "chunked", 8192, fp8_kv_cache=True, desync=0.5),
}


@dataclass(frozen=True, slots=True)
class GpuScales:
    """Compute, memory and attention scales of one GPU family without operator tables, on its
    silicon base's efficiencies (1, 1, 1: the base as it is)."""

    family: str  # the profile name the family's GPUs use (latency.profiles.profile_family)
    compute_scale: float = 1.0
    memory_scale: float = 1.0
    attention_scale: float = 1.0
    fitted_on: tuple[str, ...] = ()

    def scales(self) -> tuple[float, float, float]:
        return self.compute_scale, self.memory_scale, self.attention_scale

    def with_params(self, **params: float) -> GpuScales:
        return replace(self, **params)  # type: ignore[arg-type]


Corrections = dict[str, GpuScales]  # GPU family -> its scales


def base_efficiency(gpu: str) -> Efficiency:
    """The factors a fit starts from on `gpu`: its operator-table profile, else its family's
    silicon base (latency.profiles.SILICON_BASE)."""
    return operator_efficiency(gpu) or silicon_base(profile_family(gpu))


def gpu_efficiencies(gpus: Iterable[str], corrections: Corrections) -> dict[str, Efficiency]:
    """Each GPU's factors: its base, times its family's scales where the family has them."""
    out = {}
    for gpu in sorted(set(gpus)):
        scales = corrections.get(profile_family(gpu))
        base = base_efficiency(gpu)
        out[gpu] = scale_efficiency(base, scales.scales(), gpu) if scales else base
    return out


def capped_log_error(predicted: Number, measured: Number) -> np.ndarray:
    """min(|ln(predicted / measured)|, CAP), and CAP where the prediction is not a positive
    finite number."""
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(np.log(predicted / measured))
    return np.where(np.isfinite(err) & (predicted > 0), np.minimum(err, CAP), CAP)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Simulated and measured means (ms) of the cases that ran, and the front end of the profile
    each ran under."""

    engine_ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    measured_ttft_ms: np.ndarray
    measured_tpot_ms: np.ndarray
    request_overhead_s: np.ndarray
    first_token_steps: np.ndarray

    def tpot_error(self) -> np.ndarray:
        return capped_log_error(self.tpot_ms, self.measured_tpot_ms)

    def mean_loss(self) -> float:
        """Mean case loss, each case with its own profile's front end (inf when none ran)."""
        if len(self.tpot_ms) == 0:
            return math.inf
        ttft = client_ttft_ms(
            self.engine_ttft_ms, self.tpot_ms, self.request_overhead_s, self.first_token_steps
        )
        errors = self.tpot_error() + TTFT_WEIGHT * capped_log_error(ttft, self.measured_ttft_ms)
        return float(errors.mean())

    def solve_front_end(self) -> tuple[float, float, float]:
        """(request_overhead_s, first_token_steps) on the grid FRONT_END_GRID_S x
        FRONT_END_GRID_STEPS that give the cases the lowest mean loss, and that loss (the first
        of equal ones: the smallest front end)."""
        if len(self.tpot_ms) == 0:
            return 0.0, 0.0, math.inf
        overheads_s = FRONT_END_GRID_S[:, None]  # rows of the grid; columns: the cases
        ttft_error = np.stack(
            [
                capped_log_error(
                    client_ttft_ms(self.engine_ttft_ms, self.tpot_ms, overheads_s, steps),
                    self.measured_ttft_ms,
                ).mean(axis=1)
                for steps in FRONT_END_GRID_STEPS
            ],
            axis=1,
        )
        i, j = np.unravel_index(int(np.argmin(ttft_error)), ttft_error.shape)
        best = float(self.tpot_error().mean() + TTFT_WEIGHT * ttft_error[i, j])
        return float(FRONT_END_GRID_S[i]), float(FRONT_END_GRID_STEPS[j]), best


def simulate_cases(
    cases: Sequence[Case], profiles: Sequence[BackendProfile], effs: Sequence[Efficiency]
) -> Outcomes:
    """Each case simulated under its profile on its GPU factors; cases that cannot run under any
    profile are left out. Raises InputError when a profile pushes a factor out of range (the
    trial is not a candidate)."""
    for profile, eff in set(zip(profiles, effs, strict=True)):
        profile.apply(eff)
    kept = []
    for (row, target), profile, eff in zip(cases, profiles, effs, strict=True):
        try:
            p = predict_row(row, target, profile, FIT_MAX_REQUESTS, gpu_eff=eff)
        except InputError:
            continue
        kept.append(
            (
                p.engine_ttft_ms,
                p.tpot_ms,
                row.measured_ttft_ms,
                row.measured_tpot_ms,
                profile.request_overhead_s,
                profile.first_token_steps,
            )
        )
    return Outcomes(*np.array(kept, dtype=float).reshape(-1, 6).T)


def scale_penalty(
    profile: BackendProfile | GpuScales, center: BackendProfile | None = None
) -> float:
    """SCALE_PRIOR * sum of squared log distances of the scales from `center`'s (default 1)."""
    return SCALE_PRIOR * sum(
        math.log(getattr(profile, name) / (getattr(center, name) if center else 1.0)) ** 2
        for name in SCALES
    )


Settings = dict[str, BackendProfile]  # backend name -> the profile whose policy and KV it keeps


def case_profile(
    row: SiliconRow, numbers: BackendProfile, settings: Settings | None
) -> BackendProfile:
    """The profile a row runs under: `numbers` itself, or (a shared fit) the row's own backend
    settings with `numbers`' fitted values."""
    if settings is None:
        return numbers
    return settings[row.backend].with_params(**shared_params(numbers))


def shared_params(profile: BackendProfile) -> dict[str, float]:
    return {name: float(getattr(profile, name)) for name in SHARED_PARAMS}


def loss(
    cases: Sequence[Case],
    profile: BackendProfile,
    effs: GpuEfficiencies,
    center: BackendProfile | None = None,
    settings: Settings | None = None,
) -> float:
    """A backend (or, with `settings`, shared) fit's objective on `cases`, with its front end
    solved (`profile`'s own request_overhead_s and first_token_steps do not count)."""
    return solve_front_end(cases, profile, effs, settings)[2] + scale_penalty(profile, center)


def solve_front_end(
    cases: Sequence[Case],
    profile: BackendProfile,
    effs: GpuEfficiencies,
    settings: Settings | None = None,
) -> tuple[float, float, float]:
    """The front end (request_overhead_s, first_token_steps) that suits `profile`'s other
    numbers best on `cases`, and the mean case loss with it."""
    profiles = [case_profile(row, profile, settings) for row, _ in cases]
    outcomes = simulate_cases(cases, profiles, [effs[target.gpu] for _, target in cases])
    return outcomes.solve_front_end()


def gpu_loss(cases: Sequence[Case], scales: GpuScales, backends: Settings) -> float:
    """A GPU family fit's objective: each case under its backend, on its GPU's base factors
    times `scales`."""
    effs = gpu_efficiencies({target.gpu for _, target in cases}, {scales.family: scales})
    profiles = [backends[row.backend] for row, _ in cases]
    outcomes = simulate_cases(cases, profiles, [effs[t.gpu] for _, t in cases])
    return outcomes.mean_loss() + scale_penalty(scales)


def _candidates(name: str, value: float, step: float) -> list[float]:
    lo, hi = BOUNDS[name]
    if value == 0.0:
        out = [0.0, ZERO_STEP[name] * step]
    else:
        out = [value / step, value, value * step]
        if name in ZERO_STEP:
            out.append(0.0)
    return sorted({min(max(v, lo), hi) for v in out})


class Fittable(Protocol):
    def with_params(self, **params: float) -> Self: ...


F = TypeVar("F", bound=Fittable)


def coordinate_search(
    start: F, names: Sequence[str], objective: Callable[[F], float]
) -> tuple[F, float]:
    """Minimize `objective` over the `names` fields of `start`, one coordinate at a time, with
    multiplicative steps STEPS within BOUNDS; trials that raise InputError are skipped."""
    best, best_loss = start, objective(start)
    for step in STEPS:
        for name in names:
            for value in _candidates(name, getattr(best, name), step):
                try:
                    trial = best.with_params(**{name: value})
                    trial_loss = objective(trial)
                except InputError:
                    continue
                if trial_loss < best_loss - 1e-9:
                    best, best_loss = trial, trial_loss
    return best, best_loss


def fit_backend(
    cases: Sequence[Case],
    prior: BackendProfile,
    effs: GpuEfficiencies,
    fitted_on: str = "",
    center: BackendProfile | None = None,
    settings: Settings | None = None,
    front_end_cases: Sequence[Case] | None = None,
) -> BackendProfile:
    """Coordinate search over FITTED_PARAMS but the FRONT_END from `prior` (whose policy stays),
    the scales penalized by their distance from `center`'s (default 1), each case on its GPU's
    `effs`, each trial's front end solved; then the best profile's front end is solved on
    `front_end_cases` (default `cases`: it costs one simulation per row, so a fit can afford all
    its training rows). With `settings`, each case runs under its own backend's settings and
    only SHARED_PARAMS are fitted (a shared fit)."""
    names = SHARED_PARAMS if settings is not None else FITTED_PARAMS
    searched = [name for name in names if name not in FRONT_END]
    best, best_loss = coordinate_search(
        prior, searched, lambda trial: loss(cases, trial, effs, center, settings)
    )
    solve_on = cases if front_end_cases is None else front_end_cases
    overhead_s, steps, _ = solve_front_end(solve_on, best, effs, settings)
    best = best.with_params(request_overhead_s=overhead_s, first_token_steps=steps)
    note = f"{fitted_on}; {len(cases)} rows; loss {best_loss:.4f}" if fitted_on else ""
    if note and len(solve_on) != len(cases):
        note += f"; front end on {len(solve_on)} rows"
    return best.with_params(fitted_on=(note,) if note else ())  # type: ignore[arg-type]


def supported_cases(rows: Sequence[SiliconRow], exclude_model: str | None) -> list[Case]:
    """(row, target) of every supported row, minus those of `exclude_model`."""
    cases = []
    for row in rows:
        target = classify(row).target
        if target is not None and target.model_name != exclude_model:
            cases.append((row, target))
    return cases


def backend_cases(
    rows: Sequence[SiliconRow], backend: str, exclude_model: str | None
) -> list[Case]:
    """Supported rows of `backend`, minus those of `exclude_model`."""
    return [c for c in supported_cases(rows, exclude_model) if c[0].backend == backend]


def training_cases(
    rows: Sequence[SiliconRow], backend: str, exclude_model: str | None, seed: int = 0
) -> list[Case]:
    """`backend_cases`, at most MAX_FIT_ROWS of them (a fixed random subset)."""
    return _subset(backend_cases(rows, backend, exclude_model), MAX_FIT_ROWS, seed)


T = TypeVar("T")


def _subset(cases: list[T], limit: int, seed: int = 0) -> list[T]:
    """At most `limit` of `cases`, a fixed random subset in their order."""
    if len(cases) <= limit:
        return cases
    pick = np.random.default_rng(seed).choice(len(cases), limit, replace=False)
    return [cases[i] for i in sorted(pick)]


def _without(exclude_model: str | None) -> str:
    return f" except {exclude_model}" if exclude_model else ""


def _num_models(cases: Sequence[Case]) -> int:
    return len({target.model_name for _, target in cases})


def fit_shared(
    rows: Sequence[SiliconRow], priors: Settings, exclude_model: str | None, seed: int = 0
) -> BackendProfile | None:
    """The numbers every backend shares, fitted on all backends' training rows together, those
    of operator-calibrated GPUs when there are MIN_FIT_ROWS of them (None when there are fewer
    than MIN_FIT_ROWS rows in all)."""
    cases = [c for b in priors for c in training_cases(rows, b, exclude_model, seed)]
    calibrated = [c for c in cases if operator_efficiency(c[1].gpu) is not None]
    where = "silicon rows of every backend"
    if len(calibrated) >= MIN_FIT_ROWS:
        cases, where = calibrated, where + " on operator-calibrated GPUs"
    if len(cases) < MIN_FIT_ROWS:
        return None
    cases = _subset(cases, MAX_SHARED_ROWS, seed)
    effs = gpu_efficiencies({target.gpu for _, target in cases}, {})
    start = next(iter(priors.values())).with_params(name="shared")  # type: ignore[arg-type]
    return fit_backend(cases, start, effs, where + _without(exclude_model), settings=priors)


def uncalibrated_families(rows: Sequence[SiliconRow]) -> list[str]:
    """Families of the supported rows' GPUs that have no operator-table profile."""
    gpus = {target.gpu for _, target in supported_cases(rows, None)}
    return sorted({profile_family(g) for g in gpus if operator_efficiency(g) is None})


def fit_gpu(
    rows: Sequence[SiliconRow],
    priors: Settings,
    shared: BackendProfile | None,
    exclude_model: str | None,
    family: str,
    seed: int = 0,
) -> GpuScales:
    """`family`'s scales, fitted on its training rows of every backend (each under its own
    backend's settings with the shared numbers); 1, 1, 1 when the rows are too few or of one
    model."""
    cases = [
        c
        for c in supported_cases(rows, exclude_model)
        if profile_family(c[1].gpu) == family and c[0].backend in priors
    ]
    if len(cases) < MIN_FIT_ROWS or _num_models(cases) < MIN_FIT_MODELS:
        num = f"{len(cases)} training rows of {_num_models(cases)} model(s)"
        why = f"silicon base as it is (only {num})"
        return GpuScales(family, fitted_on=(why,))
    cases = _subset(cases, MAX_SHARED_ROWS, seed)
    backends = {
        name: prior.with_params(**shared_params(shared)) if shared else prior
        for name, prior in priors.items()
    }
    best, best_loss = coordinate_search(
        GpuScales(family), SCALES, lambda trial: gpu_loss(cases, trial, backends)
    )
    note = f"silicon rows on {family}{_without(exclude_model)}; {len(cases)} rows"
    return best.with_params(fitted_on=(f"{note}; loss {best_loss:.4f}",))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FitJob:
    backend: str
    exclude_model: str | None


def run_fit(
    job: FitJob,
    rows: Sequence[SiliconRow],
    priors: Settings,
    shared: BackendProfile | None,
    effs: GpuEfficiencies,
    seed: int = 0,
) -> BackendProfile:
    """One backend's profile: fitted from (and centered on) the shared numbers, or the shared
    numbers as they are (the prior without them) when the backend has too few training rows,
    rows of one model, or none on an operator-calibrated GPU (fitted on those alone, its
    numbers would mix that GPU's calibration into the engine's)."""
    cases = training_cases(rows, job.backend, job.exclude_model, seed)
    prior = priors[job.backend]
    if shared is not None:
        prior = prior.with_params(**shared_params(shared))
    why = ""
    if len(cases) < MIN_FIT_ROWS or _num_models(cases) < MIN_FIT_MODELS:
        why = f"only {len(cases)} training rows of {_num_models(cases)} model(s)"
    elif all(operator_efficiency(target.gpu) is None for _, target in cases):
        why = "no training rows on an operator-calibrated GPU"
    if why:
        what = "shared numbers" if shared is not None else "prior"
        return prior.with_params(fitted_on=(f"{what} ({why})",))  # type: ignore[arg-type]
    what = f"silicon rows of {job.backend}" + _without(job.exclude_model)
    every = backend_cases(rows, job.backend, job.exclude_model)
    return fit_backend(cases, prior, effs, what, center=shared, front_end_cases=every)


@dataclass(frozen=True, slots=True)
class Fit:
    """What the fits give: each job's backend profile, and per excluded model ('' for none)
    the GPU families' scales and every row GPU's resulting factors."""

    backends: dict[FitJob, BackendProfile]
    scales: dict[str, Corrections]
    effs: dict[str, dict[str, Efficiency]]
    seed: int = 0

    def profiles(self, held_out: str | None = None) -> dict[str, BackendProfile]:
        """Backend name -> profile fitted without `held_out`'s rows."""
        return {j.backend: p for j, p in self.backends.items() if j.exclude_model == held_out}

    def job(self, backend: str, held_out: str | None = None) -> BackendProfile:
        """The profile of `backend` fitted without `held_out`'s rows."""
        return self.backends[FitJob(backend, held_out)]

    def summary(self) -> list[dict[str, Any]]:
        """Per fit (one per held-out model, or one on every row): the GPU families' scales and
        the backends' numbers, with what each was fitted on."""
        out = []
        for key in sorted(self.scales):
            held_out = key or None
            gpus = {
                family: {**dict(zip(SCALES, g.scales(), strict=True)), "fitted_on": g.fitted_on}
                for family, g in sorted(self.scales[key].items())
            }
            backends = {
                name: {**p.params(), "fitted_on": p.fitted_on}
                for name, p in sorted(self.profiles(held_out).items())
            }
            out.append(
                {"held_out": held_out, "seed": self.seed, "gpu_scales": gpus, "backends": backends}
            )
        return out


def fit_all(
    jobs: Sequence[FitJob],
    rows: Sequence[SiliconRow],
    priors: Settings,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
    seed: int = 0,
) -> Fit:
    """Run fit jobs, training subsets drawn with `seed`: per excluded model the shared fit
    first, then the GPU families', then the backends'."""
    excluded = sorted({job.exclude_model or "" for job in jobs})
    shared_fits = ordered_map(
        fit_shared, [(rows, priors, name or None, seed) for name in excluded], workers, advance
    )
    shared = dict(zip(excluded, shared_fits, strict=True))
    families = uncalibrated_families(rows)
    keys = [(name, family) for name in excluded for family in families]
    gpu_args = [(rows, priors, shared[name], name or None, family, seed) for name, family in keys]
    gpu_fits = ordered_map(fit_gpu, gpu_args, workers, advance)
    scales: dict[str, Corrections] = {name: {} for name in excluded}
    for (name, family), gpu_fit in zip(keys, gpu_fits, strict=True):
        scales[name][family] = gpu_fit
    gpus = {target.gpu for _, target in supported_cases(rows, None)}
    effs = {name: gpu_efficiencies(gpus, scales[name]) for name in excluded}
    args = [
        (job, rows, priors, shared[job.exclude_model or ""], effs[job.exclude_model or ""], seed)
        for job in jobs
    ]
    fitted = dict(zip(jobs, ordered_map(run_fit, args, workers, advance), strict=True))
    return Fit(fitted, scales, effs, seed)


def fit_on_all(
    rows: Sequence[SiliconRow],
    priors: Settings | None = None,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
    seed: int = 0,
) -> Fit:
    """Each backend fitted on all its supported rows (what latency/data/backends/ ships), with
    the GPU families' scales (latency/data/<family>.json): `Fit.profiles()`, `Fit.scales[""]`.
    `seed` draws the training subsets of backends with more rows than a fit takes."""
    start = priors or PRIORS
    return fit_all([FitJob(b, None) for b in start], rows, start, workers, advance, seed)


def leave_one_model_out(
    rows: Sequence[SiliconRow],
    priors: dict[str, BackendProfile] | None = None,
    max_requests: int | None = None,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
    seed: int = 0,
) -> tuple[list[RowResult], Fit]:
    """Each supported row predicted by profiles fitted without its model's rows (training
    subsets drawn with `seed`)."""
    priors = priors or PRIORS
    supports = [classify(r) for r in rows]
    pairs = sorted(
        {(r.backend, s.target.model_name) for r, s in zip(rows, supports, strict=True) if s.target}
    )
    jobs = [FitJob(b, m) for b, m in pairs if b in priors]
    fit = fit_all(jobs, rows, priors, workers, advance, seed)
    results = []
    for row, support in zip(rows, supports, strict=True):
        if support.target is None or row.backend not in priors:
            results.append(
                evaluate_row(
                    row, priors.get(row.backend, BackendProfile(row.backend)), max_requests
                )
            )
            continue
        model = support.target.model_name
        profile = fit.job(row.backend, model)
        results.append(evaluate_row(row, profile, max_requests, support.target, fit.effs[model]))
    return results, fit
