"""`servesim simulate`: run one configuration; print latency, SLO attainment and throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.cli.common import print_json
from servesim.cli.output import write_json, write_records
from servesim.scenario import (
    Scenario,
    build_deployment,
    build_transport,
    build_workload,
    make_scenario,
)

EXAMPLES = """
Examples:

  servesim simulate --model opt-13b --tp 2 --instances 4 --workload sharegpt --rate 8

  servesim simulate --model opt-66b --mode disagg --prefill-tp 4 --decode-tp 2 \\
      --decode-instances 2 \\
      --workload sharegpt --rate 2 --ttft-slo 2.5 --tpot-slo 0.15 --json

  servesim simulate --model llama-3.1-8b --gpu h100-sxm --isl 1024 --osl 128 --concurrency 32

  servesim simulate --trace conv.csv --rate 5 --records out/records.csv

  servesim simulate --scenario my-scenario.yaml --seed 3
"""

Opt = typer.Option


@app.command(help="Simulate one serving configuration request by request." + EXAMPLES)
def simulate(
    scenario: Path | None = Opt(
        None, help="YAML or TOML file with any of these options; flags override it."
    ),
    model: str | None = Opt(
        None, help="Catalog name, Hugging Face id or config.json path (default: opt-13b)."
    ),
    gpu: str | None = Opt(None, help="GPU catalog name (default: a100-80gb)."),
    nodes: int | None = Opt(None, help="Nodes in the cluster (default: 1)."),
    gpus_per_node: int | None = Opt(None, help="GPUs per node (default: 8)."),
    nic_gbps: float | None = Opt(
        None, help="NIC bandwidth, Gbit/s (default: the GPU's DGX-like node)."
    ),
    nics_per_node: int | None = Opt(
        None, help="NICs per node; GPU i uses NIC i mod this (default: one per GPU)."
    ),
    nvlink_gbps: float | None = Opt(
        None, help="NVLink bandwidth per GPU and direction, Gbit/s (default: the GPU's spec)."
    ),
    oversubscription: float | None = Opt(
        None, help="Leaf-to-spine oversubscription; 1 = one non-blocking switch (default: 1)."
    ),
    mode: str | None = Opt(None, help="colocated or disagg (default: colocated)."),
    policy: str | None = Opt(None, help="Colocated scheduling: vllm or chunked (default: vllm)."),
    tp: int | None = Opt(None, help="Colocated: tensor-parallel degree."),
    pp: int | None = Opt(None, help="Colocated: pipeline-parallel degree."),
    instances: int | None = Opt(None, help="Colocated: number of instances."),
    prefill_tp: int | None = Opt(None, help="Disagg: prefill TP."),
    prefill_pp: int | None = Opt(None, help="Disagg: prefill PP."),
    prefill_instances: int | None = Opt(None, help="Disagg: prefill instances."),
    decode_tp: int | None = Opt(None, help="Disagg: decode TP."),
    decode_pp: int | None = Opt(None, help="Disagg: decode PP."),
    decode_instances: int | None = Opt(None, help="Disagg: decode instances."),
    affinity: str | None = Opt(
        None,
        help="Disagg placement: high (any node) or low (prefill and decode stage s "
        "share a node) (default: high).",
    ),
    kv_transfer: str | None = Opt(
        None, help="Disagg KV move: after_prefill or layerwise (default: after_prefill)."
    ),
    network: bool | None = Opt(
        None,
        "--network/--no-network",
        help="Flow model of the links (max-min sharing) and the network report "
        "(default: on for disagg, off for colocated).",
    ),
    workload: str | None = Opt(
        None, help="Built-in lengths: sharegpt, humaneval, longbench, azure-conv, azure-code."
    ),
    trace: str | None = Opt(
        None, help="Trace file (Azure 2023 CSV, Vidur CSV, Mooncake JSONL, plain CSV/JSONL)."
    ),
    isl: int | None = Opt(None, help="Fixed input length (with --osl)."),
    osl: int | None = Opt(None, help="Fixed output length (with --isl)."),
    rate: float | None = Opt(
        None, help="Open loop: requests per second (trace: rescale to this mean rate)."
    ),
    concurrency: int | None = Opt(None, help="Closed loop: concurrent clients."),
    arrival: str | None = Opt(None, help="Arrival process: poisson, gamma or deterministic."),
    cv: float | None = Opt(None, help="Gamma arrivals: coefficient of variation."),
    requests: int | None = Opt(None, help="Number of requests (default: 2000)."),
    ttft_slo: float | None = Opt(None, help="TTFT SLO, seconds (default: 0.25)."),
    tpot_slo: float | None = Opt(None, help="TPOT SLO, seconds (default: 0.1)."),
    max_prefill_tokens: int | None = Opt(
        None, help="L_m: prefill batch token cap (default: saturating length)."
    ),
    max_batch: int | None = Opt(None, help="Max running sequences per instance (default: 256)."),
    precision: str | None = Opt(
        None,
        help="Weight precision: bf16, fp16, fp8, fp4 (NVFP4) or int4 (W4A16) "
        "(default: the model's).",
    ),
    kv_precision: str | None = Opt(
        None,
        help="KV-cache precision: bf16, fp16 or fp8 "
        "(default: the backend's, else the weights'; fp4: fp8, int4: bf16).",
    ),
    profile: str | None = Opt(None, help="Latency profile name or JSON file."),
    backend: str | None = Opt(
        None, help="Serving-engine profile: vllm, sglang, trtllm (or a JSON file)."
    ),
    decode_kv_policy: str | None = Opt(
        None,
        help="Decode KV: on_demand (grow, preempt by recompute; default) or reserve.",
    ),
    seed: int | None = Opt(None, help="Random seed (default: 0)."),
    exact: bool = Opt(False, "--exact", help="Step every decode iteration (reference engine)."),
    records: Path | None = Opt(
        None, help="Write per-request records (.csv, or .parquet with pyarrow)."
    ),
    timeline: Path | None = Opt(
        None, help="Write the execution as Chrome trace-event JSON (Perfetto)."
    ),
    out: Path | None = Opt(
        None, help="Write summary.json, records.csv and instances.csv here (for `servesim report`)."
    ),
    as_json: bool = Opt(False, "--json", help="Print one JSON object."),
) -> None:
    flags = {
        k: v
        for k, v in locals().items()
        if k not in ("scenario", "exact", "records", "timeline", "out", "as_json")
    }
    s = make_scenario(scenario, **flags)
    if s.rate is None and s.concurrency is None and not s.trace:
        s = s.model_copy(update={"rate": 1.0})
    from servesim.engine import simulate as run
    from servesim.metrics import summarize

    want_timeline = timeline is not None or out is not None
    deployment = build_deployment(s)
    transport = build_transport(s, deployment)
    result = run(
        deployment,
        build_workload(s),
        seed=s.seed,
        exact=exact,
        timeline=want_timeline,
        transport=transport,
    )
    summary = summarize(result, s.ttft_slo, s.tpot_slo)
    if transport is not None:
        from servesim.network import network_summary

        hidden_size = deployment.model.hidden_size
        summary["network"] = network_summary(transport, result, hidden_size, s.affinity)
    if records is not None:
        write_records(result.records, records)
    if timeline is not None:
        from servesim.report.trace import write_chrome_trace

        write_chrome_trace(result, timeline)
    if out is not None:
        write_outputs(result, summary, out)
    if as_json:
        print_json(summary)
    else:
        print_summary(s, summary)


def write_outputs(result: Any, summary: dict[str, Any], out: Path) -> None:
    """The folder `servesim report` reads: summary, records and per-instance samples."""
    from servesim.report.timeline import timeline_of, write_instance_samples

    write_json(summary, out / "summary.json")
    write_records(result.records, out / "records.csv")
    write_instance_samples(timeline_of(result).samples, out / "instances.csv")


def print_summary(s: Scenario, summary: dict[str, Any]) -> None:
    console = Console()
    title = f"{s.model} on {s.gpu}, {s.mode}" + (
        f" ({s.policy or 'vllm'})" if s.mode == "colocated" else ""
    )
    table = Table(title=title)
    for col in ("metric", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in (("ttft_s", "TTFT s"), ("tpot_s", "TPOT s"), ("e2e_s", "E2E s")):
        row = summary[key]
        table.add_row(label, *(_fmt(row[q]) for q in ("mean", "p50", "p90", "p99")))
    console.print(table)
    att, thr, req = summary["attainment"], summary["throughput"], summary["requests"]
    console.print(
        f"attainment (TTFT <= {s.ttft_slo} s, TPOT <= {s.tpot_slo} s): TTFT {att['ttft']:.1%}, "
        f"TPOT {att['tpot']:.1%}, joint {att['joint']:.1%}",
        highlight=False,
    )
    console.print(
        f"throughput: {thr['requests_per_s']:.2f} req/s, "
        f"{thr['output_tokens_per_s']:.0f} output tok/s; requests: {req['arrived']} arrived, "
        f"{req['finished']} finished, {req['rejected']} rejected, {req['preempted']} preempted",
        highlight=False,
    )
    if "network" in summary:
        from servesim.network.summary import network_lines

        for line in network_lines(summary["network"]):
            console.print(f"network: {line}", highlight=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
