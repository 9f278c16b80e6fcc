"""DistServe's fitted latency form, as a second `LatencyModel`.

DistServe (OSDI'24) fits per (model, TP), in milliseconds:
prefill = a + b * sum(l) + c * sum(l^2) over the batch's prompt lengths;
decode = a + b * sum(ctx + 1) + c * batch, with one (a, b, c) below a batch of 95 sequences and
another from 95 up. Pipeline parallelism divides the time evenly: a stage takes T / pp.
The coefficients for OPT-13B/66B on A100-80GB ship as the profile 'distserve'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servesim.errors import InputError
from servesim.latency.base import Breakdown
from servesim.latency.profiles import FORMAT, VERSION, Profile, profile_from_dict
from servesim.specs.model import ModelSpec
from servesim.specs.parallel import ParallelSpec

MS = 1e-3
Coeffs = tuple[float, float, float]


@dataclass(frozen=True)
class DistServeModel:
    """DistServe's per-(model, TP) fit; implements `LatencyModel` (times in seconds)."""

    prefill: Coeffs
    decode_small: Coeffs
    decode_large: Coeffs
    threshold: int
    parallel: ParallelSpec

    @property
    def pp(self) -> int:
        return self.parallel.pp

    def _prefill_ms(self, sum_tokens: float, sum_sq_tokens: float) -> tuple[float, float]:
        a, b, c = self.prefill
        return a, b * sum_tokens + c * sum_sq_tokens

    def prefill_stage_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return sum(self._prefill_ms(sum_tokens, sum_sq_tokens)) * MS / self.pp

    def prefill_s(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> float:
        return sum(self._prefill_ms(sum_tokens, sum_sq_tokens)) * MS

    def prefill_breakdown(self, num_seqs: int, sum_tokens: int, sum_sq_tokens: int) -> Breakdown:
        fixed, work = self._prefill_ms(sum_tokens, sum_sq_tokens)
        return Breakdown(
            compute_s=work * MS, memory_s=0.0, communication_s=0.0, overhead_s=fixed * MS
        )

    def decode_coeffs(self, num_seqs: int) -> tuple[float, float]:
        a, b, c = self.decode_small if num_seqs < self.threshold else self.decode_large
        return (a + (b + c) * num_seqs) * MS, b * MS

    def decode_s(self, num_seqs: int, sum_ctx_tokens: int) -> float:
        base, slope = self.decode_coeffs(num_seqs)
        return base + slope * sum_ctx_tokens

    def decode_breakdown(self, num_seqs: int, sum_ctx_tokens: int) -> Breakdown:
        a, _, _ = self.decode_small if num_seqs < self.threshold else self.decode_large
        total = self.decode_s(num_seqs, sum_ctx_tokens)
        return Breakdown(
            compute_s=0.0, memory_s=total - a * MS, communication_s=0.0, overhead_s=a * MS
        )

    def mixed_s(
        self,
        num_prefill_tokens: int,
        prefill_attn_pairs: float,
        num_decode_seqs: int,
        sum_ctx_tokens: int,
    ) -> float:
        """The chunk's prefill cost (its pairs give the sum of squares) plus the decodes' marginal
        cost; the fixed term is paid once."""
        a, b, c = self.decode_small if num_decode_seqs < self.threshold else self.decode_large
        decode_ms = b * (sum_ctx_tokens + num_decode_seqs) + c * num_decode_seqs
        if num_prefill_tokens == 0:
            return (a + decode_ms) * MS
        sum_sq = max(0.0, 2.0 * prefill_attn_pairs - num_prefill_tokens)
        return (sum(self._prefill_ms(num_prefill_tokens, sum_sq)) + decode_ms) * MS


def _coeffs(entry: dict[str, Any], key: str, where: str) -> Coeffs:
    values = entry.get(key)
    if not isinstance(values, list) or len(values) != 3:
        raise InputError(f"{where}.{key}", values, "a list of three coefficients [a, b, c]")
    return float(values[0]), float(values[1]), float(values[2])


def distserve_profile(raw: dict[str, Any], source: str, gpu: str = "a100-80gb") -> Profile:
    """Wrap DistServe's coefficient JSON ({model: {tp: {...}}}) as a servesim profile."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "gpu": gpu,
        "kind": "distserve",
        "source": source,
        "fitted_on": [source],
        "params": raw,
    }
    return profile_from_dict(data)


def build_distserve(model: ModelSpec, parallel: ParallelSpec, profile: Profile) -> DistServeModel:
    """The DistServe model of `model` at TP `parallel.tp` from a 'distserve' profile."""
    names = {k.lower().rsplit("/", 1)[-1]: k for k in profile.params}
    key = names.get(model.name.lower().rsplit("/", 1)[-1])
    if key is None:
        raise InputError(
            "model", model.name, f"a model of the DistServe profile: {', '.join(profile.params)}"
        )
    per_tp = profile.params[key]
    if str(parallel.tp) not in per_tp:
        raise InputError(
            "tp", parallel.tp, f"a TP fitted by DistServe for {key}: {', '.join(per_tp)}"
        )
    entry = per_tp[str(parallel.tp)]
    where = f"profile.{key}.{parallel.tp}"
    return DistServeModel(
        prefill=_coeffs(entry, "prefill", where),
        decode_small=_coeffs(entry, "decoding_smallbs", where),
        decode_large=_coeffs(entry, "decoding_largebs", where),
        threshold=int(entry.get("decoding_large_small_bs_threshold", 95)),
        parallel=parallel,
    )
