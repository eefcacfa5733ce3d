"""Nothing in a trace may act: hostile text in every trace-derived field, in every output.

Routes, service and run names, statements, exception types and attribute values
are written by the service under test. Rendered as Markdown (a pull-request
comment), HTML, terminal text or JSON, they must stay text: no link, image, raw
HTML, mention or table-row break (checked on markdown-it-py's token stream and
GitHub's autolink rules), no new HTML element or attribute (an HTML parser), no
control character or escape sequence for a terminal, and exactly the same string
back from JSON.

The structural checks are differential: a report rendered with hostile text must
have the same markup as the same report with a plain ``x`` in its place.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.cells import cell_len

import correlate
from correlate.analysis.evidence import Evidence, collect
from correlate.analysis.findings import Finding
from correlate.cli import cli
from correlate.diff import QueryChange, RouteChange, RunDiff
from correlate.diff.rules import parse_rules
from correlate.render import escape
from correlate.render.registry import find_renderer, renderers

from .builders import RunBuilder
from .reports import add_plan, hostile_run

#: Pieces of attacks on each output; hypothesis strings are built from these and
#: from arbitrary text.
ATTACKS = (
    '<img src="http://evil.example/r.png">',
    "<script>alert(1)</script>",
    "[click](http://evil.example)",
    "![i](http://evil.example/i.png)",
    "<http://evil.example>",
    "http://evil.example/x",
    "www.evil.example",
    "evil@example.com",
    "@team",
    "@octocat/reviewers",
    "#123",
    "GH-42",
    "| x | y |",
    "`code`",
    "**bold** _em_ ~~s~~",
    "$x^2$",
    "&lt;b&gt;&amp;",
    "<!-- c -->",
    "\\",
    "\r",
    "\n",
    "\r\n",
    "\u2028",
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "\x1b]52;c;ZXZpbA==\x07",
    "\x1b[2J\x1b[31m",
    "\x9b31m",
    "\x07\x08\x7f\x00",
    "\u202eevil",
    "[/x]",
    "[bold]",
    "[null]",
    ":smile:",
    "'\"",
    "-",
    "1.",
    "> q",
    "#",
)

hostile = (
    st.lists(st.one_of(st.sampled_from(ATTACKS), st.text(max_size=6)), min_size=1, max_size=6)
    .map("".join)
    .filter(bool)
)  # an empty field leaves a part out: a different page

TERMINAL_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: In HTML a newline or tab is white space (and a line break in <pre>); the rest must not stay.
HTML_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: What GitHub links after rendering Markdown, in text that is not a link.
GITHUB_AUTOLINKS = re.compile(
    r"(?<![\w`])@[A-Za-z0-9]|#\d|(?i:https?://|www\.|mailto:|\bgh-\d)|[\w.+-]@[\w-]+\.[A-Za-z]"
)
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# -- the checks --------------------------------------------------------------------


def _tokens(text: str) -> Iterator[Any]:
    for token in MARKDOWN.parse(text):
        yield token
        yield from token.children or []


def markdown_structure(text: str) -> list[tuple[str, str]]:
    """The markup of a Markdown document: every token but plain text."""
    return [(t.type, t.tag) for t in _tokens(text) if t.type not in ("text", "text_special")]


def markdown_text(text: str) -> str:
    return "\n".join(t.content for t in _tokens(text) if t.type == "text")


def assert_inert_markdown(hostile_out: str, benign_out: str) -> None:
    structure = markdown_structure(hostile_out)
    assert structure == markdown_structure(benign_out)
    kinds = {kind for kind, _ in structure}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "code_inline", "s_open"}
    assert not GITHUB_AUTOLINKS.search(markdown_text(hostile_out))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.other: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "code":  # a finding's `code` spans; text inside them is still escaped
            return
        self.tags.append((tag, tuple(name for name, _ in attrs)))
        self.urls += [v or "" for name, v in attrs if name in ("src", "href", "action")]

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"pi {data}")


def html_tags(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser


def assert_inert_html(hostile_out: str, benign_out: str) -> None:
    tags, benign = html_tags(hostile_out), html_tags(benign_out)
    assert tags.tags == benign.tags
    assert not HTML_CONTROL.search(hostile_out), repr(HTML_CONTROL.search(hostile_out))
    assert not tags.other
    assert all(url.startswith("data:image/svg+xml;base64,") for url in tags.urls)


def assert_inert_terminal(out: str) -> None:
    assert not TERMINAL_CONTROL.search(out), repr(TERMINAL_CONTROL.search(out))


# -- a report and a comparison with text put everywhere a trace reaches -------------


@pytest.fixture(scope="module")
def base() -> Iterator[Evidence]:
    b = hostile_run()
    with b.build() as store:
        add_plan(store)
        yield collect(store, correlate.analyze("r", store=store))


def finding(h: str) -> Finding:
    return Finding(
        kind="slow_query",
        severity="warning",
        title=f"Slow query in {h}",
        explanation=f"The query on {h} takes 86% of {h}'s time; exception {h}.",
        suggestion=f"CREATE INDEX ON {h} (customer_id). Then {h}.",
        threshold="one fingerprint ≥ 50%",
        source="correlate",
        impact_ms=12.0,
        route=h,
        fingerprint=h,
        evidence={"exception": h, "statement": h, "p95_ms": 114.2, "share": 0.5, "attr": h},
        trace_ids=(h,),
    )


def hostile_evidence(base: Evidence, h: str, *, figures: bool = False) -> Evidence:
    """``base`` with ``h`` in every trace-derived field (figures off: they are slow)."""
    a = base.analysis
    routes = a.routes.assign(route=h)
    queries = a.queries.assign(normalized=h, insights=[[h, h]] * len(a.queries))
    frame = next(iter(a.breakdowns.values()))
    analysis = dataclasses.replace(
        a,
        run=h,
        findings=[finding(h), dataclasses.replace(finding(h), severity="critical")],
        routes=routes,
        queries=queries,
        breakdowns={h: frame if figures else frame.iloc[0:0]},
        timeline=a.timeline if figures else a.timeline.iloc[0:0],
        gaps=[f"{h} is missing."],
    )
    plans = [
        dataclasses.replace(
            p,
            source=h,
            normalized=h,
            nodes=p.nodes.assign(relation=h, filter=h, index_name=h),
            insights=p.insights.assign(message=h, suggestion=h),
        )
        for p in base.plans
    ]
    examples = [
        dataclasses.replace(w, route=h, why=h, trace_id=h, spans=w.spans.assign(name=h))
        for w in (base.examples if figures else [])
    ]
    return Evidence(analysis, base.route_timeline.assign(route=h), plans, examples)


def hostile_diff(h: str) -> RunDiff:
    route = RouteChange(
        route=h,
        baseline_requests=200,
        candidate_requests=210,
        baseline_ms={"p50": 10.0, "p95": 20.0},
        candidate_ms={"p50": 11.0, "p95": 30.0},
        ratios={"p95": (1.5, 1.3, 1.7)},
        skipped={"p99": f"{h}: too few requests"},
    )
    return RunDiff(
        baseline=h,
        candidate=h,
        routes=[route, dataclasses.replace(route, note=f"{h} not compared", ratios={})],
        queries=[
            QueryChange(h, h, h, 1.0, 20.0, 5.0, 9.0, 100.0, 900.0, plan_changes=[h]),
            QueryChange(h, h, h, None, 2.0, None, 9.0, None, 300.0),
        ],
        new_findings=[finding(h)],
        resolved_findings=[finding(h)],
        rules=parse_rules(["p95:+10%", "errors:+1%", "new-finding:warning"]),
        failures=[f"p95:+10%: {h} p95 20.0 ms → 30.0 ms"],
        notes=[f"{h} had no load results"],
        load={"matched": h},
    )


def _render(subject: str, name: str, value: Any) -> str:
    return find_renderer(subject, name)(value, width=100)


# -- properties ---------------------------------------------------------------------


@SETTINGS
@given(h=hostile)
def test_report_markdown_is_inert(base: Evidence, h: str) -> None:
    out = _render("report", "markdown", hostile_evidence(base, h))
    assert_inert_markdown(out, _render("report", "markdown", hostile_evidence(base, "x")))


@SETTINGS
@given(h=hostile)
def test_report_html_is_inert(base: Evidence, h: str) -> None:
    out = _render("report", "html", hostile_evidence(base, h))
    assert_inert_html(out, _render("report", "html", hostile_evidence(base, "x")))
    fragment = hostile_evidence(base, h).analysis._repr_html_()
    assert_inert_html(fragment, hostile_evidence(base, "x").analysis._repr_html_())


@SETTINGS
@given(h=hostile)
def test_report_text_has_no_control_sequence(base: Evidence, h: str) -> None:
    out = _render("report", "text", hostile_evidence(base, h))
    assert_inert_terminal(out)
    assert escape.terminal(f"Fix: CREATE INDEX ON {h}")[:40] in out.replace("\n", "")


@SETTINGS
@given(h=hostile)
def test_report_json_keeps_the_strings_exactly(base: Evidence, h: str) -> None:
    doc = json.loads(_render("report", "json", hostile_evidence(base, h)))
    assert doc["run"] == h
    assert {r["route"] for r in doc["routes"]} == {h}
    assert doc["queries"][0]["normalized"] == h
    assert doc["findings"][0]["title"] == f"Slow query in {h}"
    assert doc["findings"][0]["evidence"]["exception"] == h
    assert doc["findings"][0]["trace_ids"] == [h]
    assert doc["plans"][0]["nodes"][0]["relation"] == h
    assert doc["gaps"] == [f"{h} is missing."]


@SETTINGS
@given(h=hostile)
def test_diff_markdown_is_inert(h: str) -> None:
    out = _render("diff", "markdown", hostile_diff(h))
    assert_inert_markdown(out, _render("diff", "markdown", hostile_diff("x")))


@SETTINGS
@given(h=hostile)
def test_diff_text_has_no_control_sequence(h: str) -> None:
    assert_inert_terminal(_render("diff", "text", hostile_diff(h)))


#: The escape sequences rich writes for colour (SGR), and nothing else.
SGR = re.compile("\x1b\\[[0-9;]*m")


@SETTINGS
@given(h=hostile, width=st.integers(50, 160), color=st.booleans())
def test_diff_text_fitted_to_any_width_has_no_control_sequence_but_colour(
    h: str, width: int, color: bool
) -> None:
    """Folding long routes into a narrow column, and colour, add nothing a trace wrote."""
    d = hostile_diff(h)
    d.routes = [dataclasses.replace(r, route=h * 12) for r in d.routes]
    out = find_renderer("diff", "text")(d, color=color, width=width)
    assert_inert_terminal(SGR.sub("", out))
    assert "+50% [+30%, +70%]" in SGR.sub("", out)  # a figure beside it whole, never cut
    assert max(cell_len(line) for line in SGR.sub("", out).splitlines()) <= width


@SETTINGS
@given(h=hostile)
def test_diff_json_keeps_the_strings_exactly(h: str) -> None:
    doc = json.loads(_render("diff", "json", hostile_diff(h)))
    assert (doc["baseline"], doc["candidate"]) == (h, h)
    assert doc["routes"][0]["route"] == h
    assert doc["queries"][0]["statement"] == h
    assert doc["new_findings"][0]["evidence"]["attr"] == h


@SETTINGS
@given(h=hostile)
def test_tables_are_inert(h: str) -> None:
    frame = pd.DataFrame({h: [h, None], "n": [1, 2]})
    benign = pd.DataFrame({"x": ["x", None], "n": [1, 2]})
    assert_inert_terminal(_render("table", "text", frame))
    assert_inert_markdown(_render("table", "markdown", frame), _render("table", "markdown", benign))
    rows = [json.loads(line) for line in _render("table", "json", frame).splitlines()]
    assert rows[0] == {h: h, "n": 1}


@SETTINGS
@given(h=hostile)
def test_the_escapers(h: str) -> None:
    assert not TERMINAL_CONTROL.search(escape.terminal(h))
    assert "\n" not in escape.markdown(h) and "\r" not in escape.markdown(h)
    paragraph = [("paragraph_open", "p"), ("inline", ""), ("paragraph_close", "p")]
    assert markdown_structure(f"x {escape.markdown(h)} x") == paragraph
    # what a reader sees is the text itself, line breaks as spaces, controls made visible
    shown = escape.terminal(re.sub("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]", " ", h))
    assert markdown_text(f"x {escape.markdown(h)} x").replace("\u2060", "") == f"x {shown} x"
    assert html_tags(f"<p>{escape.html(h)}</p>").tags == [("p", ())]
    assert not HTML_CONTROL.search(escape.html(h))


def test_every_renderer_is_covered() -> None:
    covered = {("report", n) for n in ("text", "markdown", "html", "json")}
    covered |= {("diff", n) for n in ("text", "markdown", "json")}
    covered |= {("table", n) for n in ("text", "markdown", "json", "csv")}
    covered |= {("coverage", n) for n in ("text", "json")}
    assert {(r.subject, r.name) for r in renderers("report")} | {
        (r.subject, r.name) for s in ("diff", "table", "coverage") for r in renderers(s)
    } == covered


# -- with figures: the slow parts, once ------------------------------------------------

ONE = (
    '<img src="http://evil.example/r.png">'
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\"
    "@team\r| x | y |"
)


def test_the_full_html_page_with_figures_is_inert(base: Evidence) -> None:
    assert base.plans and base.examples
    out = _render("report", "html", hostile_evidence(base, ONE, figures=True))
    assert_inert_html(out, _render("report", "html", hostile_evidence(base, "x", figures=True)))
    assert "&lt;img src=&quot;http://evil.example/r.png&quot;&gt;" in out


def test_the_full_text_with_tails_is_inert(base: Evidence) -> None:
    data = hostile_evidence(base, ONE, figures=True)
    frame = next(iter(data.analysis.breakdowns.values())).assign(
        tail_requests=5, typical_requests=5
    )
    data.analysis.breakdowns = {ONE: frame}
    out = _render("report", "text", data)
    assert_inert_terminal(out)
    assert "What the slow requests are made of" in out


# -- the reproductions, end to end through the CLI --------------------------------------


def _store(tmp_path: Path, builders: list[RunBuilder]) -> Path:
    path = tmp_path / "store.duckdb"
    with correlate.open_store(path) as store:
        for b in builders:
            b.build(store)
    return path


def _run(
    name: str,
    routes: list[str],
    *,
    slow: float = 1.0,
    service: str = "svc",
    sql: str | None = None,
) -> RunBuilder:
    b = RunBuilder(name=name)
    for i in range(120):
        for j, route in enumerate(routes):
            start = i * 50 + j
            request = b.span(
                f"t{i}-{j}",
                start,
                start + (10 + i % 7) * slow,
                kind="SERVER",
                route=route,
                http_status=200,
                service=service,
            )
            if sql is not None:
                b.query(f"t{i}-{j}", request, start + 1, start + 5, sql)
    return b


IMG_ROUTE = '/x/<img src="http://evil.example/r.png">'
MENTION_ROUTE = "/ping @octocat @org/team"
CR_ROUTE = "/a\r| injected | row |\r/b"


def test_diff_markdown_carries_no_image_mention_or_row_break(tmp_path: Path) -> None:
    routes = [IMG_ROUTE, MENTION_ROUTE, CR_ROUTE]
    db = _store(tmp_path, [_run("base", routes), _run("cand", routes, slow=3.0)])
    result = CliRunner().invoke(cli, ["diff", "base", "cand", "--db", str(db), "--format", "md"])
    assert result.exit_code == 1, result.output
    tokens = list(_tokens(result.output))
    types = {t.type for t in tokens}
    assert not types & {"image", "link_open", "html_inline", "html_block"}
    assert not GITHUB_AUTOLINKS.search(markdown_text(result.output))
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 1 + len(routes)  # the header and one row per route
    assert IMG_ROUTE in markdown_text(result.output).replace("\u2060", "")


def test_report_markdown_mentions_nobody(tmp_path: Path) -> None:
    db = _store(tmp_path, [_run("r", [MENTION_ROUTE, CR_ROUTE])])
    out = tmp_path / "comment.md"
    result = CliRunner().invoke(cli, ["report", "r", "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert not GITHUB_AUTOLINKS.search(markdown_text(text))
    assert len([t for t in _tokens(text) if t.type == "tr_open"]) == 3
    assert "@\u2060octocat" in markdown_text(text)


def test_runs_survives_markup_in_names(tmp_path: Path) -> None:
    db = _store(tmp_path, [_run("[/x] run", ["/a"], service="[/x][bold]svc")])
    result = CliRunner().invoke(cli, ["runs", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "[/x] run" in result.output
    assert "[/x][bold]svc" in result.output


def test_sql_shows_bracketed_values_as_written(tmp_path: Path) -> None:
    db = _store(tmp_path, [_run("r", ["/a"])])
    query = """SELECT '[null]' AS a, '[ab]' AS b, '[id]' AS "[id]", '\x1b[2J' AS c"""
    result = CliRunner().invoke(cli, ["sql", query, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.split("\n")[0].split() == ["a", "b", "[id]", "c"]
    assert result.output.split("\n")[2].split() == ["[null]", "[ab]", "[id]", "\\x1b[2J"]
    assert_inert_terminal(result.output)


OSC = "/x\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b]52;c;ZXZpbA==\x07"


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "r", "--no-color"],
        ["runs"],
        ["sql", "SELECT DISTINCT http_route FROM spans"],
        ["report", "r"],
        ["diff", "r", "r", "--no-color"],
        ["plans", "coverage", "--run", "r"],
    ],
)
def test_escape_sequences_never_reach_the_terminal(tmp_path: Path, command: list[str]) -> None:
    run = _run("r", [OSC, "/b"], service="svc\x1b[2J", sql=f'SELECT 1 FROM "{OSC}"')
    db = _store(tmp_path, [run])
    result = CliRunner().invoke(cli, [*command, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert_inert_terminal(result.output)
    shown = {"runs": "svc\\x1b[2J", "plans": "\\x1b]52;c"}.get(
        command[0], "\\x1b]52;c;ZXZpbA==\\x07"
    )
    assert shown in result.output.replace("\n", "")


def test_ingest_summaries_and_errors_are_escaped(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    spans = Path(__file__).parent / "data" / "otlp" / "checkout.jsonl"
    name = "run\x1b]52;c;ZXZpbA==\x07"
    result = CliRunner().invoke(cli, ["ingest", str(spans), "--run", name, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert_inert_terminal(result.output)
    result = CliRunner().invoke(cli, ["analyze", "nope\x1b[2J", "--db", str(db)])
    assert result.exit_code == 1
    assert_inert_terminal(result.output)
    assert "nope\\x1b[2J" in result.output


def test_html_shows_control_characters_as_escapes_even_in_the_title(base: Evidence) -> None:
    name = "run\x1b[2J\x07\x9b\u202eevil"
    out = _render("report", "html", hostile_evidence(base, name))
    title = re.search("<title>(.*)</title>", out)
    assert title and title[1] == "correlate report: run\\x1b[2J\\x07\\x9b\\u202eevil"
    assert not HTML_CONTROL.search(out)
    assert escape.html("SELECT 1\n\tFROM t\r") == "SELECT 1\n\tFROM t\\r"
