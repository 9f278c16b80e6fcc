"""Profiles: JSON round trip, shipped defaults, bad files, and DistServe's fitted form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.latency.factories import make_latency

from servesim.errors import InputError, UnknownNameError
from servesim.latency import DistServeModel, Efficiency, RooflineModel, load_profile
from servesim.latency.profiles import (
    Profile,
    profile_from_dict,
    save_profile,
    shipped_profile_names,
)


def test_fitted_profile_round_trips_through_json(tmp_path: Path) -> None:
    eff = Efficiency(gemm_compute=0.61, gemm_half_tokens=37.5, collective_latency_s=7e-6)
    profile = Profile(
        gpu="a40", kind="efficiency", params=eff.as_dict(), fitted_on=("x/mlp.csv [gemm]",)
    )
    path = tmp_path / "p.json"
    save_profile(profile, path)
    loaded = load_profile(str(path))
    assert loaded == profile
    assert loaded.efficiency() == eff
    assert json.loads(path.read_text())["format"] == "servesim-profile"


def test_shipped_profiles_cover_the_main_gpus() -> None:
    assert {"a100-80gb", "h100-sxm", "a40", "a30", "distserve"} <= set(shipped_profile_names())
    for name in shipped_profile_names():
        assert load_profile(name).kind in ("efficiency", "distserve")


def test_default_model_uses_the_shipped_profile() -> None:
    fitted = make_latency("llama-2-7b", "a100-80gb")
    roof = make_latency("llama-2-7b", "a100-80gb", roofline=True)
    sibling = make_latency("llama-2-7b", "a100-40gb")
    assert isinstance(fitted, RooflineModel) and isinstance(roof, RooflineModel)
    assert fitted.efficiency == load_profile("a100-80gb").efficiency()
    assert roof.efficiency == Efficiency()
    assert sibling.efficiency == fitted.efficiency
    assert make_latency("llama-2-7b", "l40s").efficiency == Efficiency()  # no profile: roofline


def test_blackwell_parts_use_the_shipped_silicon_profile() -> None:
    from servesim.latency.profiles import SILICON_SOURCE, operator_efficiency, silicon_base

    shipped = load_profile("b200")
    assert shipped.source == SILICON_SOURCE and shipped.extra["base"] == "h100-sxm"
    for gpu in ("b200", "b300", "gb200", "gb300"):
        assert make_latency("llama-2-7b", gpu).efficiency == shipped.efficiency()
        assert operator_efficiency(gpu) is None  # fits never start from a silicon profile
    scales = shipped.extra["scales"]
    base = silicon_base("b200")
    assert shipped.efficiency().gemm_compute == pytest.approx(
        scales["compute_scale"] * base.gemm_compute
    )
    assert shipped.efficiency().moe_memory == pytest.approx(
        scales["memory_scale"] * base.moe_memory
    )


def test_unknown_profile_name_lists_shipped() -> None:
    with pytest.raises(UnknownNameError, match="a100-80gb"):
        load_profile("a100-80")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "valid JSON"),
        ('{"format": "other"}', "servesim-profile"),
        (
            '{"format": "servesim-profile", "version": 2, "gpu": "a40", "kind": "efficiency", '
            '"params": {}}',
            "version",
        ),
        (
            '{"format": "servesim-profile", "version": 1, "gpu": "a40", "kind": "magic", '
            '"params": {}}',
            "kind",
        ),
        (
            '{"format": "servesim-profile", "version": 1, "gpu": "a40", "kind": "efficiency", '
            '"params": {"gemm_speed": 1}}',
            "params",
        ),
        (
            '{"format": "servesim-profile", "version": 1, "gpu": "a40", "kind": "efficiency", '
            '"params": {"gemm_compute": -1}}',
            "gemm_compute",
        ),
    ],
)
def test_bad_profile_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_profile(str(path))


def test_profile_of_another_gpu_is_refused() -> None:
    with pytest.raises(InputError, match="fitted on h100-sxm"):
        make_latency("llama-2-7b", "a40", profile="h100-sxm")


def test_distserve_profile_gives_their_formula() -> None:
    lat = make_latency("opt-13b", "a100-80gb", profile="distserve")
    assert isinstance(lat, DistServeModel)
    raw = load_profile("distserve").params["facebook/opt-13b"]["1"]
    a, b, c = raw["prefill"]
    assert lat.prefill_s(2, 1024, 2 * 512**2) == pytest.approx(
        (a + b * 1024 + c * 2 * 512**2) / 1e3
    )
    a, b, c = raw["decoding_smallbs"]
    assert lat.decode_s(8, 8000) == pytest.approx((a + b * (8000 + 8) + c * 8) / 1e3)
    a, b, c = raw["decoding_largebs"]
    assert lat.decode_s(95, 9500) == pytest.approx((a + b * (9500 + 95) + c * 95) / 1e3)


def test_distserve_pipeline_stage_is_t_over_pp() -> None:
    lat = make_latency("opt-66b", "a100-80gb", tp=4, pp=2, profile="distserve")
    assert lat.prefill_stage_s(1, 512, 512**2) == pytest.approx(lat.prefill_s(1, 512, 512**2) / 2)


@pytest.mark.parametrize(
    ("model", "tp", "match"), [("llama-2-7b", 1, "model"), ("opt-66b", 1, "tp")]
)
def test_distserve_unknown_model_or_tp(model: str, tp: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_latency(model, "a100-80gb", tp=tp, profile="distserve")


def test_profile_from_dict_rejects_non_objects() -> None:
    with pytest.raises(InputError):
        profile_from_dict([1, 2, 3])


def test_per_source_profile_round_trips_and_resolves(tmp_path: Path) -> None:
    eff = Efficiency(gemm_tile_tokens=12.0, rotary_memory=0.4, gemm_fp8_compute=0.55)
    profile = Profile(gpu="h100-sxm", kind="efficiency", params=eff.as_dict(), source="vidur")
    path = tmp_path / "h100-sxm-vidur.json"
    save_profile(profile, path)
    loaded = load_profile(str(path))
    assert loaded == profile and loaded.source == "vidur"
    lat = make_latency("llama-2-7b", "h100-sxm", profile=str(path))
    assert isinstance(lat, RooflineModel) and lat.efficiency == eff


def test_shipped_per_source_profiles_belong_to_their_gpu() -> None:
    names = set(shipped_profile_names())
    assert {"a100-80gb-vidur", "a100-80gb-aiconfigurator", "h100-sxm-aiconfigurator"} <= names
    for name in names - {"distserve"}:
        profile = load_profile(name)
        assert name.startswith(profile.gpu)
        if profile.source == "silicon":  # a default profile fitted on serving rows
            assert name == profile.gpu
            continue
        assert profile.source == name.removeprefix(profile.gpu).removeprefix("-")
    vidur = make_latency("llama-2-7b", "a100-80gb", profile="a100-80gb-vidur")
    default = make_latency("llama-2-7b", "a100-80gb")
    assert isinstance(vidur, RooflineModel) and isinstance(default, RooflineModel)
    assert vidur.efficiency != default.efficiency
