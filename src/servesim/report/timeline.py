"""The timeline contract: what a simulation recorded over time, as plain records.

The engine (with `timeline=True`) keeps iteration spans per instance, queue-depth / batch / KV
samples and KV-transfer spans. This module names the fields the report reads and adapts any
object with those attribute names (duck typing), so the engine never imports the report:

- iteration spans: `instance`, `start_s`, `end_s`, `kind`, `batch_size` (optional `stage`,
  `num_tokens`);
- instance samples: `instance`, `t_s`, `batch_size`, `queue_len`, `kv_tokens`;
- KV transfers: `request_id`, `src`, `dst`, `start_s`, `end_s` (optional `num_bytes`).

`timeline_of(result)` accepts a `Timeline`, a result whose `.timeline` holds one (or an object
with `iterations`, `samples`, `transfers`), or the engine's own compact timeline (`spans` per
instance as (start_s, end_s, kind, batch_size, num_iterations), `queue_samples` as (t_s, instance,
queued, kv_tokens), `transfers` as (request_id, src, dst, start_s, end_s)), whose instances are
named `{role}-{index}` from `result.instances`. Samples round-trip through
`instances.csv`, the file the report reads from a simulate output folder.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servesim.errors import InputError

SAMPLE_COLUMNS = ("instance", "t_s", "batch_size", "queue_len", "kv_tokens")


@dataclass(frozen=True)
class IterationSpan:
    """One batch step of one instance (or one pipeline stage of it), in simulated seconds."""

    instance: str
    start_s: float
    end_s: float
    kind: str  # "prefill", "decode" or "mixed"
    batch_size: int
    stage: int = 0
    num_tokens: int = 0
    num_iterations: int = 1  # a decode stretch the fast engine jumped over is one span


@dataclass(frozen=True)
class InstanceSample:
    """State of one instance at time `t_s`: running batch, waiting queue, KV tokens held."""

    instance: str
    t_s: float
    batch_size: int
    queue_len: int
    kv_tokens: int


@dataclass(frozen=True)
class TransferSpan:
    """The KV-cache transfer of one request from a prefill to a decode instance."""

    request_id: int
    src: str
    dst: str
    start_s: float
    end_s: float
    num_bytes: float = 0.0


@dataclass(frozen=True)
class Timeline:
    """Everything the timeline figures and the Chrome trace need."""

    iterations: tuple[IterationSpan, ...] = ()
    samples: tuple[InstanceSample, ...] = ()
    transfers: tuple[TransferSpan, ...] = ()
    instance_gpus: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def instances(self) -> list[str]:
        """Instance names in first-seen order over iterations, then samples."""
        seen = dict.fromkeys(s.instance for s in self.iterations)
        seen.update(dict.fromkeys(s.instance for s in self.samples))
        return list(seen)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _span(obj: Any) -> IterationSpan:
    return IterationSpan(
        instance=str(_get(obj, "instance")),
        start_s=float(_get(obj, "start_s")),
        end_s=float(_get(obj, "end_s")),
        kind=str(_get(obj, "kind", "step")),
        batch_size=int(_get(obj, "batch_size", 0)),
        stage=int(_get(obj, "stage", 0) or 0),
        num_tokens=int(_get(obj, "num_tokens", 0) or 0),
        num_iterations=int(_get(obj, "num_iterations", 1) or 1),
    )


def _sample(obj: Any) -> InstanceSample:
    return InstanceSample(
        instance=str(_get(obj, "instance")),
        t_s=float(_get(obj, "t_s")),
        batch_size=int(_get(obj, "batch_size", 0)),
        queue_len=int(_get(obj, "queue_len", 0)),
        kv_tokens=int(_get(obj, "kv_tokens", 0)),
    )


def _transfer(obj: Any) -> TransferSpan:
    return TransferSpan(
        request_id=int(_get(obj, "request_id")),
        src=str(_get(obj, "src")),
        dst=str(_get(obj, "dst")),
        start_s=float(_get(obj, "start_s")),
        end_s=float(_get(obj, "end_s")),
        num_bytes=float(_get(obj, "num_bytes", 0.0) or 0.0),
    )


def timeline_of(result: Any) -> Timeline:
    """The `Timeline` held by a simulation result (or given directly); InputError if none."""
    if isinstance(result, Timeline):
        return result
    source = _get(result, "timeline", None) or result
    if isinstance(source, Timeline):
        return source
    if _get(source, "spans", None) is not None:
        return _from_engine(source, instance_names(result, len(_get(source, "spans"))))
    iterations = _get(source, "iterations", None)
    if iterations is None:
        raise InputError("timeline", type(result).__name__, "a result simulated with timeline=True")
    gpus = _get(source, "instance_gpus", None) or {}
    return Timeline(
        iterations=tuple(_span(s) for s in iterations),
        samples=tuple(_sample(s) for s in _get(source, "samples", None) or ()),
        transfers=tuple(_transfer(s) for s in _get(source, "transfers", None) or ()),
        instance_gpus={str(k): tuple(int(g) for g in v) for k, v in dict(gpus).items()},
    )


def instance_names(result: Any, count: int) -> list[str]:
    """`{role}-{index}` per instance of an engine result; `instance-{i}` when it has no stats."""
    stats = list(_get(result, "instances", None) or ())
    if len(stats) != count:
        return [f"instance-{i}" for i in range(count)]
    return [f"{_get(s, 'role', 'instance')}-{_get(s, 'index', i)}" for i, s in enumerate(stats)]


def _batch_at(spans: list[IterationSpan], starts: list[float], t_s: float) -> int:
    """Batch size of the last span started at or before `t_s` that is still running."""
    i = bisect.bisect_right(starts, t_s) - 1
    return spans[i].batch_size if i >= 0 and spans[i].end_s > t_s else 0


def _from_engine(source: Any, names: list[str]) -> Timeline:
    """Adapt the engine's compact tuples (see the module docstring)."""
    per_instance = [
        [
            IterationSpan(names[i], float(a), float(b), str(kind), int(n), num_iterations=int(k))
            for a, b, kind, n, k in sorted(spans)
        ]
        for i, spans in enumerate(_get(source, "spans"))
    ]
    starts = [[s.start_s for s in spans] for spans in per_instance]
    samples = tuple(
        InstanceSample(
            names[inst],
            float(t),
            _batch_at(per_instance[inst], starts[inst], float(t)),
            int(q),
            int(kv),
        )
        for t, inst, q, kv in _get(source, "queue_samples", None) or ()
    )
    transfers = tuple(
        TransferSpan(int(rid), names[src], names[dst], float(a), float(b))
        for rid, src, dst, a, b in _get(source, "transfers", None) or ()
    )
    iterations = tuple(span for spans in per_instance for span in spans)
    return Timeline(iterations, samples, transfers)


def write_instance_samples(samples: Iterable[InstanceSample], path: Path) -> None:
    """Write samples as `instances.csv` (instance, t_s, batch_size, queue_len, kv_tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_COLUMNS)
        for s in samples:
            writer.writerow((s.instance, repr(s.t_s), s.batch_size, s.queue_len, s.kv_tokens))


def read_instance_samples(path: Path) -> list[InstanceSample]:
    """Read an `instances.csv` written by `write_instance_samples` (or by hand)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in SAMPLE_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise InputError(
            f"{path.name} columns", ",".join(rows[0]), f"needs {', '.join(SAMPLE_COLUMNS)}"
        )
    return [_sample({k: (v if k == "instance" else float(v)) for k, v in r.items()}) for r in rows]
