"""Backend profiles (latency/backends.py) and the row-support rules."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servesim.errors import InputError, UnknownNameError
from servesim.latency.backends import (
    BACKEND_NAMES,
    FITTED_PARAMS,
    BackendProfile,
    load_backend,
    save_backend,
)
from servesim.latency.ops import Efficiency
from servesim.validate.runner import ape
from servesim.validate.silicon import read_silicon
from servesim.validate.support import classify

FIXTURE = Path(__file__).parent / "data" / "fixture.csv"


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_shipped_backends_load(name: str) -> None:
    profile = load_backend(name)
    assert profile.name == name
    assert profile.apply(Efficiency()).iteration_overhead_s == profile.iteration_overhead_s


def test_apply_scales_efficiency() -> None:
    profile = BackendProfile(
        "x",
        compute_scale=0.5,
        memory_scale=1.25,
        attention_scale=2.0,
        iteration_overhead_s=3e-3,
        seq_overhead_s=0.0,
    )
    base = Efficiency()
    eff = profile.apply(base)
    assert eff.gemm_compute == pytest.approx(0.5 * base.gemm_compute)
    assert eff.moe_memory == pytest.approx(1.25 * base.moe_memory)
    assert eff.attention_compute == pytest.approx(2.0 * base.attention_compute)
    assert eff.iteration_overhead_s == 3e-3 and eff.seq_overhead_s == 0.0
    assert eff.communication == base.communication  # untouched


def test_apply_refuses_efficiency_above_two() -> None:
    with pytest.raises(InputError, match="gemm_memory"):
        BackendProfile("x", memory_scale=3.0).apply(Efficiency())


def test_round_trip_and_bad_files(tmp_path: Path) -> None:
    profile = BackendProfile(
        "mine", policy="vllm", chunk_tokens=2048, fp8_kv_cache=True, fitted_on=("a",)
    )
    path = tmp_path / "mine.json"
    save_backend(profile, path)
    assert load_backend(path) == profile
    data = json.loads(path.read_text())
    data["params"]["warp_speed"] = 9
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="warp_speed"):
        load_backend(path)
    with pytest.raises(UnknownNameError):
        load_backend("tensorflow-serving")
    with pytest.raises(InputError, match="policy"):
        BackendProfile("x", policy="fifo")
    with pytest.raises(InputError, match="first_token_steps"):
        BackendProfile("x", first_token_steps=-1)


def test_kv_precision_follows_backend() -> None:
    assert BackendProfile("a", fp8_kv_cache=True).kv_precision("fp8") == "fp8"
    assert BackendProfile("a", fp8_kv_cache=True).kv_precision("bf16") == "bf16"
    assert BackendProfile("a", fp8_kv_cache=False).kv_precision("fp8") == "bf16"


def test_support_maps_names_and_precision() -> None:
    rows = {r.id: r for r in read_silicon(FIXTURE)}
    hand = classify(rows["hand_c1"]).target
    assert hand is not None and hand.model_name == "llama-3.1-8b" and hand.gpu == "h100-sxm"
    assert hand.weight_precision == "bf16"  # empty precision means bf16
    disagg = classify(rows["disagg_c4"]).target
    assert (
        disagg is not None
        and disagg.weight_precision == "fp8"
        and disagg.model_name == "llama-3.1-70b"
    )
    ep = rows["ep_row"]
    dense_ep = replace(rows["hand_c1"], agg=replace(rows["hand_c1"].agg, moe_ep=8))  # type: ignore[type-var]
    assert classify(dense_ep).supported  # EP means nothing for a dense model
    assert classify(ep).supported  # DeepSeek-V3 at TP8 = MoE TP1 x EP8
    mismatched = replace(ep, agg=replace(ep.agg, moe_ep=4))  # type: ignore[type-var]
    assert "MoE TP x EP" in str(classify(mismatched).reason)
    assert "system not in the GPU catalog" in str(classify(replace(ep, system="tpu_v5")).reason)
    adp = replace(rows["hand_c1"], agg=replace(rows["hand_c1"].agg, attention_dp=4))  # type: ignore[type-var]
    assert "attention data parallelism" in str(classify(adp).reason)


@given(st.floats(0.01, 1e4), st.floats(0.01, 1e4))
def test_ape_is_symmetric_in_sign(predicted: float, measured: float) -> None:
    err = ape(predicted, measured)
    assert err >= 0
    assert ape(measured + (measured - predicted), measured) == pytest.approx(
        err, rel=1e-9, abs=1e-9
    )


def test_fit_never_increases_the_loss() -> None:
    from servesim.validate import fit

    rows = read_silicon(FIXTURE)
    cases = [(r, t) for r in rows if (t := classify(r).target) is not None]
    prior = fit.PRIORS["vllm"]
    effs = fit.gpu_efficiencies({t.gpu for _, t in cases}, {})
    fitted = fit.fit_backend(cases, prior, effs, "fixture")
    assert fit.loss(cases, fitted, effs) <= fit.loss(cases, prior, effs) + 1e-12
    for name in FITTED_PARAMS:
        lo, hi = fit.BOUNDS[name]
        assert lo <= getattr(fitted, name) <= hi
    assert fitted.fitted_on and "fixture" in fitted.fitted_on[0]


def test_the_front_end_is_solved_exactly_on_its_grid() -> None:
    """Rows measured at the simulated TTFT plus a front end on the grid give that front end back,
    with no TTFT error left; a case's TPOT error is the same whatever the front end."""
    from servesim.validate import fit

    engine = np.array([100.0, 250.0, 40.0, 900.0])
    tpot = np.array([10.0, 20.0, 5.0, 40.0])
    overhead_s, steps = float(fit.FRONT_END_GRID_S[40]), 3.25
    measured = engine + 1e3 * overhead_s + steps * tpot
    zeros = np.zeros(4)
    outcomes = fit.Outcomes(engine, tpot, measured, 1.1 * tpot, zeros, zeros)
    got_s, got_steps, best = outcomes.solve_front_end()
    assert (got_s, got_steps) == (overhead_s, steps)
    assert best == pytest.approx(np.log(1.1))  # the TPOT error alone
    fixed = replace(outcomes, request_overhead_s=zeros + got_s, first_token_steps=zeros + steps)
    assert fixed.mean_loss() == pytest.approx(best)
    assert outcomes.mean_loss() > best  # without the front end, TTFT is under-predicted


def test_a_fit_solves_its_front_end_on_every_row_it_is_given() -> None:
    from servesim.validate import fit

    rows = read_silicon(FIXTURE)
    cases = [(r, t) for r in rows if (t := classify(r).target) is not None]
    effs = fit.gpu_efficiencies({t.gpu for _, t in cases}, {})
    fitted = fit.fit_backend(cases[:2], fit.PRIORS["vllm"], effs, "two", front_end_cases=cases)
    solved = fit.solve_front_end(cases, fitted, effs)
    assert (fitted.request_overhead_s, fitted.first_token_steps) == solved[:2]
    assert fit.solve_front_end(cases[:2], fitted, effs)[:2] != solved[:2]  # the rows tell apart
    assert f"front end on {len(cases)} rows" in fitted.fitted_on[0]


def test_leave_one_model_out_keeps_priors_when_data_is_scarce() -> None:
    from servesim.validate import fit

    results, fitted = fit.leave_one_model_out(read_silicon(FIXTURE), max_requests=8)
    assert len(results) == 8 and sum(r.supported for r in results) == 4
    assert fitted.backends and all("prior" in p.fitted_on[0] for p in fitted.backends.values())
    for scales in fitted.scales.values():  # two B200 rows of one model: too few for the family
        assert scales["b200"].scales() == (1.0, 1.0, 1.0)
        assert "silicon base as it is" in scales["b200"].fitted_on[0]


def test_the_fit_seed_draws_the_training_subset_reproducibly() -> None:
    from servesim.validate import fit

    cases = list(range(100))

    def drawn(seed: int) -> list[int]:
        return fit._subset(cases, 10, seed)

    assert drawn(0) == drawn(0) and len(drawn(0)) == 10 and drawn(0) == sorted(drawn(0))
    assert drawn(1) != drawn(0)
    assert fit._subset(cases[:5], 10, 1) == cases[:5]  # fewer rows than a fit takes: all
    _, fitted = fit.leave_one_model_out(read_silicon(FIXTURE), max_requests=8, seed=3)
    assert {f["seed"] for f in fitted.summary()} == {3}


def test_a_backend_with_rows_of_one_model_takes_the_shared_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from servesim.validate import fit

    monkeypatch.setattr(fit, "MIN_FIT_ROWS", 1)
    # the fixture's supported trtllm rows but DeepSeek-V3's: one row, of Llama-3.1-70B
    rows = [r for r in read_silicon(FIXTURE) if r.id != "adp_row"]
    shared = fit.PRIORS["trtllm"].with_params(compute_scale=0.9, request_overhead_s=0.01)
    kept = fit.run_fit(fit.FitJob("trtllm", None), rows, fit.PRIORS, shared, {})
    assert kept.compute_scale == 0.9 and kept.request_overhead_s == 0.01
    assert kept.policy == fit.PRIORS["trtllm"].policy
    assert "1 model(s)" in kept.fitted_on[0]


def test_scale_penalty_is_zero_at_its_center_and_grows_away_from_it() -> None:
    from servesim.validate import fit

    center = fit.PRIORS["vllm"].with_params(compute_scale=0.8)
    assert fit.scale_penalty(center, center) == 0.0
    assert fit.scale_penalty(fit.PRIORS["vllm"]) == 0.0  # default center: scales of 1
    near = center.with_params(compute_scale=0.7)
    far = center.with_params(compute_scale=0.4)
    assert 0 < fit.scale_penalty(near, center) < fit.scale_penalty(far, center)


def test_shared_numbers_run_under_each_rows_own_engine_settings() -> None:
    from servesim.validate import fit

    rows = {r.id: r for r in read_silicon(FIXTURE)}
    numbers = BackendProfile("shared", policy="vllm", compute_scale=0.5, desync=0.9)
    profile = fit.case_profile(rows["disagg_c4"], numbers, fit.PRIORS)  # a trtllm row
    trtllm = fit.PRIORS["trtllm"]
    assert (profile.name, profile.policy, profile.fp8_kv_cache) == (
        "trtllm",
        trtllm.policy,
        trtllm.fp8_kv_cache,
    )
    assert profile.compute_scale == 0.5
    assert profile.desync == trtllm.desync  # how clients drift is the engine's own
    assert fit.case_profile(rows["disagg_c4"], numbers, None) is numbers


def test_fit_keeps_the_engines_documented_policy() -> None:
    from servesim.validate import fit

    rows = read_silicon(FIXTURE)
    cases = [(r, t) for r in rows if (t := classify(r).target) is not None]
    effs = fit.gpu_efficiencies({t.gpu for _, t in cases}, {})
    for name in ("sglang", "trtllm"):
        assert fit.fit_backend(cases, fit.PRIORS[name], effs).policy == fit.PRIORS[name].policy


def test_gpu_scales_apply_to_their_family_only() -> None:
    from servesim.latency.profiles import load_profile, operator_efficiency, silicon_base
    from servesim.validate import fit

    scales = {"b200": fit.GpuScales("b200", 0.8, 1.1, 1.2)}
    effs = fit.gpu_efficiencies(["b200", "gb300", "h100-sxm"], scales)
    default = silicon_base("b200")
    assert default == load_profile("h100-sxm").efficiency()  # Blackwell starts from the H100's
    for gpu in ("b200", "gb300"):  # GB300 borrows the B200's family scales
        assert effs[gpu].gemm_compute == pytest.approx(0.8 * default.gemm_compute)
        assert effs[gpu].moe_memory == pytest.approx(1.1 * default.moe_memory)
        assert effs[gpu].attention_memory == pytest.approx(1.2 * default.attention_memory)
        assert effs[gpu].moe_half_tokens == default.moe_half_tokens  # ramps are not scaled
        assert effs[gpu].iteration_overhead_s == default.iteration_overhead_s
    assert effs["h100-sxm"] == operator_efficiency("h100-sxm")  # operator-calibrated: untouched


def test_a_trial_that_pushes_an_efficiency_past_2_is_rejected_not_scored() -> None:
    from servesim.validate import fit

    rows = read_silicon(FIXTURE)
    cases = [(r, t) for r in rows if (t := classify(r).target) is not None and t.gpu == "b200"]
    too_fast = fit.GpuScales("b200", attention_scale=3.0)  # 0.76 * 3 > 2
    with pytest.raises(InputError, match="attention_memory"):
        fit.gpu_loss(cases, too_fast, fit.PRIORS)


def test_gpu_fit_never_increases_the_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    from servesim.validate import fit

    monkeypatch.setattr(fit, "MIN_FIT_ROWS", 1)
    monkeypatch.setattr(fit, "MIN_FIT_MODELS", 1)
    monkeypatch.setattr(fit, "STEPS", (2.0,))  # one pass keeps the test fast
    rows = read_silicon(FIXTURE)
    fitted = fit.fit_gpu(rows, fit.PRIORS, None, None, "b200")
    cases = [(r, t) for r in rows if (t := classify(r).target) is not None and t.gpu == "b200"]
    identity = fit.gpu_loss(cases, fit.GpuScales("b200"), fit.PRIORS)
    assert fit.gpu_loss(cases, fitted, fit.PRIORS) <= identity + 1e-12
    assert "silicon rows on b200" in fitted.fitted_on[0]
    for name in fit.SCALES:
        lo, hi = fit.BOUNDS[name]
        assert lo <= getattr(fitted, name) <= hi


def test_a_backend_with_rows_only_on_uncalibrated_gpus_takes_the_shared_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from servesim.validate import fit

    monkeypatch.setattr(fit, "MIN_FIT_ROWS", 1)
    monkeypatch.setattr(fit, "MIN_FIT_MODELS", 1)
    rows = read_silicon(FIXTURE)  # its one supported SGLang row is DeepSeek-V3 on B200
    shared = fit.PRIORS["sglang"].with_params(memory_scale=0.9)
    kept = fit.run_fit(fit.FitJob("sglang", None), rows, fit.PRIORS, shared, {})
    assert kept.memory_scale == 0.9
    assert "operator-calibrated" in kept.fitted_on[0]
