"""Trace readers and TraceWorkload: formats, exact times, rescaling, errors, bounded memory."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from servesim.errors import InputError, UnknownNameError
from servesim.workload import TraceWorkload, read_trace, resolve_format

from .conftest import TRACES, requires_shared

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
PLAIN = "arrival_s,input_tokens,output_tokens\n"


def _all(path: Path, **kwargs: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chunks = list(read_trace(path, **kwargs))  # type: ignore[arg-type]
    return tuple(
        np.concatenate([getattr(c, f) for c in chunks])
        for f in ("arrival_s", "input_tokens", "output_tokens")
    )  # type: ignore[return-value]


def test_azure_timestamps_are_parsed_exactly(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "a.csv",
        AZURE + "2023-11-16 18:17:03.9799600,10,2\n2023-11-16 18:17:04.0319600,5,1\n"
        "2023-11-16 18:18:03.9799601,7,3\n",
    )
    assert resolve_format(path) == "azure"
    arrival, inp, out = _all(path)
    assert arrival.tolist() == [0.0, 0.052, 60.0000001]
    assert inp.tolist() == [10, 5, 7] and out.tolist() == [2, 1, 3]


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n5.0,10,2\n5.5,3,4\n", "vidur"),
        ("p.csv", PLAIN + "5.0,10,2\n5.5,3,4\n", "plain-csv"),
        (
            "p.csv",
            "input_tokens,arrival_s,extra,output_tokens\n10,5.0,x,2\n3,5.5,y,4\n",
            "plain-csv",
        ),
        (
            "p.jsonl",
            '{"arrival_s": 5.0, "input_tokens": 10, "output_tokens": 2}\n'
            '{"arrival_s": 5.5, "input_tokens": 3, "output_tokens": 4}\n',
            "plain-jsonl",
        ),
        (
            "m.jsonl",
            '{"timestamp": 5000, "input_length": 10, "output_length": 2, "hash_ids": [0, 1]}\n'
            '{"timestamp": 5500, "input_length": 3, "output_length": 4, "hash_ids": [0]}\n',
            "mooncake",
        ),
    ],
)
def test_formats_are_detected_and_read(write, name, text, fmt) -> None:  # type: ignore[no-untyped-def]
    path = write(name, text)
    assert resolve_format(path) == fmt
    arrival, inp, out = _all(path)
    assert arrival.tolist() == [0.0, 0.5]  # seconds since the first request
    assert inp.tolist() == [10, 3] and out.tolist() == [2, 4]
    chunk = next(read_trace(path))
    assert (chunk.hash_ids == [(0, 1), (0,)]) if fmt == "mooncake" else chunk.hash_ids is None


def test_format_can_be_forced_and_must_match(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.csv", PLAIN + "0,1,1\n")
    assert _all(path, format="plain-csv")[1].tolist() == [1]
    with pytest.raises(InputError, match="missing column"):
        list(read_trace(path, format="vidur"))
    with pytest.raises(UnknownNameError):
        list(read_trace(path, format="bogus"))


@pytest.mark.parametrize(
    ("name", "text", "line", "field"),
    [
        ("x.csv", "a,b,c\n1,2,3\n", 1, "header"),
        ("x.csv", "arrival_s,input_tokens\n1,2\n", 1, "header"),
        ("x.csv", PLAIN + "0,1,1\n1,abc,1\n", 3, "input_tokens"),
        ("x.csv", PLAIN + "0,1,1\n1,2.5,1\n", 3, "input_tokens"),
        ("x.csv", PLAIN + "0,1,1\n1,1,0\n", 3, "output_tokens"),
        ("x.csv", PLAIN + "0,1,1\n1,-4,1\n", 3, "input_tokens"),
        ("x.csv", PLAIN + "0,1,1\nsoon,1,1\n", 3, "arrival_s"),
        ("x.csv", PLAIN + "0,1,1\nnan,1,1\n", 3, "arrival_s"),
        ("x.csv", PLAIN + "0,1,1\n2,1,1\n1,1,1\n", 4, "arrival_s"),
        ("x.csv", PLAIN + "0,1,1\n\n1,1,1\n", 3, "row"),
        ("x.csv", PLAIN + "0,1,1\n1,1\n", 3, "row"),
        ("x.csv", PLAIN + "0,1,1\n1,1,1,1\n", 3, "row"),
        ("x.csv", AZURE + "2023-11-16 18:17:03.97,1,1\n2023-11-16T18:17:04,1,1\n", 3, "TIMESTAMP"),
        ("x.csv", AZURE + "2023-11-16 18:17:03.97,1,1\nNaT,1,1\n", 3, "TIMESTAMP"),
        (
            "x.csv",
            AZURE + "2023-11-16 18:17:03.97,1,1\n2023-11-16 18:17:03.96,1,1\n",
            3,
            "TIMESTAMP",
        ),
        (
            "x.jsonl",
            '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n{"arrival_s": 1,\n',
            2,
            "JSON",
        ),
        ("x.jsonl", '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n[1, 2]\n', 2, "JSON"),
        (
            "x.jsonl",
            '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n{"arrival_s": 1}\n',
            2,
            "input_tokens",
        ),
        (
            "x.jsonl",
            '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n'
            '{"arrival_s": 1, "input_tokens": 1.5, "output_tokens": 1}\n',
            2,
            "input_tokens",
        ),
        (
            "x.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": []}\n'
            '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": "x"}\n',
            2,
            "hash_ids",
        ),
        (
            "x.jsonl",
            '{"timestamp": 9, "input_length": 1, "output_length": 1, "hash_ids": []}\n'
            '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": []}\n',
            2,
            "timestamp",
        ),
        ("x.jsonl", "{not json\n", 1, "JSON"),
        ("x.csv", "\n", 1, "header"),
    ],
)
def test_malformed_input_names_file_line_and_field(write, name, text, line, field) -> None:  # type: ignore[no-untyped-def]
    path = write(name, text)
    with pytest.raises(InputError) as err:
        list(read_trace(path))
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: {field}="), message
    assert "\n" not in message


def test_decreasing_time_across_a_chunk_boundary_is_caught(write) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "0,1,1\n5,1,1\n4,1,1\n")
    with pytest.raises(InputError, match=r":4: arrival_s="):
        list(read_trace(path, chunk_size=2))


def test_equal_timestamps_are_allowed(write) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "1,1,1\n1,2,2\n1,3,3\n")
    assert _all(path)[0].tolist() == [0.0, 0.0, 0.0]


def test_rescaling_hits_the_target_rate_and_keeps_the_pattern(write) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "10,1,1\n11,1,1\n15,1,1\n30,1,1\n")
    as_is = TraceWorkload(path)
    assert as_is.stats().num_requests == 4 and as_is.stats().span_s == 20.0
    w = TraceWorkload(path, rate_per_s=3.0)
    arrival = np.concatenate([c.arrival_s for c in w.chunks(0, 3)])
    assert (arrival.size - 1) / arrival[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(arrival / arrival[-1], [0, 1 / 20, 5 / 20, 1])
    assert w.name == "x"


def test_max_requests_keeps_the_first_rows(write) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "".join(f"{k},1,{k + 1}\n" for k in range(10)))
    w = TraceWorkload(path, max_requests=7, rate_per_s=1.0)
    chunks = list(w.chunks(0, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert chunks[-1].output_tokens.tolist() == [7]
    assert chunks[-1].arrival_s[-1] == pytest.approx(6.0)  # 6 gaps at 1 request/s


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate_per_s": 0.0}, "rate_per_s"),
        ({"max_requests": 0}, "max_requests"),
        ({"format": "x"}, "trace format"),
    ],
)
def test_bad_trace_workload_parameters(write, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "0,1,1\n")
    with pytest.raises(InputError) as err:
        TraceWorkload(path, **kwargs)
    assert err.value.field == field


def test_rescaling_a_single_instant_trace_is_an_error(write) -> None:  # type: ignore[no-untyped-def]
    path = write("x.csv", PLAIN + "1,1,1\n1,1,1\n")
    with pytest.raises(InputError, match="rate_per_s"):
        list(TraceWorkload(path, rate_per_s=2.0).chunks())


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="existing file"):
        list(read_trace(tmp_path / "nope.csv"))


def test_a_million_row_trace_streams_in_bounded_memory(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    arrival = np.cumsum(rng.exponential(0.01, n))
    inp = rng.integers(1, 4000, n)
    out = rng.integers(1, 500, n)
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write(PLAIN)
        f.write(
            "".join(
                f"{a:.6f},{i},{o}\n"
                for a, i, o in zip(arrival.tolist(), inp.tolist(), out.tolist(), strict=True)
            )
        )
    full_bytes = 3 * 8 * n  # the three arrays of the whole trace
    start = time.perf_counter()
    tracemalloc.start()
    num, total_in = 0, 0
    for chunk in TraceWorkload(path).chunks(0, 16384):
        num += len(chunk)
        total_in += int(chunk.input_tokens.sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert num == n and total_in == int(inp.sum())
    assert peak < full_bytes / 4, f"peak {peak / 1e6:.1f} MB"
    assert time.perf_counter() - start < 20


@requires_shared
def test_azure_and_vidur_copies_agree_exactly() -> None:
    for kind in ("code", "conv"):
        a = _all(TRACES / f"azure_llm_2023/AzureLLMInferenceTrace_{kind}.csv")
        v = _all(TRACES / f"vidur_processed/splitwise_{kind}.csv")
        assert a[0].size == {"code": 8819, "conv": 19366}[kind]
        assert np.array_equal(a[1], v[1]) and np.array_equal(a[2], v[2])
        # arrived_at = TIMESTAMP - first (README); Vidur's copy has float noise in one row
        assert np.abs(a[0] - v[0]).max() < 1e-9


@requires_shared
@pytest.mark.parametrize(
    ("name", "rows", "span_s", "mean_in", "mean_out"),
    [
        ("conversation_trace", 12031, 3536.999, 12035, 343),
        ("synthetic_trace", 3993, 1022.025, 15325, 149),
    ],
)
def test_mooncake_traces(name, rows, span_s, mean_in, mean_out) -> None:  # type: ignore[no-untyped-def]
    path = TRACES / f"mooncake/{name}.jsonl"
    chunks = list(read_trace(path, chunk_size=5000))
    arrival = np.concatenate([c.arrival_s for c in chunks])
    inp = np.concatenate([c.input_tokens for c in chunks])
    out = np.concatenate([c.output_tokens for c in chunks])
    assert arrival.size == rows and arrival[-1] == pytest.approx(span_s)
    assert inp.mean() == pytest.approx(mean_in, abs=1) and out.mean() == pytest.approx(
        mean_out, abs=1
    )
    hashes = [h for c in chunks for h in (c.hash_ids or [])]
    assert len(hashes) == rows
    first = json.loads(path.open().readline())
    assert hashes[0] == tuple(first["hash_ids"])
    # 512 tokens per block: a request's blocks cover its input
    assert all(
        len(h) == -(-i // 512) for h, i in zip(hashes[:1000], inp[:1000].tolist(), strict=True)
    )


@requires_shared
def test_rescaled_real_trace_has_the_target_rate() -> None:
    w = TraceWorkload(TRACES / "azure_llm_2023/AzureLLMInferenceTrace_conv.csv", rate_per_s=8.0)
    arrival = np.concatenate([c.arrival_s for c in w.chunks()])
    assert (arrival.size - 1) / arrival[-1] == pytest.approx(8.0, rel=1e-12)
