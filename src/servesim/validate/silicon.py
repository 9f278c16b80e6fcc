"""Reader of measured end-to-end serving results in aiconfigurator's `silicon_sample.csv` format.

One row is one benchmark: a model served by a backend (vllm, sglang, trtllm) on a system, either
aggregated (one group of identical workers) or disaggregated (prefill and decode workers), driven
by C concurrent clients with fixed input and output lengths; it gives the measured mean TTFT and
TPOT in milliseconds. Every field is checked: a malformed row raises an InputError that names the
file, the line and the field.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import astuple, dataclass, replace
from pathlib import Path

from servesim.errors import InputError, require

MODES = ("agg", "disagg")
REQUIRED_COLUMNS = (
    "id",
    "silicon_data_source",
    "backend",
    "model_path",
    "system",
    "precision",
    "mode",
    "isl",
    "osl",
    "batch_size",
    "tp_size",
    "pp_size",
    "attention_dp_size",
    "moe_tp_size",
    "moe_ep_size",
    "prefill_num_workers",
    "prefill_tp_size",
    "decode_num_workers",
    "decode_tp_size",
    "silicon_ttft_ms",
    "silicon_tpot_ms",
)
_CONCURRENCY = re.compile(r"silicon_concurrency=(\d+)")
# Decimals (of a ms) to which two rows' TTFT and TPOT must agree to be one measurement: the
# coarsest a source file of the shared sample exports.
MEASURED_DECIMALS = 2


@dataclass(frozen=True, slots=True)
class Benchmark:
    """How the measuring harness drove the server: each of the C clients sends `warmup_rounds`
    requests, then `rounds` more, each after its previous one finished, and the means cover the
    latter. The default is aiconfigurator's modelling assumption (its TRT-LLM agg model assumes
    10 requests per client, the first round measured); its aiperf template sends 50 per client
    after 2 per client of warm-up (`servesim validate --rounds 50 --warmup-rounds 2`).

    Attributes:
        rounds: requests each client sends after the warm-up (all measured).
        warmup_rounds: requests per client sent first and left out of the means.
    """

    rounds: int = 10
    warmup_rounds: int = 0

    def __post_init__(self) -> None:
        require(self.rounds >= 1, "benchmark.rounds", self.rounds, "an integer >= 1")
        require(
            self.warmup_rounds >= 0,
            "benchmark.warmup_rounds",
            self.warmup_rounds,
            "an integer >= 0",
        )


DEFAULT_BENCHMARK = Benchmark()


@dataclass(frozen=True, slots=True)
class Side:
    """Parallelism of one group of workers (the agg group, or the prefill or decode side).

    A degree of 0 or an empty field means 'not used' and is read as 1. A disaggregated side
    whose worker count is empty has `workers_recorded` False (its size is unknown).
    """

    tp: int
    pp: int = 1
    attention_dp: int = 1
    moe_tp: int = 1
    moe_ep: int = 1
    num_workers: int = 1
    batch_size: int | None = None
    workers_recorded: bool = True

    @property
    def num_gpus(self) -> int:
        return self.num_workers * self.tp * self.attention_dp * self.pp


@dataclass(frozen=True, slots=True)
class SiliconRow:
    """One measured benchmark. `agg` is set for mode 'agg', `prefill` and `decode` for 'disagg'."""

    id: str
    line: int
    system: str
    model: str
    backend: str
    backend_version: str
    precision: str
    gemm_quant_mode: str
    moe_quant_mode: str
    mode: str
    isl: int
    osl: int
    concurrency: int
    measured_ttft_ms: float
    measured_tpot_ms: float
    agg: Side | None = None
    prefill: Side | None = None
    decode: Side | None = None
    duplicate_of: str | None = None  # id of an earlier row with the same setup and results
    relabel_of: str | None = None  # id of the row with the same results on the fewest GPUs
    bench: Benchmark = DEFAULT_BENCHMARK  # how the harness drove it (the file does not say)

    @property
    def sides(self) -> tuple[Side, ...]:
        return tuple(s for s in (self.agg, self.prefill, self.decode) if s is not None)

    @property
    def num_gpus(self) -> int:
        return sum(s.num_gpus for s in self.sides)


class _Fields:
    """Typed access to one CSV record; every error names the file, line and field."""

    def __init__(self, record: dict[str, str | None], where: str) -> None:
        self.record = record
        self.where = where

    def error(self, field: str, value: object, allowed: str) -> InputError:
        return InputError(f"{self.where}: {field}", value, allowed)

    def text(self, field: str, required: bool = True) -> str:
        if field not in self.record:  # a column the header lacks
            if required:
                raise self.error(field, None, "a column of the file")
            return ""
        value = self.record[field]
        if value is None:
            raise self.error(field, None, "a value (the row has too few columns)")
        value = value.strip()
        if required and not value:
            raise self.error(field, "", "a non-empty value")
        return value

    def number(self, field: str, required: bool = True, positive: bool = True) -> float | None:
        raw = self.text(field, required)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.error(field, raw, "a number") from None
        if not math.isfinite(value) or (positive and value <= 0) or value < 0:
            raise self.error(
                field, raw, "a finite number > 0" if positive else "a finite number >= 0"
            )
        return value

    def count(self, field: str, required: bool = True, default: int | None = None) -> int | None:
        value = self.number(field, required, positive=False)
        if value is None:
            return default
        if value != int(value):
            raise self.error(field, self.text(field), "a whole number")
        return int(value)

    def degree(self, field: str, required: bool = False) -> int:
        """A parallel degree: empty or 0 means the dimension is not used (1)."""
        value = self.count(field, required, default=1)
        return max(1, value or 1)


def _side(f: _Fields, prefix: str) -> Side:
    workers = f.count(f"{prefix}num_workers", required=False) if prefix else 1
    return Side(
        tp=f.degree(f"{prefix}tp_size", required=True),
        pp=f.degree(f"{prefix}pp_size"),
        attention_dp=f.degree(f"{prefix}attention_dp_size"),
        moe_tp=f.degree(f"{prefix}moe_tp_size"),
        moe_ep=f.degree(f"{prefix}moe_ep_size"),
        num_workers=max(1, workers or 1),
        batch_size=f.count(f"{prefix}batch_size", required=False) or None,
        workers_recorded=workers is not None,
    )


def _concurrency(f: _Fields, batch_size: int | None) -> int:
    """Clients: `silicon_concurrency=N` in the provenance string, else the batch size."""
    match = _CONCURRENCY.search(f.text("silicon_data_source", required=False))
    if match:
        value = int(match.group(1))
        if value < 1:
            raise f.error("silicon_data_source", match.group(0), "silicon_concurrency >= 1")
        return value
    if batch_size is None:
        raise f.error(
            "silicon_data_source",
            f.text("silicon_data_source", False),
            "silicon_concurrency=N, or a batch_size column to fall back on",
        )
    return batch_size


def parse_row(record: dict[str, str | None], where: str, line: int) -> SiliconRow:
    """Validate one CSV record (a dict from csv.DictReader) into a SiliconRow."""
    f = _Fields(record, where)
    surplus = record.get(None)  # type: ignore[call-overload]  # DictReader's key for extra cells
    if surplus:
        raise f.error("columns", f"{len(surplus)} extra cells", "as many cells as header columns")
    mode = f.text("mode")
    if mode not in MODES:
        raise f.error("mode", mode, "agg or disagg")
    agg = _side(f, "") if mode == "agg" else None
    prefill = _side(f, "prefill_") if mode == "disagg" else None
    decode = _side(f, "decode_") if mode == "disagg" else None
    batch = agg.batch_size if agg else decode.batch_size if decode else None
    isl, osl = f.count("isl"), f.count("osl")
    if not isl or not osl:
        raise f.error("isl" if not isl else "osl", 0, "a token count >= 1")
    return SiliconRow(
        id=f.text("id"),
        line=line,
        system=f.text("system"),
        model=f.text("model_path"),
        backend=f.text("backend"),
        backend_version=f.text("backend_version", required=False),
        precision=f.text("precision", required=False),
        gemm_quant_mode=f.text("gemm_quant_mode", required=False),
        moe_quant_mode=f.text("moe_quant_mode", required=False),
        mode=mode,
        isl=isl,
        osl=osl,
        concurrency=_concurrency(f, batch),
        measured_ttft_ms=float(f.number("silicon_ttft_ms") or 0.0),
        measured_tpot_ms=float(f.number("silicon_tpot_ms") or 0.0),
        agg=agg,
        prefill=prefill,
        decode=decode,
    )


def read_silicon(path: str | Path, bench: Benchmark = DEFAULT_BENCHMARK) -> list[SiliconRow]:
    """All rows of a silicon CSV file (line numbers count the header as line 1), each measured
    by the harness `bench` (the format does not record it)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError:
        raise InputError("file", str(path), "a readable CSV file") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"{path}: line 1: header", missing[0], f"the columns {', '.join(REQUIRED_COLUMNS)}"
        )
    rows = []
    for record in reader:
        line = reader.line_num
        rows.append(replace(parse_row(record, f"{path}: line {line}", line), bench=bench))
    return mark_duplicates(rows)


def mark_duplicates(rows: list[SiliconRow]) -> list[SiliconRow]:
    """`rows` with `duplicate_of` set on every row whose setup and measured TTFT and TPOT equal
    an earlier row's (the same measurement exported under two source files or image tags), and
    `relabel_of` on every row whose measured TTFT and TPOT equal those of a row of another
    parallelism (same system, model, backend, precision, lengths and concurrency): one
    measurement exported under two labels (one source file's TP or DP is the other's times the
    EP size), kept once, under the label with the fewest GPUs (the earliest line on a tie).
    TTFT and TPOT are compared to MEASURED_DECIMALS: some files round them to 0.01 ms, and
    some copies differ from their original in the last binary digit."""
    first: dict[tuple[object, ...], str] = {}
    out = []
    for row in rows:
        key = astuple(replace(_rounded(row), id="", line=0, backend_version=""))
        if key in first:
            row = replace(row, duplicate_of=first[key])
        else:
            first[key] = row.id
        out.append(row)
    by_measurement: dict[tuple[object, ...], list[SiliconRow]] = {}
    for row in out:
        if row.duplicate_of is None:
            by_measurement.setdefault(_measurement(row), []).append(row)
    kept = {  # by line: ids need not be unique
        row.line: min(same, key=lambda r: (r.num_gpus, r.line))
        for same in by_measurement.values()
        for row in same
    }
    return [
        replace(row, relabel_of=kept[row.line].id)
        if row.line in kept and kept[row.line].line != row.line
        else row
        for row in out
    ]


def _rounded(row: SiliconRow) -> SiliconRow:
    return replace(
        row,
        measured_ttft_ms=round(row.measured_ttft_ms, MEASURED_DECIMALS),
        measured_tpot_ms=round(row.measured_tpot_ms, MEASURED_DECIMALS),
    )


def _measurement(row: SiliconRow) -> tuple[object, ...]:
    row = _rounded(row)
    return (
        row.system,
        row.model,
        row.backend,
        row.precision,
        row.mode,
        row.isl,
        row.osl,
        row.concurrency,
        row.measured_ttft_ms,
        row.measured_tpot_ms,
    )
