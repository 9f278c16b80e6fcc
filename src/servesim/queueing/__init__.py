"""Closed-form queueing results for prefill and decode placement (DistServe section 3).

Prefill: Poisson arrivals, FCFS, no batching. One device is M/D/1 (fixed input length) or
M/G/1 (a distribution of input lengths, Pollaczek-Khinchine); inter-op (pipeline) adds a
latency D_s and queues on its bottleneck stage D_m; intra-op divides the execution time by
a speedup K; replication splits the rate over N instances. Mean TTFT everywhere, exact
percentiles for a fixed service time, a bound and an approximation otherwise, the exact
crossover rate of two options and the highest rate meeting a mean-TTFT SLO.

Decode: per-token latency and throughput against batch size from any latency model with
`decode_s(num_seqs, sum_ctx_tokens)`, and the batch size at which a TPOT SLO binds.

Comparison (compare.py): the three options DistServe compares (one device, N-way inter-op,
N-way intra-op) as a `ThreeWay`, with rate grids, TTFT rows, the crossover and SLO rates.
`servesim.queueing.setup` takes their inputs from servesim's latency model (not imported here,
so the closed forms stay free of model and hardware specs).

Units: seconds, requests/s, tokens/s. Loads at or beyond 1 raise `UnstableQueueError`.
"""

from servesim.queueing.compare import (
    OPTION_NAMES,
    RateRow,
    ThreeWay,
    intra_inter_crossover_per_s,
    rate_grid_per_s,
    slo_quantile_rates_per_s,
    slo_rates_per_s,
    three_way_from_moments,
    three_way_from_numbers,
    ttft_rows,
)
from servesim.queueing.decode import (
    DecodeLatencyModel,
    DecodePoint,
    best_point_under_tpot_slo,
    decode_curve,
    decode_point,
    max_batch_for_tpot_slo,
    tpot_s,
)
from servesim.queueing.mg1 import (
    ServiceMoments,
    UnstableQueueError,
    deterministic,
    md1_mean_ttft_or_none_s,
    md1_mean_ttft_s,
    md1_mean_wait_s,
    mg1_mean_sojourn_s,
    mg1_mean_wait_s,
    moments_from_samples,
    moments_of_lengths,
    stable_rate_limit_per_s,
)
from servesim.queueing.percentiles import (
    MD1Wait,
    lundberg_decay_per_s,
    max_rate_for_ttft_quantile_s,
    md1_ttft_quantiles_s,
    md1_wait_cdf,
    md1_wait_quantiles_s,
    mg1_wait_quantile_approx_s,
    mg1_wait_quantile_bound_s,
    mg1_wait_quantile_lundberg_s,
    ttft_quantiles_approx_s,
    ttft_quantiles_s,
)
from servesim.queueing.prefill import (
    PrefillOption,
    crossover_rate_per_s,
    crossover_rates_per_s,
    inter_op,
    inter_op_even,
    inter_op_mean_ttft_s,
    intra_op,
    intra_op_mean_ttft_s,
    max_rate_for_mean_ttft_s,
    mean_ttft_or_none_s,
    mean_ttft_s,
    mean_wait_s,
    replicated,
    replicated_mean_ttft_s,
    single_device,
)

__all__ = [
    "OPTION_NAMES",
    "DecodeLatencyModel",
    "DecodePoint",
    "MD1Wait",
    "PrefillOption",
    "RateRow",
    "ServiceMoments",
    "ThreeWay",
    "UnstableQueueError",
    "best_point_under_tpot_slo",
    "crossover_rate_per_s",
    "crossover_rates_per_s",
    "decode_curve",
    "decode_point",
    "deterministic",
    "inter_op",
    "inter_op_even",
    "inter_op_mean_ttft_s",
    "intra_inter_crossover_per_s",
    "intra_op",
    "intra_op_mean_ttft_s",
    "lundberg_decay_per_s",
    "max_batch_for_tpot_slo",
    "max_rate_for_mean_ttft_s",
    "max_rate_for_ttft_quantile_s",
    "md1_mean_ttft_or_none_s",
    "md1_mean_ttft_s",
    "md1_mean_wait_s",
    "md1_ttft_quantiles_s",
    "md1_wait_cdf",
    "md1_wait_quantiles_s",
    "mean_ttft_or_none_s",
    "mean_ttft_s",
    "mean_wait_s",
    "mg1_mean_sojourn_s",
    "mg1_mean_wait_s",
    "mg1_wait_quantile_approx_s",
    "mg1_wait_quantile_bound_s",
    "mg1_wait_quantile_lundberg_s",
    "moments_from_samples",
    "moments_of_lengths",
    "rate_grid_per_s",
    "replicated",
    "replicated_mean_ttft_s",
    "single_device",
    "slo_quantile_rates_per_s",
    "slo_rates_per_s",
    "stable_rate_limit_per_s",
    "three_way_from_moments",
    "three_way_from_numbers",
    "tpot_s",
    "ttft_quantiles_approx_s",
    "ttft_quantiles_s",
    "ttft_rows",
]
