"""Operator primitives: the precomputed GEMM stack equals the sum of GEMMs; the fitter recovers
known factors from synthetic tables; the roofline's ring all-reduce formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.latency import ops
from servesim.latency.fit import fit_gpu
from servesim.latency.ops import Efficiency
from servesim.latency.predict import predict
from servesim.latency.tables import Table
from servesim.specs import get_gpu

GPU = get_gpu("a100-80gb")
EFF = Efficiency(gemm_compute=0.75, gemm_half_tokens=90.0, gemm_memory=0.8, gemm_overhead_s=5e-6)
SHAPES = [
    (32.0, 12288.0, 4096.0),
    (32.0, 4096.0, 4096.0),
    (32.0, 22016.0, 4096.0),
    (32.0, 4096.0, 11008.0),
    (1.0, 32000.0, 4096.0),
]


@given(m=st.floats(min_value=0.5, max_value=1e5))
@settings(max_examples=200, deadline=None)
def test_gemm_stack_matches_sum_of_gemms(m: float) -> None:
    stack = ops.gemm_stack(SHAPES, GPU, EFF)
    direct = sum(c * float(ops.gemm_s(m, n, k, GPU, EFF)) for c, n, k in SHAPES)
    # exact but for the activation traffic of < 64 tokens; proportional beyond 16384 tokens
    assert stack(m) == pytest.approx(direct, rel=0.01 if m <= 16384 else 0.03)
    if m <= 16384:
        assert stack(m) <= direct * (1 + 1e-9)


def test_ring_allreduce_formula() -> None:
    eff = Efficiency(communication=0.5, collective_latency_s=1e-5)
    t = float(ops.allreduce_s(1e8, 4, 1e11, eff))
    assert t == pytest.approx(1e-5 + 2 * 3 / 4 * 1e8 / (0.5e11))
    assert float(ops.allreduce_s(1e8, 1, 1e11, eff)) == 0.0


def _synthetic_gemm_table(eff: Efficiency) -> Table:
    ms, ns, ks = np.meshgrid([1, 4, 16, 64, 256, 1024, 4096], [1024, 4096, 14336], [4096, 8192])
    x = {
        "m": ms.ravel().astype(float),
        "n": ns.ravel().astype(float),
        "k": ks.ravel().astype(float),
    }
    table = Table(
        "synthetic/gemm_perf.csv",
        "gemm",
        "a100-80gb",
        np.array(["s"] * len(x["m"])),
        x,
        np.ones(len(x["m"])),
    )
    measured = predict(table, eff)
    return Table(table.source, table.kind, table.gpu, table.labels, x, measured)


def test_fit_recovers_known_gemm_factors() -> None:
    result = fit_gpu([_synthetic_gemm_table(EFF)], "a100-80gb")
    fitted = result.efficiency
    assert fitted.gemm_compute == pytest.approx(EFF.gemm_compute, rel=0.02)
    assert fitted.gemm_memory == pytest.approx(EFF.gemm_memory, rel=0.02)
    assert fitted.gemm_half_tokens == pytest.approx(EFF.gemm_half_tokens, rel=0.1)
    assert result.fitted_on == ("synthetic/gemm_perf.csv [gemm]",)


def test_efficiency_rejects_bad_values() -> None:
    from servesim.errors import InputError

    with pytest.raises(InputError, match="gemm_compute"):
        Efficiency(gemm_compute=0.0)
    with pytest.raises(InputError, match="gemm_overhead_s"):
        Efficiency(gemm_overhead_s=-1.0)
