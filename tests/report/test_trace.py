"""The Chrome trace-event timeline: format, ordering per track, busy time, lanes, engine adapter."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.report.factories import make_timeline

from servesim.report.timeline import Timeline, TransferSpan, timeline_of
from servesim.report.trace import assign_lanes, busy_time_s, chrome_trace, write_chrome_trace

REQUIRED = {
    "X": {"name", "ph", "ts", "dur", "pid", "tid"},
    "C": {"name", "ph", "ts", "pid", "args"},
    "M": {"name", "ph", "pid", "tid", "args"},
}


def check_trace_format(trace: dict[str, Any]) -> None:
    """Required keys, monotone timestamps per track, durations >= 0, no overlap per thread."""
    assert isinstance(trace["traceEvents"], list) and trace["traceEvents"]
    tracks: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for event in trace["traceEvents"]:
        assert REQUIRED[event["ph"]] <= set(event), event
        if event["ph"] == "X":
            assert event["dur"] >= 0
            tracks[("X", event["pid"], event["tid"])].append(event)
        elif event["ph"] == "C":
            tracks[("C", event["pid"], event["name"])].append(event)
    for key, events in tracks.items():
        times = [e["ts"] for e in events]
        assert times == sorted(times), key
        if key[0] == "X":
            for a, b in itertools.pairwise(events):
                assert a["ts"] + a["dur"] <= b["ts"] + 1e-6, (key, a, b)


def test_trace_format(tmp_path: Path) -> None:
    timeline = make_timeline()
    path = write_chrome_trace(timeline, tmp_path / "t.json")
    trace = json.loads(path.read_text())
    check_trace_format(trace)
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert names == {"prefill-0", "prefill-1", "decode-0", "decode-1", "KV transfers"}
    threads = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert "stage 0 (GPUs 0,1)" in threads and "stage 1 (GPUs 4)" in threads
    counters = {e["name"] for e in trace["traceEvents"] if e["ph"] == "C"}
    assert counters == {"batch size", "queue length", "KV tokens"}
    kv = [e for e in trace["traceEvents"] if e.get("cat") == "kv_transfer"]
    assert len(kv) == len(timeline.transfers)


def test_busy_time_equals_span_sums() -> None:
    timeline = make_timeline(seed=3)
    trace = chrome_trace(timeline)
    for stage in (0, 1):
        expected: dict[str, float] = defaultdict(float)
        for span in timeline.iterations:
            if span.stage == stage:
                expected[span.instance] += span.end_s - span.start_s
        got = busy_time_s(trace, stage)
        assert got.keys() == expected.keys()
        for name, busy in expected.items():
            assert got[name] == pytest.approx(busy, rel=1e-9)


intervals = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False), st.floats(1e-3, 10, allow_nan=False)), max_size=60
)


@settings(max_examples=150, deadline=None)
@given(intervals)
def test_lanes_never_overlap_and_are_minimal(pairs: list[tuple[float, float]]) -> None:
    transfers = [TransferSpan(i, "p", "d", a, a + d) for i, (a, d) in enumerate(pairs)]
    placed = assign_lanes(transfers)
    by_lane: dict[int, list[TransferSpan]] = defaultdict(list)
    for lane, t in placed:
        by_lane[lane].append(t)
    for spans in by_lane.values():
        for a, b in itertools.pairwise(spans):
            assert a.end_s <= b.start_s
    # greedy interval partitioning needs exactly as many lanes as the deepest overlap
    points = sorted([(t.start_s, 1) for t in transfers] + [(t.end_s, -1) for t in transfers])
    depth = best = 0
    for _, step in points:  # at equal times an end (-1) sorts before a start: half-open spans
        depth += step
        best = max(best, depth)
    assert len(by_lane) == best


def test_engine_shaped_timeline() -> None:
    engine_timeline = SimpleNamespace(
        spans=[
            [(0.0, 0.5, "prefill", 3, 1), (0.6, 1.0, "prefill", 2, 1)],
            [(0.5, 2.0, "decode", 5, 30)],
        ],
        queue_samples=[(0.2, 0, 4, 100), (0.55, 0, 1, 120), (1.0, 1, 0, 900)],
        transfers=[(7, 0, 1, 0.5, 0.52)],
    )
    result = SimpleNamespace(
        timeline=engine_timeline,
        instances=[
            SimpleNamespace(index=0, role="prefill"),
            SimpleNamespace(index=1, role="decode"),
        ],
    )
    timeline = timeline_of(result)
    assert timeline.instances() == ["prefill-0", "decode-1"]
    assert [s.batch_size for s in timeline.samples] == [3, 0, 5]  # 0.55 s falls in a gap
    assert timeline.transfers[0].src == "prefill-0" and timeline.transfers[0].dst == "decode-1"
    trace = chrome_trace(result)
    check_trace_format(trace)
    assert busy_time_s(trace) == pytest.approx({"prefill-0": 0.9, "decode-1": 1.5})


def test_no_timeline_is_an_input_error() -> None:
    from servesim.errors import InputError

    with pytest.raises(InputError, match="timeline=True"):
        timeline_of(SimpleNamespace(timeline=None))
    assert timeline_of(Timeline()).iterations == ()


def test_busy_time_equals_simulator_utilization(tmp_path: Path) -> None:
    """With the real engine: trace busy time per instance == the simulator's busy time."""
    engine = pytest.importorskip("servesim.engine", reason="engine not available")
    if not hasattr(engine, "simulate"):
        pytest.skip("servesim.engine.simulate is not written yet")
    from servesim.scenario import build_deployment, build_workload, make_scenario

    s = make_scenario(
        None,
        model="opt-13b",
        mode="disagg",
        prefill_instances=1,
        decode_instances=2,
        workload="sharegpt",
        rate=2.0,
        requests=200,
    )
    result = engine.simulate(build_deployment(s), build_workload(s), seed=0, timeline=True)
    trace = json.loads(write_chrome_trace(result, tmp_path / "t.json").read_text())
    check_trace_format(trace)
    busy = busy_time_s(trace)
    assert len(busy) == len(result.instances)
    for stats in result.instances:
        name = f"{stats.role}-{stats.index}"
        assert busy[name] == pytest.approx(stats.busy_s, rel=1e-9, abs=1e-12)
        assert busy[name] / result.end_s == pytest.approx(stats.utilization(result.end_s), rel=1e-9)
