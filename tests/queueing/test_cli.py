"""`servesim queueing`: both forms, JSON contents against the library, and bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from servesim.cli import run_app
from servesim.cli.common import build_cluster, build_model
from servesim.latency import build_latency_model
from servesim.queueing import (
    crossover_rate_per_s,
    inter_op_even,
    intra_op,
    mean_ttft_or_none_s,
    single_device,
    tpot_s,
)
from servesim.specs.parallel import ParallelSpec


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = run_app(["queueing", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def run_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = run_app(["queueing", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    return err


def test_raw_rows_are_the_closed_forms(capsys: pytest.CaptureFixture[str]) -> None:
    d, k = 0.3, 1.6
    rep = run_json(capsys, "--service-s", str(d), "--speedup", str(k), "--rates", "0.5,2,4,6,7")
    options = {"single": single_device(d), "inter": inter_op_even(d, 2), "intra": intra_op(d, k)}
    assert [row["rate_per_s"] for row in rep["rows"]] == [0.5, 2, 4, 6, 7]
    for row in rep["rows"]:
        for name, option in options.items():
            want = mean_ttft_or_none_s(option, row["rate_per_s"])
            got = row["ttft_s"][name]
            assert (got is None) == (want is None)
            assert got is None or got == pytest.approx(want, rel=1e-12)
    # 1 GPU is unstable from 1/D = 3.33 req/s, intra-op from K/D = 5.33, inter-op from 2/D
    single_unstable = [row["ttft_s"]["single"] is None for row in rep["rows"]]
    assert single_unstable == [False, False, True, True, True]
    assert rep["rows"][-1]["ttft_s"]["inter"] is None
    assert rep["crossover_rate_per_s"] == pytest.approx(
        crossover_rate_per_s(options["intra"], options["inter"])
    )
    assert rep["inputs"]["service_s"] == d and rep["inputs"]["speedup"] == pytest.approx(k)
    assert rep["inputs"]["stage_s"] == pytest.approx(d / 2)
    assert rep["inputs"]["pipeline_latency_s"] == d
    assert rep["stable_below_per_s"]["single"] == pytest.approx(1 / d)


def test_default_grid_reaches_n_times_the_one_gpu_limit(capsys: pytest.CaptureFixture[str]) -> None:
    rep = run_json(capsys, "--service-s", "0.5", "--speedup", "3.2", "--ways", "3")
    rates = [row["rate_per_s"] for row in rep["rows"]]
    assert len(rates) == 10 and rates == sorted(rates)
    assert rates[-1] == pytest.approx(3 / 0.5) and rates[0] == pytest.approx(0.6)
    # K > N: intra-op wins everywhere, and the table says so
    assert rep["crossover_rate_per_s"] is None and rep["faster_at_low_rate"] == "intra"


def test_unstable_single_rate_answers_with_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["queueing", "--service-s", "0.5", "--speedup", "1.5", "--rates", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "unstable" in out
    assert "1 GPU is unstable at 2.5 req/s: load R*D >= 1 from 2 req/s" in " ".join(out.split())
    rep = run_json(capsys, "--service-s", "0.5", "--speedup", "1.5", "--rates", "2")  # R*D = 1
    assert rep["rows"][0]["ttft_s"]["single"] is None
    assert rep["rows"][0]["load"]["single"] == pytest.approx(1.0)


def test_ttft_slo_rates_meet_the_slo_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    rep = run_json(capsys, "--service-s", "0.3", "--speedup", "1.6", "--ttft-slo", "1.0")
    mean_rates = rep["max_rate_for_mean_ttft_slo_per_s"]
    p90_rates = rep["max_rate_for_p90_ttft_slo_per_s"]
    options = {
        "single": single_device(0.3),
        "inter": inter_op_even(0.3, 2),
        "intra": intra_op(0.3, 1.6),
    }
    for name, option in options.items():
        assert mean_ttft_or_none_s(option, mean_rates[name]) == pytest.approx(1.0, rel=1e-9)
        assert 0 < p90_rates[name] < mean_rates[name]  # p90 sits above the mean


@pytest.mark.parametrize(
    "args",
    [
        ("--service-s", "-0.3", "--speedup", "1.5"),
        ("--service-s", "0.3", "--speedup", "-1.5"),
        ("--service-s", "0.3", "--speedup", "1.5", "--rates", "1,-2"),
        ("--service-s", "0.3", "--speedup", "1.5", "--rates", "1,x"),
        ("--service-s", "0.3", "--speedup", "1.5", "--ttft-slo", "-1"),
        ("--service-s", "0.3", "--speedup", "1.5", "--ways", "1"),
        ("--service-s", "0.3", "--speedup", "1.5", "--ways", "-2"),
        ("--service-s", "0.3", "--speedup", "1.5", "--stage-s", "0.4"),
        ("--service-s", "0.3"),
        ("--service-s", "0.3", "--speedup", "1.5", "--tpot-slo", "0.1"),
        ("--service-s", "0.3", "--speedup", "1.5", "--model", "opt-13b"),
        ("--model", "opt-66b", "--input-len", "-5"),
        ("--model", "opt-66b", "--input-len", "512", "--workload", "sharegpt"),
        ("--model", "opt-66b", "--workload", "no-such-workload"),
        ("--model", "opt-66b", "--ways", "5"),
        ("--model", "opt-66b", "--ways", "16"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    assert run_error(capsys, *args).startswith("error: ")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["queueing", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples" in out and "--service-s" in out and "--workload" in out


@pytest.fixture(scope="module")
def opt66b_models() -> dict[str, Any]:
    model, cluster = build_model("opt-66b"), build_cluster("a100-80gb")
    return {
        name: build_latency_model(model, cluster, ParallelSpec(tp, pp))
        for name, (tp, pp) in {"single": (1, 1), "inter": (1, 2), "intra": (2, 1)}.items()
    }


def test_setup_form_takes_d_and_k_from_the_latency_model(
    capsys: pytest.CaptureFixture[str], opt66b_models: dict[str, Any]
) -> None:
    rep = run_json(capsys, "--model", "opt-66b", "--gpu", "a100-80gb", "--input-len", "512")
    inputs, n = rep["inputs"], 512
    one, pipe, tensor = (opt66b_models[k] for k in ("single", "inter", "intra"))
    assert inputs["service_s"] == pytest.approx(one.prefill_s(1, n, n * n), rel=1e-12)
    assert inputs["pipeline_latency_s"] == pytest.approx(pipe.prefill_s(1, n, n * n), rel=1e-12)
    assert inputs["stage_s"] == pytest.approx(pipe.prefill_stage_s(1, n, n * n), rel=1e-12)
    k = one.prefill_s(1, n, n * n) / tensor.prefill_s(1, n, n * n)
    assert inputs["speedup"] == pytest.approx(k, rel=1e-12)
    assert 1 < k < 2 and inputs["model"] == "M/D/1" and inputs["service_scv"] == 0
    cross = rep["crossover_rate_per_s"]
    assert cross is not None and 0 < cross < min(rep["stable_below_per_s"].values()) * 2
    assert rep["setup"]["fits_in_memory"] == {"single": False, "inter": True, "intra": True}


def test_setup_form_slower_link_lowers_k(capsys: pytest.CaptureFixture[str]) -> None:
    fast = run_json(capsys, "--model", "opt-66b", "--input-len", "512")["inputs"]["speedup"]
    slow = run_json(capsys, "--model", "opt-66b", "--input-len", "512", "--pcie")
    assert slow["inputs"]["speedup"] < fast


def test_workload_form_is_mg1(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--model", "opt-66b", "--workload", "humaneval", "--samples", "4000")
    rep = run_json(capsys, *args, "--ttft-slo", "1.0")
    assert rep["inputs"]["model"] == "M/G/1" and rep["inputs"]["service_scv"] > 0
    assert rep["setup"]["workload"] == "humaneval" and rep["setup"]["samples"] == 4000
    assert rep["max_rate_for_p90_ttft_slo_per_s"] is None  # no exact M/G/1 percentile
    assert rep["max_rate_for_mean_ttft_slo_per_s"]["inter"] > 0
    again = run_json(capsys, *args, "--ttft-slo", "1.0")
    assert again == rep  # the same seed gives the same answer


def test_decode_side_respects_the_tpot_slo(
    capsys: pytest.CaptureFixture[str], opt66b_models: dict[str, Any]
) -> None:
    tensor, pipe = opt66b_models["intra"], opt66b_models["inter"]
    slo = 1.2 * tpot_s(tensor, 1, 256)  # TP=2 meets it up to some batch
    rep = run_json(
        capsys,
        "--model",
        "opt-66b",
        "--input-len",
        "512",
        "--tpot-slo",
        str(slo),
        "--context-len",
        "256",
    )
    decode = rep["decode"]
    assert decode["tpot_slo_s"] == slo and decode["ctx_tokens"] == 256
    for name, lat, par in (("intra", tensor, (2, 1)), ("inter", pipe, (1, 2))):
        side = decode[name]
        assert (side["tp"], side["pp"]) == par
        for point in side["points"]:
            assert point["tpot_s"] == pytest.approx(tpot_s(lat, point["batch_size"], 256))
            assert point["throughput_tokens_per_s"] == pytest.approx(
                point["batch_size"] / point["tpot_s"]
            )
        best = side["max_batch_for_tpot_slo"]
        if best is None:
            assert tpot_s(lat, 1, 256) > slo
            continue
        assert tpot_s(lat, best, 256) <= slo
        assert best == side["max_batch_size"] or tpot_s(lat, best + 1, 256) > slo
    assert decode["intra"]["max_batch_for_tpot_slo"] is not None


def test_text_output_names_crossover_and_decode(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_app(
        [
            "queueing",
            "--model",
            "opt-66b",
            "--input-len",
            "512",
            "--ttft-slo",
            "2.5",
            "--tpot-slo",
            "0.15",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "crossover: intra-op is faster below" in out and "inter-op above" in out
    assert "mean TTFT <= 2.5 s up to" in out and "largest batch with TPOT <= 0.15 s" in out
    assert "does not fit in memory" in out


def test_json_is_finite_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    rep = run_json(capsys, "--service-s", "1", "--speedup", "1.9", "--rates", "0.1,1.5,1.99,5")

    def walk(value: Any) -> None:
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(rep)
