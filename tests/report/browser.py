"""Open an HTML file in Debian's headless chromium (Playwright; no browser download), inspect it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Per plotly figure: number of traces drawn with data (a line path with a 'd', points or bars).
COUNT_DRAWN_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(function(div){
  var drawn = 0;
  div.querySelectorAll('g.trace').forEach(function(g){
    var line = Array.from(g.querySelectorAll('path.js-line')).some(function(p){
      var d = p.getAttribute('d'); return d && d.length > 10; });
    var points = g.querySelectorAll('path.point, g.point > path').length > 0;
    if (line || points) { drawn += 1; }
  });
  return {id: div.id, drawn: drawn};
})
"""


@dataclass
class PageCheck:
    """What the browser saw."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figures: list[dict[str, object]] = field(default_factory=list)
    text: str = ""
    num_figure_divs: int = 0


def chromium_missing_reason() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "Debian chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed"
    return None


def open_in_chromium(
    html_path: Path,
    screenshot: Path,
    width: int = 1280,
    actions: Callable[[Any], None] | None = None,
) -> PageCheck:
    """Load the page from file://, wait for the figures, screenshot it and report what happened.

    `actions(page)` runs after the figures are drawn and before the screenshot.
    """
    from playwright.sync_api import sync_playwright

    check = PageCheck()
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on(
            "console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda err: check.page_errors.append(str(err)))
        page.on("request", lambda r: check.requests.append(r.url))

        def on_dialog(dialog: object) -> None:
            check.dialogs.append(getattr(dialog, "message", ""))
            dialog.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", on_dialog)
        page.goto(html_path.resolve().as_uri(), wait_until="load")
        check.num_figure_divs = page.locator("div.plot").count()
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length"
            " === document.querySelectorAll('div.plot').length",
            timeout=30_000,
        )
        page.wait_for_timeout(300)
        check.figures = page.evaluate(COUNT_DRAWN_JS)
        check.text = page.inner_text("body")
        if actions is not None:
            actions(page)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return check
