"""The terminal verdict: trace text printed as written, and the empty cases said in words."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import correlate
from correlate.render import markdown
from correlate.render.text import short_statement
from correlate.render.units import ms

from .builders import RunBuilder
from .reports import add_plan, hostile_run


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


def _table(text: str, title: str) -> str:
    return text.split(f"\n{title}")[1].split("\n\n")[0]


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160])
def test_tables_leave_columns_out_rather_than_cut_figures(width: int) -> None:
    b = hostile_run()
    for i in range(12):  # a second route, with a long name
        r = b.request(f"u{i}", i * 100, i * 100 + 1234.5, "/customers/<int:customer_id>/orders")
        b.query(f"u{i}", r, i * 100 + 1, i * 100 + 40, "SELECT * FROM customers WHERE id = 1")
    with b.build() as store:
        add_plan(store)
        result = correlate.analyze("r", store=store)
        text = result.to_text(width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    routes, queries = _table(text, "Routes"), _table(text, "Queries")
    assert "…" not in routes  # no figure shortened
    header = routes.splitlines()[1].split()
    first_cells = "".join(re.split(r"\s{2,}", line.strip())[0] for line in routes.splitlines())
    for r in result.routes.itertuples():
        assert r.route in first_cells  # folded over lines, never cut
        shown = {"req": f"{r.requests:,}", "p50": ms(r.p50_ms), "p95": ms(r.p95_ms),
                 "max": ms(r.max_ms), "app": ms(r.app_ms)}  # fmt: skip
        for name, figure in shown.items():
            assert name not in header or figure in routes, (name, figure)
    hidden = [n for n in ("req/s", "max", "pool", "db", "calls", "app") if n not in header]
    if hidden:
        assert f"not shown at this width: {', '.join(hidden)}" in text
    else:
        assert "not shown at this width" not in routes
    for q in result.queries.itertuples():
        assert q.fingerprint in queries
        assert f"{q.calls:,}" in queries
    # the plan's reading on a line of its own, whole; the column says there is one
    planned = result.queries[result.queries.plan_id.notna()]
    fingerprint, reading = planned.fingerprint.iloc[0], planned.insights.iloc[0][0]
    assert f"{fingerprint} plan: {reading}" in " ".join(text.split())
    assert "flagged" in queries or "plan" not in queries.splitlines()[1]
    assert "SELECT … FROM " in queries  # the column list left out, what follows kept


@given(
    st.lists(st.sampled_from(["SELECT", "select", "FROM", " ", "a", ",", "…", "\n"]), max_size=12)
)
def test_a_short_statement_only_drops_a_select_list(words: list[str]) -> None:
    text = "".join(words)
    short = short_statement(text)
    if short != text:
        prefix = "SELECT … FROM "
        assert short.startswith(prefix) and text.upper().startswith("SELECT ")
        assert text.endswith(short[len(prefix) :])
        assert len(short) <= len(text) + 1
