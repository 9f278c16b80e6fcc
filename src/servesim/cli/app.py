"""The typer application object shared by every command module, and the error boundary."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from servesim.errors import InputError

app = typer.Typer(
    name="servesim",
    help="Simulate and plan LLM serving: colocated vs prefill/decode-disaggregated placements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error on stderr and exit with `code` (no traceback)."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def run_app(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; bad input is one line on stderr and code 2."""
    try:
        app(args=argv, prog_name="servesim")
    except InputError as err:
        err_console.print(f"error: {err}", markup=False)
        return 2
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


@app.callback()
def _root() -> None:
    """servesim: simulate and plan LLM serving."""


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_app())
