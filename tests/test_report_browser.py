"""The HTML report in a real browser: it renders, fetches nothing and shows trace text as text.

Uses the system's chromium (``/usr/bin/chromium``, Debian's package) through
Playwright; no browser is downloaded. Without chromium the tests skip on a
laptop and fail under ``CORRELATE_NO_SKIP=1`` (CI installs it: ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import correlate

from .conftest import _no_skip
from .reports import HOSTILE_ROUTE, add_plan, hostile_run

CHROMIUM = os.environ.get("CORRELATE_TEST_CHROMIUM", "/usr/bin/chromium")


def _missing(message: str) -> None:
    if _no_skip():
        pytest.fail(message + " and CORRELATE_NO_SKIP is set", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"playwright is not installed ({exc})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield b
        finally:
            b.close()


class Visit:
    """A page opened on a report file, with what it asked for and complained about."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.blocked.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", self._only_the_report)
        self.page.goto(self.url, wait_until="load")

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _only_the_report(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:  # anything else would be a network request: refuse it, and the test fails
            self.blocked.append(route.request.url)
            route.abort()


def _sample_page(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    with correlate.open_store(":memory:") as store:
        path.write_text(
            correlate.report("sample_traces/checkout-blackfriday", store=store, format="html")
        )
    return path


def test_sample_report_renders_offline_without_errors(browser: Any, tmp_path: Path) -> None:
    from PIL import Image

    visit = Visit(browser, _sample_page(tmp_path))
    assert visit.requests == [visit.url]
    assert visit.blocked == []
    assert visit.console == []
    page = visit.page
    assert page.title() == "correlate report: checkout-blackfriday"
    # every figure decoded: an inline SVG image with a real size
    sizes = page.eval_on_selector_all(
        "figure img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) == 5
    assert all(done and w > 300 and h > 100 for done, w, h in sizes)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(shot).convert("RGB")
    assert image.width == 1280 and image.height > 4000
    small = image.resize((320, image.height // 4))
    colours = small.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50
    ink = sum(n for n, rgb in colours if sum(rgb) < 600) / (small.width * small.height)
    assert ink > 0.03
    reds = sum(n for n, (r, g, b) in colours if r > 180 and g < 110 and b < 120)
    assert reds > 500  # the pool wait and the critical badges are there
    page.close()


def test_script_in_a_route_shows_as_text(browser: Any, tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    with hostile_run().build() as store:
        add_plan(store)
        path.write_text(correlate.report("r", store=store, format="html"))
    visit = Visit(browser, path)
    page = visit.page
    assert page.evaluate("document.scripts.length") == 0
    assert visit.dialogs == []
    assert visit.console == []
    assert visit.blocked == []
    cells = page.eval_on_selector_all("td.route", "cells => cells.map(c => c.textContent)")
    assert cells == [HOSTILE_ROUTE]
    assert "note = '<script>alert(3)</script>'" in page.inner_text("ul.plan")
    page.close()
