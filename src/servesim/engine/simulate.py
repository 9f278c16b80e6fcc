"""`simulate`: run one deployment against one workload and return per-request records.

With `exact=True` every decode iteration is an event (the reference); otherwise decode stretches
between membership changes are jumped over in closed form. `check_invariants=True` (or the
environment variable SERVESIM_CHECK_INVARIANTS=1) checks after every event that no instance
holds more KV than it has, and at the end that arrived = finished + rejected + in flight.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable

import numpy as np

from servesim.engine.build import build_instances
from servesim.engine.closed_loop import ClosedLoopDriver
from servesim.engine.config import Deployment
from servesim.engine.loop import Engine
from servesim.engine.records import Counts, RecordBuffer, Records, SimResult, Timeline
from servesim.engine.transport import DirectTransport, Transport
from servesim.errors import InputError, require
from servesim.specs.model import ModelSpec
from servesim.workload.base import Workload
from servesim.workload.synthetic import ClosedLoopWorkload

CHUNK_SIZE = 65536
INVARIANTS_ENV = "SERVESIM_CHECK_INVARIANTS"


def invariants_from_env() -> bool:
    """True when SERVESIM_CHECK_INVARIANTS is set to a true value."""
    return os.environ.get(INVARIANTS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def default_transport(deployment: Deployment) -> DirectTransport:
    """Uncontended links between instances laid out first-fit on the cluster's nodes."""
    gpus = [g.parallel.num_gpus for g in deployment.groups for _ in range(g.num_instances)]
    return DirectTransport(deployment.cluster, gpus)


def simulate(
    deployment: Deployment,
    workload: Workload | ClosedLoopWorkload,
    *,
    seed: int = 0,
    exact: bool = False,
    check_invariants: bool = False,
    timeline: bool = False,
    transport: Transport | None = None,
    latency_models: dict | None = None,
) -> SimResult:
    """Simulate `workload` on `deployment`; times in the result are seconds from the start.

    `latency_models` maps a role ('prefill', 'decode', 'colocated') to a `LatencyModel` that
    replaces the one built from the specs (tests use stubs).
    """
    require(
        isinstance(deployment, Deployment), "deployment", type(deployment).__name__, "a Deployment"
    )
    ok_seed = isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0
    require(ok_seed, "seed", seed, "an integer >= 0")
    closed = isinstance(workload, ClosedLoopWorkload)
    if not closed and not callable(getattr(workload, "chunks", None)):
        raise InputError(
            "workload", type(workload).__name__, "a Workload (with chunks) or a ClosedLoopWorkload"
        )
    check = check_invariants or invariants_from_env()
    rec = RecordBuffer()
    instances = build_instances(deployment, rec, fast=not exact, latency_models=latency_models)
    mode = deployment.mode
    if transport is None and mode == "disagg":
        transport = default_transport(deployment)
    bind_records = getattr(transport, "bind_records", None)
    if bind_records is not None:  # a transport that reads prefill times (layerwise KV)
        bind_records(rec)
    tl = Timeline() if timeline else None
    engine = Engine(instances, rec, transport, kv_transfer_bytes(deployment.model), mode, check, tl)
    if closed:
        driver = ClosedLoopDriver(engine, workload, int(seed))  # type: ignore[arg-type]
        driver.start()
        engine.drain()
    else:
        engine.run_open(workload.chunks(int(seed), CHUNK_SIZE))  # type: ignore[union-attr]
    return _result(engine, rec.freeze(), mode, exact, check, tl)


def _result(
    engine: Engine, records: Records, mode: str, exact: bool, check: bool, tl: Timeline | None
) -> SimResult:
    preempted = int(records.num_preemptions.sum())
    counts = Counts(
        arrived=len(records),
        finished=engine.num_finished,
        rejected=engine.num_rejected,
        preempted=preempted,
        in_flight=engine.in_flight(),
    )
    if check:
        check_conservation(counts, records)
    end_s = float(np.nanmax(records.finish_s)) if counts.finished else engine.now
    stats = tuple(inst.stats() for inst in engine.inst.all)
    return SimResult(records, counts, stats, max(end_s, engine.now), mode, exact, tl)


def check_conservation(counts: Counts, records: Records) -> None:
    """Raise AssertionError unless arrived = finished + rejected + in flight, record by record."""
    if counts.arrived != counts.finished + counts.rejected + counts.in_flight:
        raise AssertionError(f"requests not conserved: {counts}")
    finished = int(np.count_nonzero(~np.isnan(records.finish_s)))
    if finished != counts.finished or int(records.rejected.sum()) != counts.rejected:
        raise AssertionError(f"records disagree with counts: {finished} finished records, {counts}")
    if np.any(records.finish_s < records.arrival_s):
        raise AssertionError("a request finished before it arrived")


def kv_transfer_bytes(model: ModelSpec) -> Callable[[int], float]:
    """Bytes of one prompt's KV cache (what a disaggregated handoff moves): per token for most
    models, `kv_bytes_per_seq` when sliding-window or linear-attention layers keep less."""
    if model.window_layers or model.num_linear_layers:
        return model.kv_bytes_per_seq
    per_token = model.kv_bytes_per_token  # a property chain: once, not per request
    return lambda num_tokens: num_tokens * per_token
