"""The report opened in real headless chromium: no console error, every figure drawn, escaping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.report.browser import chromium_missing_reason, open_in_chromium
from tests.report.factories import make_search_dir

from servesim.report import build_report

pytestmark = pytest.mark.browser

EVIL_MODEL = '<script>alert("model")</script>'
EVIL_INSTANCE = "<b>decode</b><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def report_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("browser")
    folder = make_search_dir(root / "search-out", model=EVIL_MODEL)
    csv = folder / "best_disaggregated" / "instances.csv"
    csv.write_text(csv.read_text().replace("decode-3", EVIL_INSTANCE.replace(",", "")))
    return build_report(folder, root / "report.html")


def _sort_by_goodput(page: Any) -> None:
    """Click the per-GPU goodput header once (ascending) and record the column."""
    page.click("table.sortable th:text-is('goodput_per_gpu_per_s')")
    page.evaluate(
        "window.__sorted = Array.from(document.querySelectorAll('table.sortable tbody tr'))"
        ".map(r => r.cells[11].textContent)"
    )


def test_report_renders_in_chromium(report_path: Path, tmp_path: Path) -> None:
    sorted_cells: list[str] = []

    def act(page: Any) -> None:
        _sort_by_goodput(page)
        sorted_cells.extend(page.evaluate("window.__sorted"))

    shot = tmp_path / "report.png"
    check = open_in_chromium(report_path, shot, actions=act)
    assert check.console_errors == []
    assert check.page_errors == []
    assert check.dialogs == []  # no injected script ran
    assert [u for u in check.requests if not u.startswith("file:")] == []  # offline: no CDN
    assert check.num_figure_divs == 8
    assert len(check.figures) == check.num_figure_divs
    for figure in check.figures:
        assert int(figure["drawn"]) >= 1, figure
    assert shot.stat().st_size > 50_000
    values = [float(v) for v in sorted_cells]
    assert values == sorted(values) and len(values) == 5
    assert EVIL_MODEL in check.text  # the model name, shown literally in the header
    assert "<b>decode</b>" in check.text  # an instance name, shown literally in a plotly legend
