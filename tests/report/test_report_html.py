"""The HTML report without a browser: contents, offline, escaping, tables, summary in words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.report.factories import make_search_dir

from servesim.cli import run_app
from servesim.errors import InputError
from servesim.report import MissingExtraError, build_report, load_report_data
from servesim.report.figures import all_charts
from servesim.report.plotly_render import plotly_js
from servesim.report.summary import summary_text


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_search_dir(tmp_path_factory.mktemp("report") / "out")


def test_report_is_self_contained(search_dir: Path, tmp_path: Path) -> None:
    text = build_report(search_dir, tmp_path / "r.html").read_text()
    bundle = plotly_js()
    assert f"<script>{bundle}</script>" in text  # plotly.js itself is inlined
    own = text.replace(bundle, "")
    assert not re.search(r"""(src|href)=["']?https?:""", own)  # nothing fetched from a CDN
    assert not re.search(r"<script[^>]+src=", own)  # every script is inline
    assert "Plotly.newPlot" in own
    assert text.count('class="plot"') == 8


def test_all_figures_present(search_dir: Path) -> None:
    keys = [c.key for c in all_charts(load_report_data(search_dir))]
    assert keys == [
        "attainment_vs_rate",
        "binding_slo",
        "attainment_vs_slo_scale",
        "latency_cdf",
        "timeline_best_colocated",
        "timeline_best_disaggregated",
        "network",
        "queueing",
    ]


def test_summary_in_words(search_dir: Path) -> None:
    text = summary_text(load_report_data(search_dir))
    assert "The best configuration is disaggregated" in text
    assert "1.78x the per-GPU goodput" in text  # (6.4/8) / (3.6/8)
    assert "binding constraint" in text


def test_escaping_of_user_text(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    folder = make_search_dir(tmp_path / "<img src=x onerror=alert(2)>", model=evil)
    csv = folder / "candidates.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0] + ",note", *(f"{ln},{evil}" for ln in lines[1:])]) + "\n")
    text = build_report(folder, tmp_path / "r.html").read_text()
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text


def test_ranked_table_best_first(search_dir: Path, tmp_path: Path) -> None:
    text = build_report(search_dir, tmp_path / "r.html").read_text()
    rows = re.findall(r"<tr( class=best)?><td>(\d+)</td><td>(c\d)</td>", text)
    assert rows[0] == (" class=best", "1", "c0")
    assert [r[2] for r in rows] == ["c0", "c1", "c2", "c3", "c4"]


def test_png_text_with_dollar_signs(tmp_path: Path) -> None:
    from servesim.report.figures import instance_timeline
    from servesim.report.png import draw

    folder = make_search_dir(tmp_path / "out")
    csv = folder / "best_colocated" / "instances.csv"
    csv.write_text(csv.read_text().replace("prefill-1", "$\\frac{a}{$"))  # broken mathtext
    run = next(r for r in load_report_data(folder).runs if r.label == "best_colocated")
    chart = instance_timeline(run)
    assert chart is not None
    assert draw(chart, tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_simulate_folder(tmp_path: Path) -> None:
    src = make_search_dir(tmp_path / "search")
    sim = tmp_path / "sim"
    sim.mkdir()
    for name in ("summary.json", "records.csv", "instances.csv"):
        (sim / name).write_bytes((src / "best_colocated" / name).read_bytes())
    data = load_report_data(sim)
    assert [c.key for c in all_charts(data)] == ["latency_cdf", "timeline_sim"]
    assert "of requests meet both SLOs" in summary_text(data)
    assert build_report(sim, tmp_path / "r.html").stat().st_size > 0


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="DIR"):
        load_report_data(tmp_path / "missing")
    with pytest.raises(InputError, match="DIR"):
        load_report_data(tmp_path)
    (tmp_path / "search.json").write_text("{not json")
    with pytest.raises(InputError, match=r"search\.json"):
        load_report_data(tmp_path)


def test_cli(search_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "r.html", tmp_path / "png"
    assert run_app(["report", str(search_dir), "-o", str(out), "--png", str(png)]) == 0
    assert out.is_file()
    pngs = sorted(png.glob("*.png"))
    assert len(pngs) == 8
    for path in pngs:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_app(["report", str(tmp_path / "nope"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: DIR=") and len(err[-1].splitlines()) == 1


def test_missing_extra_is_one_line(
    search_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"servesim\[report\]"):
        build_report(search_dir, tmp_path / "r.html")
    assert run_app(["report", str(search_dir), "-o", str(tmp_path / "r.html")]) == 2
    assert "pip install 'servesim[report]'" in capsys.readouterr().err


def test_report_of_a_real_search(tmp_path: Path) -> None:
    """A tiny real search (4 GPUs, 200 requests) -> --out DIR -> report."""
    out = tmp_path / "search"
    args = ["search", "--model", "opt-13b", "--gpus-per-node", "4", "--requests", "200"]
    code = run_app([*args, "--no-cache", "--workers", "1", "--quiet", "--out", str(out)])
    if code != 0 or not (out / "search.json").is_file():
        pytest.skip(f"the search did not produce an output folder (exit code {code})")
    data = load_report_data(out)
    keys = [c.key for c in all_charts(data)]
    assert keys[:4] == [
        "attainment_vs_rate",
        "binding_slo",
        "attainment_vs_slo_scale",
        "latency_cdf",
    ]
    assert summary_text(data).startswith("The best configuration is ")
    text = build_report(out, tmp_path / "r.html").read_text()
    ranked = re.search(r'<table class="sortable">(.*?)</table>', text, re.S)
    assert ranked is not None
    assert ranked.group(1).count("<tr") == len(data.candidates["rank"]) + 1  # header + candidates
