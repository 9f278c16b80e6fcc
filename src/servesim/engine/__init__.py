"""The discrete-event serving simulator: instances, batching policies, KV memory, records.

`simulate(deployment, workload)` is the entry point; `Deployment` and `InstanceGroup` describe
what runs where; the result holds one record per request (see metrics.py for statistics).
"""

from servesim.engine.config import (
    DECODE_KV_POLICIES,
    POLICIES,
    ROLES,
    Deployment,
    InstanceGroup,
)
from servesim.engine.records import Counts, InstanceStats, Records, SimResult, Timeline
from servesim.engine.simulate import simulate
from servesim.engine.transport import DirectTransport, Transport

__all__ = [
    "DECODE_KV_POLICIES",
    "POLICIES",
    "ROLES",
    "Counts",
    "Deployment",
    "DirectTransport",
    "InstanceGroup",
    "InstanceStats",
    "Records",
    "SimResult",
    "Timeline",
    "Transport",
    "simulate",
]
