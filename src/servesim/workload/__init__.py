"""Workloads: arrival processes, length distributions, built-in named workloads, trace replay.

The engine consumes any `Workload` through `chunks(seed, chunk_size)`, which streams
`RequestChunk`s (arrival times, input and output token counts) in arrival order.
"""

from servesim.workload.arrivals import ARRIVALS, ArrivalProcess, Deterministic, Gamma, Poisson
from servesim.workload.base import LengthDistribution, RequestChunk, Workload
from servesim.workload.histogram import JointHistogram
from servesim.workload.lengths import Empirical, Fixed, LogNormal, Mixture, Uniform, load_pairs_csv
from servesim.workload.named import BUILTIN_LENGTHS, LENGTHS, builtin_document, get_lengths
from servesim.workload.synthetic import (
    ClosedLoopWorkload,
    ExponentialThinkTime,
    FixedThinkTime,
    OpenLoopWorkload,
    ThinkTime,
)
from servesim.workload.traces import (
    TRACE_FORMATS,
    TraceStats,
    TraceWorkload,
    read_trace,
    resolve_format,
)

__all__ = [
    "ARRIVALS",
    "BUILTIN_LENGTHS",
    "LENGTHS",
    "TRACE_FORMATS",
    "ArrivalProcess",
    "ClosedLoopWorkload",
    "Deterministic",
    "Empirical",
    "ExponentialThinkTime",
    "Fixed",
    "FixedThinkTime",
    "Gamma",
    "JointHistogram",
    "LengthDistribution",
    "LogNormal",
    "Mixture",
    "OpenLoopWorkload",
    "Poisson",
    "RequestChunk",
    "ThinkTime",
    "TraceStats",
    "TraceWorkload",
    "Uniform",
    "Workload",
    "builtin_document",
    "get_lengths",
    "load_pairs_csv",
    "read_trace",
    "resolve_format",
]
