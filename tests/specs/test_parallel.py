"""Parallelism rules: each violated rule is an InputError naming the rule and the numbers."""

from __future__ import annotations

import pytest

from servesim.errors import InputError
from servesim.specs import get_model, make_cluster
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec, check_parallel, memory_plan, stage_layers


def test_tp_must_divide_heads() -> None:
    with pytest.raises(InputError, match="must divide the attention heads"):
        check_parallel(get_model("llama-2-7b"), ParallelSpec(3, 1), make_cluster("a100-80gb"))


def test_tp_above_kv_heads_must_be_a_multiple() -> None:
    model = ModelSpec("toy", "llama", 4, 768, 24, 4, 32, 2048, 1000, 2048)
    with pytest.raises(InputError, match="multiple"):
        check_parallel(model, ParallelSpec(6, 1), make_cluster("a100-80gb"), max_request_tokens=16)


def test_tp_within_one_node() -> None:
    cluster = make_cluster("a100-80gb", num_nodes=2)
    with pytest.raises(InputError, match="one node"):
        check_parallel(get_model("llama-3.1-405b"), ParallelSpec(16, 1), cluster)


def test_pp_at_most_layers() -> None:
    with pytest.raises(InputError, match="at most the 32 layers"):
        check_parallel(
            get_model("llama-2-7b"), ParallelSpec(1, 33), make_cluster("a100-80gb", num_nodes=5)
        )


def test_model_must_fit() -> None:
    with pytest.raises(InputError, match=r"needs .* GiB per GPU"):
        check_parallel(
            get_model("llama-3.1-70b"), ParallelSpec(1, 1), make_cluster("a100-80gb"), 4096
        )


def test_instance_fits_when_sharded() -> None:
    plan = check_parallel(
        get_model("llama-3.1-70b"), ParallelSpec(4, 1), make_cluster("a100-80gb"), 4096
    )
    assert plan.kv_capacity_tokens >= 4096


def test_stages_uneven_by_at_most_one() -> None:
    layers = stage_layers(61, 4)
    assert sum(layers) == 61 and max(layers) - min(layers) <= 1


def test_kv_heads_replicate_above_tp() -> None:
    model = ModelSpec("toy", "llama", 4, 512, 8, 2, 64, 1024, 1000, 2048)
    per_gpu = memory_plan(model, ParallelSpec(4, 1), 80 * 1024**3).kv_bytes_per_token
    assert per_gpu == 4 * 2 * 1 * 64 * 2  # one whole KV head per GPU, not half of one
