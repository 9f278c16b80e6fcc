"""Link statistics computed afterwards from what a `FlowNetwork` recorded.

Utilization of a link over a span = bytes it carried / (capacity * span). Background load is
not counted as carried bytes; compare against the effective capacity if that is what you need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from servesim.errors import require
from servesim.network.flows import FlowRecord


@dataclass(frozen=True)
class LinkStats:
    """Totals of one link over a run."""

    name: str
    num_bytes: float
    utilization: float


def link_utilization(
    link_bytes: Sequence[float], capacities_bytes_per_s: Sequence[float], span_s: float
) -> list[float]:
    """Utilization (0..1) of every link over a span of `span_s` seconds."""
    require(span_s > 0, "span_s", span_s, "a duration > 0 s")
    return [b / (c * span_s) for b, c in zip(link_bytes, capacities_bytes_per_s, strict=True)]


def bottleneck_link(utilization: Sequence[float]) -> int | None:
    """Index of the most utilized link (lowest index on ties); None when nothing was carried."""
    best = max(range(len(utilization)), key=lambda i: (utilization[i], -i), default=None)
    if best is None or utilization[best] <= 0:
        return None
    return best


def link_stats(
    names: Sequence[str],
    link_bytes: Sequence[float],
    capacities_bytes_per_s: Sequence[float],
    span_s: float,
) -> list[LinkStats]:
    """One `LinkStats` per link that carried bytes, most utilized first."""
    utilization = link_utilization(link_bytes, capacities_bytes_per_s, span_s)
    stats = [
        LinkStats(names[i], link_bytes[i], utilization[i])
        for i in range(len(names))
        if link_bytes[i] > 0
    ]
    return sorted(stats, key=lambda s: -s.utilization)


def utilization_over_time(
    series: Sequence[tuple[float, float]], capacity_bytes_per_s: float, end_s: float, bin_s: float
) -> list[float]:
    """Mean utilization of a link in consecutive bins of `bin_s` seconds up to `end_s`.

    `series` is the link's (time_s, rate bytes/s) change points (`FlowNetwork.link_rate_series`);
    the rate holds until the next point.
    """
    require(bin_s > 0, "bin_s", bin_s, "a duration > 0 s")
    require(end_s > 0, "end_s", end_s, "a time > 0 s")
    num_bins = max(1, int(-(-end_s // bin_s)))
    busy_bytes = [0.0] * num_bins
    for (t0, rate), (t1, _) in zip(series, [*series[1:], (end_s, 0.0)], strict=True):
        _spread(busy_bytes, bin_s, min(t0, end_s), min(t1, end_s), rate)
    return [b / (capacity_bytes_per_s * bin_s) for b in busy_bytes]


def _spread(busy_bytes: list[float], bin_s: float, t0: float, t1: float, rate: float) -> None:
    first = int(t0 // bin_s)
    for index in range(first, len(busy_bytes)):
        low, high = max(t0, index * bin_s), min(t1, (index + 1) * bin_s)
        if high <= low:
            break
        busy_bytes[index] += rate * (high - low)


def transfer_time_by_tag(records: Sequence[FlowRecord]) -> dict[Hashable, float]:
    """Per tag (e.g. request id): last finish minus first start over its flows, seconds."""
    spans: dict[Hashable, list[float]] = defaultdict(lambda: [float("inf"), float("-inf")])
    for record in records:
        assert isinstance(record.tag, Hashable)
        span = spans[record.tag]
        span[0], span[1] = min(span[0], record.start_s), max(span[1], record.finish_s)
    return {tag: end - begin for tag, (begin, end) in spans.items()}
