"""`servesim queueing`: DistServe's M/D/1 (and M/G/1) analysis of intra- vs inter-op prefill.

Two forms: raw numbers (`--service-s D --speedup K`), or a real setup (`--model/--gpu` with
`--input-len` or `--workload`) whose D, D_s, D_m and K come from servesim's latency model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.cli.common import build_cluster, build_model, parse_floats, print_json
from servesim.errors import InputError, require
from servesim.queueing.compare import (
    OPTION_NAMES,
    ThreeWay,
    intra_inter_crossover_per_s,
    rate_grid_per_s,
    slo_quantile_rates_per_s,
    slo_rates_per_s,
    three_way_from_numbers,
    ttft_rows,
)
from servesim.queueing.setup import (
    LatencySource,
    LengthMix,
    PrefillSetup,
    decode_side,
    prefill_setup,
)
from servesim.specs.parallel import ParallelSpec
from servesim.workload import get_lengths

EXAMPLES = """
Examples:

  servesim queueing --service-s 0.3 --speedup 1.6 --rates 0.5,1,2,3,4

  servesim queueing --model opt-66b --gpu a100-80gb --input-len 512 --ttft-slo 2.5

  servesim queueing --model opt-66b --workload sharegpt --ways 4 --tpot-slo 0.15 --json

D: prefill time on one GPU; D_s, D_m: latency and bottleneck stage of an N-way pipeline \
(PP=N); K: speedup of N-way tensor parallelism (TP=N). "unstable": load R*D >= 1 there.
"""

Opt = typer.Option
LABELS = {"single": "1 GPU", "inter": "inter-op", "intra": "intra-op"}


@app.command(
    help="Mean TTFT of 1 GPU vs N-way inter-op vs N-way intra-op prefill, in closed form."
    + EXAMPLES
)
def queueing(
    service_s: float | None = Opt(None, help="Raw form: D, prefill time on one device, s."),
    speedup: float | None = Opt(None, help="Raw form: K, speedup of N-way intra-op."),
    stage_s: float | None = Opt(None, help="D_m, pipeline bottleneck stage, s (default D/N)."),
    pipeline_latency_s: float | None = Opt(None, help="D_s, pipeline latency, s (default D)."),
    model: str | None = Opt(None, help="Setup form: catalog name, HF id or config.json path."),
    gpu: str = Opt("a100-80gb", help="Setup form: GPU catalog name."),
    input_len: int | None = Opt(None, help="Setup form: prompt length, tokens (default 512)."),
    workload: str | None = Opt(None, help="Setup form: built-in length distribution (M/G/1)."),
    samples: int = Opt(20000, help="Prompts sampled from --workload."),
    seed: int = Opt(0, help="Seed for sampling --workload."),
    gpus_per_node: int = Opt(8, help="GPUs per node."),
    nvlink_gbs: float | None = Opt(None, help="NVLink GB/s per GPU (default: the GPU's)."),
    pcie: bool = Opt(False, "--pcie", help="No NVLink: TP all-reduces run over PCIe."),
    profile: str | None = Opt(None, help="Fitted latency profile: a shipped name or JSON file."),
    roofline: bool = Opt(False, "--roofline", help="Use the roofline from specs alone."),
    ways: int = Opt(2, help="N: the parallel degree of both options."),
    rates: str | None = Opt(None, help="Comma-separated rates, req/s (default: a grid up to N/D)."),
    num_rates: int = Opt(10, help="Points of the default rate grid."),
    ttft_slo: float | None = Opt(None, help="TTFT SLO, s: the highest rate meeting it."),
    tpot_slo: float | None = Opt(None, help="TPOT SLO, s: adds the decode side (setup form)."),
    context_len: int | None = Opt(
        None,
        help="Decode context per sequence, tokens (default: the"
        " prompt length, or mean input + half the mean output).",
    ),
    max_batch: int = Opt(512, help="Decode batch cap (also capped by the KV cache)."),
    as_json: bool = Opt(False, "--json", help="Print one JSON object."),
) -> None:
    _check_sign(
        {
            "service_s": service_s,
            "speedup": speedup,
            "stage_s": stage_s,
            "pipeline_latency_s": pipeline_latency_s,
            "ttft_slo": ttft_slo,
            "tpot_slo": tpot_slo,
            "nvlink_gbs": nvlink_gbs,
        }
    )
    for field, value in (
        ("ways", ways),
        ("num_rates", num_rates),
        ("samples", samples),
        ("max_batch", max_batch),
        ("gpus_per_node", gpus_per_node),
    ):
        require(value >= 1, field, value, "an integer >= 1")
    source: LatencySource | None = None
    setup_info: dict[str, Any]
    if model is None:
        require(
            service_s is not None and speedup is not None,
            "service_s",
            service_s,
            "give --service-s D and --speedup K, or --model M for the setup form",
        )
        require(
            input_len is None and workload is None and tpot_slo is None,
            "model",
            None,
            "--input-len, --workload and --tpot-slo need --model",
        )
        assert service_s is not None and speedup is not None
        three = three_way_from_numbers(service_s, speedup, ways, stage_s, pipeline_latency_s)
        setup, setup_info = None, {"form": "raw"}
    else:
        require(
            service_s is None
            and speedup is None
            and stage_s is None
            and pipeline_latency_s is None,
            "model",
            model,
            "either raw numbers (--service-s, --speedup) or --model, not both",
        )
        source = _source(model, gpu, gpus_per_node, nvlink_gbs, pcie, profile, roofline, ways)
        mix, setup_info = _length_mix(input_len, workload, samples, seed)
        setup = prefill_setup(source, mix, ways)
        three = setup.three
        setup_info |= {
            "form": "setup",
            "model": source.model.name,
            "gpu": source.cluster.gpu.name,
            "fits_in_memory": {k: v is None for k, v in setup.fit_notes.items()},
        }
    grid = parse_floats("rates", rates) if rates is not None else rate_grid_per_s(three, num_rates)
    require(len(grid) > 0, "rates", rates, "at least one rate, e.g. 0.5,1,2")
    report = _prefill_report(three, grid, ttft_slo)
    report["setup"] = setup_info
    report["decode"] = None
    if tpot_slo is not None and source is not None:
        ctx = context_len if context_len is not None else int(setup_info["decode_ctx_tokens"])
        report["decode"] = _decode_report(source, ways, ctx, tpot_slo, max_batch)
    if as_json:
        print_json(report)
    else:
        _print(report, setup)


def _check_sign(values: dict[str, float | None]) -> None:
    for field, value in values.items():
        if value is not None:
            require(np.isfinite(value) and value > 0, field, value, "a finite number > 0")


def _source(
    model: str,
    gpu: str,
    gpus_per_node: int,
    nvlink_gbs: float | None,
    pcie: bool,
    profile: str | None,
    roofline: bool,
    ways: int,
) -> LatencySource:
    spec = build_model(model)
    nodes = max(1, -(-ways // gpus_per_node))
    cluster = build_cluster(
        gpu, gpus_per_node=gpus_per_node, num_nodes=nodes, nvlink_gbs=nvlink_gbs
    )
    if pcie:
        cluster = dataclasses.replace(cluster, nvlink_gbs=None)
    return LatencySource(spec, cluster, profile, roofline)


def _length_mix(
    input_len: int | None, workload: str | None, samples: int, seed: int
) -> tuple[LengthMix, dict[str, Any]]:
    """The prompt lengths, and what to report about them."""
    if workload is None:
        length = 512 if input_len is None else input_len
        require(length >= 1, "input_len", length, "an integer >= 1 token")
        return LengthMix.fixed(length), {"input_len_tokens": length, "decode_ctx_tokens": length}
    if input_len is not None:
        raise InputError("input_len", input_len, "give --input-len or --workload, not both")
    dist = get_lengths(workload)
    inputs, _ = dist.sample(np.random.default_rng(seed), samples)
    mix = LengthMix.from_samples(inputs)
    ctx = round(dist.mean_input_tokens + dist.mean_output_tokens / 2)
    return mix, {
        "workload": workload,
        "samples": samples,
        "seed": seed,
        "mean_input_tokens": mix.mean_tokens,
        "max_input_tokens": mix.max_tokens,
        "decode_ctx_tokens": ctx,
    }


def _prefill_report(three: ThreeWay, rates: list[float], ttft_slo: float | None) -> dict[str, Any]:
    opts = three.options
    inputs = {
        "ways": three.ways,
        "service_s": three.single.service.mean_s,
        "pipeline_latency_s": three.inter.latency_mean_s,
        "stage_s": three.inter.service.mean_s,
        "intra_service_s": three.intra.service.mean_s,
        "speedup": three.speedup,
        "service_scv": three.single.service.scv,
        "model": "M/D/1" if three.is_deterministic else "M/G/1",
    }
    report: dict[str, Any] = {
        "inputs": inputs,
        "stable_below_per_s": {k: o.stable_below_per_s for k, o in opts.items()},
        "rows": [row.as_dict() for row in ttft_rows(three, rates)],
        "crossover_rate_per_s": intra_inter_crossover_per_s(three),
        "faster_at_low_rate": min(OPTION_NAMES[1:], key=lambda k: opts[k].latency_mean_s),
        "ttft_slo_s": ttft_slo,
        "max_rate_for_mean_ttft_slo_per_s": None,
        "max_rate_for_p90_ttft_slo_per_s": None,
    }
    if ttft_slo is not None:
        report["max_rate_for_mean_ttft_slo_per_s"] = slo_rates_per_s(three, ttft_slo)
        report["max_rate_for_p90_ttft_slo_per_s"] = slo_quantile_rates_per_s(three, ttft_slo)
    return report


def _decode_report(
    source: LatencySource, ways: int, ctx: int, tpot_slo: float, max_batch: int
) -> dict[str, Any]:
    sides = {"intra": ParallelSpec(ways, 1), "inter": ParallelSpec(1, ways)}
    out: dict[str, Any] = {"tpot_slo_s": tpot_slo, "ctx_tokens": ctx}
    for name, par in sides.items():
        side = decode_side(source, par, ctx, tpot_slo, max_batch)
        out[name] = None if side is None else side.as_dict()
    return out


# ---- text output ---------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4) -> str:
    return "unstable" if value is None else f"{value:.{digits}f}"


def _print(report: dict[str, Any], setup: PrefillSetup | None) -> None:
    console = Console(highlight=False)
    inp, n = report["inputs"], report["inputs"]["ways"]
    console.print(_inputs_line(report, setup))
    table = Table(title=f"Mean TTFT (s), {inp['model']}, N = {n}")
    table.add_column("rate req/s", justify="right")
    for name in OPTION_NAMES:
        table.add_column(_label(name, n, setup), justify="right")
    table.add_column("fastest")
    for row in report["rows"]:
        ttft = row["ttft_s"]
        stable = {k: v for k, v in ttft.items() if v is not None}
        best = LABELS[min(stable, key=stable.__getitem__)] if stable else "-"
        table.add_row(f"{row['rate_per_s']:g}", *(_fmt(ttft[k]) for k in OPTION_NAMES), best)
    console.print(table)
    for line in _summary_lines(report):
        console.print(line)
    if report["decode"] is not None:
        _print_decode(console, report["decode"])


def _label(name: str, n: int, setup: PrefillSetup | None) -> str:
    if setup is None:
        return {"single": "1 GPU", "inter": f"inter-op x{n}", "intra": f"intra-op x{n}"}[name]
    par = setup.parallel[name]
    return f"{LABELS[name]} (TP={par.tp} PP={par.pp})"


def _inputs_line(report: dict[str, Any], setup: PrefillSetup | None) -> str:
    inp = report["inputs"]
    where = report["setup"]
    head = (
        ""
        if setup is None
        else f"{where['model']} on {where['gpu']}, "
        + (
            f"{where['input_len_tokens']}-token prompts: "
            if "input_len_tokens" in where
            else f"{where['workload']} prompts (mean {where['mean_input_tokens']:.0f} tokens): "
        )
    )
    text = (
        f"{head}D = {inp['service_s']:.4f} s, D_s = {inp['pipeline_latency_s']:.4f} s, "
        f"D_m = {inp['stage_s']:.4f} s, K = {inp['speedup']:.3f}"
    )
    if inp["model"] == "M/G/1":
        text += f" (means; scv of D = {inp['service_scv']:.3f})"
    if setup is not None:
        for name, note in setup.fit_notes.items():
            if note is not None:
                text += f"\nnote: {LABELS[name]} does not fit in memory ({note}); shown anyway"
    return text


def _summary_lines(report: dict[str, Any]) -> list[str]:
    limits = report["stable_below_per_s"]
    lines = [
        "stable below (req/s): " + ", ".join(f"{LABELS[k]} {v:.4g}" for k, v in limits.items())
    ]
    for name in OPTION_NAMES:
        bad = [row["rate_per_s"] for row in report["rows"] if row["ttft_s"][name] is None]
        if bad:
            lines.append(
                f"{LABELS[name]} is unstable at {', '.join(f'{r:g}' for r in bad)} req/s: "
                f"load R*D >= 1 from {limits[name]:.4g} req/s"
            )
    cross, low = report["crossover_rate_per_s"], LABELS[report["faster_at_low_rate"]]
    high = LABELS["inter" if report["faster_at_low_rate"] == "intra" else "intra"]
    lines.append(
        f"crossover: {low} is faster below {cross:.4g} req/s, {high} above"
        if cross
        else f"crossover: none in the stable region; {low} is faster at every rate"
    )
    for key, what in (
        ("max_rate_for_mean_ttft_slo_per_s", "mean"),
        ("max_rate_for_p90_ttft_slo_per_s", "p90"),
    ):
        if report[key] is not None:
            lines.append(
                f"{what} TTFT <= {report['ttft_slo_s']:g} s up to (req/s): "
                + ", ".join(f"{LABELS[k]} {v:.4g}" for k, v in report[key].items())
            )
    return lines


def _print_decode(console: Console, decode: dict[str, Any]) -> None:
    sides = {k: decode[k] for k in ("intra", "inter") if decode[k] is not None}
    table = Table(title=f"Decode at {decode['ctx_tokens']} context tokens per sequence")
    table.add_column("batch", justify="right")
    for side in sides.values():
        for what in ("TPOT ms", "tokens/s"):
            table.add_column(f"TP={side['tp']} PP={side['pp']} {what}", justify="right")
    batches = sorted({p["batch_size"] for s in sides.values() for p in s["points"]})
    for b in batches:
        cells = []
        for side in sides.values():
            point = next((p for p in side["points"] if p["batch_size"] == b), None)
            cells += (
                ["-", "-"]
                if point is None
                else [f"{point['tpot_s'] * 1e3:.1f}", f"{point['throughput_tokens_per_s']:.0f}"]
            )
        table.add_row(str(b), *cells)
    console.print(table)
    for name in ("intra", "inter"):
        side = decode[name]
        label = LABELS[name]
        if side is None:
            console.print(f"{label}: not one sequence's KV cache fits in memory")
        elif side["at_tpot_slo"] is None:
            console.print(f"{label}: even one sequence misses TPOT <= {decode['tpot_slo_s']:g} s")
        else:
            at = side["at_tpot_slo"]
            console.print(
                f"{label}: largest batch with TPOT <= {decode['tpot_slo_s']:g} s is "
                f"{at['batch_size']} ({at['throughput_tokens_per_s']:.0f} tokens/s; "
                f"KV cap {side['max_batch_size']})"
            )
