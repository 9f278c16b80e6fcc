"""Closed-loop driving: C clients, each sending its next request when its previous one ends.

A request ends when it finishes or is rejected; the next one arrives a think time later. The
k-th request to arrive takes the k-th (input, output) pair of the workload's length stream and
the k-th think time of its think-time stream, so the run is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator

from servesim.engine.events import K_ARRIVAL, PRIO_ARRIVAL
from servesim.engine.loop import Engine
from servesim.workload.synthetic import ClosedLoopWorkload


def _flatten(chunks: Iterator[tuple]) -> Iterator[tuple]:
    for arrays in chunks:
        yield from zip(*(a.tolist() for a in arrays), strict=True)


class ClosedLoopDriver:
    """Feeds a closed-loop workload into an engine through arrival events."""

    def __init__(self, engine: Engine, workload: ClosedLoopWorkload, seed: int) -> None:
        self.engine = engine
        self._lengths = _flatten(workload.lengths_stream(seed))
        self._thinks = (t for (t,) in _flatten((a,) for a in workload.think_time_stream(seed)))
        self._to_send = workload.num_requests
        self._concurrency = workload.concurrency
        engine.on_finish = self.on_finish

    def start(self) -> None:
        """Every client sends its first request at time 0."""
        for _ in range(min(self._concurrency, self._to_send)):
            self._schedule(0.0)

    def _schedule(self, t: float) -> None:
        self._to_send -= 1
        self.engine.push(t, PRIO_ARRIVAL, K_ARRIVAL, self)

    def on_finish(self, rid: int, t: float) -> None:
        if self._to_send > 0:
            self._schedule(t + next(self._thinks))

    def arrive(self, t: float) -> None:
        engine = self.engine
        inp, out = next(self._lengths)
        rid = engine.rec.extend([t], [inp], [out])
        if engine.limits_reject(inp, out):
            engine.reject(rid, t)
        else:
            engine.arrive(rid, t)
