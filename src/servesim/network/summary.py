"""Network metrics of one simulation, from the transport and the per-request records.

`network_summary` is the `network` object of `servesim simulate --json`:

- `kv_transfer_s`: mean, p50, p90, p99 of each request's KV transfer time (decode admission to
  KV on the decode side: the part of TTFT the network adds), plus `bytes_moved` and the number
  of transfers;
- `ttft_share`: total transfer time over total TTFT, over the requests that had a transfer
  (`e2e_share`: the same over end-to-end latency, DistServe's measure);
- `links`: every link that carried bytes, most utilized first: name, bytes (KV and pipeline
  activations), utilization = bytes / (capacity x run time);
- `bottleneck`: the most utilized link (null when nothing moved);
- the topology, the placement of every instance on GPUs, the affinity and the KV mode.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from servesim.metrics import distribution
from servesim.network.deployment import activation_link_bytes, tokens_through
from servesim.network.link_metrics import link_stats
from servesim.network.transport import FlowTransport

TOPOLOGY_FIELDS = (
    "num_nodes",
    "gpus_per_node",
    "nvlink_gbps",
    "pcie_gbps",
    "nic_gbps",
    "nics_per_node",
    "oversubscription",
)


def transfer_times_s(records: Any) -> np.ndarray:
    """KV transfer time (s) of every request that had one (decode admission to KV ready)."""
    spans = records.kv_end_s - records.kv_start_s
    return spans[~np.isnan(spans)]


def ttft_share(records: Any) -> float | None:
    """Total transfer time / total TTFT over requests with a transfer; None when none had one."""
    spans = records.kv_end_s - records.kv_start_s
    moved = ~np.isnan(spans)
    ttft = (records.first_token_s - records.arrival_s)[moved]
    total = float(ttft.sum())
    return float(spans[moved].sum()) / total if total > 0 else None


def e2e_share(records: Any) -> float | None:
    """Total transfer time / total end-to-end latency over finished requests with a transfer."""
    spans = records.kv_end_s - records.kv_start_s
    e2e = records.finish_s - records.arrival_s
    moved = ~np.isnan(spans) & ~np.isnan(e2e)
    total = float(e2e[moved].sum())
    return float(spans[moved].sum()) / total if total > 0 else None


def link_bytes_total(transport: FlowTransport, records: Any, hidden_size: int) -> list[float]:
    """Bytes per link: KV transfers plus activations between pipeline stages."""
    kv = transport.link_bytes()
    tokens = tokens_through(records, len(transport.placements))
    acts = activation_link_bytes(transport.topology, transport.placements, tokens, hidden_size)
    return [a + b for a, b in zip(kv, acts, strict=True)]


def network_summary(
    transport: FlowTransport, result: Any, hidden_size: int, affinity: str
) -> dict[str, Any]:
    """The `network` object of a run (see the module docstring); `result` is a SimResult."""
    records = result.records
    topo = transport.topology
    carried = link_bytes_total(transport, records, hidden_size)
    span_s = max(float(result.end_s), 1e-12)
    names = [link.name for link in topo.links()]
    stats = link_stats(names, carried, topo.capacities_bytes_per_s(), span_s)
    transfers = transfer_times_s(records)
    return {
        "kv_transfer_s": {
            **distribution(transfers),
            "bytes_moved": transport.bytes_moved,
            "num_transfers": transport.num_transfers,
        },
        "ttft_share": ttft_share(records),
        "e2e_share": e2e_share(records),
        "links": [
            {"name": s.name, "bytes": s.num_bytes, "utilization": s.utilization} for s in stats
        ],
        "bottleneck": (
            {"name": stats[0].name, "utilization": stats[0].utilization} if stats else None
        ),
        "topology": {k: v for k, v in asdict(topo).items() if k in TOPOLOGY_FIELDS},
        "affinity": affinity,
        "kv_transfer": transport.kv_mode,
        "placement": [[list(stage) for stage in stages] for stages in transport.placements],
        "num_solo_transfers": transport.num_solo,
    }


def network_lines(network: dict[str, Any]) -> list[str]:
    """A few lines for the summary table: transfer time, share of TTFT, busiest links."""
    kv = network["kv_transfer_s"]
    lines = []
    if kv["mean"] is not None:
        share = network["ttft_share"]
        share_text = "-" if share is None else f"{share:.2%}"
        lines.append(
            f"KV transfer ({network['kv_transfer']}, {network['affinity']} affinity): mean "
            f"{kv['mean'] * 1e3:.3f} ms, p99 {kv['p99'] * 1e3:.3f} ms; "
            f"{kv['bytes_moved'] / 1e9:.2f} GB moved; share of TTFT {share_text}"
        )
    bottleneck = network["bottleneck"]
    if bottleneck is None:
        lines.append("links: no traffic")
        return lines
    top = ", ".join(f"{link['name']} {link['utilization']:.1%}" for link in network["links"][:3])
    lines.append(
        f"bottleneck link: {bottleneck['name']} ({bottleneck['utilization']:.1%} "
        f"busy); busiest: {top}"
    )
    return lines
