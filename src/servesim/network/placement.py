"""Placement of instances on concrete GPUs, so that every transfer knows the links it crosses.

An instance of shape (tp, pp, role) gets `pp` stages; each stage is a TP group of `tp` GPUs
inside one node (tensor parallelism needs the fast intra-node links); stages of one pipeline may
sit on different nodes. Placement is deterministic first-fit: nodes in order, and within a node
the lowest free GPU ids.

Node affinity (DistServe's two placement regimes):
- 'high' (fast links between nodes): every instance, in input order, goes wherever it fits.
- 'low' (slow links between nodes): the i-th prefill instance is paired with the i-th decode
  instance (see `pair_prefill_decode`); stage s of both share one node, so the KV cache moves
  over NVLink only. Pairs are placed first, then the unpaired instances first-fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servesim.errors import InputError, require
from servesim.network.topology import Topology

ROLES = ("prefill", "decode", "colocated")
AFFINITIES = ("high", "low")

Stages = tuple[tuple[int, ...], ...]
"""One placed instance: per pipeline stage, the global GPU ids of its TP group."""


@dataclass(frozen=True)
class InstanceShape:
    """Parallelism and role of one instance."""

    tp: int
    """Tensor-parallel degree (GPUs per stage, inside one node)."""
    pp: int
    """Pipeline-parallel degree (number of stages)."""
    role: str
    """'prefill', 'decode' or 'colocated'."""

    def __post_init__(self) -> None:
        require(isinstance(self.tp, int) and self.tp >= 1, "tp", self.tp, "an integer >= 1")
        require(isinstance(self.pp, int) and self.pp >= 1, "pp", self.pp, "an integer >= 1")
        require(self.role in ROLES, "role", self.role, f"one of {', '.join(ROLES)}")

    @property
    def num_gpus(self) -> int:
        """GPUs the instance occupies."""
        return self.tp * self.pp


def pair_prefill_decode(shapes: Sequence[InstanceShape]) -> list[tuple[int, int]]:
    """(prefill index, decode index) pairs: the i-th prefill with the i-th decode instance."""
    prefill = [i for i, shape in enumerate(shapes) if shape.role == "prefill"]
    decode = [i for i, shape in enumerate(shapes) if shape.role == "decode"]
    return list(zip(prefill, decode, strict=False))


def place_instances(
    topology: Topology, shapes: Sequence[InstanceShape], affinity: str = "high"
) -> list[Stages]:
    """Lay `shapes` on the GPUs of `topology`; one `Stages` per shape, in input order."""
    require(affinity in AFFINITIES, "affinity", affinity, f"one of {', '.join(AFFINITIES)}")
    _check_fits(topology, shapes)
    free = [
        list(range(n * topology.gpus_per_node, (n + 1) * topology.gpus_per_node))
        for n in range(topology.num_nodes)
    ]
    placed: dict[int, Stages] = {}
    pairs = pair_prefill_decode(shapes) if affinity == "low" else []
    for prefill, decode in pairs:
        placed[prefill], placed[decode] = _place_pair(free, shapes, prefill, decode)
    for index, shape in enumerate(shapes):
        if index not in placed:
            placed[index] = _place_alone(free, shape, index)
    return [placed[i] for i in range(len(shapes))]


def _check_fits(topology: Topology, shapes: Sequence[InstanceShape]) -> None:
    for index, shape in enumerate(shapes):
        require(
            shape.tp <= topology.gpus_per_node,
            f"shapes[{index}].tp",
            shape.tp,
            f"<= gpus_per_node={topology.gpus_per_node} (a TP group stays inside one node)",
        )
    num_needed = sum(shape.num_gpus for shape in shapes)
    require(
        num_needed <= topology.num_gpus,
        "shapes",
        f"{len(shapes)} instances",
        f"they need "
        f"{num_needed} GPUs; the cluster has {topology.num_gpus} "
        f"({topology.num_nodes} nodes x {topology.gpus_per_node})",
    )


def _place_alone(free: list[list[int]], shape: InstanceShape, index: int) -> Stages:
    stages = []
    for stage in range(shape.pp):
        node = _first_node_with(free, shape.tp)
        if node is None:
            raise InputError(
                f"shapes[{index}]",
                shape,
                f"stage {stage} needs {shape.tp} free "
                f"GPUs on one node; free GPUs per node: {_free_counts(free)}",
            )
        stages.append(_take(free, node, shape.tp))
    return tuple(stages)


def _place_pair(
    free: list[list[int]], shapes: Sequence[InstanceShape], prefill: int, decode: int
) -> tuple[Stages, Stages]:
    p_shape, d_shape = shapes[prefill], shapes[decode]
    require(
        p_shape.pp == d_shape.pp,
        f"shapes[{decode}].pp",
        d_shape.pp,
        f"equal to the pp={p_shape.pp} of its prefill partner shapes[{prefill}] "
        "(low node-affinity pairs stage s of both on one node)",
    )
    p_stages, d_stages = [], []
    for stage in range(p_shape.pp):
        node = _first_node_with(free, p_shape.tp + d_shape.tp)
        if node is None:
            raise InputError(
                f"shapes[{prefill}]+shapes[{decode}]",
                (p_shape.tp, d_shape.tp),
                f"low affinity: stage {stage} needs {p_shape.tp}+{d_shape.tp} free "
                f"GPUs on one node; free GPUs per node: {_free_counts(free)}",
            )
        p_stages.append(_take(free, node, p_shape.tp))
        d_stages.append(_take(free, node, d_shape.tp))
    return tuple(p_stages), tuple(d_stages)


def _first_node_with(free: list[list[int]], num_gpus: int) -> int | None:
    return next((node for node, gpus in enumerate(free) if len(gpus) >= num_gpus), None)


def _take(free: list[list[int]], node: int, num_gpus: int) -> tuple[int, ...]:
    taken = tuple(free[node][:num_gpus])
    del free[node][:num_gpus]
    return taken


def _free_counts(free: list[list[int]]) -> list[int]:
    return [len(gpus) for gpus in free]
