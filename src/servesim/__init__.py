"""servesim: simulate and plan LLM serving (colocated vs prefill/decode-disaggregated)."""

import hashlib
from functools import cache
from pathlib import Path

__version__ = "0.1.0"


@cache
def code_fingerprint() -> str:
    """SHA-256 of the version and the package's sources and data files.

    Cached results are keyed by it, so a changed model or engine never answers from results
    that other code computed, even within one version.
    """
    root = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".json", ".csv") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
