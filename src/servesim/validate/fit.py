"""Fit backend profiles on measured rows, and evaluate them leave-one-model-out.

A backend's few numbers (`FITTED_PARAMS` of latency/backends.py) are chosen by coordinate search
in log space to minimize a robust error over that backend's training rows:
mean(min(|ln(pred/measured)|, CAP)) of TPOT plus TTFT_WEIGHT times the same for TTFT, plus a
penalty SCALE_PRIOR * sum(ln(scale / center)^2) that keeps the efficiency scales near a center
unless the rows insist (a backend fitted on few models or GPUs must not carry their quirks to the
others). The scheduling policy is the engine's documented default, not fitted. The same numbers
serve every row of the backend: nothing is tuned per row.

The fit has two levels. First one set of `shared` numbers (SHARED_PARAMS: the efficiency scales,
per-iteration overheads and the front end) is fitted on the training rows of every backend
together (each row run with its own engine's policy, KV precision and drift), centered on scales
of 1: what every engine has in common with the roofline. Then each backend is fitted from the
shared numbers and centered on them, so a backend with few rows stays close to what all engines
do, and one with fewer than MIN_FIT_ROWS rows, or rows of fewer than MIN_FIT_MODELS models,
takes the shared numbers as they are (with too few rows in all, the priors): fitted on one
model's rows, a backend's numbers absorb that model's quirks and its GPU's calibration gaps
(SGLang's rows are DeepSeek on Blackwell and Qwen3-32B on H100; either alone predicted the
other badly).

`leave_one_model_out` refits both levels, for each catalog model M, on the rows of the other
models and predicts M's rows with those profiles, so the errors say how servesim does on a model
it has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from servesim.errors import InputError
from servesim.latency.backends import FITTED_PARAMS, BackendProfile
from servesim.validate.predict import predict_row
from servesim.validate.runner import RowResult, evaluate_row, ordered_map
from servesim.validate.silicon import SiliconRow
from servesim.validate.support import Target, classify

CAP = 1.5  # log errors above this (4.5x off) count as this
TTFT_WEIGHT = 0.5  # TTFT is noisier (queueing, front end) than TPOT
SCALE_PRIOR = 0.05  # a scale of 0.5 or 2 costs as much as 2.4% more mean log error
SCALES = ("compute_scale", "memory_scale", "attention_scale")
# What the shared level fits: the kernels, the per-iteration work and the front end. How the
# benchmark's clients drift (desync) is each engine's own scheduling trait.
SHARED_PARAMS = ("iteration_overhead_s", "seq_overhead_s", "request_overhead_s", *SCALES)
MAX_SHARED_ROWS = 120  # training rows of the shared fit (a fixed random subset when more)
MIN_FIT_ROWS = 20
MIN_FIT_MODELS = 2  # a backend's own numbers need rows of two models (else one model's quirks)
MAX_FIT_ROWS = 80  # training rows per backend (a fixed random subset when more)
FIT_MAX_REQUESTS: int | None = None  # fits simulate the same benchmark as the evaluation
STEPS = (4.0, 2.0, 1.41, 1.19)  # multiplicative step of each coordinate-search pass
BOUNDS = {
    "iteration_overhead_s": (0.0, 0.05),
    "seq_overhead_s": (0.0, 1e-3),
    "request_overhead_s": (0.0, 1.0),
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
    "desync": 0.05,
}

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


def trimmed_log_error(predicted: float, measured: float) -> float:
    if not (predicted > 0 and math.isfinite(predicted)):
        return CAP
    return min(abs(math.log(predicted / measured)), CAP)


def case_loss(case: Case, profile: BackendProfile) -> float:
    row, target = case
    try:
        p = predict_row(row, target, profile, FIT_MAX_REQUESTS)
    except InputError:
        return math.nan  # cannot run under any profile: not part of the loss
    return trimmed_log_error(p.tpot_ms, row.measured_tpot_ms) + TTFT_WEIGHT * trimmed_log_error(
        p.ttft_ms, row.measured_ttft_ms
    )


def scale_penalty(profile: BackendProfile, center: BackendProfile | None = None) -> float:
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
    center: BackendProfile | None = None,
    settings: Settings | None = None,
) -> float:
    values = [case_loss(c, case_profile(c[0], profile, settings)) for c in cases]
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) + scale_penalty(profile, center) if kept else math.inf


def _candidates(name: str, value: float, step: float) -> list[float]:
    lo, hi = BOUNDS[name]
    if value == 0.0:
        out = [0.0, ZERO_STEP[name] * step]
    else:
        out = [value / step, value, value * step]
        if name in ZERO_STEP:
            out.append(0.0)
    return sorted({min(max(v, lo), hi) for v in out})


def fit_backend(
    cases: Sequence[Case],
    prior: BackendProfile,
    fitted_on: str = "",
    center: BackendProfile | None = None,
    settings: Settings | None = None,
) -> BackendProfile:
    """Coordinate search over FITTED_PARAMS from `prior` (whose policy stays), the scales
    penalized by their distance from `center`'s (default 1); returns the best profile found.
    With `settings`, each case runs under its own backend's settings and only SHARED_PARAMS are
    fitted (a shared fit)."""
    best, best_loss = prior, loss(cases, prior, center, settings)
    names = SHARED_PARAMS if settings is not None else FITTED_PARAMS
    for step in STEPS:
        for name in names:
            for value in _candidates(name, getattr(best, name), step):
                try:
                    trial = best.with_params(**{name: value})
                    trial_loss = loss(cases, trial, center, settings)
                except InputError:
                    continue
                if trial_loss < best_loss - 1e-9:
                    best, best_loss = trial, trial_loss
    note = f"{fitted_on}; {len(cases)} rows; loss {best_loss:.4f}" if fitted_on else ""
    return best.with_params(fitted_on=(note,) if note else ())  # type: ignore[arg-type]


def training_cases(
    rows: Sequence[SiliconRow], backend: str, exclude_model: str | None, seed: int = 0
) -> list[Case]:
    """Supported rows of `backend`, minus those of `exclude_model`, at most MAX_FIT_ROWS of them."""
    cases = []
    for row in rows:
        support = classify(row)
        if support.target and row.backend == backend and support.target.model_name != exclude_model:
            cases.append((row, support.target))
    return _subset(cases, MAX_FIT_ROWS, seed)


def _subset(cases: list[Case], limit: int, seed: int = 0) -> list[Case]:
    """At most `limit` of `cases`, a fixed random subset in their order."""
    if len(cases) <= limit:
        return cases
    pick = np.random.default_rng(seed).choice(len(cases), limit, replace=False)
    return [cases[i] for i in sorted(pick)]


def _without(exclude_model: str | None) -> str:
    return f" except {exclude_model}" if exclude_model else ""


def fit_shared(
    rows: Sequence[SiliconRow], priors: Settings, exclude_model: str | None
) -> BackendProfile | None:
    """The numbers every backend shares, fitted on all backends' training rows together (None
    when they are fewer than MIN_FIT_ROWS)."""
    cases = [c for backend in priors for c in training_cases(rows, backend, exclude_model)]
    if len(cases) < MIN_FIT_ROWS:
        return None
    cases = _subset(cases, MAX_SHARED_ROWS)
    start = next(iter(priors.values())).with_params(name="shared")  # type: ignore[arg-type]
    return fit_backend(
        cases, start, "silicon rows of every backend" + _without(exclude_model), settings=priors
    )


@dataclass(frozen=True, slots=True)
class FitJob:
    backend: str
    exclude_model: str | None


def run_fit(
    job: FitJob, rows: Sequence[SiliconRow], priors: Settings, shared: BackendProfile | None
) -> BackendProfile:
    """One backend's profile: fitted from (and centered on) the shared numbers, or the shared
    numbers as they are when the backend has too few training rows (the prior without them)."""
    cases = training_cases(rows, job.backend, job.exclude_model)
    prior = priors[job.backend]
    if shared is not None:
        prior = prior.with_params(**shared_params(shared))
    models = {target.model_name for _, target in cases}
    if len(cases) < MIN_FIT_ROWS or len(models) < MIN_FIT_MODELS:
        what = "shared numbers" if shared is not None else "prior"
        why = f"only {len(cases)} training rows of {len(models)} model(s)"
        return prior.with_params(fitted_on=(f"{what} ({why})",))  # type: ignore[arg-type]
    what = f"silicon rows of {job.backend}" + _without(job.exclude_model)
    return fit_backend(cases, prior, what, center=shared)


def fit_all(
    jobs: Sequence[FitJob],
    rows: Sequence[SiliconRow],
    priors: Settings,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
) -> dict[FitJob, BackendProfile]:
    """Run fit jobs: the shared fit of each excluded model first, then the backends."""
    excluded = sorted({job.exclude_model or "" for job in jobs})
    shared_fits = ordered_map(
        fit_shared, [(rows, priors, name or None) for name in excluded], workers, advance
    )
    shared = dict(zip(excluded, shared_fits, strict=True))
    args = [(job, rows, priors, shared[job.exclude_model or ""]) for job in jobs]
    return dict(zip(jobs, ordered_map(run_fit, args, workers, advance), strict=True))


def fit_on_all(
    rows: Sequence[SiliconRow],
    priors: Settings | None = None,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
) -> dict[str, BackendProfile]:
    """Each backend fitted on all its supported rows (what latency/data/backends/ ships)."""
    start = priors or PRIORS
    fitted = fit_all([FitJob(b, None) for b in start], rows, start, workers, advance)
    return {job.backend: profile for job, profile in fitted.items()}


def leave_one_model_out(
    rows: Sequence[SiliconRow],
    priors: dict[str, BackendProfile] | None = None,
    max_requests: int | None = None,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
) -> tuple[list[RowResult], dict[FitJob, BackendProfile]]:
    """Each supported row predicted by profiles fitted without its model's rows."""
    priors = priors or PRIORS
    supports = [classify(r) for r in rows]
    pairs = sorted(
        {(r.backend, s.target.model_name) for r, s in zip(rows, supports, strict=True) if s.target}
    )
    jobs = [FitJob(b, m) for b, m in pairs if b in priors]
    fitted = fit_all(jobs, rows, priors, workers, advance)
    results = []
    for row, support in zip(rows, supports, strict=True):
        if support.target is None or row.backend not in priors:
            results.append(
                evaluate_row(
                    row, priors.get(row.backend, BackendProfile(row.backend)), max_requests
                )
            )
            continue
        profile = fitted[FitJob(row.backend, support.target.model_name)]
        results.append(evaluate_row(row, profile, max_requests, support.target))
    return results, fitted
