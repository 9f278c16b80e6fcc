"""How the built-in length distributions in `workload/data/*.json` were made.

Run `python -m servesim.workload.derive SHARED_DATA_DIR OUT_DIR` to rebuild them from the source
files (../shared/data in this workspace). Nothing here runs when servesim is used: the package
reads only the JSON files. Tests rebuild the data when the source folder is present and check
that it matches what is stored.

- `sharegpt`: joint histogram of ShareGPT (input, output) pairs, filtered as DistServe did for
  OPT (context 2048): pairs with input + output >= 2048 dropped, and pairs with both input and
  output under 4 tokens dropped.
- `azure-conv`, `azure-code`: joint histograms of the Azure LLM inference trace 2023
  (ContextTokens, GeneratedTokens), no filter.
- `humaneval`, `longbench`: no token tables are available offline, so these are log-normal fits
  to published statistics (below), with the conversion factors and spreads stated as assumptions.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from servesim.workload.lengths import load_pairs_csv
from servesim.workload.traces import read_trace

SHAREGPT_SOURCE = "traces/length_distributions/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
AZURE_SOURCES = {
    "azure-conv": "traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv",
    "azure-code": "traces/azure_llm_2023/AzureLLMInferenceTrace_code.csv",
}
OPT_MAX_TOTAL_TOKENS = 2047  # DistServe keeps pairs with input + output < 2048 (OPT context)
NUM_EDGES = 40


def log_edges(max_value: int, num_edges: int = NUM_EDGES) -> np.ndarray:
    """Integer cell edges, log-spaced from 1 to max_value + 1, with 1, 2, 3, 4 always edges."""
    geo = np.round(np.geomspace(1, max_value + 1, num_edges)).astype(np.int64)
    return np.unique(np.concatenate([[1, 2, 3, 4], geo[geo <= max_value + 1], [max_value + 1]]))


def histogram_cells(
    inp: np.ndarray, out: np.ndarray, in_edges: np.ndarray, out_edges: np.ndarray
) -> list[list[int]]:
    """Sparse (input bin, output bin, count) triples of the non-empty cells."""
    i = np.searchsorted(in_edges, inp, side="right") - 1
    j = np.searchsorted(out_edges, out, side="right") - 1
    counts = np.zeros((in_edges.size - 1, out_edges.size - 1), dtype=np.int64)
    np.add.at(counts, (i, j), 1)
    return [[int(a), int(b), int(counts[a, b])] for a, b in zip(*np.nonzero(counts), strict=True)]


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)


def summary(inp: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Means, quantiles and correlations of a set of pairs (stored for reference and tests)."""
    stats: dict[str, float] = {"num_pairs": int(inp.size)}
    for label, x in (("input", inp), ("output", out)):
        stats[f"mean_{label}_tokens"] = round(float(x.mean()), 2)
        for q in (10, 50, 90, 99):
            stats[f"p{q}_{label}_tokens"] = round(float(np.percentile(x, q)), 1)
        stats[f"max_{label}_tokens"] = int(x.max())
    stats["log_correlation"] = round(float(np.corrcoef(np.log(inp), np.log(out))[0, 1]), 4)
    stats["spearman_correlation"] = round(float(np.corrcoef(_ranks(inp), _ranks(out))[0, 1]), 4)
    return stats


def histogram_spec(
    name: str, inp: np.ndarray, out: np.ndarray, max_total: int | None, meta: Mapping[str, object]
) -> dict[str, object]:
    """The JSON document of a joint-histogram workload."""
    in_edges, out_edges = log_edges(int(inp.max())), log_edges(int(out.max()))
    return {
        "name": name,
        "kind": "joint_histogram",
        **meta,
        "max_total_tokens": max_total,
        "source_statistics": summary(inp, out),
        "input_edges": in_edges.tolist(),
        "output_edges": out_edges.tolist(),
        "cells": histogram_cells(inp, out, in_edges, out_edges),
    }


def derive_sharegpt(data_dir: Path) -> dict[str, object]:
    """ShareGPT, multi-turn contexts (Llama-2 tokenizer), filtered as DistServe did for OPT."""
    inp, out = load_pairs_csv(data_dir / SHAREGPT_SOURCE)
    keep = (inp + out <= OPT_MAX_TOTAL_TOKENS) & ~((inp < 4) & (out < 4))
    meta = {
        "description": "ShareGPT chatbot requests as in DistServe's OPT experiments: "
        "input + output < 2048 tokens (OPT context), pairs with both sides under 4 tokens dropped.",
        "source": "project-etalon/etalon data/processed_traces/"
        "sharegpt_8k_filtered_stats_llama2_tokenizer.csv (Apache-2.0), "
        f"{inp.size} pairs counted with the Llama-2 tokenizer; {int(keep.sum())} kept.",
        "filters": [
            "input_tokens + output_tokens <= 2047",
            "not (input_tokens < 4 and output_tokens < 4)",
        ],
    }
    return histogram_spec("sharegpt", inp[keep], out[keep], OPT_MAX_TOTAL_TOKENS, meta)


def derive_azure(data_dir: Path, name: str) -> dict[str, object]:
    """Azure LLM inference trace 2023 token counts (all rows)."""
    chunks = list(read_trace(data_dir / AZURE_SOURCES[name], "azure"))
    inp = np.concatenate([c.input_tokens for c in chunks])
    out = np.concatenate([c.output_tokens for c in chunks])
    meta = {
        "description": f"Azure LLM inference service trace, {name.split('-')[1]} (Nov 2023).",
        "source": f"Azure/AzurePublicDataset data/{Path(AZURE_SOURCES[name]).name} (CC-BY-4.0; "
        "cite Patel et al., Splitwise, ISCA 2024): ContextTokens, GeneratedTokens of all rows.",
        "filters": [],
    }
    return histogram_spec(name, inp, out, None, meta)


def _component(
    name: str,
    weight: float,
    in_mean: float,
    in_sigma: float,
    out_mean: float,
    out_sigma: float,
    **caps: object,
) -> dict[str, object]:
    return {
        "name": name,
        "weight": weight,
        "input_median_tokens": round(in_mean / math.exp(in_sigma**2 / 2), 1),
        "input_sigma": in_sigma,
        "output_median_tokens": round(out_mean / math.exp(out_sigma**2 / 2), 1),
        "output_sigma": out_sigma,
        "correlation": 0.0,
        **caps,
    }


def humaneval_spec() -> dict[str, object]:
    """HumanEval (164 problems): input = prompt, output = canonical solution, OPT tokens."""
    chars_per_token = 3.0
    in_sigma = round(math.log(1360 / 115) / 5.0, 2)  # 164 samples span about +-2.5 sigma
    comp = _component(
        "humaneval",
        1.0,
        450.6 / chars_per_token,
        in_sigma,
        180.9 / chars_per_token,
        0.6,
        max_total_tokens=OPT_MAX_TOTAL_TOKENS,
    )
    return {
        "name": "humaneval",
        "kind": "lognormal_mixture",
        "description": "HumanEval code completion as in DistServe: input = problem prompt, "
        "output = "
        "canonical solution; pairs with input + output >= 2048 dropped. A log-normal fit to "
        "published character statistics, NOT to token counts (none are available offline).",
        "published_statistics": {
            "prompt_mean_chars": 450.6,
            "solution_mean_chars": 180.9,
            "prompt_lines_mean": 13.7,
            "solution_lines_mean": 6.8,
            "num_problems": 164,
            "sources": [
                "NL2Code benchmark card for HumanEval (NL2Code.github.io, "
                "_posts/2022-10-01-HumanEval.md): "
                "average 450.6 characters / 13.7 lines of problem description, 180.9 characters / "
                "6.8 lines of code solution.",
                "EvalScope HumanEval page (evalscope.readthedocs.io, v1.6.0): prompt "
                "length mean 609.6, "
                "min 274, max 1519 characters including a 159-character instruction prefix, i.e. "
                "about 115 to 1360 characters for the bare prompt (609.6 - 159 = 450.6 matches).",
            ],
        },
        "assumptions": [
            "3.0 characters per OPT (GPT-2 BPE) token for Python code with docstrings.",
            "input sigma 0.49 = ln(1360/115) / 5 (the extremes of 164 samples are "
            "about +-2.5 sigma).",
            "output sigma 0.6: no spread is published for solution lengths.",
            "input and output independent (no joint statistic is published).",
        ],
        "components": [comp],
    }


def longbench_spec() -> dict[str, object]:
    """LongBench summarization as DistServe used it: prompts cut so input + output <= 2040."""
    tokens_per_word, chars_per_token, sigma = 1.3, 4.5, 0.5
    max_context_tokens = 40000 / chars_per_token  # DistServe first cuts contexts to 40,000 chars
    tasks = {"gov_report": (8734, 553.0), "qmsum": (10614, 69.6), "multi_news": (2113, 263.7)}
    comps = [
        _component(
            task,
            1.0,
            min(ctx * tokens_per_word, max_context_tokens),
            sigma,
            summ * tokens_per_word,
            sigma,
            max_total_tokens=2040,
            fit_input_to_total=True,
        )
        for task, (ctx, summ) in tasks.items()
    ]
    return {
        "name": "longbench",
        "kind": "lognormal_mixture",
        "description": "LongBench summarization as in DistServe (OPT-66B, TTFT 15 s): input = "
        "context "
        "cut to at most 2040 - output tokens, output = the reference summary. An equal mixture of "
        "the English summarization tasks, each a log-normal fit to published word counts, NOT to "
        "token counts (none are available offline).",
        "published_statistics": {
            "context_mean_words": {"gov_report": 8734, "qmsum": 10614, "multi_news": 2113},
            "summary_mean_words": {"gov_report": 553.0, "qmsum": 69.6, "multi_news": 263.7},
            "samples_per_task": 200,
            "sources": [
                "LongBench task statistics table (THUDM/LongBench README): average length in words "
                "GovReport 8,734, QMSum 10,614, MultiNews 2,113; 200 samples each.",
                "Reference summary lengths as reported by the dataset papers: "
                "GovReport (Huang et al., "
                "NAACL 2021) ~553 words, QMSum (Zhong et al., NAACL 2021) ~69.6 words, Multi-News "
                "(Fabbri et al., ACL 2019) ~263.7 words (from the papers' dataset tables; not "
                "re-checked offline).",
                "DistServe's preprocessing (per the shared data README): context cut to 40,000 "
                "characters, then to at most 2040 - output tokens.",
            ],
        },
        "assumptions": [
            "DistServe's summarization workload uses the English LongBench "
            "summarization tasks, equally weighted.",
            "1.3 OPT tokens per English word; 4.5 characters per token (40,000 "
            "chars ~ 8,900 tokens).",
            "sigma 0.5 for every context and summary length (no spreads published).",
            "the script's max prompt-length argument is >= 2040, so the 2040 - "
            "output cut is what binds.",
        ],
        "components": comps,
    }


def derive_all(data_dir: Path) -> dict[str, dict[str, object]]:
    """Every built-in distribution's JSON document, by name."""
    return {
        "sharegpt": derive_sharegpt(data_dir),
        "humaneval": humaneval_spec(),
        "longbench": longbench_spec(),
        **{name: derive_azure(data_dir, name) for name in AZURE_SOURCES},
    }


def dumps(doc: dict[str, object]) -> str:
    """Readable JSON with number lists kept on few lines (a few KB per file)."""
    parts = []
    for key, value in doc.items():
        if key == "cells":
            cells = [json.dumps(c, separators=(",", ":")) for c in value]  # type: ignore[attr-defined]
            rows = [",".join(cells[k : k + 12]) for k in range(0, len(cells), 12)]
            text = "[\n  " + ",\n  ".join(rows) + "\n ]"
        elif key.endswith("_edges"):
            text = json.dumps(value, separators=(",", ":"))
        else:
            text = json.dumps(value, indent=2).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str]) -> None:
    """Write every built-in JSON document into OUT_DIR."""
    data_dir, out_dir = Path(argv[0]), Path(argv[1])
    for name, doc in derive_all(data_dir).items():
        (out_dir / f"{name}.json").write_text(dumps(doc))


if __name__ == "__main__":
    main(sys.argv[1:])
