"""Fitted latency profiles: versioned JSON files of efficiency factors, by name or by path.

Placeholder resolution until calibration lands: no shipped profiles, so the roofline defaults.
"""

from __future__ import annotations

from servesim.latency.roofline import Efficiency


def resolve_efficiency(profile: str | None, gpu_name: str) -> Efficiency | None:
    """Efficiency factors for `gpu_name` from `profile` (name or path), or None for defaults."""
    return None
