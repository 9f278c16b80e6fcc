"""Speed of the placement search: wall time, candidates, simulations, speed-up per worker count.

Full search (colocated vllm + chunked, high and low node affinity, final end-to-end runs):
- OPT-66B on 4 nodes x 8 A100-80GB, ShareGPT, chatbot SLOs TTFT 2.5 s / TPOT 0.15 s;
- OPT-13B on 1 node x 8 A100-80GB, ShareGPT, chatbot SLOs TTFT 0.25 s / TPOT 0.1 s.
No cache, so every simulation runs. Target: the OPT-66B search in <= 20 s on a 2-core machine.

    python benchmarks/search_speed.py                 # workers 1, 2 and all cores
    python benchmarks/search_speed.py --workers 2 --only opt-66b
"""

from __future__ import annotations

import argparse
import os
import time

from servesim.search import ExecutorSpec, SearchOptions, SearchProblem, WorkloadSpec, search
from servesim.specs import get_model, make_cluster

SCENARIOS = {
    "opt-66b": ("opt-66b", 4, 2.5, 0.15),
    "opt-13b": ("opt-13b", 1, 0.25, 0.10),
}


def problem_for(name: str, num_requests: int) -> SearchProblem:
    model, nodes, ttft, tpot = SCENARIOS[name]
    cluster = make_cluster("a100-80gb", num_nodes=nodes, gpus_per_node=8)
    return SearchProblem(
        get_model(model), cluster, WorkloadSpec("sharegpt", num_requests=num_requests), ttft, tpot
    )


def worker_counts(text: str) -> list[int]:
    cores = os.cpu_count() or 1
    counts = [cores if w == "all" else int(w) for w in text.split(",")]
    return list(dict.fromkeys(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", default="1,2,all", help="comma-separated counts, 'all' = cores"
    )
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="one scenario")
    parser.add_argument("--requests", type=int, default=2000, help="requests per simulation")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.requests} requests per simulation; no cache")
    print(
        f"{'scenario':10} {'workers':>7} {'wall s':>8} {'speed-up':>8} {'candidates':>10} "
        f"{'evaluated':>9} {'skipped':>7} {'simulations':>11}  best colocated / disaggregated"
    )
    for name in [args.only] if args.only else list(SCENARIOS):
        problem = problem_for(name, args.requests)
        base = None
        for workers in worker_counts(args.workers):
            start = time.perf_counter()
            result = search(problem, SearchOptions(affinity="both"), ExecutorSpec(workers=workers))
            wall = time.perf_counter() - start
            base = base or wall
            shapes = result.all_evaluated
            evaluated = sum(c.status == "evaluated" for c in shapes)
            col, dis = result.best_colocated, result.best_disaggregated
            best = (
                f"{col.shape.key if col else '-'} ({col.goodput_per_gpu_per_s or 0:.3f}/GPU) / "
                f"{dis.shape.key if dis else '-'} ({dis.goodput_per_gpu_per_s or 0:.3f}/GPU)"
            )
            print(
                f"{name:10} {workers:7d} {wall:8.1f} {base / wall:8.2f} {len(shapes):10d} "
                f"{evaluated:9d} {len(shapes) - evaluated:7d} {result.num_simulations:11d}  {best}"
            )


if __name__ == "__main__":
    main()
