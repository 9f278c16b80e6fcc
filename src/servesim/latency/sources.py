"""Profiles per (GPU, source): one fit per serving stack that measured the GPU.

The measured sets time different kernels for the same operator (Vidur: an older vLLM with
CUDA-event timing; aiconfigurator: vLLM 0.14 / 0.24; splitwise-sim and DistServe: whole
engines), so one factor set per GPU sits between them. A profile therefore describes one stack:

- `<gpu>-<source>` (e.g. `a100-80gb-vidur`): the operator families that source measured, fitted
  on its tables only; the families it did not measure are the default profile's; the end-to-end
  overheads are refitted with these operators (on the source's own end-to-end tables, or on all
  end-to-end tables of the GPU when it has none).
- `<gpu>` (the default the simulator uses): every family fitted on all sources together, the
  end-to-end overheads on every end-to-end table of the GPU. Of the rules tried for the default's
  operators (aiconfigurator first, Vidur first, all pooled) pooling gave the lowest mean median
  end-to-end error over A100 and H100 (14.3% vs 14.9% and 15.5%; docs/latency.md).
"""

from __future__ import annotations

from servesim.latency.fit import FAMILIES, FitResult, family_of, fit_gpu
from servesim.latency.tables import Table

E2E = "e2e"
OPERATOR_FAMILIES = tuple(name for name in FAMILIES if name != E2E)


def fitted_origins(tables: list[Table], gpu: str) -> list[str]:
    """Sources with fittable tables of `gpu`, sorted."""
    return sorted({t.origin for t in tables if t.gpu == gpu and t.fit})


def _e2e_origin(tables: list[Table], origin: str) -> bool:
    return any(t.origin == origin and t.fit and family_of(t.kind) == E2E for t in tables)


def fit_default(tables: list[Table], gpu: str) -> FitResult:
    """The GPU's default profile (see the module docstring)."""
    ops = fit_gpu(tables, gpu, families=OPERATOR_FAMILIES)
    e2e = fit_gpu(tables, gpu, families=(E2E,), base=ops.efficiency)
    return FitResult(gpu, e2e.efficiency, ops.fitted_on + e2e.fitted_on)


def fit_source(
    tables: list[Table], gpu: str, origin: str, default: FitResult, exclude_label: str | None = None
) -> FitResult:
    """The profile of one source on `gpu`, starting from the GPU's `default` profile."""
    mine = [t for t in tables if t.origin == origin]
    ops = fit_gpu(mine, gpu, exclude_label, OPERATOR_FAMILIES, default.efficiency)
    e2e_tables = mine if _e2e_origin(tables, origin) else tables
    e2e = fit_gpu(e2e_tables, gpu, exclude_label, (E2E,), ops.efficiency)
    return FitResult(gpu, e2e.efficiency, ops.fitted_on + e2e.fitted_on)


def refit_family(
    tables: list[Table], gpu: str, origin: str, family: str, base: FitResult, exclude_label: str
) -> FitResult:
    """`base` with one family refitted on `origin`'s tables without `exclude_label`'s rows
    (a leave-one-model-out split)."""
    mine = [t for t in tables if t.origin == origin]
    return fit_gpu(mine, gpu, exclude_label, (family,), base.efficiency)


def fit_all(tables: list[Table], gpu: str) -> dict[str, FitResult]:
    """Profile name -> fit: `<gpu>` (the default) and `<gpu>-<source>` for every source."""
    default = fit_default(tables, gpu)
    fits = {gpu: default}
    for origin in fitted_origins(tables, gpu):
        if origin:
            fits[f"{gpu}-{origin}"] = fit_source(tables, gpu, origin, default)
    return fits
