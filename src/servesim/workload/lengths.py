"""Length distributions: (input tokens, output tokens) pairs per request.

`Fixed`, `Uniform`, `LogNormal` (optionally correlated and truncated) and `Empirical` (resampling
pairs read from a CSV file). Every distribution returns int64 arrays with all values >= 1 and
reports its exact (or, for `LogNormal`, quadrature-accurate) means, which the planner uses.
"""

from __future__ import annotations

import csv
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from servesim.errors import InputError, require

# Column pairs accepted in a CSV of lengths, in order of preference.
LENGTH_HEADERS: tuple[tuple[str, str], ...] = (
    ("input_tokens", "output_tokens"),
    ("num_prefill_tokens", "num_decode_tokens"),
)


def check_tokens(field_name: str, value: object) -> None:
    """Raise InputError unless `value` is an integer token count >= 1."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
    require(ok, field_name, value, "an integer >= 1")


def check_positive(field_name: str, value: object) -> None:
    """Raise InputError unless `value` is a finite real number > 0."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and float(value) > 0  # type: ignore[arg-type]
    require(ok, field_name, value, "a finite number > 0")


@dataclass(frozen=True, slots=True)
class Fixed:
    """Every request has the same input and output length."""

    input_tokens: int
    output_tokens: int
    name: str = "fixed"

    def __post_init__(self) -> None:
        check_tokens("input_tokens", self.input_tokens)
        check_tokens("output_tokens", self.output_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.full(n, self.input_tokens, dtype=np.int64),
            np.full(n, self.output_tokens, dtype=np.int64),
        )

    @property
    def mean_input_tokens(self) -> float:
        return float(self.input_tokens)

    @property
    def mean_output_tokens(self) -> float:
        return float(self.output_tokens)


@dataclass(frozen=True, slots=True)
class Uniform:
    """Input and output lengths drawn independently and uniformly from inclusive integer ranges."""

    min_input_tokens: int
    max_input_tokens: int
    min_output_tokens: int
    max_output_tokens: int
    name: str = "uniform"

    def __post_init__(self) -> None:
        for name in (
            "min_input_tokens",
            "max_input_tokens",
            "min_output_tokens",
            "max_output_tokens",
        ):
            check_tokens(name, getattr(self, name))
        require(
            self.max_input_tokens >= self.min_input_tokens,
            "max_input_tokens",
            self.max_input_tokens,
            f">= min_input_tokens ({self.min_input_tokens})",
        )
        require(
            self.max_output_tokens >= self.min_output_tokens,
            "max_output_tokens",
            self.max_output_tokens,
            f">= min_output_tokens ({self.min_output_tokens})",
        )

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        inp = rng.integers(self.min_input_tokens, self.max_input_tokens + 1, n, dtype=np.int64)
        out = rng.integers(self.min_output_tokens, self.max_output_tokens + 1, n, dtype=np.int64)
        return inp, out

    @property
    def mean_input_tokens(self) -> float:
        return (self.min_input_tokens + self.max_input_tokens) / 2.0

    @property
    def mean_output_tokens(self) -> float:
        return (self.min_output_tokens + self.max_output_tokens) / 2.0


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal input and output lengths, rounded up to whole tokens.

    `*_median_tokens` is exp(mu) and `*_sigma` the standard deviation of the log. `correlation`
    is the correlation of the two logs. When `max_input_tokens` / `max_output_tokens` /
    `max_total_tokens` (input + output) are given, the joint distribution is truncated there
    (pairs beyond a cap are redrawn, never clipped), so the caps are hard limits and no mass piles
    up at them. With `fit_input_to_total`, a prompt too long for `max_total_tokens` is instead cut
    to `max_total_tokens - output` (how DistServe prepared LongBench); only outputs that leave no
    room at all are redrawn.
    """

    input_median_tokens: float
    input_sigma: float
    output_median_tokens: float
    output_sigma: float
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    correlation: float = 0.0
    max_total_tokens: int | None = None
    fit_input_to_total: bool = False
    name: str = "lognormal"
    _means: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("input_median_tokens", "input_sigma", "output_median_tokens", "output_sigma"):
            check_positive(name, getattr(self, name))
        for name in ("max_input_tokens", "max_output_tokens", "max_total_tokens"):
            if getattr(self, name) is not None:
                check_tokens(name, getattr(self, name))
        ok = isinstance(self.correlation, numbers.Real) and -1.0 < self.correlation < 1.0
        require(ok, "correlation", self.correlation, "a number strictly between -1 and 1")
        need_total = not self.fit_input_to_total or self.max_total_tokens is not None
        require(need_total, "fit_input_to_total", True, "needs max_total_tokens")
        object.__setattr__(self, "_means", [])  # filled on first use; the grid costs ~0.1 s

    @classmethod
    def from_means(
        cls,
        input_mean_tokens: float,
        input_sigma: float,
        output_mean_tokens: float,
        output_sigma: float,
        **kwargs: object,
    ) -> LogNormal:
        """Build from the means of the untruncated log-normals (median = mean / exp(sigma^2/2))."""
        check_positive("input_mean_tokens", input_mean_tokens)
        check_positive("output_mean_tokens", output_mean_tokens)
        check_positive("input_sigma", input_sigma)
        check_positive("output_sigma", output_sigma)
        return cls(
            input_median_tokens=input_mean_tokens / math.exp(input_sigma**2 / 2),
            input_sigma=input_sigma,
            output_median_tokens=output_mean_tokens / math.exp(output_sigma**2 / 2),
            output_sigma=output_sigma,
            **kwargs,  # type: ignore[arg-type]
        )

    def _transform(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map standard-normal pairs (n, 2) to token counts and a mask of the pairs kept."""
        rho = self.correlation
        z_out = rho * z[:, 0] + math.sqrt(1.0 - rho * rho) * z[:, 1]
        inp = np.ceil(self.input_median_tokens * np.exp(self.input_sigma * z[:, 0]))
        out = np.ceil(self.output_median_tokens * np.exp(self.output_sigma * z_out))
        keep = np.ones(inp.shape, dtype=bool)
        if self.max_input_tokens is not None:
            keep &= inp <= self.max_input_tokens
        if self.max_output_tokens is not None:
            keep &= out <= self.max_output_tokens
        if self.max_total_tokens is not None and self.fit_input_to_total:
            keep &= out <= self.max_total_tokens - 1
            inp = np.minimum(inp, self.max_total_tokens - out)
        elif self.max_total_tokens is not None:
            keep &= inp + out <= self.max_total_tokens
        return inp, out, keep

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        inp, out, keep = self._transform(rng.standard_normal((n, 2)))
        bad = np.flatnonzero(~keep)
        for _ in range(1000):
            if not bad.size:
                break
            inp[bad], out[bad], keep_bad = self._transform(rng.standard_normal((bad.size, 2)))
            bad = bad[~keep_bad]
        caps = (self.max_input_tokens, self.max_output_tokens, self.max_total_tokens)
        require(not bad.size, "caps", caps, "caps that keep a usable share of the mass")
        return inp.astype(np.int64), out.astype(np.int64)

    def _quadrature_means(self) -> tuple[float, float]:
        # A fine midpoint grid (not Gauss-Hermite): the truncation and the rounding up are
        # discontinuous, which Gauss-Hermite nodes resolve poorly.
        nodes = np.linspace(-7.0, 7.0, 1001)
        pdf = np.exp(-0.5 * nodes**2)
        z = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
        w = np.outer(pdf, pdf).ravel()
        inp, out, keep = self._transform(z)
        w = w * keep
        caps = (self.max_input_tokens, self.max_output_tokens, self.max_total_tokens)
        require(w.sum() > 1e-9, "caps", caps, "caps that keep a usable share of the mass")
        return float(np.dot(w, inp) / w.sum()), float(np.dot(w, out) / w.sum())

    def _cached_means(self) -> list[float]:
        if not self._means:
            self._means.extend(self._quadrature_means())
        return self._means

    @property
    def mean_input_tokens(self) -> float:
        return self._cached_means()[0]

    @property
    def mean_output_tokens(self) -> float:
        return self._cached_means()[1]


@dataclass(frozen=True, slots=True, eq=False)
class Mixture:
    """A weighted mixture of length distributions (e.g. one log-normal per source task)."""

    name: str
    components: tuple[LogNormal, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        require(len(self.components) >= 1, "components", 0, "at least one component")
        ok = len(self.weights) == len(self.components) and all(w > 0 for w in self.weights)
        require(ok, "weights", self.weights, "one weight > 0 per component")

    def _p(self) -> np.ndarray:
        w = np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        which = np.searchsorted(np.cumsum(self._p()), rng.random(n), side="right")
        which = np.minimum(which, len(self.components) - 1)
        inp = np.empty(n, dtype=np.int64)
        out = np.empty(n, dtype=np.int64)
        for k, comp in enumerate(self.components):
            idx = np.flatnonzero(which == k)
            inp[idx], out[idx] = comp.sample(rng, idx.size)
        return inp, out

    @property
    def mean_input_tokens(self) -> float:
        return float(np.dot(self._p(), [c.mean_input_tokens for c in self.components]))

    @property
    def mean_output_tokens(self) -> float:
        return float(np.dot(self._p(), [c.mean_output_tokens for c in self.components]))


@dataclass(frozen=True, slots=True, eq=False)
class Empirical:
    """Resample (input, output) pairs, with replacement, from a table of observed pairs."""

    input_tokens: np.ndarray
    output_tokens: np.ndarray
    name: str = "empirical"

    def __post_init__(self) -> None:
        inp = np.asarray(self.input_tokens)
        out = np.asarray(self.output_tokens)
        require(
            inp.ndim == 1 and inp.shape == out.shape, "pairs", inp.shape, "two equal 1-D arrays"
        )
        require(inp.size > 0, "pairs", 0, "at least one (input, output) pair")
        require(np.issubdtype(inp.dtype, np.integer), "input_tokens", inp.dtype, "integers")
        require(np.issubdtype(out.dtype, np.integer), "output_tokens", out.dtype, "integers")
        require(bool(inp.min() >= 1), "input_tokens", int(inp.min()), "every value >= 1")
        require(bool(out.min() >= 1), "output_tokens", int(out.min()), "every value >= 1")
        object.__setattr__(self, "input_tokens", inp.astype(np.int64))
        object.__setattr__(self, "output_tokens", out.astype(np.int64))

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> Empirical:
        """Load pairs from a CSV with a header; see `load_pairs_csv`."""
        inp, out = load_pairs_csv(path)
        return cls(inp, out, name=name or Path(path).stem)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, self.input_tokens.size, n)
        return self.input_tokens[idx], self.output_tokens[idx]

    @property
    def mean_input_tokens(self) -> float:
        return float(self.input_tokens.mean())

    @property
    def mean_output_tokens(self) -> float:
        return float(self.output_tokens.mean())


def _pair_columns(path: Path, header: list[str]) -> tuple[int, int]:
    for in_col, out_col in LENGTH_HEADERS:
        if in_col in header and out_col in header:
            return header.index(in_col), header.index(out_col)
    allowed = " or ".join(f"'{a},{b}'" for a, b in LENGTH_HEADERS)
    raise InputError(f"{path}:1: header", ",".join(header), f"must contain columns {allowed}")


def _parse_count(path: Path, line: int, column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{path}:{line}: {column}", text, "an integer >= 1") from None
    if value < 1:
        raise InputError(f"{path}:{line}: {column}", text, "an integer >= 1")
    return value


def load_pairs_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read (input_tokens, output_tokens) int64 arrays from a CSV file with a header.

    The header must name `input_tokens,output_tokens` or `num_prefill_tokens,num_decode_tokens`
    (other columns are ignored). Any bad row stops with an InputError naming file, line and field.
    """
    path = Path(path)
    require(path.is_file(), "lengths file", str(path), "an existing CSV file")
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = [h.strip() for h in next(rows, [])]
        i_in, i_out = _pair_columns(path, header)
        inp: list[int] = []
        out: list[int] = []
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise InputError(f"{path}:{line}: row", ",".join(row), f"{len(header)} fields")
            inp.append(_parse_count(path, line, header[i_in], row[i_in]))
            out.append(_parse_count(path, line, header[i_out], row[i_out]))
    require(bool(inp), "lengths file", str(path), "at least one data row")
    return np.array(inp, dtype=np.int64), np.array(out, dtype=np.int64)
