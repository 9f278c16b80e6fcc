"""Progress bars for long commands (search, large simulations, calibration).

A thin wrapper over `rich.progress`: a bar with a count, elapsed time and ETA on a terminal, and
nothing at all when stdout is not a terminal (pipes, CI logs, `--json` output) or `quiet=True`.

    with progress_bar(num_candidates, "searching", quiet) as advance:
        for candidate in candidates:
            evaluate(candidate)
            advance(1)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[float], None]


def _ignore(_steps: float = 1) -> None:
    """The `advance` of a quiet bar: does nothing."""


def wants_progress(quiet: bool, stream: TextIO | None = None) -> bool:
    """True when a bar should be drawn: not quiet and the stream is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    is_tty = getattr(stream, "isatty", None)
    return not quiet and callable(is_tty) and bool(is_tty())


@contextmanager
def progress_bar(
    total: float | None,
    description: str,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> Iterator[Advance]:
    """A progress bar over `total` steps; yields `advance(steps=1)`.

    `total=None` draws an indeterminate bar. Quiet (no output, no rich import cost on the hot
    path) when `quiet` is set or `stream` (default stdout) is not a terminal.
    """
    if not wants_progress(quiet, stream):
        yield _ignore
        return
    console = Console(file=stream or sys.stdout)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)

        def advance(steps: float = 1) -> None:
            progress.advance(task, steps)

        yield advance
