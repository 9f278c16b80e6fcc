"""Errors that reach the user as one line: the field, the value and what is allowed.

Every check on user input raises `InputError`; the CLI turns it into a one-line message on
stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input. `str(err)` is the one-line message shown to the user."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is invalid: {allowed}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, object, str]]:
        # Rebuilt as a plain InputError with the same message, so that errors raised in worker
        # processes (search, validate) reach the CLI as the usual one-line message.
        return (InputError, (self.field, self.value, self.allowed))


class UnknownNameError(InputError):
    """A name (model, GPU, workload, ...) not in a catalog; lists the closest known names."""

    def __init__(self, field: str, value: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(
            value.lower(), [k.lower() for k in known], n=4, cutoff=0.4
        )
        by_lower = {k.lower(): k for k in known}
        hint = [by_lower[c] for c in close] or known[:8]
        label = "closest known" if close else "known"
        super().__init__(field, value, f"unknown; {label}: {', '.join(hint)}")


def read_json(field: str, path: Path, missing: str) -> Any:
    """The parsed JSON of `path`; an unreadable file or bad JSON is one InputError for `field`
    (`missing` says what is allowed when the file cannot be read)."""
    try:
        return json.loads(path.read_text())
    except OSError:
        raise InputError(field, str(path), missing) from None
    except json.JSONDecodeError as err:
        raise InputError(field, str(path), f"valid JSON (line {err.lineno}: {err.msg})") from None


def require(condition: bool, field: str, value: object, allowed: str) -> None:
    """Raise `InputError(field, value, allowed)` unless `condition` holds."""
    if not condition:
        raise InputError(field, value, allowed)
