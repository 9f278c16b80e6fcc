"""Engine speed: simulated requests per wall second and peak memory, one core.

Scenarios: 100k requests of the built-in `sharegpt` and `azure-conv` workloads near saturation
(90% of the throughput measured in an overloaded calibration run), colocated (vLLM policy) and
disaggregated (1 prefill + 1 decode instance; decode KV 'on_demand', and for sharegpt also the
'reserve' policy), Llama-3.1-8B on A100-80GB, Poisson arrivals; 4 prefill + 8 decode instances
at 30 req/s; and a 1M-request CSV trace replayed from disk (streamed; its time includes reading
the CSV). Each scenario runs in a fresh subprocess so its peak RSS is its own; the calibration
run is not timed.
'sim req/s' is requests per wall second, 'req/cpu s' per CPU second of the process (the fairer
figure on a shared machine: compare it with the load average printed).

    python benchmarks/engine_speed.py [--requests 100000] [--trace-requests 1000000] [--exact]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from servesim.engine import Deployment, InstanceGroup, simulate
from servesim.metrics import summarize
from servesim.specs import get_model, make_cluster
from servesim.specs.parallel import ParallelSpec
from servesim.workload import OpenLoopWorkload, Poisson, TraceWorkload, get_lengths

MODEL, GPU = "llama-3.1-8b", "a100-80gb"
LOAD = 0.9


def deployment(
    mode: str, num_prefill: int = 1, num_decode: int = 1, policy: str = "on_demand"
) -> Deployment:
    p = ParallelSpec(1, 1)
    # The default policy is not named, so the script also runs against older engines.
    policy_field: dict[str, Any] = {} if policy == "on_demand" else {"decode_kv_policy": policy}
    groups = (
        (InstanceGroup("colocated", p),)
        if mode == "colocated"
        else (
            InstanceGroup("prefill", p, num_prefill),
            InstanceGroup("decode", p, num_decode, **policy_field),
        )
    )
    num_nodes = -(-(num_prefill + num_decode) // 8)
    return Deployment(get_model(MODEL), make_cluster(GPU, num_nodes=num_nodes), groups)


def saturation_rate(mode: str, lengths_name: str) -> float:
    """Finished requests per second of an overloaded run (arrivals 4x faster than served)."""
    lengths = get_lengths(lengths_name)
    res = simulate(deployment(mode), OpenLoopWorkload(Poisson(200.0), lengths, 4000))
    done = res.records.finish_s[~np.isnan(res.records.finish_s)]
    return float(done.size / (done.max() - res.records.arrival_s.min()))


def write_trace(path: Path, num: int, rate: float) -> None:
    """A plain CSV trace of sharegpt-like lengths and Poisson arrivals at `rate`."""
    rng = np.random.default_rng(1)
    lengths = get_lengths("sharegpt")
    with path.open("w") as f:
        f.write("arrival_s,input_tokens,output_tokens\n")
        now = 0.0
        for start in range(0, num, 100_000):
            n = min(100_000, num - start)
            inp, out = lengths.sample(rng, n)
            t = now + np.cumsum(rng.standard_exponential(n) / rate)
            now = float(t[-1])
            rows = np.column_stack([t, inp, out])
            np.savetxt(f, rows, fmt=["%.6f", "%d", "%d"], delimiter=",")


def run_one(spec: dict) -> dict:
    """Run one scenario in this process; returns timings and a few metrics."""
    dep = deployment(
        spec["mode"], spec.get("prefill", 1), spec.get("decode", 1), spec.get("policy", "on_demand")
    )
    workload: TraceWorkload | OpenLoopWorkload
    if "trace" in spec:
        workload = TraceWorkload(Path(spec["trace"]))
    else:
        workload = OpenLoopWorkload(
            Poisson(spec["rate"]), get_lengths(spec["lengths"]), spec["requests"]
        )
    start, cpu_start = time.perf_counter(), time.process_time()
    res = simulate(dep, workload, exact=spec["exact"])
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = summarize(res, 1.0, 0.1)
    return {
        "requests": res.counts.arrived,
        "wall_s": wall,
        "cpu_s": cpu,
        "req_per_s": res.counts.arrived / wall,
        "req_per_cpu_s": res.counts.arrived / cpu,
        "peak_mib": peak_mib,
        "ttft_p90_s": s["ttft_s"]["p90"],
        "tpot_p90_s": s["tpot_s"]["p90"],
        "preempted": res.counts.preempted,
        "rejected": res.counts.rejected,
    }


def in_subprocess(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--trace-requests", type=int, default=1_000_000)
    parser.add_argument("--exact", action="store_true", help="step every iteration (reference)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    specs = []
    for lengths in ("sharegpt", "azure-conv"):
        for mode in ("colocated", "disagg"):
            rate = LOAD * saturation_rate(mode, lengths)
            spec = {
                "name": f"{lengths} {mode} @{rate:.2f}/s",
                "mode": mode,
                "lengths": lengths,
                "rate": rate,
                "requests": args.requests,
                "exact": args.exact,
            }
            specs.append(spec)
            if mode == "disagg" and lengths == "sharegpt":
                specs.append({**spec, "name": f"{spec['name']} reserve", "policy": "reserve"})
    specs.append(
        {
            "name": "sharegpt 4P+8D @30.00/s",
            "mode": "disagg",
            "prefill": 4,
            "decode": 8,
            "lengths": "sharegpt",
            "rate": 30.0,
            "requests": args.requests,
            "exact": args.exact,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.csv"
        if args.trace_requests:
            rate = LOAD * saturation_rate("disagg", "sharegpt")
            write_trace(trace, args.trace_requests, rate)
            specs.append(
                {
                    "name": f"trace csv disagg @{rate:.2f}/s",
                    "mode": "disagg",
                    "trace": str(trace),
                    "exact": args.exact,
                }
            )
        print(f"{MODEL} on {GPU}, {'exact' if args.exact else 'fast'} engine, one core")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(
            f"{'scenario':34} {'requests':>9} {'wall s':>8} {'cpu s':>7} {'sim req/s':>10} "
            f"{'req/cpu s':>10} {'peak MiB':>9} {'p90 TTFT':>9} {'p90 TPOT':>9} {'preempt':>8}"
        )
        for spec in specs:
            try:
                r = in_subprocess(spec)
            except subprocess.CalledProcessError as err:
                print(f"{spec['name']:34} failed: {err.stderr.strip().splitlines()[-1]}")
                continue
            print(
                f"{spec['name']:34} {r['requests']:>9} {r['wall_s']:>8.2f} {r['cpu_s']:>7.2f} "
                f"{r['req_per_s']:>10.0f} {r['req_per_cpu_s']:>10.0f} {r['peak_mib']:>9.0f} "
                f"{r['ttft_p90_s']:>9.3f} {r['tpot_p90_s']:>9.4f} {r['preempted']:>8}",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
