"""Parsers for request-trace files: format detection and block-wise parsing with exact errors.

Supported formats (columns: arrival time, input tokens, output tokens):
- `azure`: Azure LLM inference trace 2023 CSV, `TIMESTAMP,ContextTokens,GeneratedTokens`, the
  timestamp written `YYYY-MM-DD HH:MM:SS.fffffff` and parsed exactly to nanoseconds.
- `vidur`: Vidur's processed CSV, `arrived_at,num_prefill_tokens,num_decode_tokens` (seconds).
- `mooncake`: Mooncake JSON Lines, `timestamp` (ms), `input_length`, `output_length`, `hash_ids`.
- `plain-csv` / `plain-jsonl`: `arrival_s,input_tokens,output_tokens` (seconds).

Blocks of lines are parsed with numpy's C parser; when that fails, the block is re-read line by
line to name the exact line and field. Nothing is skipped: blank lines, missing or non-numeric
fields, token counts < 1 and decreasing timestamps all stop with an InputError.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servesim.errors import InputError


@dataclass(frozen=True, slots=True)
class Layout:
    """Which columns (CSV) or keys (JSONL) hold the time and the two token counts."""

    time: str
    input: str
    output: str
    units_per_s: float  # time-column units per second (1e9: Azure ns; 1e3: Mooncake ms)
    jsonl: bool
    hash_ids: str | None = None


LAYOUTS: dict[str, Layout] = {
    "azure": Layout("TIMESTAMP", "ContextTokens", "GeneratedTokens", 1e9, jsonl=False),
    "vidur": Layout("arrived_at", "num_prefill_tokens", "num_decode_tokens", 1.0, jsonl=False),
    "plain-csv": Layout("arrival_s", "input_tokens", "output_tokens", 1.0, jsonl=False),
    "mooncake": Layout("timestamp", "input_length", "output_length", 1e3, True, "hash_ids"),
    "plain-jsonl": Layout("arrival_s", "input_tokens", "output_tokens", 1.0, jsonl=True),
}

_AZURE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?")


def trace_error(path: Path, line: int, field: str, value: object, allowed: str) -> InputError:
    """An InputError whose message names the file, the line number and the field."""
    return InputError(f"{path}:{line}: {field}", value, allowed)


def detect_format(path: Path, first_line: str) -> str:
    """The format whose header (CSV) or keys (JSONL) match the first line of the file."""
    text = first_line.strip()
    if text.startswith("{"):
        try:
            keys = set(json.loads(text))
        except (json.JSONDecodeError, TypeError):
            raise trace_error(path, 1, "JSON", text[:60], "a JSON object") from None
        candidates = [n for n, lay in LAYOUTS.items() if lay.jsonl]
    else:
        keys = {h.strip().strip('"') for h in text.split(",")}
        candidates = [n for n, lay in LAYOUTS.items() if not lay.jsonl]
    for name in candidates:
        lay = LAYOUTS[name]
        if {lay.time, lay.input, lay.output} <= keys:
            return name
    wanted = "; ".join(f"{n}: {lay.time},{lay.input},{lay.output}" for n, lay in LAYOUTS.items())
    raise trace_error(path, 1, "header", text[:80], f"unknown trace format; expected {wanted}")


def csv_columns(path: Path, header_line: str, layout: Layout) -> tuple[int, int, int, int]:
    """Indices of the time, input and output columns, and the number of columns."""
    header = [h.strip().strip('"') for h in header_line.rstrip("\r\n").split(",")]
    missing = [c for c in (layout.time, layout.input, layout.output) if c not in header]
    if missing:
        raise trace_error(path, 1, "header", ",".join(header), f"missing column(s) {missing}")
    idx = [header.index(c) for c in (layout.time, layout.input, layout.output)]
    return idx[0], idx[1], idx[2], len(header)


@dataclass(frozen=True, slots=True)
class Block:
    """Parsed rows of one block: raw times (in layout units), token counts, optional hashes."""

    first_line: int
    times: np.ndarray  # int64 ns for Azure, float64 otherwise
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: list[tuple[int, ...]] | None


def parse_csv_block(
    path: Path, lines: list[str], first_line: int, layout: Layout, cols: tuple[int, int, int, int]
) -> Block:
    """Parse CSV data lines; on any problem raise an InputError naming line and field."""
    t_col, i_col, o_col, _ = cols
    try:
        tokens = np.loadtxt(
            lines, delimiter=",", usecols=(i_col, o_col), dtype=np.int64, comments=None, ndmin=2
        )
        if layout.time == "TIMESTAMP":
            times = _azure_times([ln.split(",")[t_col].strip() for ln in lines])
        else:
            times = np.loadtxt(
                lines, delimiter=",", usecols=t_col, dtype=float, comments=None, ndmin=1
            )
        if tokens.shape[0] != len(lines) or times.shape[0] != len(lines):
            raise ValueError("blank line")
        if tokens.size and tokens.min() < 1:
            raise ValueError("token count < 1")
        _check_field_counts(lines, cols[3])
    except (ValueError, IndexError):
        return _parse_csv_lines(path, lines, first_line, layout, cols)
    return Block(first_line, times, tokens[:, 0].copy(), tokens[:, 1].copy(), None)


def _check_field_counts(lines: list[str], num_fields: int) -> None:
    counts = np.fromiter((ln.count(",") for ln in lines), dtype=np.int64, count=len(lines))
    if np.any(counts != num_fields - 1):
        raise ValueError("field count")


def _azure_times(texts: list[str]) -> np.ndarray:
    if not all(_AZURE_TIME.fullmatch(t) for t in texts):
        raise ValueError("timestamp format")
    return np.array(texts, dtype="datetime64[ns]").astype(np.int64)


def _parse_csv_lines(
    path: Path, lines: list[str], first_line: int, layout: Layout, cols: tuple[int, int, int, int]
) -> Block:
    """The slow path: parse line by line, stopping at the first bad line with its field."""
    t_col, i_col, o_col, num_fields = cols
    n = len(lines)
    times = np.empty(n, dtype=np.int64 if layout.time == "TIMESTAMP" else np.float64)
    inp = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    for k, raw in enumerate(lines):
        line = first_line + k
        fields = [f.strip() for f in raw.rstrip("\r\n").split(",")]
        if len(fields) != num_fields:
            raise trace_error(
                path, line, "row", raw.strip()[:80], f"{num_fields} comma-separated fields"
            )
        times[k] = _parse_time_field(path, line, layout, fields[t_col])
        inp[k] = parse_count_field(path, line, layout.input, fields[i_col])
        out[k] = parse_count_field(path, line, layout.output, fields[o_col])
    return Block(first_line, times, inp, out, None)


def _parse_time_field(path: Path, line: int, layout: Layout, text: str) -> float | int:
    if layout.time == "TIMESTAMP":
        if not _AZURE_TIME.fullmatch(text):
            raise trace_error(path, line, layout.time, text, "a time 'YYYY-MM-DD HH:MM:SS.fffffff'")
        return int(np.datetime64(text, "ns").astype(np.int64))
    try:
        value = float(text)
    except ValueError:
        raise trace_error(path, line, layout.time, text, "a number of seconds") from None
    if not math.isfinite(value):
        raise trace_error(path, line, layout.time, text, "a finite number")
    return value


def parse_count_field(path: Path, line: int, field: str, text: str) -> int:
    """Parse a token count, which must be an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise trace_error(path, line, field, text, "an integer token count >= 1") from None
    if value < 1:
        raise trace_error(path, line, field, text, "an integer token count >= 1")
    return value


def parse_jsonl_block(path: Path, lines: list[str], first_line: int, layout: Layout) -> Block:
    """Parse JSON Lines records; any problem raises an InputError naming line and field."""
    n = len(lines)
    times = np.empty(n)
    inp = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    hashes: list[tuple[int, ...]] | None = [] if layout.hash_ids else None
    for k, raw in enumerate(lines):
        rec = _json_record(path, first_line + k, raw)
        times[k] = _json_number(path, first_line + k, rec, layout.time)
        inp[k] = _json_count(path, first_line + k, rec, layout.input)
        out[k] = _json_count(path, first_line + k, rec, layout.output)
        if hashes is not None and layout.hash_ids:
            hashes.append(_json_hashes(path, first_line + k, rec, layout.hash_ids))
    return Block(first_line, times, inp, out, hashes)


def _json_record(path: Path, line: int, raw: str) -> dict[str, object]:
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as err:
        raise trace_error(path, line, "JSON", raw.strip()[:60], f"valid JSON ({err.msg})") from None
    if not isinstance(rec, dict):
        raise trace_error(path, line, "JSON", raw.strip()[:60], "a JSON object per line")
    return rec


def _json_field(path: Path, line: int, rec: dict[str, object], key: str) -> object:
    if key not in rec:
        raise trace_error(path, line, key, None, "a required field (missing)")
    return rec[key]


def _json_number(path: Path, line: int, rec: dict[str, object], key: str) -> float:
    value = _json_field(path, line, rec, key)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise trace_error(path, line, key, value, "a finite number")
    return float(value)  # type: ignore[arg-type]


def _json_count(path: Path, line: int, rec: dict[str, object], key: str) -> int:
    value = _json_field(path, line, rec, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise trace_error(path, line, key, value, "an integer token count >= 1")
    return value


def _json_hashes(path: Path, line: int, rec: dict[str, object], key: str) -> tuple[int, ...]:
    value = _json_field(path, line, rec, key)
    ok = isinstance(value, list) and all(
        isinstance(h, int) and not isinstance(h, bool) for h in value
    )
    if not ok:
        raise trace_error(path, line, key, str(value)[:60], "a list of integer block hashes")
    return tuple(value)  # type: ignore[arg-type]
