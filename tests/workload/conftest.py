"""Shared fixtures for the workload tests: the optional ../shared/data folder and file writers."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TRACES = SHARED_DATA / "traces"

requires_shared = pytest.mark.skipif(
    not TRACES.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent"
)


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write `text` to tmp_path/name and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
