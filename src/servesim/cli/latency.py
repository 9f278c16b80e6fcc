"""`servesim latency`: one prefill and one decode iteration time, and where the time goes."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.cli.common import build_cluster, build_model, parse_batch, print_json
from servesim.latency import build_latency_model
from servesim.specs.parallel import ParallelSpec, check_parallel

EXAMPLES = """
Examples:

  servesim latency --model opt-13b --gpu a100-80gb --batch 512x8

  servesim latency --model llama-3.1-70b --gpu h100-sxm --tp 4 --batch 2048x1 --json

  servesim latency --model ./my-model/config.json --gpu l40s --tp 2 --pp 2 --roofline

  servesim latency --model deepseek-v3 --gpu b200 --precision fp8 --dp 8 --ep 8 --batch 2048x64
"""


@app.command(
    help="Time one prefill and one decode iteration of a batch, with a breakdown." + EXAMPLES
)
def latency(
    model: str = typer.Option(
        "opt-13b", help="Catalog name, Hugging Face id, or path to a config.json."
    ),
    gpu: str = typer.Option("a100-80gb", help="GPU catalog name."),
    tp: int = typer.Option(1, help="Tensor-parallel degree (intra-op)."),
    pp: int = typer.Option(1, help="Pipeline-parallel degree (inter-op)."),
    ep: int = typer.Option(
        1, help="Expert-parallel degree over the TP x DP GPUs of a stage (MoE models)."
    ),
    dp: int = typer.Option(
        1,
        help="Attention data-parallel ranks per stage (MoE models): each rank of TP GPUs runs "
        "the attention for its own sequences; --batch COUNT is over all ranks.",
    ),
    batch: str = typer.Option(
        "512x8",
        help="LENGTHxCOUNT: COUNT prompts of LENGTH tokens (prefill), "
        "and COUNT sequences holding LENGTH tokens of context (decode).",
    ),
    gpus_per_node: int = typer.Option(8, help="GPUs per node (TP must fit in one node)."),
    profile: str | None = typer.Option(None, help="Fitted profile: a shipped name or a JSON file."),
    backend: str | None = typer.Option(
        None, help="Serving-engine profile: vllm, sglang, trtllm (or a JSON file)."
    ),
    roofline: bool = typer.Option(False, "--roofline", help="Use the roofline from specs alone."),
    precision: str | None = typer.Option(
        None, help="Weight precision: bf16, fp16, fp8, fp4 (NVFP4) or int4 (W4A16)."
    ),
    kv_precision: str | None = typer.Option(None, help="KV-cache precision: bf16, fp16 or fp8."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    spec = build_model(model, precision, kv_precision)
    parallel = ParallelSpec(tp, pp, ep, dp)
    cluster = build_cluster(
        gpu, gpus_per_node=gpus_per_node, num_nodes=max(1, -(-parallel.num_gpus // gpus_per_node))
    )
    length, count = parse_batch(batch)
    check_parallel(spec, parallel, cluster, max_request_tokens=length)
    lat = build_latency_model(
        spec, cluster, parallel, profile=profile, roofline=roofline, backend=backend
    )
    prefill = lat.prefill_breakdown(count, length * count, length * length * count)
    decode = lat.decode_breakdown(count, length * count)
    if as_json:
        print_json(
            {
                "model": spec.name,
                "gpu": cluster.gpu.name,
                "tp": tp,
                "pp": pp,
                "ep": ep,
                "dp": dp,
                "batch": {"length_tokens": length, "num_seqs": count},
                "prefill_s": prefill.total_s,
                "decode_s": decode.total_s,
                "breakdown": {"prefill": prefill.as_dict(), "decode": decode.as_dict()},
            }
        )
        return
    table = Table(
        title=f"{spec.name} on {parallel} {cluster.gpu.name}, batch {count} x {length} tokens"
    )
    for col in ("phase", "total ms", "compute ms", "memory ms", "comm ms", "overhead ms"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, b in (("prefill", prefill), ("decode step", decode)):
        table.add_row(
            name,
            *(
                f"{v * 1e3:.2f}"
                for v in (b.total_s, b.compute_s, b.memory_s, b.communication_s, b.overhead_s)
            ),
        )
    Console().print(table)
