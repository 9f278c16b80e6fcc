"""CLI paths of issue 2: bad input is one line on stderr, exit 2; calibrate writes a profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servesim.cli import run_app
from servesim.latency import load_profile
from servesim.latency.ops import Efficiency, gemm_s
from servesim.specs import get_gpu


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["latency", "--model", "llama-2-8b"], "llama-2-7b"),
        (["latency", "--gpu", "h100"], "h100-sxm"),
        (["latency", "--model", "llama-2-7b", "--tp", "3"], "must divide the attention heads"),
        (["latency", "--model", "llama-3.1-405b", "--tp", "16"], "one node"),
        (
            ["latency", "--model", "llama-2-7b", "--pp", "33", "--gpus-per-node", "64"],
            "at most the 32 layers",
        ),
        (["latency", "--model", "llama-3.1-70b", "--gpu", "a100-80gb"], "needs"),
        (["latency", "--batch", "512"], "LENGTHxCOUNT"),
        (["latency", "--profile", "a100"], "closest known: a100-80gb"),
        (
            [
                "latency",
                "--model",
                "opt-66b",
                "--tp",
                "1",
                "--gpu",
                "a100-80gb",
                "--profile",
                "distserve",
            ],
            None,
        ),
        (["calibrate", "/nonexistent/folder", "-o", "x.json"], "existing folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str | None
) -> None:
    code = run_app(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    if needle:
        assert needle in err


def test_malformed_config_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{")
    assert run_app(["latency", "--model", str(path)]) == 2
    assert "valid JSON" in capsys.readouterr().err


def test_latency_json_has_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["latency", "--model", "opt-13b", "--batch", "512x8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prefill_s"] > out["decode_s"] > 0
    assert set(out["breakdown"]["prefill"]) == {
        "compute_s",
        "memory_s",
        "communication_s",
        "overhead_s",
    }


def test_calibrate_writes_a_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "a100_sxm"
    folder.mkdir()
    truth = Efficiency(
        gemm_compute=0.66, gemm_half_tokens=50.0, gemm_memory=0.7, gemm_overhead_s=6e-6
    )
    gpu = get_gpu("a100-80gb")
    lines = ["framework,version,device,op_name,kernel_source,gemm_dtype,m,n,k,latency"]
    for m in (1, 8, 64, 512, 4096):
        for n, k in ((4096, 4096), (14336, 4096), (4096, 14336)):
            ms = float(gemm_s(m, n, k, gpu, truth)) * 1e3
            lines.append(f"VLLM,0,NVIDIA A100-SXM4-80GB,gemm,x,bfloat16,{m},{n},{k},{ms}")
    (folder / "gemm_perf.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "profile.json"
    assert run_app(["calibrate", str(tmp_path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gemm_perf.csv" in printed and "wrote" in printed
    fitted = load_profile(str(out)).efficiency()
    assert fitted.gemm_compute == pytest.approx(0.66, rel=0.02)
    assert run_app(["latency", "--model", "llama-2-7b", "--profile", str(out)]) == 0


def test_calibrate_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["calibrate", "--help"]) == 0
    assert "servesim calibrate" in capsys.readouterr().out
