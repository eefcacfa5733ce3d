"""The terminal verdict: trace text printed as written, and the empty cases said in words."""

from __future__ import annotations

import correlate
from correlate.render import markdown

from .builders import RunBuilder


def test_markup_in_routes_and_statements_prints_verbatim() -> None:
    b = RunBuilder()
    for i in range(12):
        r = b.request(f"t{i}", i * 100, i * 100 + 200, "/x/[bold red]boom[/]")
        b.query(f"t{i}", r, i * 100, i * 100 + 20, "SELECT '[link=http://evil]x[/link]' FROM t")
    with b.build() as store:
        text = correlate.analyze("r", store=store).to_text(color=True)
    assert "/x/[bold red]boom[/]" in text
    assert "\x1b]8;" not in text  # no hyperlink escape was produced from the statement


def test_run_without_requests_says_so() -> None:
    b = RunBuilder()
    b.span("t1", 0, 10, name="batch job")
    with b.build() as store:
        result = correlate.analyze("r", store=store)
    text = result.to_text()
    assert "No requests in this run" in text
    assert "No findings" in text
    assert any("no SERVER or CONSUMER spans" in gap for gap in result.gaps)


def test_run_without_database_spans_says_so() -> None:
    b = RunBuilder()
    b.request("t1", 0, 10)
    with b.build() as store:
        text = correlate.analyze("r", store=store).to_text()
    assert "No database spans in this run." in text


def test_a_pool_wait_nothing_recorded_is_not_told_as_zero() -> None:
    # statement spans only (asyncpg, psycopg): the wait for a connection is nobody's to
    # measure, so "pool wait 0%" would read as measured
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.query("t1", r, 60, 90)
    with b.build() as store:
        result = correlate.analyze("r", store=store)
    for text in (result.to_text(), markdown.render(result)):
        assert "Where the time went: pool wait not recorded, database 30%" in text
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.connect("t1", r, 0, 60)
    b.query("t1", r, 60, 90)
    with b.build() as store:
        assert "pool wait 60%, database 30%" in correlate.analyze("r", store=store).to_text()
