"""Run the validation: classify every row, simulate the supported ones, keep one result per row.

Rows are independent, so `evaluate` can spread them over worker processes; results come back in
row order and do not depend on the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from servesim.errors import InputError
from servesim.latency import Efficiency
from servesim.latency.backends import BackendProfile, load_backend
from servesim.validate.predict import Prediction, predict_row
from servesim.validate.silicon import SiliconRow
from servesim.validate.support import Target, classify

Backends = Mapping[str, BackendProfile]
GpuEfficiencies = Mapping[str, Efficiency]  # GPU catalog name -> efficiency factors
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row's outcome: a prediction, or the reason it is unsupported."""

    row: SiliconRow
    model_name: str | None  # catalog model (None when not in the catalog)
    backend: str  # backend profile simulated
    reason: str | None
    prediction: Prediction | None

    @property
    def supported(self) -> bool:
        return self.prediction is not None

    @property
    def ape_ttft(self) -> float:
        """Absolute percentage error of TTFT (nan when unsupported)."""
        return (
            ape(self.prediction.ttft_ms, self.row.measured_ttft_ms) if self.prediction else math.nan
        )

    @property
    def ape_tpot(self) -> float:
        return (
            ape(self.prediction.tpot_ms, self.row.measured_tpot_ms) if self.prediction else math.nan
        )


def ape(predicted: float, measured: float) -> float:
    """|predicted - measured| / measured, in percent."""
    return 100.0 * abs(predicted - measured) / measured


def shipped_backends() -> dict[str, BackendProfile]:
    return {name: load_backend(name) for name in ("vllm", "sglang", "trtllm")}


def backend_for(row: SiliconRow, backends: Backends, override: str | None) -> BackendProfile:
    """The profile to simulate `row` with: `override` if given, else the row's own backend."""
    name = override or row.backend.lower()
    if name not in backends:
        raise InputError("backend", name, f"one of {', '.join(sorted(backends))}")
    return backends[name]


def evaluate_row(
    row: SiliconRow,
    backend: BackendProfile,
    max_requests: int | None = None,
    target: Target | None = None,
    gpu_effs: GpuEfficiencies | None = None,
) -> RowResult:
    """Classify and (when supported) simulate one row (on `gpu_effs`' factors for its GPU when
    given, else the GPU's shipped profile)."""
    if target is None:
        support = classify(row)
        if support.target is None:
            return RowResult(row, None, backend.name, support.reason, None)
        target = support.target
    gpu_eff = gpu_effs.get(target.gpu) if gpu_effs else None
    try:
        prediction = predict_row(row, target, backend, max_requests, gpu_eff=gpu_eff)
    except InputError as err:
        reason = f"cannot build the deployment: {err.field}: {err.allowed}"
        return RowResult(row, target.model_name, backend.name, reason, None)
    if not (math.isfinite(prediction.ttft_ms) and math.isfinite(prediction.tpot_ms)):
        return RowResult(
            row, target.model_name, backend.name, "no request finished in the simulation", None
        )
    return RowResult(row, target.model_name, backend.name, None, prediction)


Job = tuple[SiliconRow, BackendProfile, int | None, GpuEfficiencies | None]


def _evaluate_job(job: Job) -> RowResult:
    row, backend, max_requests, gpu_effs = job
    return evaluate_row(row, backend, max_requests, None, gpu_effs)


def evaluate(
    rows: Sequence[SiliconRow],
    backends: Backends | None = None,
    override: str | None = None,
    max_requests: int | None = None,
    workers: int = 1,
    advance: Callable[[float], None] | None = None,
    gpu_effs: GpuEfficiencies | None = None,
) -> list[RowResult]:
    """One RowResult per row, in row order (GPUs on `gpu_effs`' factors where given)."""
    profiles = backends if backends is not None else shipped_backends()
    jobs: list[Job] = []
    for row in rows:
        try:
            jobs.append((row, backend_for(row, profiles, override), max_requests, gpu_effs))
        except InputError:
            jobs.append((row, BackendProfile(row.backend or "unknown"), -1, None))
    return ordered_map(_evaluate_or_reject, [(job,) for job in jobs], workers, advance, 16)


def ordered_map(
    fn: Callable[..., T],
    args: Sequence[tuple[object, ...]],
    workers: int,
    advance: Callable[[float], None] | None = None,
    chunksize: int = 1,
) -> list[T]:
    """fn(*a) for each a, in order, in worker processes when workers > 1; `advance(1)` after
    each result."""
    out: list[T] = []
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(args))) as pool:
            for result in pool.map(fn, *zip(*args, strict=True), chunksize=chunksize):
                out.append(result)
                if advance:
                    advance(1)
        return out
    for a in args:
        out.append(fn(*a))
        if advance:
            advance(1)
    return out


def _evaluate_or_reject(job: Job) -> RowResult:
    row, backend, max_requests, _ = job
    if max_requests == -1:  # the row names a backend with no profile
        return RowResult(row, None, backend.name, f"backend without a profile: {row.backend}", None)
    return _evaluate_job(job)
