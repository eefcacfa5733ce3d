"""Reports: the JSON schema, the Markdown comment, and the empty cases in every format."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import correlate
from correlate.analysis.evidence import Evidence, collect
from correlate.errors import CorrelateError
from correlate.render import json as json_report
from correlate.render import markdown
from correlate.render.registry import find_renderer, renderers

from .builders import RunBuilder

SAMPLE = "sample_traces/checkout-blackfriday"
HOSTILE_ROUTE = "/x/<script>alert(1)</script>|*"
HOSTILE_SQL = "SELECT '<script>alert(2)</script>' FROM t"


@pytest.fixture(scope="module")
def sample() -> Iterator[Evidence]:
    with correlate.open_store(":memory:") as store:
        yield collect(store, correlate.analyze(SAMPLE, store=store))


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_versioned_and_complete(sample: Evidence) -> None:
    doc = _strict(json_report.render(sample))
    assert doc["schema"] == "correlate.report/1"
    assert doc["run"] == "checkout-blackfriday"
    for key in ("summary", "findings", "routes", "queries", "timeline", "breakdowns"):
        assert doc[key], key
    assert doc["gaps"] == []  # the sample has plans, pool telemetry and the client's view
    # every request is on one route, and every finding is in the document
    assert doc["summary"]["requests"] == sum(r["requests"] for r in doc["routes"])
    assert len(doc["findings"]) == len(sample.analysis.findings)
    assert doc["findings"][0]["kind"] == "pool_leak"
    assert doc["findings"][0]["trace_ids"]
    assert {r["route"] for r in doc["routes"]} >= {"/checkout", "/orders/recent"}
    # windows without requests have no percentile: null, never NaN
    assert any(row["p95_ms"] is None for row in doc["timeline"]) or all(
        isinstance(row["p95_ms"], float) for row in doc["timeline"]
    )
    assert any(row["checked_out_max"] is not None for row in doc["timeline"])
    assert isinstance(doc["queries"][0]["tables"], list)
    n_plus_one = next(e for e in doc["examples"] if "N+1" in e["why"])
    assert sum(s["category"] == "db" for s in n_plus_one["spans"]) >= 20
    assert doc["truncated"] == {}


def test_json_turns_missing_numbers_into_null() -> None:
    b = RunBuilder()
    b.request("t1", 0, 10)  # one request: no pool, no load generator, one window with data
    with b.build() as store:
        text = correlate.report("r", store=store, format="json")
    doc = _strict(text)
    assert doc["timeline"][0]["checked_out_max"] is None
    assert doc["timeline"][0]["offered_rps"] is None
    assert "NaN" not in text


def test_json_schema_is_documented(sample: Evidence) -> None:
    from pathlib import Path

    doc = _strict(json_report.render(sample))
    text = (Path(__file__).resolve().parents[1] / "docs" / "report-json.md").read_text()
    assert "correlate.report/1" in text
    for key in doc:
        assert f"`{key}`" in text, f"docs/report-json.md does not describe {key!r}"
    for section in ("summary", "routes", "queries", "timeline"):
        rows = doc[section] if isinstance(doc[section], list) else [doc[section]]
        for column in rows[0]:
            assert f"`{column}`" in text, f"docs/report-json.md: {section}.{column} undocumented"


def test_markdown_fits_a_pr_comment(sample: Evidence) -> None:
    text = markdown.render(sample)
    assert len(text.encode()) < 4096
    assert text.startswith("### correlate: checkout-blackfriday\n")
    assert "Connection-pool leak in /checkout" in text
    routes = sample.analysis.routes.set_index("route")
    assert f"| /checkout | {routes.loc['/checkout', 'requests']} |" in text
    rest = len(sample.analysis.findings) - markdown.MAX_FINDINGS
    assert rest > 0 and f"and {rest} more findings" in text  # the fan-out and lock among them


def test_markdown_escapes_trace_text() -> None:
    b = RunBuilder()
    for i in range(3):
        r = b.request(f"t{i}", i * 100, i * 100 + 50, HOSTILE_ROUTE)
        b.query(f"t{i}", r, i * 100, i * 100 + 10, HOSTILE_SQL)
    with b.build() as store:
        text = correlate.report("r", store=store, format="md")
    assert "<script>" not in text
    assert "| /x/\\<script\\>alert\\(1\\)\\</script\\>\\|\\* |" in text


def _empty() -> RunBuilder:
    b = RunBuilder()
    b.span("t1", 0, 10, name="batch job")
    return b


def _no_db() -> RunBuilder:
    b = RunBuilder()
    b.request("t1", 0, 10)
    b.request("t2", 5, 30, "/b")
    return b


RENDERERS: dict[str, Callable[[Evidence], str]] = {r.name: r for r in renderers("report")}


@pytest.mark.parametrize("fmt", RENDERERS)
@pytest.mark.parametrize(
    ("build", "sentence"),
    [
        (_empty, "No requests in this run: no SERVER or CONSUMER spans to attribute."),
        (_no_db, "No database spans in this run."),
    ],
    ids=["empty", "no-db-spans"],
)
def test_every_renderer_says_what_a_run_lacks(
    fmt: str, build: Callable[[], RunBuilder], sentence: str
) -> None:
    with build().build() as store:
        data = collect(store, correlate.analyze("r", store=store))
    out = RENDERERS[fmt](data)
    assert sentence in out
    if fmt == "json":
        assert sentence in _strict(out)["notes"]


def test_format_follows_the_suffix() -> None:
    paths = ("a.html", "b.HTM", "c.md", "c.markdown", "d.json", "e.txt", None)
    assert [find_renderer("report", path=p).name for p in paths] == [
        "html", "html", "markdown", "markdown", "json", "text", "text"
    ]  # fmt: skip
    with pytest.raises(CorrelateError, match=r"name the file with one of"):
        find_renderer("report", path="report.pdf")
    with correlate.open_store(":memory:") as store, pytest.raises(CorrelateError):
        correlate.report(SAMPLE, store=store, format="pdf")
