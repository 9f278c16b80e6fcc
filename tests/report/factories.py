"""Realistic fixture folders, as `search --out` and `simulate --out` write them, built in tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from servesim.report.timeline import InstanceSample, IterationSpan, Timeline, TransferSpan

RECORD_COLUMNS = (
    "request_id",
    "arrival_s",
    "prefill_start_s",
    "prefill_end_s",
    "kv_start_s",
    "kv_end_s",
    "first_token_s",
    "finish_s",
    "input_tokens",
    "output_tokens",
    "prefill_instance",
    "decode_instance",
    "num_preemptions",
    "rejected",
)

CANDIDATES = (  # id, mode, prefill (tp, pp, n), decode (tp, pp, n), goodput req/s
    ("c0", "disaggregated", (2, 1, 2), (1, 1, 4), 6.4),
    ("c1", "disaggregated", (2, 1, 1), (2, 1, 3), 5.1),
    ("c2", "colocated", (2, 1, 4), None, 3.6),
    ("c3", "colocated", (1, 1, 8), None, 3.1),
    ("c4", "colocated", (4, 1, 2), None, 2.2),
)


def _write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _config(
    cid: str,
    mode: str,
    prefill: tuple[int, int, int],
    decode: tuple[int, int, int] | None,
    goodput: float,
) -> dict[str, object]:
    def phase(p: tuple[int, int, int] | None) -> dict[str, int] | None:
        return None if p is None else {"tp": p[0], "pp": p[1], "instances": p[2]}

    gpus = prefill[0] * prefill[1] * prefill[2] + (
        0 if decode is None else decode[0] * decode[1] * decode[2]
    )
    return {
        "candidate_id": cid,
        "mode": mode,
        "prefill": phase(prefill),
        "decode": phase(decode),
        "num_gpus": gpus,
        "goodput_per_s": goodput,
        "goodput_per_gpu_per_s": goodput / gpus,
    }


def _records(
    rng: np.random.Generator, num: int, rate: float, slow: float, disagg: bool
) -> list[list[object]]:
    arrival = np.cumsum(rng.exponential(1 / rate, num))
    wait = rng.exponential(0.05 * slow, num)
    prefill_s = rng.lognormal(np.log(0.08), 0.4, num)
    kv_s = rng.lognormal(np.log(0.004), 0.3, num) if disagg else np.zeros(num)
    out = rng.integers(2, 400, num)
    tpot = rng.lognormal(np.log(0.04 * slow), 0.25, num)
    rows = []
    for i in range(num):
        start = arrival[i] + wait[i]
        end = start + prefill_s[i]
        first = end + kv_s[i]
        rows.append(
            [
                i,
                arrival[i],
                start,
                end,
                end if disagg else "",
                first if disagg else "",
                first,
                first + tpot[i] * (out[i] - 1),
                int(rng.integers(20, 1500)),
                int(out[i]),
                f"prefill-{i % 2}",
                f"decode-{i % 4}" if disagg else f"prefill-{i % 2}",
                0,
                0,
            ]
        )
    return rows


def _summary(rows: list[list[object]], rate: float) -> dict[str, object]:
    arr = np.array([[r[1], r[6], r[7], r[9]] for r in rows], dtype=float)
    ttft, tpot = arr[:, 1] - arr[:, 0], (arr[:, 2] - arr[:, 1]) / (arr[:, 3] - 1)

    def stats(v: np.ndarray) -> dict[str, float]:
        return {
            "mean": float(v.mean()),
            **{f"p{q}": float(np.percentile(v, q)) for q in (50, 90, 99)},
        }

    ok_t, ok_p = ttft <= 0.25, tpot <= 0.1
    return {
        "rate_per_s": rate,
        "ttft_s": stats(ttft),
        "tpot_s": stats(tpot),
        "e2e_s": stats(arr[:, 2] - arr[:, 0]),
        "attainment": {
            "ttft": float(ok_t.mean()),
            "tpot": float(ok_p.mean()),
            "joint": float((ok_t & ok_p).mean()),
        },
        "throughput": {"requests_per_s": rate, "output_tokens_per_s": rate * 200.0},
        "requests": {"arrived": len(rows), "finished": len(rows), "rejected": 0, "preempted": 0},
    }


def _samples(rng: np.random.Generator, names: list[str]) -> list[InstanceSample]:
    samples = []
    for name in names:
        for t in np.arange(0.0, 30.0, 0.25):
            samples.append(
                InstanceSample(
                    name,
                    float(t),
                    int(rng.integers(0, 32)),
                    int(rng.integers(0, 6)),
                    int(rng.integers(0, 40000)),
                )
            )
    return samples


def _write_run(
    folder: Path, rng: np.random.Generator, rate: float, slow: float, disagg: bool
) -> None:
    rows = _records(rng, 300, rate, slow, disagg)
    _write_csv(folder / "records.csv", RECORD_COLUMNS, rows)
    (folder / "summary.json").write_text(json.dumps(_summary(rows, rate)))
    scales = np.round(np.arange(0.4, 2.01, 0.2), 2)
    curve = lambda s, mid: 1 / (1 + np.exp(-(s - mid) * 8))  # noqa: E731
    _write_csv(
        folder / "slo_scale.csv",
        ("scale", "attainment_ttft", "attainment_tpot", "attainment_joint"),
        [
            [s, curve(s, 0.6), curve(s, 0.8 * slow), curve(s, 0.6) * curve(s, 0.8 * slow)]
            for s in scales
        ],
    )
    names = ["prefill-0", "prefill-1", *([f"decode-{i}" for i in range(4)] if disagg else [])]
    from servesim.report.timeline import write_instance_samples

    write_instance_samples(_samples(rng, names), folder / "instances.csv")


def make_search_dir(root: Path, model: str = "opt-13b", seed: int = 0) -> Path:
    """A search output folder with every file the report reads."""
    rng = np.random.default_rng(seed)
    configs = [_config(*c) for c in CANDIDATES]
    best_d, best_c = configs[0], configs[2]
    search = {
        "model": model,
        "gpu": "a100-80gb",
        "workload": "sharegpt",
        "ttft_slo": 0.25,
        "tpot_slo": 0.1,
        "attainment": 0.9,
        "best": best_d,
        "best_colocated": best_c,
        "best_disaggregated": best_d,
        "candidates": configs,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "search.json").write_text(json.dumps(search))
    header = [
        "rank",
        "candidate_id",
        "mode",
        "prefill_tp",
        "prefill_pp",
        "prefill_instances",
        "decode_tp",
        "decode_pp",
        "decode_instances",
        "num_gpus",
        "goodput_per_s",
        "goodput_per_gpu_per_s",
        "bottleneck",
    ]
    rows = []
    for rank, c in enumerate(configs, 1):
        p, d = c["prefill"], c["decode"] or {"tp": "", "pp": "", "instances": ""}
        rows.append(
            [
                rank,
                c["candidate_id"],
                c["mode"],
                p["tp"],
                p["pp"],
                p["instances"],
                d["tp"],
                d["pp"],
                d["instances"],
                c["num_gpus"],
                c["goodput_per_s"],
                round(c["goodput_per_gpu_per_s"], 4),
                "decode" if c["mode"] == "disaggregated" else "prefill",
            ]
        )
    _write_csv(root / "candidates.csv", header, rows)
    curve_rows = []
    for c in configs:
        g = float(c["goodput_per_s"])
        for rate in np.round(np.linspace(0.5, 2.0 * g, 12), 3):
            ttft = 1 / (1 + np.exp((rate - 1.3 * g) / (0.1 * g)))
            tpot = 1 / (1 + np.exp((rate - 1.15 * g) / (0.1 * g)))
            curve_rows.append([c["candidate_id"], rate, ttft, tpot, ttft * tpot])
    _write_csv(
        root / "curves.csv",
        ("candidate_id", "rate_per_s", "attainment_ttft", "attainment_tpot", "attainment_joint"),
        curve_rows,
    )
    _write_run(root / "best_colocated", rng, 3.6, 1.6, disagg=False)
    _write_run(root / "best_disaggregated", rng, 6.4, 1.0, disagg=True)
    network = {
        "links": [
            {"name": f"node0/nic{i}", "bytes": 1e9 * (i + 1), "utilization": 0.1 * (i + 1)}
            for i in range(4)
        ],
        "kv_transfer_s": {
            "mean": 0.004,
            "p50": 0.0038,
            "p90": 0.006,
            "p99": 0.009,
            "bytes_moved": 4e9,
        },
    }
    (root / "network.json").write_text(json.dumps(network))
    rates = np.round(np.linspace(0.5, 7.5, 15), 2)
    d, k = 0.12, 1.6
    queue_rows = [
        {
            "rate_per_s": r,
            "ttft_s": {
                "single": _md1(r, d),
                "inter": d + _md1(r, d / 2) - d / 2,
                "intra": _md1(r, d / k),
            },
        }
        for r in rates
    ]
    (root / "queueing.json").write_text(
        json.dumps({"rows": queue_rows, "crossover_rate_per_s": 3.9})
    )
    return root


def _md1(rate: float, service_s: float) -> float | None:
    load = rate * service_s
    return None if load >= 1 else service_s + rate * service_s**2 / (2 * (1 - load))


def make_timeline(seed: int = 0, num_steps: int = 200) -> Timeline:
    """A plausible timeline: two prefill and two decode instances, KV transfers between them."""
    rng = np.random.default_rng(seed)
    spans, samples, transfers = [], [], []
    for name in ("prefill-0", "prefill-1", "decode-0", "decode-1"):
        t = 0.0
        for _ in range(num_steps):
            t += float(rng.exponential(0.01))
            dur = float(rng.uniform(0.005, 0.05))
            batch = int(rng.integers(1, 32))
            kind = "prefill" if name.startswith("prefill") else "decode"
            spans.append(
                IterationSpan(name, t, t + dur, kind, batch, stage=int(rng.integers(0, 2)))
            )
            samples.append(
                InstanceSample(name, t, batch, int(rng.integers(0, 5)), int(rng.integers(0, 9000)))
            )
            t += dur
    for rid in range(80):
        start = float(rng.uniform(0, 5))
        transfers.append(
            TransferSpan(
                rid,
                f"prefill-{rid % 2}",
                f"decode-{rid % 2}",
                start,
                start + float(rng.uniform(0.001, 0.2)),
                1e6,
            )
        )
    gpus = {"prefill-0": (0, 1), "prefill-1": (2, 3), "decode-0": (4,), "decode-1": (5,)}
    return Timeline(tuple(spans), tuple(samples), tuple(transfers), gpus)
