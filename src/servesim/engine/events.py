"""Event priorities and kinds of the engine's heap: (time, priority, sequence, kind, a, b)."""

from __future__ import annotations

# Priorities of same-time events (lower first).
PRIO_BOUNDARY, PRIO_SLOT, PRIO_TRANSFER, PRIO_ARRIVAL = 0, 1, 2, 3
# Event kinds.
K_DECODE, K_COLOCATED, K_PREFILL_END, K_SLOT, K_TRANSFER, K_ARRIVAL, K_WAKE = range(7)
INF = float("inf")

Event = tuple[float, int, int, int, object, object]

__all__ = [
    "INF",
    "K_ARRIVAL",
    "K_COLOCATED",
    "K_DECODE",
    "K_PREFILL_END",
    "K_SLOT",
    "K_TRANSFER",
    "K_WAKE",
    "PRIO_ARRIVAL",
    "PRIO_BOUNDARY",
    "PRIO_SLOT",
    "PRIO_TRANSFER",
    "Event",
]
