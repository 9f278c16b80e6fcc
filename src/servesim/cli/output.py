"""Files the CLI writes: per-request records (CSV or Parquet) and JSON summaries.

Floats are written with `repr`, so the same simulation gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from servesim.errors import InputError


def write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_table_csv(columns: dict[str, np.ndarray], path: Path) -> None:
    """Equal-length columns as CSV; NaN is written as an empty field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    cols = [np.asarray(columns[n]) for n in names]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in zip(*(c.tolist() for c in cols), strict=True):
            writer.writerow(["" if isinstance(v, float) and v != v else _cell(v) for v in row])


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    return repr(value) if isinstance(value, float) else value


def write_records(records: Any, path: Path) -> None:
    """Per-request records: `.parquet` needs the `parquet` extra (pyarrow); anything else is CSV."""
    columns = records.as_dict()
    if path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(
                "records",
                str(path),
                "Parquet needs pyarrow: pip install 'servesim[parquet]'; or use .csv",
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), path)
        return
    write_table_csv(columns, path)
