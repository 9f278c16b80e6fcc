"""Helpers shared by commands: build specs from flags, print JSON, parse small flag formats."""

from __future__ import annotations

import json
import sys
from typing import Any

from servesim.errors import InputError
from servesim.specs import ClusterSpec, ModelSpec, get_model, make_cluster


def build_model(
    name: str, precision: str | None = None, kv_precision: str | None = None
) -> ModelSpec:
    """A catalog model or a config.json path, at the requested precisions."""
    model = get_model(name)
    if precision or kv_precision:
        model = model.with_precision(precision, kv_precision)
    return model


def build_cluster(gpu: str, **overrides: Any) -> ClusterSpec:
    """A DGX-like cluster of `gpu`; flags left at None keep the GPU's defaults."""
    return make_cluster(gpu, **overrides)


def parse_batch(text: str) -> tuple[int, int]:
    """'512x8' -> (512 tokens, 8 sequences)."""
    try:
        length, count = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise InputError("batch", text, "LENGTHxCOUNT, e.g. 512x8") from None
    if length <= 0 or count <= 0:
        raise InputError("batch", text, "a positive length and count, e.g. 512x8")
    return length, count


def parse_floats(field: str, text: str) -> list[float]:
    """'0.5,1,2' -> [0.5, 1.0, 2.0]."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(field, text, "comma-separated numbers, e.g. 1,2,4") from None


def print_json(obj: Any) -> None:
    """One JSON object on stdout, keys in a stable order."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
