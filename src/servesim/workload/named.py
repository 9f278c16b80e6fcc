"""Built-in named length distributions, stored as small JSON files in `workload/data/`.

`get_lengths("sharegpt")` loads a distribution on first use (nothing is read at import time).
How each file was derived, and from what public source, is in `workload/data/README.md`, in each
file's `description` / `source` / `published_statistics` / `assumptions` fields, and in
`servesim.workload.derive`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from servesim.errors import UnknownNameError
from servesim.workload.base import LengthDistribution
from servesim.workload.histogram import JointHistogram
from servesim.workload.lengths import LogNormal, Mixture

_COMPONENT_FIELDS = (
    "input_median_tokens",
    "input_sigma",
    "output_median_tokens",
    "output_sigma",
    "correlation",
    "max_input_tokens",
    "max_output_tokens",
    "max_total_tokens",
    "fit_input_to_total",
)


@functools.cache
def builtin_document(name: str) -> dict[str, Any]:
    """The parsed JSON document of a built-in distribution (metadata included)."""
    if name not in BUILTIN_LENGTHS:
        raise UnknownNameError("workload", name, BUILTIN_LENGTHS)
    text = resources.files("servesim.workload").joinpath(f"data/{name}.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def _histogram(doc: dict[str, Any]) -> JointHistogram:
    return JointHistogram(
        name=doc["name"],
        input_edges=doc["input_edges"],
        output_edges=doc["output_edges"],
        cells=doc["cells"],
        max_total_tokens=doc["max_total_tokens"],
    )


def _mixture(doc: dict[str, Any]) -> Mixture:
    comps = tuple(
        LogNormal(name=c["name"], **{k: c[k] for k in _COMPONENT_FIELDS if k in c})
        for c in doc["components"]
    )
    return Mixture(doc["name"], comps, tuple(float(c["weight"]) for c in doc["components"]))


_KINDS: dict[str, Callable[[dict[str, Any]], LengthDistribution]] = {
    "joint_histogram": _histogram,
    "lognormal_mixture": _mixture,
}


@functools.cache
def load_builtin(name: str) -> LengthDistribution:
    """Build the named distribution from its JSON file (cached)."""
    doc = builtin_document(name)
    return _KINDS[doc["kind"]](doc)


BUILTIN_LENGTHS: tuple[str, ...] = (
    "sharegpt",
    "humaneval",
    "longbench",
    "azure-conv",
    "azure-code",
)

LENGTHS: dict[str, Callable[[], LengthDistribution]] = {
    name: functools.partial(load_builtin, name) for name in BUILTIN_LENGTHS
}


def get_lengths(name: str) -> LengthDistribution:
    """The built-in length distribution called `name`; UnknownNameError lists the known names."""
    if name not in LENGTHS:
        raise UnknownNameError("workload", name, LENGTHS)
    return LENGTHS[name]()
