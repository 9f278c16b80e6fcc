"""Readers of the measured tables in ../shared/data/profiles (skipped when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.latency.factories import SHARED_PROFILES

from servesim.latency.fit import fit_gpu
from servesim.latency.predict import abs_pct_errors
from servesim.latency.readers import read_folder
from servesim.latency.tables import make_table

pytestmark = pytest.mark.skipif(not SHARED_PROFILES.is_dir(), reason=f"{SHARED_PROFILES} is absent")


def test_vidur_mlp_rows_become_operator_points() -> None:
    tables = read_folder(
        SHARED_PROFILES / "vidur" / "profiling" / "compute" / "a40" / "meta-llama" / "Llama-2-7b-hf"
    )
    kinds = {t.kind: t for t in tables}
    assert set(kinds) == {"gemm", "elementwise"}
    assert len(kinds["gemm"]) == 4 * 1044 and kinds["gemm"].gpu == "a40"
    assert np.all(kinds["gemm"].measured_s > 0) and np.all(kinds["gemm"].measured_s < 1.0)


def test_every_known_format_is_read() -> None:
    folders = [
        "aiconfigurator/a100_sxm",
        "vidur_history",
        "splitwise_sim",
        "distserve",
        "vidur/profiling/network/a100_dgx",
        "vidur/profiling/compute/a100/microsoft",
    ]
    tables = [t for f in folders for t in read_folder(SHARED_PROFILES / f)]
    kinds = {t.kind for t in tables}
    assert kinds == {
        "gemm",
        "elementwise",
        "attn_prefill",
        "attn_decode",
        "moe",
        "allreduce",
        "send",
        "e2e_prefill",
        "e2e_decode",
    }
    assert {t.gpu for t in tables} == {"a100-80gb", "h100-sxm"}
    splitwise = [t for t in tables if t.source.endswith("perf_model.csv")]
    assert sum(len(t) for t in splitwise) == 2 * 1260


def test_fitted_gemm_beats_the_roofline_on_vidur_a40() -> None:
    tables = [
        t
        for t in read_folder(SHARED_PROFILES / "vidur" / "profiling" / "compute" / "a40")
        if t.kind == "gemm"
    ]
    eff = fit_gpu(tables, "a40").efficiency
    fitted = np.median(np.concatenate([abs_pct_errors(t, eff) for t in tables]))
    roofline = np.median(np.concatenate([abs_pct_errors(t) for t in tables]))
    assert fitted < roofline
    assert fitted < 10.0


def test_tables_know_the_serving_stack_that_measured_them() -> None:
    sources = {
        "vidur/profiling/compute/a100/x/mlp.csv": "vidur",
        "vidur_history/a100/attention.csv": "vidur",
        "vidur_fork_akafaka/compute/a30/x/mlp.csv": "vidur",
        "aiconfigurator/h100_sxm/gemm/vllm/0.24.0/gemm_perf.csv": "aiconfigurator",
        "splitwise_sim/perf_model.csv": "splitwise",
        "distserve/profiler-a100-80g.distserve.json": "distserve",
        "distserve/profiler-a100-80g.vllm.json": "distserve-vllm",
        "mlp.csv": "",
    }
    row: dict[str, float | str] = {"label": "m", "measured_s": 1e-3, "m": 1.0}
    for source, origin in sources.items():
        assert make_table(source, "gemm", "a100-80gb", [row]).origin == origin
    folder = SHARED_PROFILES / "vidur" / "profiling" / "compute" / "a40" / "meta-llama"
    elementwise = next(t for t in read_folder(folder / "Llama-2-7b-hf") if t.kind == "elementwise")
    assert set(np.unique(elementwise.x["kernel"]).tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
