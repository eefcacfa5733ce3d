"""The HTML report: self-contained, escaped, with plans, figures and notebook views."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.analysis.evidence import Evidence, collect
from correlate.cli import cli
from correlate.render import figures, find_renderer, html

from .builders import RunBuilder
from .reports import HOSTILE_ROUTE, add_plan, hostile_run

SAMPLE = "sample_traces/checkout-blackfriday"


@pytest.fixture(scope="module")
def sample() -> Iterator[Evidence]:
    with correlate.open_store(":memory:") as store:
        yield collect(store, correlate.analyze(SAMPLE, store=store))


@pytest.fixture(scope="module")
def sample_html(sample: Evidence) -> str:
    return html.render(sample)


def test_sample_report_has_every_section_in_order(sample: Evidence, sample_html: str) -> None:
    headings = re.findall(r"<h2>(.*?)</h2>", sample_html)
    assert headings == [
        "Verdict",
        "Over the run",
        "Where the time goes",
        "Findings in full",
        "Connection pool",
        "Queries",
        "Plans of the flagged queries",
        "Example slow requests",
    ]
    verdict = sample_html.split("<h2>Verdict</h2>")[1].split("<h2>")[0]
    findings = sample.analysis.findings
    assert verdict.count("<li>") == len(findings)  # every one, the info fan-out too
    assert "Connection-pool leak in /checkout" in verdict
    leak = findings[0].evidence
    seconds, share = leak["pool_wait_ms"] / 1000, leak["share_of_request_time"]
    shown = f"pool wait {seconds:.2f} s; share of request time {share:.0%}"
    assert f"Evidence: {shown}" in verdict


def test_sample_report_is_self_contained_and_a_reasonable_size(sample_html: str) -> None:
    assert "<script" not in sample_html.lower()
    assert "<link" not in sample_html.lower()
    assert "default-src 'none'" in sample_html
    # everything the page loads is inline: only data: URIs in src/href attributes
    for url in re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", sample_html):
        assert url.startswith("data:image/svg+xml;base64,"), url[:80]
    assert re.search(r"url\(\s*['\"]?(?!data:)", sample_html) is None
    assert sample_html.count("<img ") == 5  # timeline, attribution, pool, two waterfalls
    assert 50_000 < len(sample_html.encode()) < 400_000


def test_trace_text_is_escaped_and_the_flagged_plan_node_highlighted() -> None:
    with hostile_run().build() as store:
        add_plan(store)
        page = correlate.report("r", store=store, format="html")
    assert "<script" not in page
    assert html.e(HOSTILE_ROUTE) in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page  # from the plan's filter
    tree = page.split("<h2>Plans of the flagged queries</h2>")[1].split("<h2>")[0]
    flagged = re.findall(r"<span class='node flag'><strong>(.*?)</strong>", tree)
    assert flagged == ["Seq Scan on orders"]
    assert "CREATE INDEX ON orders (note, customer_id)" in tree
    assert "SELECT id FROM orders WHERE note = $1 AND customer_id = $2" in tree


def test_backticks_in_trace_text_stay_backticks() -> None:
    # MySQL quotes identifiers with backticks: a finding quoting a route or a statement
    # must show them as written, never turn the text between two of them into code
    route = "/q/`tick`/x"
    b = RunBuilder()
    for i in range(12):
        r = b.request(f"t{i}", i * 100, i * 100 + 60, route)
        b.query(f"t{i}", r, i * 100 + 5, i * 100 + 50, "SELECT `id` FROM `orders` WHERE `n` = 7")
    with b.build() as store:
        page = correlate.report("r", store=store, format="html")
    findings = page.split("<h2>Findings in full</h2>")[1].split("<h2>")[0]
    assert route in findings
    assert "<code>tick</code>" not in page and "<code>id</code>" not in page


def test_figures_are_figures_built_without_pyplot(sample: Evidence) -> None:
    from matplotlib.figure import Figure

    a = sample.analysis
    built = [
        figures.latency_timeline(a.timeline, sample.route_timeline),
        figures.attribution(a.breakdowns),
        figures.pool_timeline(a.timeline),
        *(figures.waterfall(w) for w in sample.examples),
    ]
    assert all(isinstance(f, Figure) for f in built)
    assert all(f.canvas.manager is None for f in built)  # never registered with pyplot
    svg = figures.to_svg(built[0])
    assert svg.startswith("<?xml") and "<dc:date>" not in svg


def test_dollar_signs_in_labels_are_text() -> None:
    assert figures._label("/price/$a$b") == r"/price/\$a\$b"
    b = hostile_run()
    for i in range(3):
        b.request(f"d{i}", i * 10, i * 10 + 5, "/cost/$x$ and $y$")
    with b.build() as store:
        page = correlate.report("r", store=store, format="html")
    assert "/cost/$x$ and $y$" in page


def test_notebook_views(sample: Evidence) -> None:
    a = sample.analysis
    view = a._repr_html_()
    assert view.startswith("<div class='correlate'>")
    assert "Connection-pool leak in /checkout" in view
    assert "<table>" in view
    assert "critical" in repr(a)
    finding = a.findings[0]._repr_html_()
    assert "CRITICAL" in finding and "Fix:" in finding
    with hostile_run().build() as store:
        assert "<script" not in correlate.analyze("r", store=store)._repr_html_()


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("report.html", lambda t: t.startswith("<!DOCTYPE html>")),
        ("comment.md", lambda t: t.startswith("### correlate: checkout-fixed")),
        ("report.json", lambda t: '"schema": "correlate.report/1"' in t),
    ],
)
def test_cli_writes_the_format_its_suffix_names(tmp_path: Path, name: str, check: object) -> None:
    out = tmp_path / name
    db = tmp_path / "s.duckdb"
    result = CliRunner().invoke(
        cli, ["report", "sample_traces/checkout-fixed", "-o", str(out), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} (")
    assert callable(check) and check(out.read_text())


def test_cli_prints_the_verdict_without_a_file_and_refuses_an_unknown_suffix(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "sample_traces/checkout-fixed", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("correlate analyze checkout-fixed\n")
    result = runner.invoke(cli, ["report", "checkout-fixed", "-o", "r.pdf", "--db", str(db)])
    assert result.exit_code == 2  # a usage error
    assert "r.pdf: cannot tell the report format from '.pdf'" in result.output


def test_many_routes_are_cut_with_a_count() -> None:
    from .builders import RunBuilder

    b = RunBuilder()
    for i in range(30):
        b.request(f"t{i}", i * 10, i * 10 + 5 + i, f"/r{i}")
    with b.build() as store:
        data = collect(store, correlate.analyze("r", store=store))
    page = html.render(data)
    assert page.count("<td class='route mono'>") == html.MAX_ROUTES
    assert "… and 10 more routes." in page
    md = find_renderer("report", "md")(data)
    assert "… and 22 more routes." in md


@pytest.mark.postgres
def test_a_plan_captured_from_postgresql_shows_as_a_tree(pg_dsn: str) -> None:
    from sqlalchemy import create_engine, text

    from .builders import RunBuilder

    schema = "correlate_report_test"
    engine = create_engine(pg_dsn)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(text(f"CREATE TABLE {schema}.orders (id serial PRIMARY KEY, "
                          "customer_id int, total int)"))  # fmt: skip
        conn.execute(text(f"INSERT INTO {schema}.orders (customer_id, total) "
                          "SELECT g % 2500, g FROM generate_series(1, 50000) g"))  # fmt: skip
        conn.execute(text(f"ANALYZE {schema}.orders"))
    try:
        b = RunBuilder()
        sql = f"SELECT id, total FROM {schema}.orders WHERE customer_id = %(cid)s"
        for i in range(10):
            r = b.request(f"t{i}", i * 100, i * 100 + 50, "/customers/<id>/orders")
            b.query(f"t{i}", r, i * 100 + 5, i * 100 + 45, sql)
        with b.build() as store:
            assert store.capture_plans("r", pg_dsn).captured == 1
            page = correlate.report("r", store=store, format="html")
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()
    tree = page.split("<h2>Plans of the flagged queries</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<span class='node flag'><strong>(.*?)</strong>", tree) == [
        "Seq Scan on orders"
    ]
    assert "CREATE INDEX ON orders (customer_id)" in tree
    assert f"SELECT id, total FROM {schema}.orders WHERE customer_id = $1" in tree


def test_the_load_chart_draws_the_users_a_load_generator_sampled(sample: Evidence) -> None:
    # Locust's stats history gives users per sample, not per request: the line still shows
    timeline = sample.analysis.timeline.copy()
    timeline["users"] = float("nan")
    timeline["users_sampled"] = [20.0 if i % 5 == 0 else float("nan") for i in range(len(timeline))]
    fig = figures.latency_timeline(timeline, sample.route_timeline)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert "users (load)" in labels
    timeline["users_sampled"] = float("nan")
    fig = figures.latency_timeline(timeline, sample.route_timeline)
    assert "users (load)" not in [line.get_label() for ax in fig.axes for line in ax.get_lines()]
