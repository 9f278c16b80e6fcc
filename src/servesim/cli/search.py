"""`servesim search`: the goodput-optimal colocated and disaggregated placements.

parse flags (or a scenario file) -> SearchProblem -> servesim.search -> table / JSON / --out DIR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from rich.console import Console
from rich.table import Table

from servesim.cli.app import app
from servesim.cli.common import build_model, parse_floats, print_json
from servesim.errors import InputError
from servesim.progress import progress_bar
from servesim.scenario import read_scenario_file
from servesim.search import (
    DEFAULT_CACHE_DIR,
    BisectionSpec,
    Executor,
    ExecutorSpec,
    Planner,
    SearchOptions,
    SearchProblem,
    SearchResult,
    SimEvaluator,
    WorkloadSpec,
)
from servesim.search.export import candidate_dict, result_dict
from servesim.search.files import write_search
from servesim.specs import make_cluster

SHORT_MODES = {"colocated": "colo", "disaggregated": "disagg"}
CHATBOT_SLOS_S = {"opt-13b": (0.25, 0.10), "opt-66b": (2.5, 0.15), "opt-175b": (4.0, 0.20)}
"""REFERENCE Table 1 chatbot SLOs (TTFT, TPOT), used when none are given."""

EXAMPLES = """
Examples:

  servesim search                                  # OPT-13B, 1 x 8 A100-80GB, ShareGPT chatbot

  servesim search --model opt-66b --nodes 4 --ttft-slo 2.5 --tpot-slo 0.15 --out results/

  servesim search --scenario plan.yaml --affinity low --workers 8 --json
"""


class SearchScenario(BaseModel):
    """A search, from flags or a YAML/TOML file. Field names equal the flags (`-` as `_`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "opt-13b"
    gpu: str = "a100-80gb"
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    nic_gbps: list[float] | None = None
    workload: str | None = None
    trace: str | None = None
    ttft_slo: float | None = Field(None, gt=0)
    tpot_slo: float | None = Field(None, gt=0)
    attainment: float = Field(0.9, gt=0, le=1)
    rel_tol: float = Field(0.02, gt=0, lt=1)
    rate: float | None = Field(None, gt=0)
    affinity: Literal["high", "low", "both", "none"] = "both"
    requests: int = Field(2000, ge=10)
    seed: int = Field(0, ge=0)
    max_instance_gpus: int | None = Field(None, ge=1)
    precision: Literal["bf16", "fp16", "fp8", "fp4", "int4"] | None = None
    kv_precision: Literal["bf16", "fp16", "fp8"] | None = None

    @field_validator("nic_gbps", mode="before")
    @classmethod
    def _bandwidths(cls, value: Any) -> Any:
        """One bandwidth, or several (a sweep): 200, [25, 100], or '25,100,200'."""
        if isinstance(value, str):
            return parse_floats("nic_gbps", value)
        return [value] if isinstance(value, int | float) else value

    @field_validator("nic_gbps")
    @classmethod
    def _positive(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or min(value) <= 0):
            raise ValueError("bandwidths > 0 Gbit/s, e.g. 200 or 25,100,400")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SearchScenario:
        if self.workload and self.trace:
            raise ValueError("give either workload or trace, not both")
        return self


def make_search_scenario(file: str | None, **flags: Any) -> SearchScenario:
    values = read_scenario_file(file) if file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return SearchScenario(**values)
    except ValidationError as err:
        e = err.errors()[0]
        field = ".".join(str(p) for p in e["loc"]) or "scenario"
        raise InputError(
            field, e.get("input") if e["loc"] else None, e["msg"].removeprefix("Value error, ")
        ) from None


def default_slos(model_name: str, num_params: float) -> tuple[float, float]:
    """Table 1's chatbot SLOs for the OPT models; otherwise by size (13B-like or 66B-like)."""
    if model_name in CHATBOT_SLOS_S:
        return CHATBOT_SLOS_S[model_name]
    return CHATBOT_SLOS_S["opt-13b"] if num_params < 30e9 else CHATBOT_SLOS_S["opt-66b"]


def build_problem(s: SearchScenario, nic_gbps: float | None = None) -> SearchProblem:
    model = build_model(s.model, s.precision, s.kv_precision)
    ttft, tpot = default_slos(model.name, model.num_params)
    cluster = make_cluster(
        s.gpu,
        num_nodes=s.nodes,
        gpus_per_node=s.gpus_per_node,
        nic_gbps=nic_gbps,
        nics_per_node=s.gpus_per_node,
    )
    workload = (
        WorkloadSpec.from_trace(s.trace, s.requests)
        if s.trace
        else WorkloadSpec(s.workload or "sharegpt", num_requests=s.requests)
    )
    return SearchProblem(
        model,
        cluster,
        workload,
        s.ttft_slo or ttft,
        s.tpot_slo or tpot,
        BisectionSpec(target=s.attainment, rel_tol=s.rel_tol),
        seed=s.seed,
    )


@app.command(
    name="search",
    help="Find the goodput-optimal colocated and disaggregated "
    "placements (DistServe's algorithms) for a model, cluster, workload and SLOs." + EXAMPLES,
)
def search_command(
    model: str | None = typer.Option(
        None, help="Catalog model name or config.json (default: opt-13b)."
    ),
    gpu: str | None = typer.Option(None, help="GPU catalog name (default: a100-80gb)."),
    nodes: int | None = typer.Option(None, help="Nodes in the cluster (default: 1)."),
    gpus_per_node: int | None = typer.Option(None, help="GPUs per node (default: 8)."),
    workload: str | None = typer.Option(
        None, help="Named length distribution (default: sharegpt)."
    ),
    trace: str | None = typer.Option(None, help="Trace file replayed (stretched to each rate)."),
    ttft_slo: float | None = typer.Option(None, help="TTFT SLO, s (default: Table 1 chatbot)."),
    tpot_slo: float | None = typer.Option(None, help="TPOT SLO, s (default: Table 1 chatbot)."),
    attainment: float | None = typer.Option(
        None, help="Target share meeting both SLOs (default 0.9)."
    ),
    rate: float | None = typer.Option(
        None, help="Replicate to serve this rate, req/s (default: fill the cluster)."
    ),
    affinity: str | None = typer.Option(
        None, help="Disaggregated search: high, low, both or none."
    ),
    nic_gbps: str | None = typer.Option(
        None, help="NIC bandwidth per GPU, Gbit/s; several (25,100,400) sweep it."
    ),
    workers: int | None = typer.Option(None, help="Local worker processes (default: all cores)."),
    ray: bool = typer.Option(
        False, "--ray", help="Evaluate on Ray (a local Ray started on demand)."
    ),
    ray_address: str | None = typer.Option(
        None, help="Address of an existing Ray cluster (implies --ray)."
    ),
    requests: int | None = typer.Option(None, help="Requests per simulation (default: 2000)."),
    seed: int | None = typer.Option(None, help="Seed of the requests (default: 0)."),
    max_instance_gpus: int | None = typer.Option(
        None, help="Cap on GPUs per instance (default: a node or 4x the fewest that fit)."
    ),
    precision: str | None = typer.Option(
        None,
        help="Weight precision: bf16, fp16, fp8, fp4 (NVFP4) or int4 (W4A16) "
        "(default: the model's).",
    ),
    kv_precision: str | None = typer.Option(
        None,
        help="KV-cache precision: bf16, fp16 or fp8 (default: the weights'; fp4: fp8, int4: bf16).",
    ),
    cache_dir: Path | None = typer.Option(
        None, help=f"Result cache (default: {DEFAULT_CACHE_DIR})."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    scenario: str | None = typer.Option(
        None, help="YAML/TOML file of these fields; flags override."
    ),
    out: Path | None = typer.Option(
        None, help="Write search.json, candidates.csv, curves.csv and best_*/ folders here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    top: int = typer.Option(
        15, help="Rows of the ranked table to print (the JSON and --out have all)."
    ),
) -> None:
    s = make_search_scenario(
        scenario,
        model=model,
        gpu=gpu,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        workload=workload,
        trace=trace,
        ttft_slo=ttft_slo,
        tpot_slo=tpot_slo,
        attainment=attainment,
        rate=rate,
        affinity=affinity,
        nic_gbps=nic_gbps,
        requests=requests,
        seed=seed,
        max_instance_gpus=max_instance_gpus,
        precision=precision,
        kv_precision=kv_precision,
    )
    cache = None if no_cache else str(cache_dir or DEFAULT_CACHE_DIR)
    executor = ExecutorSpec(workers, ray_address or "" if (ray or ray_address) else None, cache)
    options = SearchOptions(
        affinity=s.affinity, rate_per_s=s.rate, max_instance_gpus=s.max_instance_gpus
    )
    if s.nic_gbps is not None and len(s.nic_gbps) > 1:
        _sweep_nic(s, options, executor, out, as_json, quiet)
        return
    problem = build_problem(s, s.nic_gbps[0] if s.nic_gbps else None)
    result = _run_with_progress(problem, options, executor, quiet or as_json)
    if out is not None:
        write_search(out, result, problem)
    if as_json:
        print_json(result_dict(result, problem))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=132)
        print_result(result, problem, console, top)


def _sweep_nic(
    s: SearchScenario,
    options: SearchOptions,
    executor: ExecutorSpec,
    out: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """One search per NIC bandwidth; goodput per GPU of the best placements against bandwidth."""
    rows = []
    for gbps in s.nic_gbps or []:
        problem = build_problem(s, gbps)
        result = _run_with_progress(problem, options, executor, quiet or as_json)
        if out is not None:
            write_search(out / f"nic_{gbps:g}gbps", result, problem)
        summary = result_dict(result, problem)
        rows.append({"nic_gbps": gbps, **{k: summary[k] for k in _SWEEP_KEYS}})
    if as_json:
        print_json({"nic_gbps_sweep": rows})
        return
    table = Table(title=f"{s.model}: best goodput per GPU against NIC bandwidth")
    for col in ("NIC Gbps", "colocated /GPU", "disagg /GPU", "disagg/colo", "best", "limit"):
        table.add_column(col, justify="left" if col in ("best", "limit") else "right")
    for row in rows:
        colo, dis, best = row["best_colocated"], row["best_disaggregated"], row["best"]
        table.add_row(
            f"{row['nic_gbps']:g}",
            _fmt(colo and colo["goodput_per_gpu_per_s"], ".3f"),
            _fmt(dis and dis["goodput_per_gpu_per_s"], ".3f"),
            _fmt(row["disaggregated_over_colocated"], ".2f"),
            best["id"].split("/")[-1] if best else "-",
            best["bottleneck"] if best else "-",
        )
    Console(width=None if Console().is_terminal else 132).print(table)


_SWEEP_KEYS = ("best", "best_colocated", "best_disaggregated", "disaggregated_over_colocated")


def _run_with_progress(
    problem: SearchProblem, options: SearchOptions, executor: ExecutorSpec, quiet: bool
) -> SearchResult:
    with Executor(executor) as ex:
        planner = Planner(problem, SimEvaluator(), options, ex)
        with progress_bar(planner.planned_tasks(), "searching", quiet) as advance:
            planner.progress = advance
            return planner.run()


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_result(
    result: SearchResult, problem: SearchProblem, console: Console, top: int | None = None
) -> None:
    """The ranked table, then the best colocated vs best disaggregated and their ratio."""
    c = problem.cluster
    table = Table(
        title=f"{problem.model.name} on {c.num_nodes}x{c.gpus_per_node} {c.gpu.name}, "
        f"{problem.workload.label}, SLO TTFT {problem.ttft_slo_s:g}s / TPOT "
        f"{problem.tpot_slo_s:g}s at {problem.target:.0%}"
    )
    for col in (
        "#",
        "mode",
        "prefill",
        "decode",
        "GPUs",
        "req/s",
        "/GPU",
        "p90 TTFT",
        "p90 TPOT",
        "limit",
    ):
        table.add_column(col, justify="left" if col in ("mode", "limit") else "right")
    ranked = [c for c in result.candidates if c.status == "evaluated"]
    for rank, cand in enumerate(ranked[:top]):
        d = candidate_dict(cand)
        mode = SHORT_MODES[d["mode"]] + " " + (d["policy"] or d["affinity"] or "")
        table.add_row(
            str(rank + 1),
            mode,
            _group_text(d["prefill"]),
            _group_text(d["decode"]),
            str(d["num_gpus"]),
            _goodput_text(d),
            _fmt(d["goodput_per_gpu_per_s"], ".3f"),
            _fmt(d["p90_ttft_s"], ".3f"),
            _fmt(d["p90_tpot_s"], ".3f"),
            d["bottleneck"],
        )
    console.print(table)
    if top is not None and len(ranked) > top:
        console.print(f"({len(ranked) - top} more candidates in --json / --out)")
    console.print(
        "prefill/decode: TP/PP/instances; limit: what fails first above the goodput; "
        "<x: stopped early, cannot beat the best"
    )
    skipped = sum(x.status != "evaluated" for x in result.all_evaluated)
    console.print(
        f"{skipped} shapes skipped by bounds; {result.num_simulations} simulations run, "
        f"{result.num_cached_points} points from the cache, {result.wall_s:.1f} s"
    )
    for label, best in (
        ("best colocated", result.best_colocated),
        ("best disaggregated", result.best_disaggregated),
    ):
        if best is not None:
            console.print(
                f"{label}: {best.shape.key}  {best.goodput_per_s:.2f} req/s, "
                f"{best.goodput_per_gpu_per_s:.3f} req/s per GPU"
            )
    if result.ratio is not None:
        console.print(f"disaggregated / colocated goodput per GPU: {result.ratio:.2f}x")


def _goodput_text(d: dict[str, Any]) -> str:
    """The goodput, or '<x' for a search stopped early below the best."""
    if d["goodput_below_per_s"] is not None:
        return f"<{d['goodput_below_per_s']:.2f}"
    return _fmt(d["goodput_per_s"], ".2f")


def _group_text(g: dict[str, int] | None) -> str:
    return "-" if g is None else f"{g['tp']}/{g['pp']}/{g['instances']}"
