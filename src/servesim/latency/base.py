"""The latency-model interface the simulator calls in its hot path.

A batch is reduced to a few aggregates: prefill batches to (number of sequences, sum of prompt
lengths, sum of squared prompt lengths), decode batches to (number of sequences, sum of context
lengths). For a fixed number of decode sequences the iteration time is linear in the summed
context, `decode_s(n, ctx) = base_s + slope_s * ctx`; `decode_coeffs(n)` returns that pair so the
engine can jump over stretches of iterations in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Where one iteration's time goes, in seconds; the parts add up to the total."""

    compute_s: float
    memory_s: float
    communication_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return self.compute_s + self.memory_s + self.communication_s + self.overhead_s

    def as_dict(self) -> dict[str, float]:
        return {
            "compute_s": self.compute_s,
            "memory_s": self.memory_s,
            "communication_s": self.communication_s,
            "overhead_s": self.overhead_s,
        }


class LatencyModel(Protocol):
    """Iteration times of one instance (a TP x PP group running one model replica), in seconds."""

    @property
    def pp(self) -> int: ...

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        """Latency of one prefill batch through every pipeline stage."""
        ...

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        """Time the busiest pipeline stage spends on the batch (its throughput bound)."""
        ...

    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        """(base_s, slope_s): one decode iteration of `num_seqs` sequences holding `ctx` context
        tokens in total takes `base_s + slope_s * ctx` seconds (all sequences advance one token)."""
        ...

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        """One decode iteration: every running sequence generates one token."""
        ...

    def mixed_s(
        self,
        num_prefill_tokens: int,
        prefill_attn_pairs: float,
        num_decode_seqs: int,
        sum_ctx_tokens: int,
    ) -> float:
        """One chunked-prefill iteration: prompt chunks plus running decodes.

        `prefill_attn_pairs` counts (query, key) pairs of the chunks: a chunk of c tokens after a
        prefix of p tokens contributes c*p + c*(c+1)/2.
        """
        ...

    def prefill_breakdown(
        self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int
    ) -> Breakdown: ...

    def decode_breakdown(self, num_seqs: int, sum_ctx_tokens: int) -> Breakdown: ...


def prefill_attn_pairs(sum_tokens: float, sum_sq_tokens: float) -> float:
    """(query, key) pairs of causal attention over whole prompts: sum of l*(l+1)/2."""
    return 0.5 * (sum_sq_tokens + sum_tokens)
