"""`servesim validate`: the reader, support classification, per-row predictions and the report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from servesim.cli.app import run_app
from servesim.errors import InputError
from servesim.latency.backends import BackendProfile, save_backend
from servesim.latency.base import prefill_attn_pairs
from servesim.validate.predict import (
    StaggeredClosedLoop,
    build_row,
    measured_window,
    num_requests_for,
    predict_row,
    row_model,
)
from servesim.validate.silicon import Benchmark, read_silicon
from servesim.validate.support import (
    DUPLICATE_REASON,
    INT4_ON_BLACKWELL_REASON,
    RELABEL_REASON,
    classify,
)

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "fixture.csv"
SHARED = (
    Path(__file__).parents[2]
    / ".."
    / "shared"
    / "data"
    / "profiles"
    / "aiconfigurator"
    / "silicon_sample.csv"
)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code = run_app(["validate", str(FIXTURE), "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def prefill_first_backend(tmp_path: Path) -> Path:
    """A backend with prefill-prioritized batches, so a lone prompt runs as one prefill_s call."""
    path = tmp_path / "handcheck.json"
    save_backend(
        BackendProfile(
            "handcheck",
            policy="vllm",
            iteration_overhead_s=1e-3,
            request_overhead_s=0.02,
            memory_scale=0.9,
        ),
        path,
    )
    return path


def test_hand_computed_c1_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """C=1: TTFT = one prefill of ISL tokens (+ front end); TPOT = one-sequence decode steps."""
    backend_path = prefill_first_backend(tmp_path)
    report = run_json(capsys, "--backend", str(backend_path), "--max-requests", "8")
    row = next(r for r in read_silicon(FIXTURE) if r.id == "hand_c1")
    target = classify(row).target
    assert target is not None
    from servesim.latency.backends import load_backend

    backend = load_backend(backend_path)
    _, models = build_row(row, target, backend)
    lat = models["colocated"]
    expected_ttft_ms = 1e3 * (lat.prefill_s(1, row.isl, row.isl**2) + backend.request_overhead_s)
    mean_ctx = row.isl + row.osl / 2
    expected_tpot_ms = 1e3 * lat.decode_s(1, int(mean_ctx))
    got = next(r for r in report["rows"] if r["id"] == "hand_c1")
    assert got["supported"] and got["reason"] is None
    assert got["predicted_ttft_ms"] == pytest.approx(expected_ttft_ms, rel=0.01)
    assert got["predicted_tpot_ms"] == pytest.approx(expected_tpot_ms, rel=0.01)
    assert got["measured_ttft_ms"] == 120.0 and got["measured_tpot_ms"] == 8.0


def test_chunked_c1_row_is_one_mixed_iteration() -> None:
    row = next(r for r in read_silicon(FIXTURE) if r.id == "hand_c1")
    target = classify(row).target
    assert target is not None
    backend = BackendProfile("chunky", policy="chunked", chunk_tokens=4096)
    _, models = build_row(row, target, backend)
    lat = models["colocated"]
    pred = predict_row(row, target, backend, max_requests=8)
    pairs = prefill_attn_pairs(row.isl, row.isl**2)
    assert pred.ttft_ms == pytest.approx(1e3 * lat.mixed_s(row.isl, pairs, 0, 0), rel=0.01)


def test_first_token_steps_add_the_rows_own_decode_steps_to_ttft() -> None:
    """A C=1 row's TTFT grows by first_token_steps times its own TPOT; TPOT does not change."""
    row = next(r for r in read_silicon(FIXTURE) if r.id == "hand_c1")
    target = classify(row).target
    assert target is not None
    plain = BackendProfile("plain", policy="vllm")
    plain_pred = predict_row(row, target, plain, max_requests=8)
    pred = predict_row(row, target, plain.with_params(first_token_steps=2.5), max_requests=8)
    assert pred.tpot_ms == plain_pred.tpot_ms
    assert pred.ttft_ms == pytest.approx(plain_pred.ttft_ms + 2.5 * plain_pred.tpot_ms, rel=1e-9)
    # the engine's own TTFT is what the simulation gives, whatever the front end
    fronted = plain.with_params(first_token_steps=2.5, request_overhead_s=0.03)
    fronted_pred = predict_row(row, target, fronted, max_requests=8)
    assert fronted_pred.engine_ttft_ms == plain_pred.engine_ttft_ms == plain_pred.ttft_ms
    assert fronted_pred.ttft_ms == pytest.approx(pred.ttft_ms + 30.0, rel=1e-9)


def test_unsupported_rows_are_listed_with_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--max-requests", "8")
    by_id = {r["id"]: r for r in report["rows"]}
    assert len(by_id) == 8 and report["num_supported"] == 4
    assert "precision int8" in by_id["int8_row"]["reason"]
    assert "not in the catalog" in by_id["unknown_model"]["reason"]
    assert "attention data parallelism" in by_id["adp_dense"]["reason"]
    assert "dense model" in by_id["adp_dense"]["reason"]
    # a disaggregated row without its worker counts has no definite size to simulate
    assert "worker counts not recorded" in by_id["disagg_no_workers"]["reason"]
    unsupported = ("int8_row", "unknown_model", "adp_dense", "disagg_no_workers")
    for rid in unsupported:
        assert not by_id[rid]["supported"] and by_id[rid]["predicted_tpot_ms"] is None
    assert sum(u["num_rows"] for u in report["unsupported"]) == len(unsupported)
    for rid in ("ep_row", "adp_row"):  # expert parallelism; attention DP (with EP)
        assert by_id[rid]["supported"] and by_id[rid]["predicted_tpot_ms"] > 0
    disagg = by_id["disagg_c4"]
    assert (
        disagg["supported"] and disagg["predicted_ttft_ms"] > 0 and disagg["predicted_tpot_ms"] > 0
    )


def test_groups_have_median_and_p90(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--max-requests", "8", "--group-by", "mode")
    modes = {g["mode"]: g for g in report["groups"]}
    assert set(modes) == {"agg", "disagg"}
    assert modes["disagg"]["num_rows"] == 1 and modes["agg"]["num_rows"] == 3
    disagg = modes["disagg"]
    assert disagg["median_ape_tpot"] == pytest.approx(disagg["p90_ape_tpot"])
    agg = [r["ape_ttft"] for r in report["rows"] if r["supported"] and r["mode"] == "agg"]
    assert modes["agg"]["median_ape_ttft"] == pytest.approx(sorted(agg)[1], abs=1e-3)


def test_workers_do_not_change_results(capsys: pytest.CaptureFixture[str]) -> None:
    one = run_json(capsys, "--max-requests", "8")
    two = run_json(capsys, "--max-requests", "8", "--workers", "2")
    assert one["rows"] == two["rows"]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _fixture_lines() -> list[str]:
    return FIXTURE.read_text().splitlines()


def _requantized(lines: list[str], row_id: str, precision: str, gemm: str, moe: str) -> str:
    """The fixture's int8 row as `row_id` with another precision and GEMM/MoE quant modes."""
    header = lines[0].split(",")
    cells = next(line for line in lines if line.startswith("int8_row,")).split(",")
    for field, value in (
        ("id", row_id),
        ("precision", precision),
        ("gemm_quant_mode", gemm),
        ("moe_quant_mode", moe),
    ):
        cells[header.index(field)] = value
    return ",".join(cells)


def test_non_numeric_field_names_line_and_field(tmp_path: Path) -> None:
    lines = _fixture_lines()
    lines[2] = lines[2].replace(",2048,64,", ",2048,sixty-four,")
    with pytest.raises(InputError) as err:
        read_silicon(_write(tmp_path, lines))
    assert "line 3" in str(err.value) and "osl" in str(err.value) and "bad.csv" in str(err.value)


def test_missing_cell_names_line_and_field(tmp_path: Path) -> None:
    lines = _fixture_lines()
    lines[4] = ",".join(lines[4].split(",")[:-1])  # drop silicon_tpot_ms
    with pytest.raises(InputError) as err:
        read_silicon(_write(tmp_path, lines))
    assert "line 5" in str(err.value) and "silicon_tpot_ms" in str(err.value)


def test_missing_column_and_bad_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _fixture_lines()
    header = lines[0].replace("silicon_ttft_ms", "ttft")
    with pytest.raises(InputError, match="silicon_ttft_ms"):
        read_silicon(_write(tmp_path, [header, *lines[1:]]))
    lines[1] = lines[1].replace(",agg,", ",mixed,")
    assert run_app(["validate", str(_write(tmp_path, lines))]) == 2
    assert "line 2" in capsys.readouterr().err


def test_measured_window_and_request_count() -> None:
    assert num_requests_for(1) == 10 and num_requests_for(100) == 1000
    warm = Benchmark(rounds=50, warmup_rounds=2)
    assert num_requests_for(4, bench=warm) == 208
    assert num_requests_for(100, max_requests=50) == 100  # never fewer than the clients
    assert measured_window(1000, 100) == slice(0, 1000)  # the first round is measured
    assert measured_window(208, 4, warm) == slice(8, 208)
    assert measured_window(8, 8, warm) == slice(0, 8)  # a cap that leaves only the warm-up
    with pytest.raises(InputError, match="rounds"):
        Benchmark(rounds=0)


def test_a_rows_harness_sets_what_is_simulated_and_measured() -> None:
    """read_silicon gives every row the harness it is told; predict_row sends (warm-up +
    rounds) requests per client and measures the rounds only. Leaving the burst round out as
    warm-up lowers the mean TTFT (its C prompts queue behind each other); TPOT stays close."""
    warm = Benchmark(rounds=4, warmup_rounds=1)
    rows = read_silicon(FIXTURE, warm)
    assert {r.bench for r in rows} == {warm}
    assert {r.bench for r in read_silicon(FIXTURE)} == {Benchmark()}
    row = next(r for r in rows if r.id == "hand_c1")
    row = replace(row, concurrency=8, agg=replace(row.agg, batch_size=8))  # type: ignore[type-var]
    target = classify(row).target
    assert target is not None
    backend = BackendProfile("x", policy="vllm", desync=1.0)
    warm_pred = predict_row(row, target, backend)
    assert (warm_pred.num_requests, warm_pred.num_measured) == (40, 32)
    cold_pred = predict_row(replace(row, bench=Benchmark(rounds=5)), target, backend)
    assert (cold_pred.num_requests, cold_pred.num_measured) == (40, 40)
    assert warm_pred.ttft_ms < 0.8 * cold_pred.ttft_ms
    assert warm_pred.tpot_ms == pytest.approx(cold_pred.tpot_ms, rel=0.1)


def test_the_harness_options_reach_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    default = run_json(capsys, "--max-requests", "64")
    assert default["benchmark"] == {"rounds": 10, "warmup_rounds": 0}
    warm = run_json(capsys, "--rounds", "4", "--warmup-rounds", "1")
    assert warm["benchmark"] == {"rounds": 4, "warmup_rounds": 1}
    by_id = {r["id"]: r for r in warm["rows"]}
    assert by_id["hand_c1"]["predicted_ttft_ms"] is not None
    assert run_app(["validate", str(FIXTURE), "--rounds", "0"]) == 2
    err = capsys.readouterr().err
    assert "rounds=0" in err and ">= 1" in err and "Traceback" not in err
    assert run_app(["validate", str(FIXTURE), "--warmup-rounds", "-1"]) == 2
    assert "warmup_rounds=-1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--workers", "0", "workers=0"),
        ("--max-requests", "0", "max-requests=0"),
        ("--fit-seed", "-1", "fit-seed=-1"),
        ("--rounds", "-3", "rounds=-3"),
    ],
)
def test_a_bad_number_is_one_line_naming_option_and_value(
    capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    assert run_app(["validate", str(FIXTURE), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "invalid" in err and len(err.splitlines()) == 1


def test_stagger_spreads_the_first_finishers_over_the_cycle() -> None:
    from servesim.workload import Fixed

    workload = StaggeredClosedLoop(4, Fixed(16, 4), 10, cycle_s=2.0)
    thinks = np.concatenate(list(workload.think_time_stream(0, chunk_size=3)))
    assert thinks.tolist() == [0.0, 0.5, 1.0, 1.5, 0, 0, 0, 0, 0, 0]


def test_desync_zero_keeps_lock_step_waves() -> None:
    """With desync 0 and a prefill-first engine, every round's C prompts arrive together, so
    mean TTFT stays at the burst's; spreading the clients (desync 1) lowers it."""
    row = next(r for r in read_silicon(FIXTURE) if r.id == "hand_c1")
    row = replace(row, concurrency=8, agg=replace(row.agg, batch_size=8))  # type: ignore[type-var]
    target = classify(row).target
    assert target is not None
    locked = BackendProfile("x", policy="vllm", desync=0.0)
    spread = replace(locked, desync=1.0)
    ttft_locked = predict_row(row, target, locked).ttft_ms
    ttft_spread = predict_row(row, target, spread).ttft_ms
    _, models = build_row(row, target, locked)
    burst = 1e3 * models["colocated"].prefill_s(8, 8 * row.isl, 8 * row.isl**2)
    # every wave's C prompts are prefilled in one batch (the engine schedules after the wave)
    assert burst == pytest.approx(ttft_locked, rel=0.05)
    assert ttft_spread < 0.7 * ttft_locked


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent (silicon_sample.csv)")
def test_shared_sample_reads_and_classifies() -> None:
    rows = read_silicon(SHARED)
    assert len(rows) == 4164
    supported = [r for r in rows if classify(r).supported]
    # EP, attention DP and NVFP4 rows included (MiniMax-M2.5: 295 without attention DP,
    # gpt-oss-120b: 209, Kimi-K2.5: 81, Qwen3.5-397B-A17B: 237); disaggregated rows without
    # worker counts, Kimi's 45 INT4 rows on B200, 2 with MoE TP x EP differing from TP x DP and
    # the 350 copies of supported rows (exported twice, to every digit or to 0.01 ms; 134 of
    # them Qwen3.5) and the 68 rows repeating a measurement under a larger parallelism label
    # are not
    assert len(supported) == 2463
    assert sum(classify(r).reason == DUPLICATE_REASON for r in rows) == 350
    assert sum(classify(r).reason == RELABEL_REASON for r in rows) == 68
    assert sum(classify(r).reason == INT4_ON_BLACKWELL_REASON for r in rows) == 45


def test_a_measurement_exported_twice_is_counted_once(tmp_path: Path) -> None:
    lines = _fixture_lines()
    hand = next(line for line in lines if line.startswith("hand_c1,"))
    copy = hand.replace("hand_c1,silicon_concurrency=1,vllm,0.0,", "copy,other source,vllm,9.9,")
    cells = hand.split(",")
    cells[0], cells[-1] = "remeasured", str(float(cells[-1]) * 1.1)  # another TPOT: not a copy
    rows = read_silicon(_write(tmp_path, [*lines, copy, ",".join(cells)]))
    by_id = {r.id: r for r in rows}
    assert by_id["copy"].duplicate_of == "hand_c1" and by_id["remeasured"].duplicate_of is None
    assert classify(by_id["copy"]).reason == DUPLICATE_REASON
    assert classify(by_id["remeasured"]).supported and classify(by_id["hand_c1"]).supported


def test_a_copy_rounded_to_hundredths_of_a_ms_is_the_same_measurement(tmp_path: Path) -> None:
    # One source file of the shared sample exports TTFT and TPOT to 0.01 ms, others in full.
    lines = _fixture_lines()
    hand = next(line for line in lines if line.startswith("hand_c1,"))
    cells = hand.split(",")
    ttft, tpot = float(cells[-2]) + 0.0031, float(cells[-1]) - 0.0042
    full = [*cells[:-2], repr(ttft), repr(tpot)]
    rounded = ["rounded", *cells[1:-2], f"{ttft:.2f}", f"{tpot:.2f}"]
    off = ["off", *cells[1:-2], f"{ttft + 0.02:.2f}", f"{tpot:.2f}"]  # 0.02 ms apart: another
    rows = {
        r.id: r
        for r in read_silicon(
            _write(tmp_path, [lines[0], *(",".join(c) for c in (full, rounded, off))])
        )
    }
    assert rows["rounded"].duplicate_of == "hand_c1"
    assert rows["off"].duplicate_of is None and rows["hand_c1"].duplicate_of is None
    assert classify(rows["rounded"]).reason == DUPLICATE_REASON


def test_one_measurement_under_two_parallelism_labels_is_kept_on_the_fewest_gpus(
    tmp_path: Path,
) -> None:
    # The shared sample exports some DP8 EP8 runs a second time as DP64 with MoE TP8 x EP8 and a
    # batch of 1 per rank: the same clients, TTFT and TPOT. Listed first, it still gives way.
    lines = _fixture_lines()
    dp8 = next(line for line in lines if line.startswith("adp_row,"))
    cells = dp8.split(",")
    header = lines[0].split(",")
    for field, value in (
        ("id", "adp_x64"),
        ("batch_size", "1"),
        ("attention_dp_size", "64"),
        ("moe_tp_size", "8"),
    ):
        cells[header.index(field)] = value
    rows = {r.id: r for r in read_silicon(_write(tmp_path, [lines[0], ",".join(cells), dp8]))}
    assert rows["adp_x64"].relabel_of == "adp_row" and rows["adp_row"].relabel_of is None
    assert classify(rows["adp_x64"]).reason == RELABEL_REASON
    assert classify(rows["adp_row"]).supported


def test_nvfp4_rows_are_simulated_with_fp4_weights_and_fp8_kv(tmp_path: Path) -> None:
    lines = _fixture_lines()
    fp4 = _requantized(lines, "fp4_row", "fp4", "nvfp4", "nvfp4")
    fp8 = _requantized(lines, "fp8_row", "fp8", "fp8", "fp8_block")
    rows = {r.id: r for r in read_silicon(_write(tmp_path, [lines[0], fp4, fp8]))}
    target = classify(rows["fp4_row"]).target
    assert target is not None and target.weight_precision == "fp4"
    trtllm = BackendProfile("trtllm", fp8_kv_cache=True)
    assert row_model(target, trtllm).kv_bytes_per_element == 1
    fp8_target = classify(rows["fp8_row"]).target
    assert fp8_target is not None
    # same deployment, half the weight bytes: decode (memory-bound at C = 8) is faster
    tpot4 = predict_row(rows["fp4_row"], target, trtllm, max_requests=16).tpot_ms
    tpot8 = predict_row(rows["fp8_row"], fp8_target, trtllm, max_requests=16).tpot_ms
    assert tpot4 < tpot8


def test_int4_rows_are_simulated_as_weight_only_with_a_bf16_kv_cache(tmp_path: Path) -> None:
    lines = _fixture_lines()
    int4 = _requantized(lines, "int4_b200", "int4", "int4_wo", "int4_wo")

    def on_h100(line: str) -> str:
        line = line.replace(",b200_sxm,", ",h100_sxm,")
        return line.replace("deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-235B-A22B-FP8")

    hopper = on_h100(_requantized(lines, "int4_h100", "int4", "int4_wo", "int4_wo"))
    fp8 = on_h100(_requantized(lines, "fp8_h100", "fp8", "fp8", "fp8"))
    rows = {r.id: r for r in read_silicon(_write(tmp_path, [lines[0], int4, hopper, fp8]))}
    assert classify(rows["int4_b200"]).reason == INT4_ON_BLACKWELL_REASON
    target, fp8_target = classify(rows["int4_h100"]).target, classify(rows["fp8_h100"]).target
    assert target is not None and target.weight_precision == "int4" and fp8_target is not None
    trtllm = BackendProfile("trtllm", fp8_kv_cache=True)
    assert row_model(target, trtllm).kv_bytes_per_element == 2  # W4A16 keeps a bf16 cache
    # fewer weight bytes than fp8, but widened to the bf16 tensor cores: decode is faster, the
    # compute-bound prompt slower
    int4_model = build_row(rows["int4_h100"], target, trtllm)[1]["colocated"]
    fp8_model = build_row(rows["fp8_h100"], fp8_target, trtllm)[1]["colocated"]
    isl = rows["int4_h100"].isl
    assert int4_model.decode_s(8, 8 * isl) < 0.9 * fp8_model.decode_s(8, 8 * isl)
    prompts = (64, 64 * isl, 64 * isl**2)
    int4_compute = int4_model.prefill_breakdown(*prompts).compute_s
    assert int4_compute > 1.3 * fp8_model.prefill_breakdown(*prompts).compute_s


def test_save_profiles_writes_backends_and_gpu_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from servesim.latency.backends import load_backend
    from servesim.latency.profiles import load_profile

    report = run_json(capsys, "--save-profiles", str(tmp_path), "--max-requests", "8")
    for name in ("vllm", "sglang", "trtllm"):
        assert load_backend(tmp_path / "backends" / f"{name}.json").name == name
    gpu = load_profile(tmp_path / "b200.json")  # two B200 rows of one model: the base as it is
    assert (gpu.gpu, gpu.source, gpu.extra["base"]) == ("b200", "silicon", "h100-sxm")
    assert gpu.efficiency() == load_profile("h100-sxm").efficiency()
    (fit,) = report["fits"]
    assert fit["held_out"] is None and set(fit["backends"]) == {"vllm", "sglang", "trtllm"}
    assert fit["gpu_scales"]["b200"]["compute_scale"] == 1.0
    assert report["num_supported"] == 4


def test_holdout_reports_one_fit_per_held_out_model(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--holdout", "model", "--max-requests", "8")
    held_out = [f["held_out"] for f in report["fits"]]
    assert held_out == sorted({"deepseek-v3", "llama-3.1-70b", "llama-3.1-8b"})
    assert run_json(capsys)["fits"] is None  # shipped profiles: nothing fitted


def test_fit_seed_is_recorded_and_needs_a_refit(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--holdout", "model", "--fit-seed", "2", "--max-requests", "8")
    assert {f["seed"] for f in report["fits"]} == {2}
    assert run_app(["validate", str(FIXTURE), "--fit-seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "fit-seed" in err and "only with --holdout or --save-profiles" in err
