"""The simulated execution as a Chrome trace-event JSON (Perfetto, chrome://tracing).

Layout of the trace:

- one process per instance; one thread per pipeline stage (its GPU group), holding 'X'
  (complete) events, one per iteration, named by the iteration kind, with the batch size in args;
- 'C' (counter) events on each instance's process: batch size, queue length and KV tokens;
- one process "KV transfers" whose threads are lanes: a transfer goes on the first lane free at
  its start, so complete events on one thread never overlap;
- 'M' (metadata) events name every process and thread and fix their order.

Times are microseconds (`ts`, `dur`), as the format requires; events on each track are sorted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from servesim.report.timeline import Timeline, TransferSpan, timeline_of

US_PER_S = 1e6
TRANSFER_PID_OFFSET = 1  # the KV-transfer process comes after every instance


def _meta(pid: int, tid: int, kind: str, name: str) -> dict[str, Any]:
    return {"ph": "M", "pid": pid, "tid": tid, "name": kind, "args": {"name": name}}


def _order(pid: int, index: int) -> dict[str, Any]:
    return {
        "ph": "M",
        "pid": pid,
        "tid": 0,
        "name": "process_sort_index",
        "args": {"sort_index": index},
    }


def _stage_name(timeline: Timeline, instance: str, stage: int) -> str:
    gpus = timeline.instance_gpus.get(instance)
    suffix = f" (GPUs {','.join(map(str, gpus))})" if gpus else ""
    return f"stage {stage}{suffix}"


def _iteration_events(timeline: Timeline, pids: dict[str, int]) -> list[dict[str, Any]]:
    events = []
    for span in sorted(timeline.iterations, key=lambda s: (s.instance, s.stage, s.start_s)):
        events.append(
            {
                "ph": "X",
                "name": span.kind,
                "cat": "iteration",
                "pid": pids[span.instance],
                "tid": span.stage,
                "ts": span.start_s * US_PER_S,
                "dur": max(span.end_s - span.start_s, 0.0) * US_PER_S,
                "args": {
                    "batch_size": span.batch_size,
                    "num_tokens": span.num_tokens,
                    "num_iterations": span.num_iterations,
                },
            }
        )
    return events


def _counter_events(timeline: Timeline, pids: dict[str, int]) -> list[dict[str, Any]]:
    events = []
    for s in sorted(timeline.samples, key=lambda s: (s.instance, s.t_s)):
        ts, pid = s.t_s * US_PER_S, pids[s.instance]
        for name, value in (
            ("batch size", s.batch_size),
            ("queue length", s.queue_len),
            ("KV tokens", s.kv_tokens),
        ):
            events.append(
                {"ph": "C", "name": name, "pid": pid, "tid": 0, "ts": ts, "args": {name: value}}
            )
    return events


def assign_lanes(transfers: Iterable[TransferSpan]) -> list[tuple[int, TransferSpan]]:
    """(lane, transfer) pairs: each transfer on the lowest lane that is free at its start."""
    lane_free_at: list[float] = []
    placed = []
    for t in sorted(transfers, key=lambda t: (t.start_s, t.end_s, t.request_id)):
        lane = next(
            (i for i, free in enumerate(lane_free_at) if free <= t.start_s), len(lane_free_at)
        )
        if lane == len(lane_free_at):
            lane_free_at.append(t.end_s)
        lane_free_at[lane] = max(t.end_s, t.start_s)
        placed.append((lane, t))
    return placed


def _transfer_events(timeline: Timeline, pid: int) -> list[dict[str, Any]]:
    events = []
    for lane, t in assign_lanes(timeline.transfers):
        events.append(
            {
                "ph": "X",
                "name": f"KV r{t.request_id}",
                "cat": "kv_transfer",
                "pid": pid,
                "tid": lane,
                "ts": t.start_s * US_PER_S,
                "dur": max(t.end_s - t.start_s, 0.0) * US_PER_S,
                "args": {
                    "request_id": t.request_id,
                    "src": t.src,
                    "dst": t.dst,
                    "bytes": t.num_bytes,
                },
            }
        )
    events.sort(key=lambda e: (e["tid"], e["ts"]))
    return events


def _metadata(
    timeline: Timeline, pids: dict[str, int], transfer_pid: int, num_lanes: int
) -> list[dict[str, Any]]:
    events = []
    stages: dict[str, set[int]] = {name: {0} for name in pids}
    for span in timeline.iterations:
        stages[span.instance].add(span.stage)
    for name, pid in pids.items():
        events += [_meta(pid, 0, "process_name", name), _order(pid, pid)]
        events += [
            _meta(pid, k, "thread_name", _stage_name(timeline, name, k))
            for k in sorted(stages[name])
        ]
    if num_lanes:
        events += [
            _meta(transfer_pid, 0, "process_name", "KV transfers"),
            _order(transfer_pid, transfer_pid),
        ]
        events += [
            _meta(transfer_pid, lane, "thread_name", f"lane {lane}") for lane in range(num_lanes)
        ]
    return events


def chrome_trace(result: Any) -> dict[str, Any]:
    """The trace-event JSON object (`traceEvents`, `displayTimeUnit`) of a timeline or result."""
    timeline = timeline_of(result)
    pids = {name: i + 1 for i, name in enumerate(timeline.instances())}
    transfer_pid = len(pids) + TRANSFER_PID_OFFSET
    transfers = _transfer_events(timeline, transfer_pid)
    num_lanes = 1 + max((e["tid"] for e in transfers), default=-1)
    events = _metadata(timeline, pids, transfer_pid, num_lanes)
    events += _iteration_events(timeline, pids) + _counter_events(timeline, pids) + transfers
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"generator": "servesim"}}


def write_chrome_trace(result: Any, path: Path | str) -> Path:
    """Write the simulated execution of `result` as Chrome trace-event JSON at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(chrome_trace(result), separators=(",", ":")))
    return path


def busy_time_s(trace: dict[str, Any], stage: int = 0) -> dict[str, float]:
    """Seconds each instance spent in iterations on pipeline `stage`, read back from a trace."""
    names = {
        e["pid"]: e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    busy: dict[str, float] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e.get("cat") == "iteration" and e["tid"] == stage:
            key = names[e["pid"]]
            busy[key] = busy.get(key, 0.0) + e["dur"] / US_PER_S
    return busy
