"""Fitted latency profiles: versioned JSON files, loaded by shipped name or by path.

A profile is `{"format": "servesim-profile", "version": 1, "gpu": ..., "kind": "efficiency" |
"distserve", "fitted_on": [...], "params": {...}}`. An "efficiency" profile holds the fitted
`Efficiency` factors of one GPU (latency/fit.py); a "distserve" profile holds DistServe's
per-(model, TP) coefficients (latency/distserve.py). Shipped profiles live in latency/data/;
a GPU without its own uses the profile of its sibling part (same die, other memory; for the
Blackwell parts, the B200's).

Most efficiency profiles are fitted on per-operator tables (latency/fit.py). A GPU that has no
such tables (the Blackwell parts) gets a "silicon" profile instead: the operator profile of the
nearest calibrated part (`SILICON_BASE`: its kernel ramps, fixed costs and achieved fractions,
taken as fractions of this GPU's own peaks) times three scales (GEMM/MoE compute, memory,
attention) fitted on this GPU's measured end-to-end serving rows (servesim.validate.fit). Fits
start from `operator_efficiency` and `silicon_base`, which never return a silicon profile, so a
refit cannot see its own earlier result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from servesim.errors import InputError, UnknownNameError, read_json
from servesim.latency.backends import scale_efficiency
from servesim.latency.ops import Efficiency

FORMAT = "servesim-profile"
VERSION = 1
KINDS = ("efficiency", "distserve")
SILICON_SOURCE = "silicon"  # fitted on end-to-end serving rows, not on operator tables
# The operator profile a GPU family without operator tables starts from: the nearest calibrated
# part. Without it the roofline defaults apply, which have no kernel ramps (a 32-token expert
# GEMM would run at the full-size efficiency).
SILICON_BASE = {"b200": "h100-sxm"}
# GPUs without a shipped profile borrow their sibling's efficiency factors (the Blackwell parts
# share the B200's: one architecture, measured rows mostly on B200; their peaks differ in the
# GPU catalog, and the factors are fractions of those peaks).
SIBLING_PROFILE = {
    "a100-40gb": "a100-80gb",
    "h200-sxm": "h100-sxm",
    "h100-pcie": "h100-sxm",
    "gb200": "b200",
    "b300": "b200",
    "gb300": "b200",
}


@dataclass(frozen=True)
class Profile:
    """One fitted profile. `params` is the Efficiency dict or DistServe's coefficient tree."""

    gpu: str
    kind: str
    params: dict[str, Any]
    fitted_on: tuple[str, ...] = ()
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def efficiency(self) -> Efficiency:
        if self.kind != "efficiency":
            raise InputError("profile.kind", self.kind, "an 'efficiency' profile here")
        return Efficiency.from_dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "gpu": self.gpu,
            "kind": self.kind,
        }
        if self.source:
            out["source"] = self.source
        out.update(self.extra)
        out["fitted_on"] = list(self.fitted_on)
        out["params"] = self.params
        return out


def profile_from_dict(data: Any, origin: str = "profile") -> Profile:
    """Validate and build a Profile from parsed JSON."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(origin, "format", f'a JSON object with "format": "{FORMAT}"')
    if data.get("version") != VERSION:
        raise InputError(
            f"{origin}.version",
            data.get("version"),
            f"{VERSION} (this servesim reads version {VERSION})",
        )
    kind = data.get("kind")
    if kind not in KINDS:
        raise InputError(f"{origin}.kind", kind, f"one of {', '.join(KINDS)}")
    if not isinstance(data.get("gpu"), str) or not isinstance(data.get("params"), dict):
        raise InputError(origin, "gpu/params", "a 'gpu' string and a 'params' object")
    known = {"format", "version", "gpu", "kind", "fitted_on", "params", "source"}
    profile = Profile(
        gpu=data["gpu"],
        kind=kind,
        params=data["params"],
        fitted_on=tuple(data.get("fitted_on", ())),
        source=str(data.get("source", "")),
        extra={k: v for k, v in data.items() if k not in known},
    )
    if kind == "efficiency":
        profile.efficiency()  # validates every factor
    return profile


def save_profile(profile: Profile, path: str | Path) -> None:
    Path(path).write_text(json.dumps(profile.to_dict(), indent=1) + "\n")


@cache
def shipped_profile_names() -> tuple[str, ...]:
    folder = resources.files("servesim.latency").joinpath("data")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json")))


@cache
def _load_shipped(name: str) -> Profile:
    text = resources.files("servesim.latency").joinpath(f"data/{name}.json").read_text()
    return profile_from_dict(json.loads(text), f"profile {name}")


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name, or a profile JSON file by path."""
    text = str(name_or_path)
    if text in shipped_profile_names():
        return _load_shipped(text)
    path = Path(text)
    if path.suffix != ".json" and not path.exists():
        raise UnknownNameError("profile", text, shipped_profile_names())
    allowed = f"an existing JSON file or one of {', '.join(shipped_profile_names())}"
    data = read_json("profile", path, allowed)
    return profile_from_dict(data, f"profile {path.name}")


def profile_family(gpu_name: str) -> str:
    """The profile name `gpu_name` uses (its own, or its sibling's)."""
    return SIBLING_PROFILE.get(gpu_name, gpu_name)


def default_profile_name(gpu_name: str) -> str | None:
    """The shipped efficiency profile used for `gpu_name` by default, if any."""
    name = profile_family(gpu_name)
    return name if name in shipped_profile_names() else None


def resolve_profile(profile: str | None, gpu_name: str) -> Profile | None:
    """The profile to use on `gpu_name`: the named one, else the GPU's shipped default."""
    name = profile if profile is not None else default_profile_name(gpu_name)
    if name is None:
        return None
    loaded = load_profile(name)
    allowed = {gpu_name, profile_family(gpu_name)}
    if loaded.gpu not in allowed:
        raise InputError(
            "profile", name, f"a profile of GPU {gpu_name} (this one was fitted on {loaded.gpu})"
        )
    return loaded


def resolve_efficiency(profile: str | None, gpu_name: str) -> Efficiency | None:
    """Efficiency factors for `gpu_name` from `profile` (name or path) or the shipped default;
    None when there is no profile (the roofline defaults apply)."""
    loaded = resolve_profile(profile, gpu_name)
    return None if loaded is None else loaded.efficiency()


def operator_efficiency(gpu_name: str) -> Efficiency | None:
    """The GPU's shipped efficiency factors when they were fitted on operator tables; None for a
    GPU with no profile or only a silicon one (the roofline defaults apply)."""
    loaded = resolve_profile(None, gpu_name)
    if loaded is None or loaded.kind != "efficiency" or loaded.source == SILICON_SOURCE:
        return None
    return loaded.efficiency()


def silicon_base(family: str) -> Efficiency:
    """The factors a silicon fit of `family` starts from: SILICON_BASE's operator profile, else
    the roofline defaults."""
    name = SILICON_BASE.get(family)
    return load_profile(name).efficiency() if name else Efficiency()


def silicon_profile(
    family: str, scales: tuple[float, float, float], fitted_on: tuple[str, ...] = ()
) -> Profile:
    """The silicon profile of GPU family `family`: its `silicon_base` times (compute, memory,
    attention) `scales`, which the profile records with the base's name."""
    eff = scale_efficiency(silicon_base(family), scales, f"profile {family}")
    names = ("compute_scale", "memory_scale", "attention_scale")
    return Profile(
        gpu=family,
        kind="efficiency",
        params=eff.as_dict(),
        fitted_on=fitted_on,
        source=SILICON_SOURCE,
        extra={
            "base": SILICON_BASE.get(family, "roofline defaults"),
            "scales": dict(zip(names, scales, strict=True)),
        },
    )
