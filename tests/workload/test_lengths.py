"""Length distributions: types, bounds, exact means, caps, CSV loading and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import InputError
from servesim.workload import Empirical, Fixed, LogNormal, Mixture, Uniform, load_pairs_csv

from .conftest import TRACES, requires_shared


def _check_pairs(inp: np.ndarray, out: np.ndarray, n: int) -> None:
    assert inp.dtype == np.int64 and out.dtype == np.int64
    assert inp.shape == out.shape == (n,)
    assert inp.min() >= 1 and out.min() >= 1


def test_fixed() -> None:
    d = Fixed(512, 64)
    inp, out = d.sample(np.random.default_rng(0), 10)
    _check_pairs(inp, out, 10)
    assert set(inp) == {512} and set(out) == {64}
    assert (d.mean_input_tokens, d.mean_output_tokens) == (512.0, 64.0)


def test_uniform_is_inclusive_and_has_exact_means() -> None:
    d = Uniform(10, 20, 1, 3)
    inp, out = d.sample(np.random.default_rng(0), 100_000)
    _check_pairs(inp, out, 100_000)
    assert (inp.min(), inp.max(), out.min(), out.max()) == (10, 20, 1, 3)
    assert inp.mean() == pytest.approx(d.mean_input_tokens, rel=0.005)
    assert out.mean() == pytest.approx(2.0, rel=0.005)


def test_lognormal_from_means_hits_the_means() -> None:
    d = LogNormal.from_means(300.0, 0.8, 120.0, 0.5)
    inp, out = d.sample(np.random.default_rng(1), 400_000)
    _check_pairs(inp, out, 400_000)
    # Rounding up adds about half a token to each mean.
    assert d.mean_input_tokens == pytest.approx(300.5, abs=0.5)
    assert inp.mean() == pytest.approx(d.mean_input_tokens, rel=0.01)
    assert out.mean() == pytest.approx(d.mean_output_tokens, rel=0.01)
    assert np.median(inp) == pytest.approx(d.input_median_tokens, rel=0.02)


def test_lognormal_correlation_is_kept() -> None:
    d = LogNormal(100, 1.0, 100, 1.0, correlation=0.7)
    inp, out = d.sample(np.random.default_rng(2), 200_000)
    assert np.corrcoef(np.log(inp), np.log(out))[0, 1] == pytest.approx(0.7, abs=0.03)


@settings(max_examples=20, deadline=None)
@given(
    max_in=st.integers(20, 500),
    max_out=st.integers(20, 500),
    max_total=st.integers(60, 800),
    seed=st.integers(0, 1000),
)
def test_lognormal_caps_are_hard_limits(max_in, max_out, max_total, seed) -> None:  # type: ignore[no-untyped-def]
    d = LogNormal(
        50,
        1.0,
        50,
        1.0,
        max_input_tokens=max_in,
        max_output_tokens=max_out,
        max_total_tokens=max_total,
    )
    inp, out = d.sample(np.random.default_rng(seed), 2000)
    _check_pairs(inp, out, 2000)
    assert inp.max() <= max_in and out.max() <= max_out and (inp + out).max() <= max_total


def test_truncated_means_match_samples() -> None:
    d = LogNormal(100, 1.0, 100, 1.0, max_input_tokens=200, max_output_tokens=150, correlation=0.5)
    inp, out = d.sample(np.random.default_rng(3), 500_000)
    assert inp.mean() == pytest.approx(d.mean_input_tokens, rel=0.005)
    assert out.mean() == pytest.approx(d.mean_output_tokens, rel=0.005)
    assert inp.max() == 200 and out.max() == 150  # truncated, and nothing piles up at the cap
    assert np.mean(inp == 200) < 0.01


def test_fit_input_to_total_cuts_prompts_like_distserve() -> None:
    d = LogNormal(5000, 0.3, 300, 0.5, max_total_tokens=2040, fit_input_to_total=True)
    inp, out = d.sample(np.random.default_rng(4), 100_000)
    assert (inp + out).max() == 2040
    assert np.mean(inp + out == 2040) > 0.99  # nearly every context is longer than the room left
    assert inp.mean() == pytest.approx(d.mean_input_tokens, rel=0.005)


def test_caps_without_mass_are_an_input_error() -> None:
    d = LogNormal(1e6, 0.1, 1e6, 0.1, max_total_tokens=10)
    with pytest.raises(InputError, match="caps"):
        d.sample(np.random.default_rng(0), 10)


def test_mixture_means_are_weighted() -> None:
    m = Mixture("m", (LogNormal(10, 0.1, 10, 0.1), LogNormal(1000, 0.1, 5, 0.1)), (3.0, 1.0))
    inp, out = m.sample(np.random.default_rng(5), 200_000)
    _check_pairs(inp, out, 200_000)
    assert inp.mean() == pytest.approx(m.mean_input_tokens, rel=0.01)
    expected = 0.75 * m.components[0].mean_input_tokens + 0.25 * m.components[1].mean_input_tokens
    assert m.mean_input_tokens == pytest.approx(expected)


def test_empirical_resamples_the_pairs() -> None:
    d = Empirical(np.array([1, 10, 100]), np.array([5, 50, 500]))
    inp, out = d.sample(np.random.default_rng(0), 30_000)
    _check_pairs(inp, out, 30_000)
    assert np.all(out == inp * 5)  # pairs stay together
    assert d.mean_input_tokens == 37.0


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Fixed(0, 5), "input_tokens"),
        (lambda: Fixed(5, 1.5), "output_tokens"),  # type: ignore[arg-type]
        (lambda: Uniform(10, 5, 1, 2), "max_input_tokens"),
        (lambda: LogNormal(-1, 1, 1, 1), "input_median_tokens"),
        (lambda: LogNormal(1, 0, 1, 1), "input_sigma"),
        (lambda: LogNormal(1, 1, 1, 1, correlation=1.0), "correlation"),
        (lambda: LogNormal(1, 1, 1, 1, max_total_tokens=0), "max_total_tokens"),
        (lambda: LogNormal(1, 1, 1, 1, fit_input_to_total=True), "fit_input_to_total"),
        (lambda: Empirical(np.array([1, 0]), np.array([1, 1])), "input_tokens"),
        (lambda: Mixture("m", (LogNormal(1, 1, 1, 1),), (0.0,)), "weights"),
    ],
)
def test_bad_parameters_name_the_field(make, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        make()
    assert err.value.field == field


@pytest.mark.parametrize(
    "header",
    ["input_tokens,output_tokens", "num_prefill_tokens,num_decode_tokens,num_total_tokens"],
)
def test_load_pairs_csv_headers(write, header) -> None:  # type: ignore[no-untyped-def]
    extra = ",0" if header.count(",") == 2 else ""
    path = write("l.csv", f"{header}\n10,20{extra}\n30,40{extra}\n")
    inp, out = load_pairs_csv(path)
    assert inp.tolist() == [10, 30] and out.tolist() == [20, 40]
    assert Empirical.from_csv(path).name == "l"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,b\n1,2\n", ":1: header"),
        ("input_tokens,output_tokens\n1,x\n", ":2: output_tokens='x'"),
        ("input_tokens,output_tokens\n1,2\n0,5\n", ":3: input_tokens='0'"),
        ("input_tokens,output_tokens\n1,2\n3\n", ":3: row"),
        ("input_tokens,output_tokens\n", "at least one data row"),
    ],
)
def test_load_pairs_csv_errors_name_file_line_field(write, text, needle) -> None:  # type: ignore[no-untyped-def]
    path = write("bad.csv", text)
    with pytest.raises(InputError) as err:
        load_pairs_csv(path)
    assert needle in str(err.value)
    assert "bad.csv" in str(err.value) or "lengths file" in str(err.value)


@requires_shared
@pytest.mark.parametrize(
    "rel",
    [
        "length_distributions/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        "length_distributions/sharegpt_V3_format_lens.csv",
        "length_distributions/bwb_stats_llama2_tokenizer_filtered_v2.csv",
        "vidur_processed/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
    ],
)
def test_real_length_files_load(rel) -> None:  # type: ignore[no-untyped-def]
    d = Empirical.from_csv(TRACES / rel)
    assert d.input_tokens.size > 10_000
    if "arxiv" in rel:  # documented in the shared data README: prefill mean 2588, decode 291
        assert d.mean_input_tokens == pytest.approx(2588, abs=1)
        assert d.mean_output_tokens == pytest.approx(291, abs=1)
