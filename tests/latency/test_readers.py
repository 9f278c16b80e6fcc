"""Readers of the measured tables in ../shared/data/profiles (skipped when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.latency.factories import SHARED_PROFILES

from servesim.latency.calibrate import table_error
from servesim.latency.fit import fit_gpu
from servesim.latency.predict import abs_pct_errors
from servesim.latency.profiles import load_profile
from servesim.latency.readers import read_aic_gemm, read_folder
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


def test_fp8_gemm_table_is_fitted_and_its_error_reported() -> None:
    # aiconfigurator H100: per-tensor fp8 (CUTLASS scaled_mm) fitted, block-scaled only compared
    path = SHARED_PROFILES / "aiconfigurator/h100_sxm/gemm/vllm/0.24.0/gemm_perf.csv"
    tables = {t.note: t for t in read_aic_gemm(path, SHARED_PROFILES, "h100-sxm")}
    per_tensor, block = tables["fp8"], tables["fp8 block-scaled, not fitted"]
    assert per_tensor.fit and not block.fit and per_tensor.precision == "fp8"
    shipped = load_profile("h100-sxm-aiconfigurator")
    assert per_tensor.name in shipped.fitted_on and block.name not in shipped.fitted_on
    # refit the fp8 family from the shipped bf16 factors: the fit is reproducible and accurate
    refit = fit_gpu([per_tensor], "h100-sxm", families=("gemm_fp8",), base=shipped.efficiency())
    for eff in (shipped.efficiency(), refit.efficiency):
        report = table_error(per_tensor, abs_pct_errors(per_tensor, eff), fitted=True)
        assert report.num_rows == len(per_tensor) > 30000
        assert report.median_pct < 10.0 and report.p90_pct < 30.0  # 7.5 / 20.1 (was 41.9 / 84.9)
    assert 0.55 < refit.efficiency.gemm_fp8_compute < 0.8  # 8192^3 measures 0.66 of the fp8 peak


def test_moe_tables_read_balanced_rows_and_block_fp8_when_measured() -> None:
    h100 = [
        t for t in read_folder(SHARED_PROFILES / "aiconfigurator" / "h100_sxm") if t.kind == "moe"
    ]
    assert sorted(t.precision for t in h100) == ["bf16", "fp8"]
    assert all(np.all(t.x["balanced"] == 1.0) for t in h100)
    # Only balanced rows are read from a file that has them (a third of the bf16 rows).
    assert len(next(t for t in h100 if t.precision == "bf16")) == 5400
    a100 = [
        t for t in read_folder(SHARED_PROFILES / "aiconfigurator" / "a100_sxm") if t.kind == "moe"
    ]
    assert len(a100) == 1 and np.all(a100[0].x["balanced"] == 0.0)
    assert "skewed routing" in a100[0].note


def test_default_routing_skew_matches_the_power_law_moe_tables() -> None:
    """With kernel factors fitted on balanced rows, aiconfigurator's power-law rows (EP 1, 2-256
    tokens) are matched better by the default Zipf skew than by uniform or stronger skew."""
    import csv
    from dataclasses import replace

    from servesim.latency import ops
    from servesim.specs import get_gpu

    path = SHARED_PROFILES / "aiconfigurator" / "h100_sxm" / "moe" / "vllm" / "0.24.0"
    rows = [
        r
        for r in csv.DictReader((path / "moe_perf.csv").open())
        if r["moe_dtype"] == "bfloat16"
        and r["distribution"].startswith("power_law")
        and r["moe_ep_size"] == "1"
        and 2 <= int(r["num_tokens"]) <= 256
    ]
    gpu, eff = get_gpu("h100-sxm"), load_profile("h100-sxm").efficiency()

    def error(skew: float) -> float:
        e = replace(eff, routing_skew=skew)
        logs = [
            np.log(
                ops.moe_s(
                    float(r["num_tokens"]),
                    float(r["hidden_size"]),
                    float(r["inter_size"]),
                    float(r["topk"]),
                    float(r["num_experts"]),
                    gpu,
                    e,
                    float(r["moe_tp_size"]),
                )
                / (float(r["latency"]) * 1e-3)
            )
            for r in rows
        ]
        return float(np.median(np.abs(logs)))

    assert len(rows) > 2000
    default = error(eff.routing_skew)
    assert eff.routing_skew == 0.75
    assert default < 0.8 * error(0.0) and default < 0.8 * error(1.25)
