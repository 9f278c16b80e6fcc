"""Progress bars: drawn on a terminal, silent when piped or quiet."""

from __future__ import annotations

import io

import pytest

from servesim.progress import progress_bar, wants_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_terminal() -> None:
    stream = FakeTerminal()
    with progress_bar(10, "searching", stream=stream) as advance:
        for _ in range(10):
            advance(1)
    out = stream.getvalue()
    assert "searching" in out and "10/10" in out and "ETA" in out


@pytest.mark.parametrize("quiet,stream", [(True, FakeTerminal()), (False, io.StringIO())])
def test_silent_when_quiet_or_piped(quiet: bool, stream: io.StringIO) -> None:
    with progress_bar(5, "simulating", quiet=quiet, stream=stream) as advance:
        advance(5)
    assert stream.getvalue() == ""
    assert not wants_progress(quiet, stream)


def test_default_stream_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(None, "calibrating") as advance:  # captured stdout is not a terminal
        advance()
    assert capsys.readouterr().out == ""
