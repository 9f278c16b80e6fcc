"""What the engine simulates: a model on a cluster, split into groups of identical instances.

A deployment is colocated (one 'colocated' group), disaggregated (a 'prefill' and a 'decode'
group), prefill-only (a lone 'prefill' group: a request is done when its prefill ends) or
decode-only (a lone 'decode' group: requests arrive with their KV cache ready).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from servesim.errors import InputError, require
from servesim.specs.cluster import ClusterSpec
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec

ROLES = ("prefill", "decode", "colocated")
POLICIES = ("vllm", "chunked")
DECODE_KV_POLICIES = ("on_demand", "reserve")
KV_TRANSFER_MODES = ("after_prefill", "layerwise")
# Role sets a deployment may have, in group order.
SHAPES = (("colocated",), ("prefill", "decode"), ("prefill",), ("decode",))


def _check_count(field: str, value: object, minimum: int = 1) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    require(ok and int(value) >= minimum, field, value, f"an integer >= {minimum}")  # type: ignore[call-overload]


@dataclass(frozen=True)
class InstanceGroup:
    """Identical instances of one role.

    Attributes:
        role: 'prefill', 'decode' or 'colocated'.
        parallel: TP x PP of each instance.
        num_instances: how many instances the group has.
        policy: colocated only: 'vllm' (prefill iterations prioritized, never mixed with decode)
            or 'chunked' (Sarathi: every iteration carries the running decodes plus prompt
            chunks up to `chunk_tokens`).
        max_batch_seqs: most sequences in a decode (or colocated) running batch.
        max_prefill_tokens: L_m, prompt tokens per prefill batch (a longer prompt runs alone);
            None = the shortest length that saturates the GPU per the latency model.
        chunk_tokens: token budget of one chunked-prefill iteration (decodes included).
        kv_capacity_tokens: KV cache per instance in tokens; None = from the memory plan
            (GPU memory minus weights and activations, whole blocks).
        decode_kv_policy: decode only: 'on_demand' (vLLM-style: admit a request when its
            current context fits, grow by a token per iteration, preempt the newest by
            recompute on overflow) or 'reserve' (reserve the final context, input + output - 1
            tokens, at admission: never preempts, but needs the output length).
        kv_watermark: decode 'on_demand' only: share of the KV cache an admission must leave
            free (vLLM's watermark), in [0, 0.5).
    """

    role: str
    parallel: ParallelSpec
    num_instances: int = 1
    policy: str = "vllm"
    max_batch_seqs: int = 256
    max_prefill_tokens: int | None = None
    chunk_tokens: int = 512
    kv_capacity_tokens: int | None = None
    decode_kv_policy: str = "on_demand"
    kv_watermark: float = 0.01

    def __post_init__(self) -> None:
        require(self.role in ROLES, "role", self.role, f"one of {', '.join(ROLES)}")
        require(
            isinstance(self.parallel, ParallelSpec), "parallel", self.parallel, "a ParallelSpec"
        )
        _check_count(f"{self.role}.num_instances", self.num_instances)
        require(
            self.policy in POLICIES,
            f"{self.role}.policy",
            self.policy,
            f"one of {', '.join(POLICIES)}",
        )
        _check_count(f"{self.role}.max_batch_seqs", self.max_batch_seqs)
        if self.max_prefill_tokens is not None:
            _check_count(f"{self.role}.max_prefill_tokens", self.max_prefill_tokens)
        _check_count(f"{self.role}.chunk_tokens", self.chunk_tokens)
        if self.kv_capacity_tokens is not None:
            _check_count(f"{self.role}.kv_capacity_tokens", self.kv_capacity_tokens)
        require(
            self.decode_kv_policy in DECODE_KV_POLICIES,
            f"{self.role}.decode_kv_policy",
            self.decode_kv_policy,
            f"one of {', '.join(DECODE_KV_POLICIES)}",
        )
        w = self.kv_watermark
        ok = isinstance(w, int | float) and not isinstance(w, bool) and 0.0 <= w < 0.5
        require(ok, f"{self.role}.kv_watermark", w, "a number in [0, 0.5)")

    @property
    def num_gpus(self) -> int:
        return self.num_instances * self.parallel.num_gpus


@dataclass(frozen=True)
class Deployment:
    """A model served on a cluster by one or two instance groups.

    Attributes:
        model: the model every instance runs.
        cluster: nodes, GPUs and links.
        groups: ('colocated',), ('prefill', 'decode'), ('prefill',) or ('decode',) roles.
        profile: latency profile name or path, passed to `build_latency_model`.
        backend: serving-engine profile ('vllm', 'sglang', 'trtllm' or a JSON file) whose
            fitted overheads and kernel efficiencies adjust the latency model.
        kv_transfer: 'after_prefill' or 'layerwise' (the network model uses it).
        block_tokens: KV-cache block size in tokens (capacity is whole blocks).
    """

    model: ModelSpec
    cluster: ClusterSpec
    groups: tuple[InstanceGroup, ...]
    profile: str | None = None
    kv_transfer: str = "after_prefill"
    block_tokens: int = 16
    backend: str | None = None

    def __post_init__(self) -> None:
        roles = tuple(g.role for g in self.groups) if isinstance(self.groups, tuple) else None
        allowed = " | ".join("+".join(s) for s in SHAPES)
        require(roles in SHAPES, "groups", roles, f"roles in order: {allowed}")
        require(
            self.kv_transfer in KV_TRANSFER_MODES,
            "kv_transfer",
            self.kv_transfer,
            f"one of {', '.join(KV_TRANSFER_MODES)}",
        )
        _check_count("block_tokens", self.block_tokens)
        if self.num_gpus > self.cluster.num_gpus:
            raise InputError(
                "groups",
                f"{self.num_gpus} GPUs",
                f"at most the {self.cluster.num_gpus} GPUs of the cluster",
            )

    @property
    def num_gpus(self) -> int:
        return sum(g.num_gpus for g in self.groups)

    @property
    def mode(self) -> str:
        """'colocated', 'disagg', 'prefill_only' or 'decode_only'."""
        roles = tuple(g.role for g in self.groups)
        return {
            ("colocated",): "colocated",
            ("prefill", "decode"): "disagg",
            ("prefill",): "prefill_only",
            ("decode",): "decode_only",
        }[roles]

    def group(self, role: str) -> InstanceGroup | None:
        """The group with `role`, or None."""
        return next((g for g in self.groups if g.role == role), None)
