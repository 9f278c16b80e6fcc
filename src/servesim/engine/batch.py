"""A running decode batch, advanced in closed form between membership changes.

Each running request holds its context in the KV cache; one iteration adds a token to every
request. With `decode_coeffs(n) = (base_s, slope_s)` an iteration over a batch whose contexts
sum to S takes base + slope * S, so k iterations from a boundary with sum S0 take

    T(k) = k * base + slope * (k * S0 + n * k * (k - 1) / 2).

The batch keeps an iteration counter `it`; a request admitted at counter i with d iterations to
go finishes at counter i + d (a min-heap gives the next one), and its context at counter j is
its admission context + (j - i). Nothing here is per iteration: the engine asks how many
iterations remain to the next event and jumps there (exact mode asks for one at a time).
"""

from __future__ import annotations

import math
from heapq import heappop, heappush

from servesim.latency.base import LatencyModel


class DecodeBatch:
    """Running requests of one instance, their iteration counter and the time of the boundary."""

    __slots__ = (
        "_coeffs",
        "_heap",
        "_latency",
        "_num_admitted",
        "_num_removed",
        "it",
        "n",
        "running",
        "sum_ctx",
        "t0",
    )

    def __init__(self, latency: LatencyModel) -> None:
        self._latency = latency
        self._coeffs: list[tuple[float, float]] = [(0.0, 0.0)]  # by batch size, filled on demand
        self._heap: list[tuple[int, int, int]] = []  # (finish counter, admission no., request)
        self._num_admitted = 0
        self._num_removed = 0  # removals outside the heap (preemptions): stale heap entries
        # request -> (admission no., ctx - counter, request)
        self.running: dict[int, tuple[int, int, int]] = {}
        self.it = 0  # iterations run so far (the counter at the current boundary)
        self.t0 = 0.0  # time of the current boundary, seconds
        self.n = 0  # running requests
        self.sum_ctx = 0  # their context tokens at the current boundary

    def coeffs(self, n: int) -> tuple[float, float]:
        """(base_s, slope_s) for a batch of n, cached."""
        table = self._coeffs
        while len(table) <= n:
            table.append(self._latency.decode_coeffs(len(table)))
        return table[n]

    def add(self, rid: int, ctx_tokens: int, num_iterations: int) -> None:
        """Admit a request at the current boundary with `num_iterations` decode steps to run."""
        self._num_admitted += 1
        self.running[rid] = (self._num_admitted, ctx_tokens - self.it, rid)
        heappush(self._heap, (self.it + num_iterations, self._num_admitted, rid))
        self.n += 1
        self.sum_ctx += ctx_tokens

    def remove(self, rid: int) -> int:
        """Take a request out (preemption); returns its context tokens (its heap entry goes
        stale)."""
        ctx = self.running.pop(rid)[1] + self.it
        self._num_removed += 1
        self.n -= 1
        self.sum_ctx -= ctx
        return ctx

    def newest(self) -> int:
        """The most recently admitted running request (the preemption victim)."""
        return next(reversed(self.running))

    def preempt_newest(self, limit_tokens: int) -> list[tuple[int, int]]:
        """Remove the newest running requests until every one left can decode one more token
        within `limit_tokens` of KV; returns (request, context tokens) of each, newest first."""
        out: list[tuple[int, int]] = []
        while self.n and self.sum_ctx + self.n > limit_tokens:
            rid = next(reversed(self.running))
            out.append((rid, self.remove(rid)))
        return out

    def stretch_within(self, free_tokens: int, fast: bool) -> tuple[int, float]:
        """(k, end_s) of the next stretch when `free_tokens` of KV are free: up to the next
        finish or the last iteration before the cache runs out (each iteration takes n tokens);
        exact mode: one iteration."""
        return self.next_stretch(free_tokens // self.n if fast else 1)

    def to_next_finish(self) -> int:
        """Iterations from the current boundary to the next finish (batch must be non-empty)."""
        heap, running = self._heap, self.running
        if not self._num_removed:  # no preemption ever: every heap entry is live
            return heap[0][0] - self.it
        while True:
            f, adm, rid = heap[0]
            entry = running.get(rid)
            if entry is not None and entry[0] == adm:
                return f - self.it
            heappop(heap)

    def next_stretch(self, k_max: int) -> tuple[int, float]:
        """(k, end_s): iterations to the next finish, at most `k_max`, and when they end."""
        k = self.to_next_finish() if self._num_removed else self._heap[0][0] - self.it
        if k > k_max:
            k = k_max
        n = self.n
        try:
            base, slope = self._coeffs[n]
        except IndexError:
            base, slope = self.coeffs(n)
        return k, self.t0 + k * base + slope * (k * self.sum_ctx + n * k * (k - 1) * 0.5)

    def pop_finished(self) -> list[int]:
        """Remove and return the requests finishing at the current boundary (admission order)."""
        done: list[int] = []
        heap, running, it = self._heap, self.running, self.it
        if not self._num_removed:  # every heap entry is live
            while heap and heap[0][0] <= it:
                live = running.pop(heappop(heap)[2])
                self.sum_ctx -= live[1] + it
                done.append(live[2])
            self.n -= len(done)
            return done
        while heap and heap[0][0] <= it:
            _, adm, rid = heappop(heap)
            entry = running.get(rid)
            if entry is not None and entry[0] == adm:
                del running[rid]
                self.n -= 1
                self.sum_ctx -= entry[1] + it
                done.append(rid)
        return done

    def duration_s(self, k: int) -> float:
        """Time of the next k iterations with the current membership."""
        n = self.n
        try:
            base, slope = self._coeffs[n]
        except IndexError:
            base, slope = self.coeffs(n)
        return k * base + slope * (k * self.sum_ctx + n * k * (k - 1) * 0.5)

    def advance(self, k: int) -> float:
        """Run k iterations with the current membership (no one may finish strictly inside);
        returns their duration in seconds."""
        if not k:
            return 0.0
        n, s = self.n, self.sum_ctx
        try:
            base, slope = self._coeffs[n]
        except IndexError:
            base, slope = self.coeffs(n)
        dt = k * base + slope * (k * s + n * k * (k - 1) * 0.5)
        self.t0 += dt
        self.sum_ctx = s + n * k
        self.it += k
        return dt

    def step_to(self, end_s: float) -> None:
        """One iteration timed by another kind of batch (a chunked-prefill mix), ending at
        `end_s`."""
        self.sum_ctx += self.n
        self.it += 1
        self.t0 = end_s

    def iterations_to(self, dt_s: float, k_min: int = 1) -> int:
        """Smallest k >= 0 whose k iterations take at least `dt_s`; `k_min` is a lower bound
        the caller knows for a positive `dt_s` (checked first)."""
        if dt_s <= 0.0:
            return 0
        n = self.n
        try:
            base, slope = self._coeffs[n]
        except IndexError:
            base, slope = self.coeffs(n)
        # T(k) = a*k + b*k*(k-1): solve the quadratic, then settle rounding at the edges.
        a = base + slope * self.sum_ctx
        if dt_s <= a:  # most calls land in the next iteration or the one after
            return 1
        if a <= 0.0:
            raise ValueError(f"decode iteration time must be > 0, got {a} s")
        b = 0.5 * slope * n
        if dt_s <= 2.0 * a + 2.0 * b:
            return 2
        if k_min > 2 and dt_s <= k_min * a + b * k_min * (k_min - 1):
            return k_min
        if b > 0.0:
            k = math.ceil(((b - a) + math.sqrt((a - b) ** 2 + 4.0 * b * dt_s)) / (2.0 * b))
        else:
            k = math.ceil(dt_s / a)
        k = max(k, 1)
        while k > 1 and (k - 1) * a + b * (k - 1) * (k - 2) >= dt_s:
            k -= 1
        while k * a + b * k * (k - 1) < dt_s:
            k += 1
        return k
