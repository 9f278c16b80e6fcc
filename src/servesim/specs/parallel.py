"""Parallelism of one model replica (TP x DP x PP GPUs) and the rules it must satisfy.

An MoE model may also split its experts over `ep` of the TP ranks (expert parallelism): the
attention stays TP-sharded over all `tp` ranks, and each expert lives on one EP rank, sharded
over `tp // ep` ranks (aiconfigurator's moe_tp x moe_ep = tp). The GPU count stays tp * pp.

With attention data parallelism (`dp` > 1, MoE models only: SGLang's and TensorRT-LLM's
attention DP, vLLM's data-parallel expert serving) each pipeline stage has `dp` attention ranks
of `tp` GPUs. Every rank holds its own sequences and their KV cache, with the attention, dense
and shared-expert weights replicated per rank; the routed experts spread over all tp * dp GPUs
(`ep` of them, each sharded over tp * dp // ep GPUs). The GPU count is tp * dp * pp.

`check_parallel` raises an InputError naming the rule and the numbers; `memory_plan` says how a
GPU's memory splits between weights, activations and KV cache, and how many KV tokens fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from servesim.errors import InputError, require
from servesim.specs.cluster import ClusterSpec
from servesim.specs.gpu import GIB
from servesim.specs.model import ModelSpec

DEFAULT_MEMORY_UTILIZATION = 0.9  # share of GPU memory the engine may use (vLLM's default)
DEFAULT_BLOCK_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ParallelSpec:
    """Tensor (intra-op) and pipeline (inter-op) parallel degrees of one instance, the
    expert-parallel degree over the MoE GPUs of a stage (MoE models only; 1 = experts
    TP-sharded) and the attention data-parallel ranks of a stage (MoE models only)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1

    def __post_init__(self) -> None:
        require(self.tp >= 1, "tp", self.tp, "an integer >= 1")
        require(self.pp >= 1, "pp", self.pp, "an integer >= 1")
        require(self.ep >= 1, "ep", self.ep, "an integer >= 1")
        require(self.dp >= 1, "dp", self.dp, "an integer >= 1")
        require(
            self.moe_gpus % self.ep == 0, "ep", self.ep, f"a divisor of tp*dp ({self.moe_gpus})"
        )

    @property
    def num_gpus(self) -> int:
        return self.tp * self.dp * self.pp

    @property
    def moe_gpus(self) -> int:
        """GPUs of one stage the routed experts spread over (tp * dp)."""
        return self.tp * self.dp

    @property
    def moe_tp(self) -> int:
        """GPUs each expert is sharded over (tp * dp // ep)."""
        return self.moe_gpus // self.ep

    def __str__(self) -> str:
        base = f"tp{self.tp}pp{self.pp}"
        if self.dp > 1:
            base += f"dp{self.dp}"
        return base if self.ep == 1 else f"{base}ep{self.ep}"


def stage_layers(num_layers: int, pp: int) -> list[int]:
    """Layers per pipeline stage, as even as possible (stages differ by at most one layer)."""
    base, extra = divmod(num_layers, pp)
    return [base + (1 if s < extra else 0) for s in range(pp)]


def kv_bytes_per_token_per_gpu(model: ModelSpec, tp: int, num_layers: int) -> float:
    """KV bytes one token takes on one GPU holding `num_layers` layers at tensor-parallel `tp`.

    GQA: each rank holds its share of the KV heads, one replica when TP exceeds them.
    MLA: the compressed latent is replicated on every rank.
    """
    if model.is_mla:
        per_layer = model.kv_values_per_token_per_layer
    else:
        per_layer = 2 * model.head_dim * max(1, model.num_kv_heads // tp)
    return num_layers * per_layer * model.kv_bytes_per_element


def _stage_attention_layers(model: ModelSpec, pp: int) -> tuple[int, int, int]:
    """(full-attention, sliding-window, linear-attention) layers of a pipeline stage: the most
    of each any stage holds (an upper bound on one stage's KV and state)."""
    full = window = linear = start = 0
    for num in stage_layers(model.num_layers, pp):
        windowed = model.num_window_layers_in(start, start + num)
        recurrent = model.num_linear_layers_in(start, start + num)
        full = max(full, num - windowed - recurrent)
        window, linear = max(window, windowed), max(linear, recurrent)
        start += num
    return full, window, linear


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Per-GPU memory split of the most loaded pipeline stage, in bytes, and the KV capacity.

    With sliding-window layers and a known `max_seqs`, each of up to `max_seqs` sequences has
    its windows reserved (`window_bytes_per_seq`: a windowed layer keeps at most W tokens) and
    `kv_bytes_per_token` counts only the full-attention layers; otherwise every windowed layer
    is charged per token, which over-counts windowed layers beyond W tokens. Linear-attention
    layers are never charged per token: each of `max_seqs` sequences has their recurrent state
    reserved (`state_bytes_per_seq`).
    """

    usable_bytes: float
    weight_bytes: float
    activation_bytes: float
    kv_bytes_per_token: float
    block_tokens: int
    window_bytes_per_seq: float = 0.0
    max_seqs: int = 0
    state_bytes_per_seq: float = 0.0
    attention_ranks: int = 1  # attention DP ranks, each caching its own sequences

    @property
    def kv_free_bytes(self) -> float:
        """Bytes left for the per-token KV cache (after any reserved windows and states)."""
        reserved = self.max_seqs * (self.window_bytes_per_seq + self.state_bytes_per_seq)
        return self.usable_bytes - self.weight_bytes - self.activation_bytes - reserved

    @property
    def kv_capacity_tokens(self) -> int:
        """Whole blocks of KV cache that fit on every GPU of one attention rank, in tokens (the
        longest request the instance can hold)."""
        if self.kv_free_bytes <= 0:
            return 0
        blocks = int(self.kv_free_bytes // (self.kv_bytes_per_token * self.block_tokens))
        return blocks * self.block_tokens

    @property
    def instance_kv_tokens(self) -> int:
        """KV tokens of the whole instance: every attention DP rank caches its own sequences."""
        return self.kv_capacity_tokens * self.attention_ranks


def memory_plan(
    model: ModelSpec,
    par: ParallelSpec,
    memory_bytes: float,
    max_batch_tokens: int = 8192,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    max_seqs: int | None = None,
) -> MemoryPlan:
    """Memory of the busiest GPU: its stage's weight shard, activations for `max_batch_tokens`.

    `max_seqs` (the most sequences holding KV at once), when given, lets a model with
    sliding-window layers reserve one window per sequence instead of charging those layers
    per token; it changes nothing for a model without them. A model with linear-attention
    layers reserves their state for `max_seqs` sequences, or for one when it is not given (the
    least any request needs), and charges only its attention layers per token. With attention
    DP the plan is of one rank's GPUs, holding their share of `max_seqs`.
    """
    layers = max(stage_layers(model.num_layers, par.pp))
    layer_params = (model.num_params - model.embedding_params) / model.num_layers
    # Embedding and LM head live on the first and last stage; charge the larger share to one stage.
    embed_share = model.embedding_params / (2 if par.pp > 1 else 1)
    # Attention DP replicates everything but the routed experts on each rank's TP GPUs.
    routed = model.num_moe_layers * model.num_experts * model.mlp_params(model.moe_ffn_size)
    not_replicated = layers * routed / model.num_layers * (1 - 1 / par.dp)
    stage_params = layers * layer_params + embed_share - not_replicated
    weight_bytes = stage_params * model.bytes_per_param / par.tp
    if max_seqs is not None:
        max_seqs = -(-max_seqs // par.dp)
    width = 4 * model.hidden_size + 2 * max(model.ffn_size, model.moe_ffn_size) // par.tp
    activation_bytes = max_batch_tokens * width * model.bytes_per_param + 0.5 * GIB
    plan = MemoryPlan(
        usable_bytes=memory_bytes * memory_utilization,
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        kv_bytes_per_token=kv_bytes_per_token_per_gpu(model, par.tp, layers),
        block_tokens=block_tokens,
        attention_ranks=par.dp,
    )
    full, window, linear = _stage_attention_layers(model, par.pp)
    per_layer = kv_bytes_per_token_per_gpu(model, par.tp, 1)
    if linear:
        plan = replace(
            plan,
            kv_bytes_per_token=(full + window) * per_layer,
            state_bytes_per_seq=linear * model.linear_state_bytes_per_layer / par.tp,
            max_seqs=1 if max_seqs is None else max_seqs,
        )
    if max_seqs is None or not window or not full:  # all-windowed: charged per token
        return plan
    return replace(
        plan,
        kv_bytes_per_token=full * per_layer,
        window_bytes_per_seq=window * model.sliding_window_tokens * per_layer,
        max_seqs=max_seqs,
    )


def _check_ep(model: ModelSpec, par: ParallelSpec, role: str) -> None:
    """EP or attention DP > 1 needs an MoE model, whose routed experts split evenly over the EP
    ranks (attention DP of a dense model is just more instances)."""
    if par.dp > 1 and not model.is_moe:
        raise InputError(
            f"{role}.dp", par.dp, f"1 ({model.name} has no experts; use more instances)"
        )
    if par.ep == 1:
        return
    if not model.is_moe:
        raise InputError(f"{role}.ep", par.ep, f"1 ({model.name} has no experts)")
    if model.num_experts % par.ep:
        raise InputError(
            f"{role}.ep",
            par.ep,
            f"a divisor of the {model.num_experts} routed experts of {model.name}",
        )


def check_parallel(
    model: ModelSpec,
    par: ParallelSpec,
    cluster: ClusterSpec,
    max_request_tokens: int | None = None,
    role: str = "instance",
) -> MemoryPlan:
    """Check every rule of a TP x DP x PP instance of `model` on `cluster`; return its memory plan.

    Rules: EP and attention DP (if > 1) need an MoE model, EP dividing TP x DP and the routed
    experts; TP divides the attention heads and any linear-attention key heads (KV heads
    replicate when TP exceeds them, so TP must be a multiple of the KV heads then); TP fits
    inside one node; PP is at most the number of layers (stages uneven by at most one layer);
    the instance fits in the cluster; and each GPU holds its weight shard, activations and the
    KV cache of at least one maximal request.
    """
    tp, pp = par.tp, par.pp
    _check_ep(model, par, role)
    if model.num_heads % tp:
        raise InputError(
            f"{role}.tp", tp, f"must divide the attention heads ({model.num_heads} in {model.name})"
        )
    linear = model.linear_attention
    if linear is not None and linear.num_key_heads % tp:
        raise InputError(
            f"{role}.tp",
            tp,
            f"must divide the linear-attention key heads ({linear.num_key_heads} in {model.name})",
        )
    if not model.is_mla and tp > model.num_kv_heads and tp % model.num_kv_heads:
        raise InputError(
            f"{role}.tp",
            tp,
            f"above the KV heads ({model.num_kv_heads}) it must be a multiple of them",
        )
    if tp > cluster.gpus_per_node:
        raise InputError(
            f"{role}.tp", tp, f"TP must fit in one node of {cluster.gpus_per_node} GPUs"
        )
    if pp > model.num_layers:
        raise InputError(f"{role}.pp", pp, f"at most the {model.num_layers} layers of {model.name}")
    gpus_field = f"{role}.tp*dp*pp" if par.dp > 1 else f"{role}.tp*pp"
    if par.num_gpus > cluster.num_gpus:
        raise InputError(
            gpus_field,
            par.num_gpus,
            f"at most the {cluster.num_gpus} GPUs of the cluster",
        )
    plan = memory_plan(model, par, cluster.gpu.memory_bytes)
    need_tokens = max_request_tokens if max_request_tokens is not None else model.max_context_tokens
    if plan.kv_capacity_tokens < need_tokens:
        need_gib = (
            plan.weight_bytes + plan.activation_bytes + need_tokens * plan.kv_bytes_per_token
        ) / GIB
        raise InputError(
            gpus_field,
            f"{tp}x{par.dp}x{pp}" if par.dp > 1 else f"{tp}x{pp}",
            f"{model.name} needs {need_gib:.1f} GiB per GPU (weights "
            f"{plan.weight_bytes / GIB:.1f}, activations {plan.activation_bytes / GIB:.1f}, KV of "
            f"one {need_tokens}-token request) but {cluster.gpu.name} offers "
            f"{plan.usable_bytes / GIB:.1f} GiB usable; use more GPUs",
        )
    return plan


def min_gpus_to_fit(model: ModelSpec, memory_bytes: float, max_request_tokens: int) -> int:
    """A lower bound on the GPUs that can hold the model and one maximal request."""
    need = model.weight_bytes + model.kv_bytes_per_seq(max_request_tokens)
    return max(1, math.ceil(need / (memory_bytes * DEFAULT_MEMORY_UTILIZATION)))
