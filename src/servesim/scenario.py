"""A scenario: everything one simulation needs, from flags or a YAML/TOML file.

This is the edge where user input is validated (pydantic): a bad value becomes one InputError
naming the field, the value and what is allowed. Builders turn a validated scenario into the
library's specs: the model, the cluster, the deployment and the workload.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from servesim.engine.config import Deployment, InstanceGroup
from servesim.errors import InputError
from servesim.latency.backends import load_backend
from servesim.specs import ClusterSpec, ModelSpec, get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import (
    ClosedLoopWorkload,
    Deterministic,
    Fixed,
    Gamma,
    OpenLoopWorkload,
    Poisson,
    TraceWorkload,
    get_lengths,
)


class Scenario(BaseModel):
    """One simulation. Field names equal the CLI flags (with `-` as `_`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # what runs, and where
    model: str = "opt-13b"
    gpu: str = "a100-80gb"
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    nic_gbps: float | None = Field(None, gt=0)
    nics_per_node: int | None = Field(None, ge=1)
    nvlink_gbps: float | None = Field(None, gt=0)
    oversubscription: float | None = Field(None, ge=1)
    precision: Literal["bf16", "fp16", "fp8", "fp4", "int4"] | None = None
    kv_precision: Literal["bf16", "fp16", "fp8"] | None = None
    profile: str | None = None
    backend: str | None = None
    # deployment
    mode: Literal["colocated", "disagg"] = "colocated"
    policy: Literal["vllm", "chunked"] | None = None
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    instances: int = Field(1, ge=1)
    prefill_tp: int = Field(1, ge=1)
    prefill_pp: int = Field(1, ge=1)
    prefill_instances: int = Field(1, ge=1)
    decode_tp: int = Field(1, ge=1)
    decode_pp: int = Field(1, ge=1)
    decode_instances: int = Field(1, ge=1)
    max_prefill_tokens: int | None = Field(None, ge=1)
    max_batch: int = Field(256, ge=1)
    chunk_tokens: int | None = Field(None, ge=1)
    decode_kv_policy: Literal["on_demand", "reserve"] = "on_demand"
    kv_transfer: Literal["after_prefill", "layerwise"] = "after_prefill"
    affinity: Literal["high", "low"] = "high"
    network: bool | None = None
    # workload
    workload: str | None = None
    trace: str | None = None
    isl: int | None = Field(None, ge=1)
    osl: int | None = Field(None, ge=1)
    rate: float | None = Field(None, gt=0)
    concurrency: int | None = Field(None, ge=1)
    think_time_s: float = Field(0.0, ge=0)
    arrival: Literal["poisson", "gamma", "deterministic"] = "poisson"
    cv: float = Field(1.0, gt=0)
    requests: int = Field(2000, ge=1)
    seed: int = Field(0, ge=0)
    # SLOs
    ttft_slo: float = Field(0.25, gt=0)
    tpot_slo: float = Field(0.1, gt=0)
    attainment: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _one_source(self) -> Scenario:
        if self.workload and self.trace:
            raise ValueError("give either workload or trace, not both")
        if self.rate is not None and self.concurrency is not None:
            raise ValueError("give either rate (open loop) or concurrency (closed loop), not both")
        if (self.isl is None) != (self.osl is None):
            raise ValueError("give isl and osl together (fixed lengths)")
        if self.isl is not None and (self.workload or self.trace):
            raise ValueError("isl/osl replace a named workload or trace; give only one")
        return self


def _first_error(err: ValidationError) -> InputError:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "scenario"
    value = e.get("input") if e["loc"] else None
    return InputError(field, value, e["msg"].removeprefix("Value error, "))


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """The key/value pairs of a YAML or TOML scenario file (keys may use `-` or `_`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError:
        raise InputError("scenario", str(path), "a readable YAML or TOML file") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InputError(
            "scenario",
            str(path),
            f"valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {err}".splitlines()[0],
        ) from None
    if not isinstance(data, dict):
        raise InputError("scenario", str(path), "a mapping of field: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def make_scenario(file: str | Path | None = None, **flags: Any) -> Scenario:
    """A validated scenario: file values, overridden by flags that are not None."""
    values = read_scenario_file(file) if file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return Scenario(**values)
    except ValidationError as err:
        raise _first_error(err) from None


# ---- builders ---------------------------------------------------------------------------------
def build_model(s: Scenario) -> ModelSpec:
    """The model at the scenario's precisions; a backend decides the KV precision if not given."""
    model = get_model(s.model)
    kv: str | None = s.kv_precision
    if kv is None and s.backend is not None:
        kv = load_backend(s.backend).kv_precision(s.precision or model.dtype)
    if s.precision or kv:
        model = model.with_precision(s.precision, kv)
    return model


def build_cluster(s: Scenario) -> ClusterSpec:
    return make_cluster(
        s.gpu,
        num_nodes=s.nodes,
        gpus_per_node=s.gpus_per_node,
        nic_gbps=s.nic_gbps,
        nics_per_node=s.nics_per_node if s.nics_per_node is not None else s.gpus_per_node,
        nvlink_gbs=s.nvlink_gbps / 8 * 2 if s.nvlink_gbps else None,
        oversubscription=s.oversubscription,
    )


def build_deployment(s: Scenario) -> Deployment:
    """The engine's Deployment for the scenario's mode and parallelism."""
    if s.mode == "colocated":
        groups: tuple[InstanceGroup, ...] = (_group(s, "colocated", s.tp, s.pp, s.instances),)
    else:
        groups = (
            _group(s, "prefill", s.prefill_tp, s.prefill_pp, s.prefill_instances),
            _group(s, "decode", s.decode_tp, s.decode_pp, s.decode_instances),
        )
    return Deployment(
        build_model(s),
        build_cluster(s),
        groups,
        profile=s.profile,
        kv_transfer=s.kv_transfer,
        backend=s.backend,
    )


def network_on(s: Scenario) -> bool:
    """Whether KV transfers go through the flow model: by default for disaggregated runs (the
    only ones with transfers); a colocated run with `network` on reports activation bytes."""
    return s.network if s.network is not None else s.mode == "disagg"


def build_transport(s: Scenario, deployment: Deployment) -> Any:
    """A `FlowTransport` (instances placed with the scenario's affinity), or None when off."""
    if not network_on(s):
        return None
    from servesim.network import flow_transport

    return flow_transport(deployment, s.affinity)


def _group(s: Scenario, role: str, tp: int, pp: int, num_instances: int) -> InstanceGroup:
    """One instance group; scheduling defaults come from the backend profile when one is named."""
    backend = load_backend(s.backend) if s.backend is not None else None
    return InstanceGroup(
        role,
        ParallelSpec(tp, pp),
        num_instances,
        policy=s.policy or (backend.policy if backend else "vllm"),
        max_batch_seqs=s.max_batch,
        max_prefill_tokens=s.max_prefill_tokens,
        chunk_tokens=s.chunk_tokens or (backend.chunk_tokens if backend else 512),
        decode_kv_policy=s.decode_kv_policy,
    )


def build_lengths(s: Scenario) -> Any:
    if s.isl is not None and s.osl is not None:
        return Fixed(s.isl, s.osl)
    return get_lengths(s.workload or "sharegpt")


def build_workload(s: Scenario, rate_per_s: float | None = None) -> Any:
    """Open loop (rate), closed loop (concurrency) or a trace; `rate_per_s` overrides the rate."""
    rate = rate_per_s if rate_per_s is not None else s.rate
    if s.trace:
        return TraceWorkload(Path(s.trace), rate_per_s=rate, max_requests=s.requests)
    lengths = build_lengths(s)
    if s.concurrency is not None and rate_per_s is None:
        return ClosedLoopWorkload(s.concurrency, lengths, s.requests, think_time_s=s.think_time_s)
    if rate is None:
        raise InputError("rate", None, "a request rate > 0 (or --concurrency for a closed loop)")
    arrivals: Poisson | Gamma | Deterministic
    if s.arrival == "gamma":
        arrivals = Gamma(rate, s.cv)
    elif s.arrival == "deterministic":
        arrivals = Deterministic(rate)
    else:
        arrivals = Poisson(rate)
    return OpenLoopWorkload(arrivals, lengths, s.requests)
