"""Serving-engine (backend) profiles: what differs between vLLM, SGLang and TensorRT-LLM.

The same model on the same GPU runs at different speeds under different engines: per-iteration
CPU/launch overhead, the attention kernels, how well GEMMs are tuned, and the scheduling policy.
A `BackendProfile` expresses these as changes to the latency model's `Efficiency` (an overhead
that replaces `iteration_overhead_s`, scale factors on the GEMM/MoE compute and memory
efficiencies and on the attention efficiencies) and to the engine's `InstanceGroup` policy
(chunked prefill with a token budget, or prefill-prioritized batches), plus whether an fp8
checkpoint keeps its KV cache in fp8.

Profiles are versioned JSON files in latency/data/backends/ (`{"format": "servesim-backend",
"version": 1, "name": ..., "policy": ..., "params": {...}, "fitted_on": [...]}`); the numbers are
fitted on measured end-to-end rows (servesim.validate.fit), not tuned per row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from servesim.errors import InputError, UnknownNameError, read_json, require
from servesim.latency.ops import ELEMENTWISE_KERNELS, Efficiency

FORMAT = "servesim-backend"
VERSION = 1
BACKEND_NAMES = ("vllm", "sglang", "trtllm")
POLICIES = ("vllm", "chunked")
MAX_FIRST_TOKEN_STEPS = 20  # far beyond any output path: a fit at this bound absorbs other delays
# Efficiency fields each scale multiplies.
COMPUTE_FIELDS = ("gemm_compute", "gemm_fp8_compute", "moe_compute")
MEMORY_FIELDS = (
    "gemm_memory",
    "moe_memory",
    "elementwise_memory",
    *(f"{kernel}_memory" for kernel in ELEMENTWISE_KERNELS),
)
ATTENTION_FIELDS = ("attention_compute", "attention_memory")
FITTED_PARAMS = (
    "iteration_overhead_s",
    "seq_overhead_s",
    "request_overhead_s",
    "first_token_steps",
    "compute_scale",
    "memory_scale",
    "attention_scale",
    "desync",
)


@dataclass(frozen=True, slots=True)
class BackendProfile:
    """One serving engine's differences from the plain latency model.

    Attributes:
        name: 'vllm', 'sglang' or 'trtllm' (or any name for a custom file).
        policy: colocated scheduling the engine uses by default: 'chunked' or 'vllm'.
        chunk_tokens: token budget of one chunked-prefill iteration (decodes included).
        fp8_kv_cache: an fp8 or fp4 checkpoint keeps its KV cache in fp8 (else bf16).
        iteration_overhead_s: seconds of CPU scheduling/launch per iteration (replaces the
            latency profile's value).
        seq_overhead_s: seconds per sequence per iteration (input preparation, sampling;
            replaces the latency profile's value).
        request_overhead_s: seconds the serving front end adds to every request's TTFT
            (HTTP, tokenization, routing), outside the GPU iterations. `servesim validate`
            adds it to the simulated TTFT of a benchmark row; simulate and search report the
            engine's TTFT without it.
        first_token_steps: decode steps between a prompt's last prefill iteration and its first
            token reaching the client, in units of the request's own simulated decode step (its
            TPOT): an engine that overlaps scheduling with execution returns a step's tokens
            during the next one, and output processing and streaming add more. Like
            `request_overhead_s`, only `servesim validate` adds it.
        compute_scale: multiplies the GEMM (bf16 and fp8) and MoE compute efficiencies.
        memory_scale: multiplies the GEMM, MoE and element-wise memory efficiencies (every
            element-wise kernel kind).
        attention_scale: multiplies the attention compute and memory efficiencies.
        desync: how far a closed-loop benchmark's clients drift apart after their first,
            simultaneous round, as a fraction of one request cycle: 0 keeps them in lock-step
            waves (every round's prompts arrive together), 1 spreads them evenly. An engine
            that batches every waiting prompt at once re-synchronizes its clients; one that
            admits prompts a few at a time lets them drift.
        fitted_on: what the numbers were fitted on (provenance).
    """

    name: str
    policy: str = "chunked"
    chunk_tokens: int = 8192
    fp8_kv_cache: bool = False
    iteration_overhead_s: float = 2e-3
    seq_overhead_s: float = 10e-6
    request_overhead_s: float = 0.0
    first_token_steps: float = 0.0
    compute_scale: float = 1.0
    memory_scale: float = 1.0
    attention_scale: float = 1.0
    desync: float = 1.0
    fitted_on: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        require(
            self.policy in POLICIES, "backend.policy", self.policy, f"one of {', '.join(POLICIES)}"
        )
        require(
            self.chunk_tokens >= 1, "backend.chunk_tokens", self.chunk_tokens, "an integer >= 1"
        )
        for name in ("iteration_overhead_s", "seq_overhead_s", "request_overhead_s"):
            require(
                getattr(self, name) >= 0, f"backend.{name}", getattr(self, name), "seconds >= 0"
            )
        require(
            0 <= self.first_token_steps <= MAX_FIRST_TOKEN_STEPS,
            "backend.first_token_steps",
            self.first_token_steps,
            f"decode steps in [0, {MAX_FIRST_TOKEN_STEPS}]",
        )
        for name in ("compute_scale", "memory_scale", "attention_scale"):
            value = getattr(self, name)
            require(0 < value <= 4, f"backend.{name}", value, "a factor in (0, 4]")

        require(0 <= self.desync <= 1, "backend.desync", self.desync, "a fraction in [0, 1]")

    def params(self) -> dict[str, float]:
        """The fitted numbers, by name."""
        return {name: float(getattr(self, name)) for name in FITTED_PARAMS}

    def with_params(self, **params: float) -> BackendProfile:
        return replace(self, **params)  # type: ignore[arg-type]

    def apply(self, eff: Efficiency) -> Efficiency:
        """`eff` as this engine achieves it (fractions stay within Efficiency's (0, 2])."""
        scaled = scale_efficiency(
            eff,
            (self.compute_scale, self.memory_scale, self.attention_scale),
            f"backend {self.name}",
        )
        return replace(
            scaled,
            iteration_overhead_s=self.iteration_overhead_s,
            seq_overhead_s=self.seq_overhead_s,
        )

    def kv_precision(self, weight_precision: str) -> str:
        """KV-cache precision for a checkpoint of `weight_precision`."""
        return "fp8" if weight_precision in ("fp8", "fp4") and self.fp8_kv_cache else "bf16"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        fitted_on = data.pop("fitted_on")
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": data.pop("name")}
        out["params"] = data
        out["fitted_on"] = list(fitted_on)
        return out


def scale_efficiency(
    eff: Efficiency, scales: tuple[float, float, float], owner: str = "scale"
) -> Efficiency:
    """`eff` with its compute, memory and attention efficiencies multiplied by `scales` (in that
    order); raises InputError naming `owner` when a scaled fraction exceeds 2."""
    scaled = {}
    for names, scale in zip((COMPUTE_FIELDS, MEMORY_FIELDS, ATTENTION_FIELDS), scales, strict=True):
        for name in names:
            value = getattr(eff, name) * scale
            if value > 2.0:
                raise InputError(
                    f"{owner}: {name}",
                    round(value, 3),
                    "a scaled efficiency <= 2 (lower the scale)",
                )
            scaled[name] = value
    return replace(eff, **scaled)


def backend_from_dict(data: Any, origin: str = "backend") -> BackendProfile:
    """Validate parsed JSON into a BackendProfile."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(origin, "format", f'a JSON object with "format": "{FORMAT}"')
    if data.get("version") != VERSION:
        raise InputError(f"{origin}.version", data.get("version"), f"{VERSION}")
    params = data.get("params")
    if not isinstance(data.get("name"), str) or not isinstance(params, dict):
        raise InputError(origin, "name/params", "a 'name' string and a 'params' object")
    known = {f.name for f in fields(BackendProfile)} - {"name", "fitted_on"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"{origin}.params", unknown[0], f"one of {', '.join(sorted(known))}")
    return BackendProfile(name=data["name"], fitted_on=tuple(data.get("fitted_on", ())), **params)


def save_backend(profile: BackendProfile, path: str | Path) -> None:
    Path(path).write_text(json.dumps(profile.to_dict(), indent=1) + "\n")


@cache
def _shipped(name: str) -> BackendProfile:
    text = resources.files("servesim.latency").joinpath(f"data/backends/{name}.json").read_text()
    return backend_from_dict(json.loads(text), f"backend {name}")


def load_backend(name_or_path: str | Path) -> BackendProfile:
    """A shipped backend profile by name ('vllm', 'sglang', 'trtllm'), or a JSON file by path."""
    text = str(name_or_path).strip()
    if text.lower() in BACKEND_NAMES:
        return _shipped(text.lower())
    path = Path(text)
    if path.suffix != ".json":
        raise UnknownNameError("backend", text, BACKEND_NAMES)
    allowed = f"an existing JSON file or one of {', '.join(BACKEND_NAMES)}"
    data = read_json("backend", path, allowed)
    return backend_from_dict(data, f"backend {path.name}")
