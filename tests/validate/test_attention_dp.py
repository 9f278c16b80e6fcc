"""Attention data parallelism: ParallelSpec's DP degree, its rules and memory, and the cost of
an attention-DP instance (each rank its own sequences; the experts over all ranks' GPUs)."""

from __future__ import annotations

import math

import pytest

from servesim.engine import Deployment, InstanceGroup
from servesim.engine.build import kv_capacity_tokens
from servesim.errors import InputError
from servesim.latency import Efficiency, build_roofline
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec, check_parallel, memory_plan

DEEPSEEK = "deepseek-v3"


def _deepseek():  # type: ignore[no-untyped-def]
    return get_model(DEEPSEEK).with_precision("fp8", "fp8")


def test_dp_counts_gpus_and_spreads_the_experts_over_them() -> None:
    par = ParallelSpec(2, 1, 8, 4)
    assert (par.num_gpus, par.moe_gpus, par.moe_tp) == (8, 8, 1)
    assert str(par) == "tp2pp1dp4ep8" and str(ParallelSpec(8, 1, 8)) == "tp8pp1ep8"
    assert ParallelSpec(8, 2) == ParallelSpec(8, 2, 1, 1)
    with pytest.raises(InputError, match="tp\\*dp"):
        ParallelSpec(1, 1, 16, 8)  # EP over more GPUs than the stage has
    with pytest.raises(InputError, match="dp"):
        ParallelSpec(1, 1, 1, 0)


def test_check_parallel_rules_for_dp() -> None:
    cluster = make_cluster("b200", gpus_per_node=8, num_nodes=2)
    check_parallel(_deepseek(), ParallelSpec(1, 1, 8, 8), cluster, max_request_tokens=4096)
    with pytest.raises(InputError, match=r"instance\.dp.*no experts"):
        check_parallel(get_model("llama-3.1-8b"), ParallelSpec(1, 1, 1, 2), cluster)
    with pytest.raises(InputError, match="tp\\*dp\\*pp"):
        check_parallel(_deepseek(), ParallelSpec(1, 1, 8, 32), cluster)  # 32 GPUs of 16


def test_memory_replicates_all_but_the_routed_experts_per_rank() -> None:
    model = _deepseek()
    gib = 2**30
    tp8 = memory_plan(model, ParallelSpec(8, 1, 8), 192 * gib)
    dp8 = memory_plan(model, ParallelSpec(1, 1, 8, 8), 192 * gib)
    routed = model.num_moe_layers * model.num_experts * model.mlp_params(model.moe_ffn_size)
    replicated = (model.num_params - routed) * model.bytes_per_param
    # the same experts per GPU; the rest whole on every GPU instead of 1/8 of it
    assert dp8.weight_bytes - tp8.weight_bytes == pytest.approx(replicated * (1 - 1 / 8))
    # MLA's latent is replicated over TP ranks, so each DP rank's GPU caches as much per token
    assert dp8.kv_bytes_per_token == tp8.kv_bytes_per_token
    assert dp8.instance_kv_tokens == 8 * dp8.kv_capacity_tokens
    assert tp8.instance_kv_tokens == tp8.kv_capacity_tokens


def test_an_instance_holds_every_ranks_kv_but_a_request_one_ranks() -> None:
    model = _deepseek()
    cluster = make_cluster("b200", gpus_per_node=8)
    group = InstanceGroup("colocated", ParallelSpec(1, 1, 8, 8), 1, max_batch_seqs=64)
    total, per_request = kv_capacity_tokens(Deployment(model, cluster, (group,)), group)
    assert total == 8 * per_request > 0


def _roofline(par: ParallelSpec, gpus_per_node: int = 8, seq_overhead_s: float = 0.0):  # type: ignore[no-untyped-def]
    cluster = make_cluster("b200", gpus_per_node=gpus_per_node, num_nodes=8)
    eff = Efficiency(seq_overhead_s=seq_overhead_s)
    return build_roofline(_deepseek(), cluster, par, eff, "fp8")


def test_up_to_dp_prompts_prefill_side_by_side() -> None:
    """Each rank prefills its own prompts: eight prompts on eight ranks take little more than
    one (the experts see eight times the tokens), while one TP8 group runs them in turn."""
    n, length = 8, 2048
    dp = _roofline(ParallelSpec(1, 1, 8, 8))
    tp = _roofline(ParallelSpec(8, 1, 8))
    one, eight = dp.prefill_s(1, length, length**2), dp.prefill_s(n, n * length, n * length**2)
    assert one < eight < 2 * one
    assert tp.prefill_s(n, n * length, n * length**2) > 4 * tp.prefill_s(1, length, length**2)
    # a chunk of whole prompts is counted as its prompts, from its attention pairs
    pairs = n * length * (length + 1) / 2
    assert dp.mixed_s(n * length, pairs, 0, 0) < 2 * dp.mixed_s(length, pairs / n, 0, 0)


def test_the_busiest_rank_sets_the_pace() -> None:
    """Each rank reads its own sequences' KV: the cost of longer contexts follows the busiest
    rank's ceil(n / DP) sequences, as does the per-sequence overhead (each rank schedules its
    own)."""
    dp = _roofline(ParallelSpec(1, 1, 8, 8), seq_overhead_s=1e-4)

    def longer(n: int) -> float:  # what 4096 more tokens of context per sequence cost
        return dp.decode_s(n, n * 8192) - dp.decode_s(n, n * 4096)

    assert longer(9) == pytest.approx(longer(16)) and longer(9) == pytest.approx(2 * longer(8))
    overhead = [dp.decode_breakdown(n, n * 4096).overhead_s for n in (8, 9, 16, 17)]
    assert overhead[1] - overhead[0] == pytest.approx(1e-4)
    assert overhead[2] == pytest.approx(overhead[1])
    assert overhead[3] - overhead[2] == pytest.approx(1e-4)


@pytest.mark.parametrize("n", [1, 9, 64])
def test_decode_is_linear_in_context_with_dp(n: int) -> None:
    model = _roofline(ParallelSpec(2, 1, 8, 4))
    base, slope = model.decode_coeffs(n)
    for ctx in (0, 10**5, 3 * 10**5):
        assert model.decode_s(n, ctx) == pytest.approx(base + slope * ctx)


def test_moe_tokens_move_between_ranks_and_across_nodes_on_the_nics() -> None:
    """TP1 x DP8 has no TP all-reduce, yet the MoE layers gather and scatter every token; a
    stage that spans nodes does it over the NICs, one inside an NVLink domain does not."""
    n, ctx = 256, 256 * 2048
    inside = _roofline(ParallelSpec(1, 1, 16, 16), gpus_per_node=72)
    spanning = _roofline(ParallelSpec(1, 1, 16, 16), gpus_per_node=8)
    assert inside.decode_breakdown(n, ctx).communication_s > 0
    assert spanning.decode_breakdown(n, ctx).communication_s > (
        4 * inside.decode_breakdown(n, ctx).communication_s
    )


def test_wide_expert_parallelism_sends_tokens_all_to_all() -> None:
    """Over 64 GPUs a gather moves every token to every GPU; an all-to-all moves each token to
    its top-k (8) experts only, and the model takes the cheaper: well under the gather's bytes."""
    model = _deepseek()
    wide = _roofline(ParallelSpec(1, 1, 64, 64), gpus_per_node=72)
    tokens = 65536
    comm = wide.prefill_breakdown(64, tokens, 64 * (tokens // 64) ** 2).communication_s
    cluster = make_cluster("b200", gpus_per_node=72)
    gather_bytes = model.num_moe_layers * 2 * (63 / 64) * tokens * model.hidden_size * 2
    assert comm < 0.5 * gather_bytes / cluster.intra_node_bytes_per_s
    assert comm > model.experts_per_token / 64 * gather_bytes / cluster.intra_node_bytes_per_s


def test_dp_one_is_the_plain_instance() -> None:
    a, b = _roofline(ParallelSpec(8, 1, 8)), _roofline(ParallelSpec(8, 1, 8, 1))
    for n in (1, 7, 100):
        assert a.decode_s(n, n * 1000) == b.decode_s(n, n * 1000)
        assert math.isclose(
            a.prefill_s(n, n * 512, n * 512**2), b.prefill_s(n, n * 512, n * 512**2)
        )
