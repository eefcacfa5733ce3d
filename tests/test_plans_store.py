"""Plans in the store: statements fingerprinted at ingest, plans captured for a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.errors import CorrelateError, RunNotFoundError

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
QUERY = "SELECT id, total FROM {table} WHERE customer_id = {placeholder}"


def _comment(span_id: str) -> str:
    return f" /*db_driver='psycopg',traceparent='00-{TRACE}-{span_id}-01'*/"


def _run_file(tmp_path: Path, statement: str, system: str) -> Path:
    """One request with two DB spans of the same shape, sqlcommenter on one of them."""

    def db_span(span_id: str, text: str, start: int) -> dict:
        return {
            "traceId": TRACE,
            "spanId": span_id,
            "parentSpanId": "a" * 16,
            "name": "SELECT shop",
            "kind": 3,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 5_000_000),
            "attributes": [
                {"key": "db.system", "value": {"stringValue": system}},
                {"key": "db.statement", "value": {"stringValue": text}},
            ],
        }

    spans = [
        {"traceId": TRACE, "spanId": "a" * 16, "name": "GET /orders", "kind": 2,
         "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1100000000",
         "attributes": [{"key": "http.route", "value": {"stringValue": "/orders"}}]},
        db_span("b" * 16, statement, 1_010_000_000),
        db_span("c" * 16, statement + _comment("c" * 16), 1_020_000_000),
    ]  # fmt: skip
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    return path


def test_every_db_span_gets_its_fingerprint_and_comment_ids(tmp_path: Path) -> None:
    statement = QUERY.format(table="orders", placeholder="%(cid)s")
    with correlate.open_store(":memory:") as store:
        report = store.ingest([_run_file(tmp_path, statement, "postgresql")], run="r")
        assert report.statements_fingerprinted == 1  # the comment does not make a new text
        rows = store.sql(
            "SELECT span_id, fingerprint, normalized, comment_span_id FROM db_spans ORDER BY span_id"
        )
        assert list(rows["span_id"]) == ["b" * 16, "c" * 16]
        assert rows["fingerprint"].nunique() == 1
        assert rows["normalized"][0] == "SELECT id, total FROM orders WHERE customer_id = $1"
        assert list(rows["comment_span_id"].fillna("")) == ["", "c" * 16]
        assert (
            store.ingest(
                [_run_file(tmp_path, statement, "postgresql")], run="r"
            ).statements_fingerprinted
            == 0
        )


def _seed_pg(dsn: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(dsn)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(
            text(
                f"CREATE TABLE {schema}.orders (id serial PRIMARY KEY, customer_id int, total int)"
            )
        )
        conn.execute(text(
            f"INSERT INTO {schema}.orders (customer_id, total) "
            "SELECT g % 2500, g FROM generate_series(1, 50000) g"
        ))  # fmt: skip
        conn.execute(text(f"ANALYZE {schema}.orders"))
    engine.dispose()


def _pg_sql(dsn: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(dsn)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.mark.postgres
def test_capture_finds_the_missing_index_and_not_once_it_exists(
    tmp_path: Path, pg_dsn: str
) -> None:
    schema = "correlate_plans_store_test"
    _seed_pg(pg_dsn, schema)
    try:
        statement = QUERY.format(table=f"{schema}.orders", placeholder="%(cid)s")
        with correlate.open_store(tmp_path / "s.duckdb") as store:
            store.ingest([_run_file(tmp_path, statement, "postgresql")], run="r")
            report = store.capture_plans("r", pg_dsn)
            assert report.captured == 1 and not report.failed
            [scan] = [i for i in report.insights if i.rule == "seq_scan_selective_filter"]
            assert scan.suggestion == "CREATE INDEX ON orders (customer_id)"
            assert not scan.measured and scan.message.startswith("estimated:")
            stored = store.sql(
                "SELECT p.method, n.node_type, n.relation, i.rule FROM plans p "
                "JOIN plan_nodes n USING (plan_id) JOIN plan_insights i USING (plan_id) "
                "WHERE i.rule = 'seq_scan_selective_filter' AND n.node_id = i.node_id"
            )
            assert stored.to_dict("records") == [
                {"method": "prepare_force_generic", "node_type": "Seq Scan",
                 "relation": "orders", "rule": "seq_scan_selective_filter"}
            ]  # fmt: skip
            assert "password" not in json.dumps(
                store.sql("SELECT * FROM plans").astype(str).to_dict()
            )

            # asked to analyze, a statement whose span holds no values is only estimated,
            # and the report says so rather than counting it as analyzed
            analyzed = store.capture_plans("r", pg_dsn, analyze=True)
            assert analyzed.captured == 1
            assert [why.split(":")[0] for _, why in analyzed.noted] == ["not analyzed"]
            assert "1 of them not analyzed: the statement has placeholders" in str(analyzed)

            _pg_sql(pg_dsn, f"CREATE INDEX ON {schema}.orders (customer_id)")
            again = store.capture_plans("r", pg_dsn)
            assert again.captured == 1
            assert [i.rule for i in again.insights if i.rule == "seq_scan_selective_filter"] == []
    finally:
        _pg_sql(pg_dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_capture_on_sqlite_through_the_cli(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, total INT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", ((i, i % 100, i) for i in range(5000))
        )
    statement = QUERY.format(table="orders", placeholder="?")
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    ingest = runner.invoke(
        cli,
        ["ingest", str(_run_file(tmp_path, statement, "sqlite")), "--run", "r", "--db", str(db)],
    )
    assert ingest.exit_code == 0, ingest.output
    result = runner.invoke(
        cli, ["plans", "capture", "--run", "r", "--dsn", f"sqlite:///{database}", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run 'r': 1 plan(s) captured from sqlite ")
    assert "full_table_scan" in result.output or "seq_scan" in result.output
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE INDEX orders_customer ON orders (customer_id)")
    result = runner.invoke(
        cli, ["plans", "capture", "--run", "r", "--dsn", f"sqlite:///{database}", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "scan" not in result.output.lower().split("insights:")[-1]
        or "insights:" not in result.output
    )


def test_capture_refuses_unknown_runs_and_urls(tmp_path: Path) -> None:
    with correlate.open_store(":memory:") as store:
        with pytest.raises(RunNotFoundError):
            store.capture_plans("nope", "sqlite:///x.db")
        store.ingest([_run_file(tmp_path, "SELECT 1", "postgresql")], run="r")
        with pytest.raises(CorrelateError, match="cannot tell which database"):
            store.capture_plans("r", "db2://scott:tiger@db/x")
        with pytest.raises(CorrelateError, match="live capture supports .* not Oracle"):
            store.capture_plans("r", "oracle://scott:tiger@db/x")
        with pytest.raises(CorrelateError, match="has no sqlite statements to explain"):
            store.capture_plans("r", "sqlite:///x.db")


def test_literal_variants_share_one_key_and_fingerprint(tmp_path: Path) -> None:
    a = "select id from orders where customer_id = 7 and note = 'it''s' and id in (1, 2, 3)"
    b = "select id from orders where customer_id = 12 and note = 'x' and id in (4)"
    with correlate.open_store(":memory:") as store:
        store.ingest([_run_file(tmp_path, a, "postgresql")], run="a")
        store.ingest([_run_file(tmp_path, b, "postgresql")], run="b")
        keys = store.sql("SELECT DISTINCT key FROM statements")
        assert list(keys["key"]) == [
            "select id from orders where customer_id = ? and note = ? and id in (?)"
        ]
        assert store.sql("SELECT count(DISTINCT fingerprint) AS n FROM db_spans")["n"][0] == 1
        assert store.sql("SELECT count(*) AS n FROM db_spans")["n"][0] == 4


@pytest.mark.parametrize("system", ["SQLite", " sqlite "])
def test_capture_reads_the_database_system_as_fingerprinting_does(
    tmp_path: Path, system: str
) -> None:
    # fingerprinting reads db.system trimmed and in any case; so must the choice of
    # statements to explain (and a Redis command is never one of them: test_not_sql)
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, total INT)")
    statement = QUERY.format(table="orders", placeholder="?")
    with correlate.open_store(":memory:") as store:
        store.ingest([_run_file(tmp_path, statement, system)], run="r")
        report = store.capture_plans("r", f"sqlite:///{database}")
    assert (report.captured, report.failed) == (1, [])
