"""On-disk cache of simulated rate points, one small JSON file per point.

The key is a text naming everything that determines the point (problem fingerprint with the
servesim version, evaluator, shape, rate); its SHA-256 names the file. Writes go to a temporary
file then `os.replace`, so concurrent workers and interrupted runs never leave a torn entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from servesim.search.goodput import RatePoint

DEFAULT_CACHE_DIR = Path("~/.cache/servesim").expanduser()


@dataclasses.dataclass(frozen=True, slots=True)
class PointCache:
    """Rate points stored under `root/search/`."""

    root: Path

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / "search" / digest[:2] / f"{digest}.json"

    def get(self, key: str) -> RatePoint | None:
        """The stored point for `key`, or None (missing or unreadable entries are misses)."""
        try:
            data = json.loads(self._path(key).read_text())
            if data.pop("key") != key:
                return None
            return RatePoint(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put(self, key: str, point: RatePoint) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"key": key, **dataclasses.asdict(point)})
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(payload)
        os.replace(tmp, path)
