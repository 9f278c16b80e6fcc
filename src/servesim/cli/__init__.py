"""servesim command line: parse -> build specs -> call the library -> print/write.

Each command lives in its own module and registers itself on the shared `app`.
"""

from servesim.cli import commands as _commands  # noqa: F401  (registers the commands)
from servesim.cli.app import app, main, run_app

__all__ = ["app", "main", "run_app"]
