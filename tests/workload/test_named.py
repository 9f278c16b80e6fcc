"""Built-in named workloads: registry, filters of the sources, golden means, provenance."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.errors import UnknownNameError
from servesim.workload import BUILTIN_LENGTHS, LENGTHS, builtin_document, get_lengths
from servesim.workload.derive import derive_all, dumps

from .conftest import SHARED_DATA, requires_shared

# Golden means of the stored distributions (tokens); a change of the data files must be deliberate.
GOLDEN_MEANS = {
    "sharegpt": (589.6, 395.9),
    "humaneval": (150.7, 60.8),
    "longbench": (1627.6, 378.7),
    "azure-conv": (1140.0, 211.3),
    "azure-code": (2021.2, 28.0),
}


def test_registry_is_a_plain_dict_of_loaders() -> None:
    assert set(LENGTHS) == set(BUILTIN_LENGTHS) == set(GOLDEN_MEANS)
    assert LENGTHS["sharegpt"]() is get_lengths("sharegpt")  # cached


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_lengths("sharegtp")
    assert "sharegpt" in str(err.value)
    with pytest.raises(UnknownNameError) as err:
        get_lengths("nope")
    assert "azure-conv" in str(err.value)


@pytest.mark.parametrize("name", BUILTIN_LENGTHS)
def test_builtin_means_and_samples(name) -> None:  # type: ignore[no-untyped-def]
    d = get_lengths(name)
    assert d.name == name
    assert (d.mean_input_tokens, d.mean_output_tokens) == pytest.approx(GOLDEN_MEANS[name], abs=0.1)
    inp, out = d.sample(np.random.default_rng(0), 200_000)
    assert inp.dtype == np.int64 and inp.min() >= 1 and out.min() >= 1
    assert inp.mean() == pytest.approx(d.mean_input_tokens, rel=0.01)
    assert out.mean() == pytest.approx(d.mean_output_tokens, rel=0.02)


def test_sharegpt_respects_distserve_filters() -> None:
    inp, out = get_lengths("sharegpt").sample(np.random.default_rng(1), 200_000)
    assert (inp + out).max() <= 2047  # OPT context 2048
    assert not np.any((inp < 4) & (out < 4))


def test_humaneval_and_longbench_respect_the_2048_context() -> None:
    inp, out = get_lengths("humaneval").sample(np.random.default_rng(2), 100_000)
    assert (inp + out).max() <= 2047
    inp, out = get_lengths("longbench").sample(np.random.default_rng(3), 100_000)
    assert (inp + out).max() <= 2040  # DistServe cut prompts to 2040 - output


@pytest.mark.parametrize("name", BUILTIN_LENGTHS)
def test_every_file_says_where_it_came_from(name) -> None:  # type: ignore[no-untyped-def]
    doc = builtin_document(name)
    assert doc["name"] == name and doc["description"]
    if doc["kind"] == "joint_histogram":
        assert doc["source"] and "source_statistics" in doc
    else:
        assert doc["published_statistics"]["sources"] and doc["assumptions"]


@pytest.mark.parametrize("name", ["sharegpt", "azure-conv", "azure-code"])
def test_histograms_keep_the_source_shape(name) -> None:  # type: ignore[no-untyped-def]
    st = builtin_document(name)["source_statistics"]
    d = get_lengths(name)
    inp, out = d.sample(np.random.default_rng(4), 300_000)
    assert d.mean_input_tokens == pytest.approx(st["mean_input_tokens"], rel=0.03)
    assert d.mean_output_tokens == pytest.approx(st["mean_output_tokens"], rel=0.03)
    assert np.median(inp) == pytest.approx(st["p50_input_tokens"], rel=0.05)
    assert np.median(out) == pytest.approx(st["p50_output_tokens"], rel=0.05, abs=1)
    logcorr = np.corrcoef(np.log(inp), np.log(out))[0, 1]
    assert logcorr == pytest.approx(st["log_correlation"], abs=0.03)


@requires_shared
def test_stored_files_are_what_derive_produces() -> None:
    for name, doc in derive_all(SHARED_DATA).items():
        from importlib import resources

        stored = resources.files("servesim.workload").joinpath(f"data/{name}.json").read_text()
        assert stored == dumps(doc), f"data/{name}.json is stale: rerun servesim.workload.derive"
