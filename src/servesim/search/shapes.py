"""What the search evaluates: deployment shapes, as plain hashable data.

A `Shape` is a set of instance groups (role, TP, PP, number of instances, batching policy) and,
for disaggregated shapes, the node affinity. It carries no model or cluster: the search problem
does. Shapes are picklable and have a stable text key, used for cache keys and to break ties.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.errors import require

ROLES = ("prefill", "decode", "colocated")
POLICIES = ("vllm", "chunked")
AFFINITIES = ("high", "low")


@dataclass(frozen=True, slots=True)
class GroupShape:
    """`num_instances` identical instances of one role, each TP x PP GPUs."""

    role: str
    tp: int
    pp: int
    num_instances: int = 1
    policy: str = "vllm"

    def __post_init__(self) -> None:
        require(self.role in ROLES, "role", self.role, f"one of {', '.join(ROLES)}")
        require(self.policy in POLICIES, "policy", self.policy, f"one of {', '.join(POLICIES)}")
        for name in ("tp", "pp", "num_instances"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")

    @property
    def gpus_per_instance(self) -> int:
        return self.tp * self.pp

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_instance * self.num_instances

    def with_instances(self, num_instances: int) -> GroupShape:
        return GroupShape(self.role, self.tp, self.pp, num_instances, self.policy)

    @property
    def key(self) -> str:
        policy = f"-{self.policy}" if self.role == "colocated" else ""
        return f"{self.role}{policy}:tp{self.tp}pp{self.pp}x{self.num_instances}"


@dataclass(frozen=True, slots=True)
class Shape:
    """A deployment (or a phase-only part of one) as the search sees it."""

    groups: tuple[GroupShape, ...]
    affinity: str | None = None
    num_units: int = 1
    """Identical units the groups are made of (a low-affinity unit keeps its KV in a node)."""

    def __post_init__(self) -> None:
        require(len(self.groups) >= 1, "groups", self.groups, "at least one instance group")
        require(
            self.affinity is None or self.affinity in AFFINITIES,
            "affinity",
            self.affinity,
            f"one of {', '.join(AFFINITIES)}",
        )

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(g.role for g in self.groups)

    @property
    def num_gpus(self) -> int:
        return sum(g.num_gpus for g in self.groups)

    @property
    def metric(self) -> str:
        """Attainment that defines this shape's goodput: a phase-only shape meets one SLO."""
        if self.roles == ("prefill",):
            return "ttft"
        if self.roles == ("decode",):
            return "tpot"
        return "joint"

    @property
    def mode(self) -> str:
        """'colocated', 'disaggregated', 'prefill-only' or 'decode-only'."""
        return {"ttft": "prefill-only", "tpot": "decode-only"}.get(
            self.metric, "colocated" if "colocated" in self.roles else "disaggregated"
        )

    def group(self, role: str) -> GroupShape | None:
        return next((g for g in self.groups if g.role == role), None)

    def scaled(self, factor: int) -> Shape:
        """The same shape with every group's instance count multiplied by `factor`."""
        groups = tuple(g.with_instances(g.num_instances * factor) for g in self.groups)
        return Shape(groups, self.affinity, self.num_units * factor)

    @property
    def key(self) -> str:
        """Stable text identity, e.g. 'prefill:tp2pp1x3+decode:tp1pp1x2@high'."""
        tail = f"@{self.affinity}" if self.affinity else ""
        units = f"/{self.num_units}u" if self.num_units > 1 and self.affinity == "low" else ""
        return "+".join(g.key for g in self.groups) + tail + units


def colocated(tp: int, pp: int, policy: str, num_instances: int = 1) -> Shape:
    return Shape((GroupShape("colocated", tp, pp, num_instances, policy),))


def prefill_only(tp: int, pp: int, num_instances: int = 1) -> Shape:
    return Shape((GroupShape("prefill", tp, pp, num_instances),))


def decode_only(tp: int, pp: int, num_instances: int = 1) -> Shape:
    return Shape((GroupShape("decode", tp, pp, num_instances),))


def disaggregated(prefill: GroupShape, decode: GroupShape, affinity: str) -> Shape:
    return Shape((prefill, decode), affinity)
