"""Time per `FlowNetwork.start` / `complete` call with 1, 10 and 100 concurrent flows.

Steady state: N flows are active; each step completes the earliest one and starts a new one at
that time, so N stays constant. Three traffic shapes:
- shared: every flow crosses the same link (one component of N flows, the worst case);
- disjoint: every flow has its own link (components of one flow, the best case);
- cluster: KV-like flows between random GPUs of 4 nodes x 8 GPUs with 2 NICs per node and an
  oversubscribed leaf-spine (what the engine will see).
Each shape runs with incremental recompute and with full recompute (the reference mode).

Run: .venv/bin/python benchmarks/network_flows.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from servesim.network.flows import FlowNetwork, Path
from servesim.network.topology import Topology

PathMaker = Callable[[int], Path]


def _shapes(rng: np.random.Generator, num_flows: int) -> dict[str, tuple[list[float], PathMaker]]:
    topo = Topology(
        num_nodes=4,
        gpus_per_node=8,
        nic_gbps=200.0,
        nics_per_node=2,
        oversubscription=2.0,
        nodes_per_leaf=2,
    )

    def cluster_path(_: int) -> Path:
        src, dst = rng.choice(topo.num_gpus, size=2, replace=False)
        return topo.path(int(src), int(dst))

    return {
        "shared": ([25e9], lambda _: (0,)),
        "disjoint": ([25e9] * num_flows, lambda i: (i % num_flows,)),
        "cluster": (list(topo.capacities_bytes_per_s()), cluster_path),
    }


def _measure(
    capacities: list[float],
    make_path: PathMaker,
    num_flows: int,
    steps: int,
    incremental: bool,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """Mean microseconds per start and per complete, and updates per call."""
    net = FlowNetwork(capacities, incremental=incremental)
    for i in range(num_flows):
        net.start(0.0, make_path(i), float(rng.uniform(1e6, 1e9)))
    net.pop_updates()
    start_ns = complete_ns = num_updates = 0
    for step in range(steps):
        upcoming = net.next_completion()
        assert upcoming is not None
        now_s, flow_id = upcoming
        t0 = time.perf_counter_ns()
        net.complete(now_s, flow_id)
        t1 = time.perf_counter_ns()
        num_updates += len(net.pop_updates())
        path, num_bytes = make_path(step), float(rng.uniform(1e6, 1e9))
        t2 = time.perf_counter_ns()
        net.start(now_s, path, num_bytes)
        t3 = time.perf_counter_ns()
        num_updates += len(net.pop_updates())
        complete_ns += t1 - t0
        start_ns += t3 - t2
    return start_ns / steps / 1e3, complete_ns / steps / 1e3, num_updates / (2 * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="start+complete pairs per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"{'shape':<9} {'flows':>5} {'mode':<11} {'start us':>9} {'complete us':>11} "
        f"{'updates/call':>12}"
    )
    for num_flows in (1, 10, 100):
        for shape in ("shared", "disjoint", "cluster"):
            for incremental in (True, False):
                rng = np.random.default_rng(args.seed)
                capacities, make_path = _shapes(rng, num_flows)[shape]
                start_us, complete_us, updates = _measure(
                    capacities, make_path, num_flows, args.steps, incremental, rng
                )
                mode = "incremental" if incremental else "full"
                print(
                    f"{shape:<9} {num_flows:>5} {mode:<11} {start_us:>9.1f} "
                    f"{complete_us:>11.1f} {updates:>12.1f}"
                )


if __name__ == "__main__":
    main()
