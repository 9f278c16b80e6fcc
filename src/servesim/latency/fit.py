"""Least-squares fit of the `Efficiency` factors of one GPU to measured tables.

Each operator family has its own parameters (GEMM: eff_max, m_half, memory efficiency, kernel
overhead, tile cost; fp8 GEMM: its eff_max, ramp and activation-quantisation costs, on top of the
bf16 memory factor and overhead; attention; MoE; element-wise; all-reduce; send), fitted on that
family's rows only, so a profile is per GPU, not per model. The residual is the log of predicted /
measured time, so the fit minimises relative error; every table gets the same total weight, so a
100k-row table does not drown a 1k-row one. Parameters are fitted in log space (they stay
positive) by Levenberg-Marquardt with a numerical Jacobian, from a few starting points.
End-to-end tables are fitted last: with the operator factors fixed, they fit the per-iteration,
per-layer and per-sequence overheads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from servesim.latency.efficiency import ELEMENTWISE_KERNELS, Efficiency
from servesim.latency.predict import predict
from servesim.latency.tables import Array, Table

# family -> (table kinds, fitted parameters, starting points for the parameters)
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gemm": (
        ("gemm",),
        (
            "gemm_compute",
            "gemm_half_tokens",
            "gemm_memory",
            "gemm_overhead_s",
            "gemm_tile_tokens",
        ),
    ),
    "gemm_fp8": (
        ("gemm_fp8",),
        ("gemm_fp8_compute", "gemm_fp8_half_tokens", "gemm_fp8_overhead_s", "gemm_fp8_token_s"),
    ),
    "elementwise": (
        ("elementwise",),
        tuple(f"{k}_{p}" for k in ELEMENTWISE_KERNELS for p in ("memory", "overhead_s")),
    ),
    "attn_prefill": (
        ("attn_prefill",),
        ("attention_compute", "attention_half_tokens", "attention_overhead_s", "attention_seq_s"),
    ),
    "attn_decode": (("attn_decode",), ("attention_memory", "decode_overhead_s", "decode_seq_s")),
    "moe": (
        ("moe",),
        ("moe_compute", "moe_half_tokens", "moe_memory", "moe_overhead_s", "moe_token_s"),
    ),
    "allreduce": (
        ("allreduce",),
        ("communication", "collective_latency_s", "bulk_communication", "bulk_latency_s"),
    ),
    "send": (("send",), ("send_efficiency", "send_latency_s")),
    "e2e": (
        ("e2e_prefill", "e2e_decode"),
        ("iteration_overhead_s", "layer_overhead_s", "seq_overhead_s"),
    ),
}
# Where sources disagree (several all-reduce implementations), fit the one a serving engine runs.
PREFERRED_SOURCES = {"allreduce": ("custom_allreduce_perf.csv", "nccl_perf.csv", "all_reduce.csv")}
_STARTS = {
    "_half_tokens": (4.0, 64.0, 512.0),
    "_tokens": (8.0,),
    "_token_s": (5e-9,),
    "_s": (5e-6,),
    "": (0.7,),
}
_BOUNDS = {
    "_half_tokens": (1e-3, 1e5),
    "_tokens": (1e-3, 1e4),
    "_token_s": (1e-13, 1e-5),  # seconds per token of a per-token cost
    "_s": (1e-9, 1.0),
    "": (0.02, 1.9),
}


# Parameters whose start is not their kind's: the bulk all-reduce starts faster per byte and
# slower to start than the small-message kernel, so that each line has rows to fit.
_NAMED_STARTS = {"bulk_communication": (0.9,), "bulk_latency_s": (50e-6,)}


def _suffix(param: str) -> str:
    suffixes = ("_half_tokens", "_tokens", "_token_s", "_s")
    return next((s for s in suffixes if param.endswith(s)), "")


def family_of(kind: str) -> str:
    return next(name for name, (kinds, _) in FAMILIES.items() if kind in kinds)


def levenberg_marquardt(
    residuals: Callable[[Array], Array],
    theta: Array,
    lo: Array,
    hi: Array,
    max_iter: int = 60,
) -> tuple[Array, float]:
    """Minimise |residuals(theta)|^2 within [lo, hi]; returns (theta, cost)."""
    r = residuals(theta)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(max_iter):
        jac = np.empty((len(r), len(theta)))
        for j in range(len(theta)):
            step = np.zeros_like(theta)
            step[j] = 1e-5
            jac[:, j] = (residuals(theta + step) - r) / 1e-5
        a, g = jac.T @ jac, jac.T @ r
        improved = False
        while lam < 1e10:
            delta = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            cand = np.clip(theta + delta, lo, hi)
            rc = residuals(cand)
            cc = float(rc @ rc)
            if cc < cost:
                improved = cost - cc > 1e-10 * cost
                theta, r, cost, lam = cand, rc, cc, max(lam / 3, 1e-9)
                break
            lam *= 4
        if not improved:
            break
    return theta, cost


def _fit_family(tables: list[Table], params: tuple[str, ...], base: Efficiency) -> Efficiency:
    """Fit `params` of `base` to `tables` (all of one family, same GPU)."""
    weights = [np.full(len(t), 1.0 / np.sqrt(len(t))) for t in tables]
    logs = [np.log(t.measured_s) for t in tables]

    def with_theta(theta: Array) -> Efficiency:
        return replace(base, **{p: float(np.exp(v)) for p, v in zip(params, theta, strict=True)})

    def residuals(theta: Array) -> Array:
        eff = with_theta(theta)
        parts = [
            w * (np.log(np.maximum(predict(t, eff), 1e-12)) - lg)
            for t, w, lg in zip(tables, weights, logs, strict=True)
        ]
        return np.concatenate(parts)

    lo = np.log([_BOUNDS[_suffix(p)][0] for p in params])
    hi = np.log([_BOUNDS[_suffix(p)][1] for p in params])
    best: tuple[Array, float] | None = None
    for start in _starting_points(params):
        theta, cost = levenberg_marquardt(residuals, np.log(start), lo, hi)
        if best is None or cost < best[1]:
            best = (theta, cost)
    assert best is not None
    return with_theta(best[0])


def _starting_points(params: tuple[str, ...]) -> list[Array]:
    grids = [_NAMED_STARTS.get(p) or _STARTS[_suffix(p)] for p in params]
    points = [np.array([g[0] for g in grids])]
    for i, grid in enumerate(grids):
        for value in grid[1:]:
            p = points[0].copy()
            p[i] = value
            points.append(p)
    return points


def _usable(table: Table) -> Table:
    """Rows with a positive measured time (a few profiler rows hold zeros)."""
    mask = np.isfinite(table.measured_s) & (table.measured_s > 0)
    return table if mask.all() else table.subset(mask)


@dataclass(frozen=True)
class FitResult:
    """Fitted factors of one GPU and the tables they were fitted on."""

    gpu: str
    efficiency: Efficiency
    fitted_on: tuple[str, ...]


def fit_gpu(
    tables: list[Table],
    gpu: str,
    exclude_label: str | None = None,
    families: tuple[str, ...] | None = None,
    base: Efficiency | None = None,
    origins: tuple[str, ...] | None = None,
) -> FitResult:
    """Fit every family that has fittable rows of `gpu`; `exclude_label` leaves a model out.

    `families` restricts the fit (others keep `base`, default the roofline factors); `origins`
    fits each family on the tables of the first origin in that order that measured it.
    """
    eff = base or Efficiency()
    used: list[str] = []
    for family, (kinds, params) in FAMILIES.items():
        if families is not None and family not in families:
            continue
        chosen = []
        for t in tables:
            if t.gpu != gpu or not t.fit or t.kind not in kinds:
                continue
            keep = t if exclude_label is None else t.subset(t.labels != exclude_label)
            keep = _usable(keep)
            if len(keep):
                chosen.append(keep)
        chosen = _preferred(family, _first_origin(chosen, origins))
        if chosen:
            eff = _fit_family(chosen, params, eff)
            used.extend(t.name for t in chosen)
    return FitResult(gpu, eff, tuple(used))


def _first_origin(tables: list[Table], origins: tuple[str, ...] | None) -> list[Table]:
    if origins is None:
        return tables
    for origin in origins:
        picked = [t for t in tables if t.origin == origin]
        if picked:
            return picked
    return []


def _preferred(family: str, tables: list[Table]) -> list[Table]:
    for file_name in PREFERRED_SOURCES.get(family, ()):
        picked = [t for t in tables if t.source.endswith(file_name)]
        if picked:
            return picked
    return tables
