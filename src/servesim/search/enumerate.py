"""Candidate enumeration: the TP x PP configurations that fit, and how instances are combined.

`fitting_configs` lists every (TP, PP) instance of the model that passes `check_parallel` on the
cluster (with the workload's longest request), up to an instance-size cap. `balance` picks the
instance counts n:m that balance a prefill and a decode goodput (DistServe Algorithm 1's
replication), `low_affinity_unit` the counts that fill one node segment (Algorithm 2).
"""

from __future__ import annotations

import math

from servesim.errors import InputError
from servesim.search.problem import SearchProblem
from servesim.search.shapes import GroupShape, Shape
from servesim.specs.gpu import GIB
from servesim.specs.parallel import ParallelSpec, check_parallel, min_gpus_to_fit


def default_max_instance_gpus(problem: SearchProblem) -> int:
    """Default cap on GPUs per instance: a node, or 4x the fewest GPUs that hold the model."""
    need = min_gpus_to_fit(
        problem.model, problem.cluster.gpu.memory_bytes, problem.max_request_tokens()
    )
    return max(problem.cluster.gpus_per_node, 4 * need)


def fitting_configs(
    problem: SearchProblem, max_instance_gpus: int | None = None
) -> list[ParallelSpec]:
    """Every TP x PP instance that fits, in (TP, PP) order; InputError if none does."""
    cluster = problem.cluster
    cap = min(cluster.num_gpus, max_instance_gpus or default_max_instance_gpus(problem))
    need_tokens = problem.max_request_tokens()
    configs = []
    for tp in range(1, cluster.gpus_per_node + 1):
        for pp in range(1, cap // tp + 1):
            try:
                check_parallel(
                    problem.model, ParallelSpec(tp, pp), cluster, max_request_tokens=need_tokens
                )
            except InputError:
                continue
            configs.append(ParallelSpec(tp, pp))
    if not configs:
        raise cluster_too_small(problem, need_tokens)
    return configs


def cluster_too_small(problem: SearchProblem, need_tokens: int) -> InputError:
    """The error for a cluster on which no configuration holds the model and one request."""
    model, cluster = problem.model, problem.cluster
    need_gib = (model.weight_bytes + need_tokens * model.kv_bytes_per_token) / GIB
    usable_gib = cluster.num_gpus * cluster.gpu.memory_bytes * 0.9 / GIB
    need_gpus = min_gpus_to_fit(model, cluster.gpu.memory_bytes, need_tokens)
    return InputError(
        "cluster",
        f"{cluster.num_nodes}x{cluster.gpus_per_node} {cluster.gpu.name}",
        f"{model.name} needs at least {need_gib:.1f} GiB (weights and the KV cache of one "
        f"{need_tokens}-token request) in an instance whose TP fits a node, about {need_gpus} "
        f"GPUs or more; the cluster has {cluster.num_gpus} GPUs with {usable_gib:.1f} GiB usable "
        "in all; use more GPUs or nodes",
    )


def replicas_to_fill(unit_gpus: int, num_gpus: int) -> int:
    """Copies of a unit of `unit_gpus` GPUs that fit in `num_gpus` GPUs."""
    return num_gpus // unit_gpus


def replicas_for_rate(unit_goodput_per_s: float, rate_per_s: float | None, max_copies: int) -> int:
    """Copies needed to serve `rate_per_s` (all that fit when no rate is asked)."""
    if rate_per_s is None or unit_goodput_per_s <= 0:
        return max_copies
    return max(1, min(max_copies, math.ceil(rate_per_s / unit_goodput_per_s)))


def balance(
    prefill: GroupShape,
    prefill_goodput_per_s: float,
    decode: GroupShape,
    decode_goodput_per_s: float,
    num_gpus: int,
    rate_per_s: float | None,
) -> tuple[int, int]:
    """(n, m) prefill and decode instances: enough for `rate_per_s`, else the counts that fit in
    `num_gpus` and maximize min(n * prefill goodput, m * decode goodput) (fewest GPUs on ties)."""
    gp, gd = prefill.gpus_per_instance, decode.gpus_per_instance
    if rate_per_s is not None:
        n = math.ceil(rate_per_s / prefill_goodput_per_s)
        m = math.ceil(rate_per_s / decode_goodput_per_s)
        if n * gp + m * gd <= num_gpus:
            return n, m
    best: tuple[float, int, int, int] | None = None
    for n in range(1, (num_gpus - gd) // gp + 1):
        m = (num_gpus - n * gp) // gd
        m = min(m, max(1, math.ceil(n * prefill_goodput_per_s / decode_goodput_per_s)))
        served = min(n * prefill_goodput_per_s, m * decode_goodput_per_s)
        key = (-served, n * gp + m * gd, n, m)
        if best is None or key < best:
            best = key
    if best is None:
        return 1, 1
    return best[2], best[3]


def low_affinity_unit(
    prefill: ParallelSpec,
    prefill_goodput_per_s: float,
    decode: ParallelSpec,
    decode_goodput_per_s: float,
    gpus_per_node: int,
) -> Shape | None:
    """Prefill and decode instances whose same-numbered stages share one node segment: counts
    n_p, n_d with n_p*TP_p + n_d*TP_d <= GPUs per node maximizing balanced goodput per GPU."""
    best: tuple[float, int, int, int] | None = None
    for n_p in range(1, gpus_per_node // prefill.tp + 1):
        for n_d in range(1, (gpus_per_node - n_p * prefill.tp) // decode.tp + 1):
            width = n_p * prefill.tp + n_d * decode.tp
            served = min(n_p * prefill_goodput_per_s, n_d * decode_goodput_per_s)
            key = (-served / width, width, n_p, n_d)
            if best is None or key < best:
                best = key
    if best is None:
        return None
    _, _, n_p, n_d = best
    return Shape(
        (
            GroupShape("prefill", prefill.tp, prefill.pp, n_p),
            GroupShape("decode", decode.tp, decode.pp, n_d),
        ),
        "low",
    )


def low_affinity_copies(unit: Shape, num_nodes: int, gpus_per_node: int) -> int:
    """Copies of a low-affinity unit that fit: each needs PP segments, each inside one node."""
    width = sum(g.tp * g.num_instances for g in unit.groups)
    segments = num_nodes * (gpus_per_node // width)
    return segments // unit.groups[0].pp
