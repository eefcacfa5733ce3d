"""Plan coverage of a run's DB span time: exact (traceparent), by fingerprint, none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.errors import RunNotFoundError
from correlate.plans.coverage import plans_coverage
from correlate.store import Store

TRACE = "ab" * 16
S1 = "SELECT id FROM orders WHERE customer_id = {}"
S2 = "SELECT * FROM order_lines WHERE order_id = {}"
S3 = "UPDATE carts SET total = {} WHERE id = {}"
S4 = "SELECT id, total FROM cx_orders WHERE customer_id = {}"


def _span(span_id: str, ms: int, *, parent: str | None = None, system: str | None = None,
          statement: str | None = None, kind: int = 3) -> dict:  # fmt: skip
    attributes = []
    if system:
        attributes.append({"key": "db.system", "value": {"stringValue": system}})
    if statement:
        attributes.append({"key": "db.statement", "value": {"stringValue": statement}})
    span = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "x",
        "kind": kind,
        "startTimeUnixNano": "1000000000",
        "endTimeUnixNano": str(1_000_000_000 + ms * 1_000_000),
        "attributes": attributes,
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def _logged(line_ts: str, span_id: str, statement: str) -> str:
    """One auto_explain stderr message whose statement names ``span_id``."""
    text = f"{statement} /*db_driver='psycopg',traceparent='00-{TRACE}-{span_id}-03'*/"
    plan = json.dumps({"Query Text": text, "Plan": {"Node Type": "Seq Scan"}}, indent=2)
    body = "".join(f"\t{line}\n" for line in plan.splitlines())
    return f"2026-11-25 12:29:{line_ts} UTC [1] postgres@shop LOG:  duration: 0.5 ms  plan:\n{body}"


@pytest.fixture
def run(tmp_path: Path, store: Store) -> Store:
    """A run with every kind of coverage (module docstring of correlate.plans.coverage)."""
    spans = [
        _span("9" * 16, 200, kind=2),  # the request
        _span("a" * 16, 10, parent="9" * 16, system="postgresql", statement=S1.format("%(c)s")),
        _span("b" * 16, 20, parent="9" * 16, system="postgresql", statement=S1.format("%(c)s")),
        _span("c" * 16, 30, parent="9" * 16, system="postgresql", statement=S2.format("%(o)s")),
        # a DB span whose statement was commented with the request's span id
        _span("d" * 16, 5, parent="9" * 16, system="postgresql", statement=S3.format("%(t)s", "%(i)s")),
        _span("e" * 16, 40, parent="9" * 16, system="mysql", statement=S4.format("%s")),
        _span("f" * 16, 100, parent="9" * 16, system="postgresql"),  # connect: no statement
    ]  # fmt: skip
    (tmp_path / "spans.jsonl").write_text(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n"
    )
    (tmp_path / "postgresql.log").write_text(
        _logged("09.001", "a" * 16, S1.format("$1"))
        + _logged("09.002", "9" * 16, S3.format("$1", "$2"))
        + "2026-11-25 12:29:09.003 UTC [1] postgres@shop LOG:  disconnection\n"
    )
    (tmp_path / "q4.json").write_text(
        '{"query_block": {"select_id": 1, "table": {"table_name": "cx_orders", '
        '"access_type": "ref", "rows": 1, "filtered": 100}}}'
    )
    (tmp_path / "q4.sql").write_text(S4.format("7") + ";\n")
    report = store.ingest([tmp_path], run="r")
    assert report.plans_added == 3
    # a statement that could not be explained is no plan: S2 stays uncovered
    s2 = store.sql("SELECT fingerprint FROM db_spans WHERE span_id = 'cccccccccccccccc'")
    store.con.execute(
        "INSERT INTO plans (run_id, fingerprint, link, source, reason) "
        "VALUES (1, ?, 'fingerprint', 'postgresql', 'permission denied')",
        [s2["fingerprint"][0]],
    )
    return store


def test_time_is_split_by_how_each_span_is_covered(run: Store) -> None:
    coverage = plans_coverage(run, "r")
    by_system = {r.db_system: r for r in coverage.rows}
    assert list(by_system) == ["mysql", "postgresql", "all"]
    pg = by_system["postgresql"]
    assert (pg.spans, pg.total_ms) == (4, 65.0)
    assert (pg.traceparent_ms, pg.fingerprint_ms, pg.none_ms) == (15.0, 20.0, 30.0)
    my = by_system["mysql"]
    assert (my.spans, my.traceparent_ms, my.fingerprint_ms, my.none_ms) == (1, 0.0, 40.0, 0.0)
    overall = coverage.overall
    assert overall is not None and overall.db_system == "all"
    assert (overall.spans, overall.total_ms) == (5, 105.0)
    assert overall.share("traceparent") == pytest.approx(15 / 105)
    assert sum(overall.share(c) for c in ("traceparent", "fingerprint", "none")) == pytest.approx(1)
    assert [(u.normalized, u.spans, u.total_ms) for u in coverage.uncovered] == [
        ("SELECT * FROM order_lines WHERE order_id = $1", 1, 30.0)
    ]


def test_the_report_text(run: Store) -> None:
    fp = run.sql("SELECT fingerprint FROM db_spans WHERE span_id = 'cccccccccccccccc'")
    assert str(run.plans_coverage("r")).splitlines() == [
        "run 'r': share of DB span time with a plan",
        "db_system      spans     time_ms  traceparent  fingerprint    none",
        "mysql              1        40.0         0.0%       100.0%    0.0%",
        "postgresql         4        65.0        23.1%        30.8%   46.2%",
        "all                5       105.0        14.3%        57.1%   28.6%",
        "statements without a plan, most time first:",
        f"        30.0 ms       1 span(s)  postgresql  {fp['fingerprint'][0]}  "
        "SELECT * FROM order_lines WHERE order_id = $1",
    ]


def test_top_limits_the_list(run: Store) -> None:
    assert run.plans_coverage("r", top=0).uncovered == []


def test_empty_run_says_so(store: Store) -> None:
    store.ensure_run("empty", source=None, labels=None)
    coverage = store.plans_coverage("empty")
    assert coverage.rows == [] and coverage.overall is None
    assert str(coverage) == (
        "run 'empty' has no database spans (spans with a statement): nothing for plans to cover"
    )
    assert "nothing for plans to cover" in coverage._repr_html_()


def test_unknown_run(store: Store) -> None:
    with pytest.raises(RunNotFoundError):
        store.plans_coverage("nope")


def test_cli(run: Store, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with correlate.open_store(db) as disk:
        disk.ingest([tmp_path / "spans.jsonl", tmp_path / "postgresql.log"], run="r")
    runner = CliRunner()
    result = runner.invoke(cli, ["plans", "coverage", "--run", "r", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[4] == (
        "all                5       105.0        14.3%        19.0%   66.7%"
    )
    result = runner.invoke(
        cli, ["plans", "coverage", "--run", "r", "--format", "json", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"][-1]["traceparent_ms"] == 15.0
    assert [u["total_ms"] for u in data["uncovered"]] == [40.0, 30.0]
    result = runner.invoke(cli, ["plans", "coverage", "--run", "nope", "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no run named 'nope'")
