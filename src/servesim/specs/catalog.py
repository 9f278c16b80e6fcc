"""Built-in model catalog (specs/data/models.json), looked up by short name or Hugging Face id.

`get_model` also accepts a path to any config.json.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from servesim.errors import UnknownNameError
from servesim.specs.hf_config import from_hf_config, load_hf_config
from servesim.specs.model import ModelSpec


@cache
def _entries() -> dict[str, dict[str, Any]]:
    text = resources.files("servesim.specs").joinpath("data/models.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


@cache
def _index() -> dict[str, str]:
    """Lower-cased short names, HF ids, aliases and bare HF repo names -> short name."""
    index: dict[str, str] = {}
    for short, entry in _entries().items():
        for key in (short, entry["hf_id"], *entry["aliases"]):
            index[key.lower()] = short
            index[key.lower().rsplit("/", 1)[-1]] = short
    return index


def model_names() -> list[str]:
    return sorted(_entries())


@cache
def _catalog_model(short: str) -> ModelSpec:
    entry = _entries()[short]
    return from_hf_config(entry["config"], name=short, source=f"catalog:{short}")


def get_model(name: str) -> ModelSpec:
    """A catalog model by short name or HF id (case-insensitive), or a config.json path."""
    short = _index().get(name.strip().lower())
    if short is not None:
        return _catalog_model(short)
    path = Path(name)
    if path.suffix == ".json" or path.is_file() or path.is_dir():
        return load_hf_config(path / "config.json" if path.is_dir() else path)
    raise UnknownNameError(
        "model", name, [*model_names(), *(e["hf_id"] for e in _entries().values())]
    )
