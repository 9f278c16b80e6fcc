"""A joint 2-D histogram of (input, output) lengths, sampled exactly.

Built-in workloads are stored as counts on log-spaced, integer-aligned cells, which keeps the
input/output correlation of the source while taking a few KB. A sample picks a cell with
probability proportional to its count, then an integer pair uniformly inside the cell. When
`max_total_tokens` is set (the source was filtered to input + output <= max), only the pairs of
a cell that satisfy it are drawn, so the filter holds for every sample. Each sample consumes
exactly three uniforms (no rejection loop), and the means are computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from servesim.errors import require


@dataclass(frozen=True, slots=True)
class _Cells:
    """Precomputed sampling tables (derived from the histogram, not part of its identity)."""

    cum_weight: np.ndarray  # cumulative cell probabilities, last == 1
    lo_in: np.ndarray
    width_in: np.ndarray
    lo_out: np.ndarray
    width_out: np.ndarray
    partial: np.ndarray  # index into the partial-cell tables, or -1 for a full cell
    partial_cdf: np.ndarray  # per partial cell k: values in [k, k + 1], cumulative over inputs
    partial_offset: np.ndarray  # start of each partial cell's segment in partial_cdf / counts
    partial_valid: np.ndarray  # per input value of a partial cell: number of valid outputs
    mean_input_tokens: float
    mean_output_tokens: float


def _valid_outputs(a: int, a_hi: int, b: int, b_hi: int, max_total: int) -> np.ndarray:
    """For each input in [a, a_hi]: how many outputs in [b, b_hi] keep input + output <= max."""
    inputs = np.arange(a, a_hi + 1)
    return np.clip(np.minimum(b_hi, max_total - inputs) - b + 1, 0, b_hi - b + 1)


@dataclass(frozen=True, slots=True, eq=False)
class JointHistogram:
    """Counts of (input, output) pairs on integer cells.

    Cell (i, j) holds inputs in [input_edges[i], input_edges[i+1] - 1] and outputs in
    [output_edges[j], output_edges[j+1] - 1]. `cells` is an (m, 3) int array of (i, j, count).
    """

    name: str
    input_edges: np.ndarray
    output_edges: np.ndarray
    cells: np.ndarray
    max_total_tokens: int | None = None
    _tables: list[_Cells] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for label in ("input_edges", "output_edges"):
            edges = np.asarray(getattr(self, label), dtype=np.int64)
            ok = edges.ndim == 1 and edges.size >= 2 and edges[0] >= 1
            require(
                ok and bool(np.all(np.diff(edges) > 0)),
                label,
                edges.tolist()[:5],
                "increasing ints >= 1",
            )
            object.__setattr__(self, label, edges)
        cells = np.asarray(self.cells, dtype=np.int64).reshape(-1, 3)
        require(
            cells.shape[0] > 0 and bool(np.all(cells[:, 2] >= 0)),
            "cells",
            cells.shape,
            "counts >= 0",
        )
        require(
            bool(np.all(cells[:, 0] < self.input_edges.size - 1)), "cells", "input bin", "in range"
        )
        require(
            bool(np.all(cells[:, 1] < self.output_edges.size - 1)),
            "cells",
            "output bin",
            "in range",
        )
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "_tables", [])

    def _build(self) -> _Cells:
        i, j, count = self.cells.T
        lo_in, hi_in = self.input_edges[i], self.input_edges[i + 1] - 1
        lo_out, hi_out = self.output_edges[j], self.output_edges[j + 1] - 1
        width_in, width_out = hi_in - lo_in + 1, hi_out - lo_out + 1
        cap = self.max_total_tokens
        is_partial = np.zeros(count.size, dtype=bool) if cap is None else hi_in + hi_out > cap
        valid_frac = np.ones(count.size)
        sum_in = (lo_in + hi_in) / 2.0 * 1.0
        sum_out = (lo_out + hi_out) / 2.0 * 1.0
        segments: list[np.ndarray] = []
        partial = np.full(count.size, -1, dtype=np.int64)
        for c in np.flatnonzero(is_partial):
            valid = _valid_outputs(lo_in[c], hi_in[c], lo_out[c], hi_out[c], int(cap))  # type: ignore[arg-type]
            num_valid = int(valid.sum())
            valid_frac[c] = num_valid / (width_in[c] * width_out[c])
            if num_valid:
                inputs = np.arange(lo_in[c], hi_in[c] + 1)
                sum_in[c] = float(np.dot(valid, inputs)) / num_valid
                sum_out[c] = float(np.dot(valid, 2 * lo_out[c] + valid - 1)) / 2.0 / num_valid
                partial[c] = len(segments)
                segments.append(valid)
        weight = count * valid_frac
        require(weight.sum() > 0, "cells", "all empty", "at least one cell with count > 0")
        prob = weight / weight.sum()
        offsets = np.cumsum([0] + [s.size for s in segments])
        cdf = [k + np.cumsum(s) / s.sum() for k, s in enumerate(segments)]
        return _Cells(
            cum_weight=np.cumsum(prob),
            lo_in=lo_in,
            width_in=width_in,
            lo_out=lo_out,
            width_out=width_out,
            partial=partial,
            partial_cdf=np.concatenate(cdf) if cdf else np.zeros(0),
            partial_offset=offsets,
            partial_valid=np.concatenate(segments) if segments else np.zeros(0, dtype=np.int64),
            mean_input_tokens=float(np.dot(prob, sum_in)),
            mean_output_tokens=float(np.dot(prob, sum_out)),
        )

    def _t(self) -> _Cells:
        if not self._tables:
            self._tables.append(self._build())
        return self._tables[0]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        t = self._t()
        u = rng.random((n, 3))
        cell = np.minimum(np.searchsorted(t.cum_weight, u[:, 0], side="right"), t.lo_in.size - 1)
        inp = t.lo_in[cell] + (u[:, 1] * t.width_in[cell]).astype(np.int64)
        out = t.lo_out[cell] + (u[:, 2] * t.width_out[cell]).astype(np.int64)
        part = t.partial[cell]
        sel = np.flatnonzero(part >= 0)
        if sel.size:
            k = part[sel]
            pos = np.searchsorted(t.partial_cdf, k + u[sel, 1], side="right")
            pos = np.minimum(pos, t.partial_offset[k + 1] - 1)
            inp[sel] = t.lo_in[cell[sel]] + (pos - t.partial_offset[k])
            out[sel] = t.lo_out[cell[sel]] + (u[sel, 2] * t.partial_valid[pos]).astype(np.int64)
        return inp, out

    @property
    def mean_input_tokens(self) -> float:
        return self._t().mean_input_tokens

    @property
    def mean_output_tokens(self) -> float:
        return self._t().mean_output_tokens

    def quantile(self, q: float) -> tuple[float, float]:
        """Approximate q-quantiles of input and output (marginals, interpolated within cells)."""
        return _marginal_quantile(self, 0, q), _marginal_quantile(self, 1, q)


def _marginal_quantile(h: JointHistogram, axis: int, q: float) -> float:
    edges = h.input_edges if axis == 0 else h.output_edges
    counts = np.bincount(h.cells[:, axis], weights=h.cells[:, 2], minlength=edges.size - 1)
    cdf = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
    return float(np.interp(q, cdf, edges.astype(float)))
