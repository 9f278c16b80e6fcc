"""Max-min fair rates of flows over shared links, by progressive filling.

All flows start at rate 0 and grow together; when a link is full, the flows crossing it freeze
at their current rate (that link is their bottleneck) and the rest keep growing. The result is
the unique max-min fair allocation: no flow can get more without taking from a flow that has no
more than it.

This is a pure function; `FlowNetwork` calls it on the connected component of flows touched by
a change, and the tests call it on all flows as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NO_LINK = -1
"""Bottleneck of a flow with an empty path (it is not limited by any link)."""


def max_min_rates(
    paths: Sequence[Sequence[int]],
    capacities_bytes_per_s: Sequence[float],
    weights: Sequence[float] | None = None,
) -> tuple[list[float], list[int]]:
    """Max-min fair rate (bytes/s) and bottleneck link index of each flow.

    `paths[f]` lists the distinct link indices flow `f` crosses; `capacities_bytes_per_s[l]` is
    what link `l` can carry. A flow with an empty path gets rate inf and bottleneck `NO_LINK`.
    Ties between equally tight links are broken by the lower link index, so the result is
    deterministic.

    `weights[f]` (default 1) makes flow `f` stand for that many flows along the same path: it
    gets `weights[f]` times the fair share. A flow of weight k gives the same rates to every
    other flow as k separate flows on its path (which, by symmetry, get equal rates).
    """
    if weights is None:
        weights = [1.0] * len(paths)
    if paths and paths[0] and all(path == paths[0] for path in paths):
        return _one_path(paths[0], capacities_bytes_per_s, weights)
    members: dict[int, list[int]] = {}
    for flow, path in enumerate(paths):
        for link in path:
            members.setdefault(link, []).append(flow)
    remaining = {link: float(capacities_bytes_per_s[link]) for link in members}
    num_unfrozen = {link: float(sum(weights[f] for f in flows)) for link, flows in members.items()}
    rates = [math.inf] * len(paths)
    bottlenecks = [NO_LINK] * len(paths)
    frozen = [not path for path in paths]
    open_links = set(members)
    while open_links:
        share, link = min((remaining[lk] / num_unfrozen[lk], lk) for lk in open_links)
        for flow in members[link]:
            if frozen[flow]:
                continue
            frozen[flow] = True
            weight = weights[flow]
            rate = share * weight
            rates[flow], bottlenecks[flow] = rate, link
            for other in paths[flow]:
                left = remaining[other] - rate
                remaining[other] = left if left > 0.0 else 0.0  # rounding, never below zero
                num_unfrozen[other] -= weight
                if num_unfrozen[other] <= 0:
                    open_links.discard(other)
    return rates, bottlenecks


def _one_path(
    path: Sequence[int], capacities_bytes_per_s: Sequence[float], weights: Sequence[float]
) -> tuple[list[float], list[int]]:
    """All flows on one path (the common case of one NIC per node): the first step of the
    progressive filling freezes them all on the tightest link, lowest index on ties."""
    total = float(sum(weights))
    share, link = min((float(capacities_bytes_per_s[lk]) / total, lk) for lk in path)
    return [share * weight for weight in weights], [link] * len(weights)
