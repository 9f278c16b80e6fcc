"""A search problem: everything that determines a goodput, except the deployment shape.

Model, cluster, workload (a named length distribution with Poisson arrivals, or a trace stretched
to the rate), SLOs, attainment target and tolerance, seed, and engine settings. Frozen and
picklable: it travels to worker processes, and its `fingerprint` keys the result cache.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from servesim import code_fingerprint
from servesim.errors import InputError, require
from servesim.search.goodput import BisectionSpec
from servesim.specs import ClusterSpec, ModelSpec


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """The requests: a named length distribution with Poisson arrivals, or a trace file.

    `num_requests` requests per simulation; a trace replays its first `num_requests` rows,
    stretched in time to each probed rate. `trace_sha256` (filled by `from_trace`) makes the
    cache key follow the file's content, not its name.
    """

    name: str | None = "sharegpt"
    trace_path: str | None = None
    trace_sha256: str | None = None
    num_requests: int = 2000

    def __post_init__(self) -> None:
        require(
            (self.name is None) != (self.trace_path is None),
            "workload",
            (self.name, self.trace_path),
            "exactly one of a workload name or a trace file",
        )
        require(self.num_requests >= 1, "requests", self.num_requests, "an integer >= 1")

    @staticmethod
    def from_trace(path: str | Path, num_requests: int) -> WorkloadSpec:
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            raise InputError("trace", str(path), "a readable trace file") from None
        return WorkloadSpec(None, str(path), digest, num_requests)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else Path(str(self.trace_path)).name

    def build(self, rate_per_s: float) -> Any:
        """The engine's workload at `rate_per_s` requests/s."""
        from servesim.workload import OpenLoopWorkload, Poisson, TraceWorkload, get_lengths

        if self.trace_path is not None:
            return TraceWorkload(
                Path(self.trace_path), rate_per_s=rate_per_s, max_requests=self.num_requests
            )
        return OpenLoopWorkload(Poisson(rate_per_s), get_lengths(str(self.name)), self.num_requests)

    def lengths(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_tokens, output_tokens) of the requests every simulation sees (any rate)."""
        return _lengths(self, seed)


@functools.lru_cache(maxsize=8)
def _lengths(spec: WorkloadSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(spec.build(1.0).chunks(seed))
    inputs = np.concatenate([c.input_tokens for c in chunks]).astype(np.int64)
    outputs = np.concatenate([c.output_tokens for c in chunks]).astype(np.int64)
    return inputs, outputs


@dataclass(frozen=True, slots=True)
class SearchProblem:
    """What the search holds fixed.

    ttft_slo_s / tpot_slo_s: the SLOs, seconds. bisection: attainment target and tolerance.
    max_batch_seqs / max_prefill_tokens: instance batch limits passed to the engine (None: the
    engine's defaults). profile: latency profile name or file (None: the GPU's default).
    """

    model: ModelSpec
    cluster: ClusterSpec
    workload: WorkloadSpec
    ttft_slo_s: float
    tpot_slo_s: float
    bisection: BisectionSpec = field(default_factory=BisectionSpec)
    seed: int = 0
    profile: str | None = None
    max_batch_seqs: int | None = None
    max_prefill_tokens: int | None = None
    kv_transfer: str = "after_prefill"

    def __post_init__(self) -> None:
        require(self.ttft_slo_s > 0, "ttft_slo", self.ttft_slo_s, "a time > 0 s")
        require(self.tpot_slo_s > 0, "tpot_slo", self.tpot_slo_s, "a time > 0 s")
        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")

    @property
    def target(self) -> float:
        return self.bisection.target

    def fingerprint(self) -> str:
        """Hash of every input that determines a result, including the servesim code."""
        return hashlib.sha256(f"{code_fingerprint()}|{self!r}".encode()).hexdigest()

    def max_request_tokens(self) -> int:
        """Longest request (prompt + output) of the workload, capped by the model's context."""
        inputs, outputs = self.workload.lengths(self.seed)
        longest = int((inputs + outputs).max())
        return min(longest, self.model.max_context_tokens)
