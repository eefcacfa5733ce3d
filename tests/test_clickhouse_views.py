"""A run exported into the exporter's tables and read back through the canonical views.

Everything runs on the real ClickHouse engine, in-process (chDB). Each sample is
ingested locally, exported with ``correlate.export``, and every canonical column of
every span read from the ``spans`` view is compared with the store's row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from correlate.clickhouse.connection import Connection, SchemaMismatchError, connect
from correlate.clickhouse.otel_schema import OtelTables
from correlate.clickhouse.views import (
    create_canonical_views,
    fingerprint_statements,
    statement_key_sql,
)
from correlate.schema import SPAN_COLUMN_NAMES
from correlate.store import Store
from tests.clickhouse_helpers import (
    ROOT,
    export_to,
    ingested,
    key,
    local_spans,
    view_spans,
)
from tests.conftest import require_chdb

pytestmark = pytest.mark.clickhouse

SAMPLES = {
    "blackfriday": ROOT / "sample_traces" / "checkout-blackfriday",
    "blackfriday_otel": ROOT / "sample_traces" / "checkout-blackfriday-otel",
    "jaeger": ROOT / "tests" / "data" / "jaeger" / "checkout.json",
    "zipkin": ROOT / "tests" / "data" / "zipkin" / "checkout.json",
    # peer.service naming a database, old semantic-convention names
    "hotrod": ROOT / "tests" / "data" / "peers" / "hotrod",
    # HTTP client spans that take their callee's route (a join across spans)
    "zipkin_peers": ROOT / "tests" / "data" / "peers" / "zipkin",
    # ids that are not hex: stable ids, the originals kept in attributes
    "string_ids": ROOT / "tests" / "data" / "faithful" / "string_ids.jsonl",
    # an attribute key twice in a span, a resource and an event: both kept
    "duplicate_keys": ROOT / "tests" / "data" / "clickhouse" / "duplicate_keys.jsonl",
    # a client span calling Django's one-word route "health", which is "/health"
    "django_callee": ROOT / "tests" / "data" / "clickhouse" / "django_callee.jsonl",
}


@pytest.fixture(scope="module")
def chdb_conn() -> Iterator[Connection]:
    require_chdb()
    conn = connect("chdb://:memory:")
    yield conn
    conn.close()


_EXPORTED: dict[str, tuple[Store, Connection]] = {}


def exported(conn: Connection, name: str) -> tuple[Store, Connection]:
    """The sample ingested and exported into database ``name`` (once per module)."""
    if name not in _EXPORTED:
        store = ingested(SAMPLES[name])
        _EXPORTED[name] = (store, export_to(store, conn, name))
    return _EXPORTED[name]


@pytest.fixture(scope="module", autouse=True)
def _forget_exports() -> Iterator[None]:
    yield
    for store, _ in _EXPORTED.values():
        store.close()
    _EXPORTED.clear()


def _first_difference(local: list[dict[str, Any]], view: list[dict[str, Any]]) -> str:
    for a, b in zip(local, view, strict=True):
        for column in SPAN_COLUMN_NAMES:
            if a[column] != b[column]:
                return f"span {key(a)} column {column}: store {a[column]!r} view {b[column]!r}"
    return ""


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_canonical_column_of_every_span_round_trips(chdb_conn: Connection, name: str) -> None:
    store, _ = exported(chdb_conn, name)
    local = local_spans(store)
    view = view_spans(chdb_conn, f"{name}_work")
    assert local, "the sample has spans"
    assert [key(r) for r in view] == [key(r) for r in local]
    assert list(view[0]) == list(SPAN_COLUMN_NAMES)
    assert not _first_difference(local, view), _first_difference(local, view)


@pytest.mark.parametrize(
    ("name", "mapping"),
    [("hotrod", "db_system<-peer.service"), ("zipkin_peers", "http_target_template<-callee")],
)
def test_mapped_from_is_exercised_by_the_samples(
    chdb_conn: Connection, name: str, mapping: str
) -> None:
    # The comparison above means something for derived columns only if some span derives.
    store, _ = exported(chdb_conn, name)
    mapped = {m for r in local_spans(store) for m in r["mapped_from"]}
    assert mapping in mapped
    view = {m for r in view_spans(chdb_conn, f"{name}_work") for m in r["mapped_from"]}
    assert view == mapped


def test_a_django_callees_route_is_the_callers_path(chdb_conn: Connection) -> None:
    # the callee's scope gives "health" its slash, so the caller's own path stands
    store, _ = exported(chdb_conn, "django_callee")
    for spans in (local_spans(store), view_spans(chdb_conn, "django_callee_work")):
        (client,) = [r for r in spans if r["kind"] == "CLIENT"]
        assert client["http_target_template"] == "/health"


def test_a_key_twice_is_kept_twice(chdb_conn: Connection) -> None:
    exported(chdb_conn, "duplicate_keys")
    (row,) = chdb_conn.query_arrow(
        "SELECT attributes, resource, events FROM duplicate_keys_work.spans"
    ).to_pylist()
    assert row["attributes"] == '{"k":"1","k":"two"}'
    assert row["resource"] == '{"service.name":"a","service.name":"b"}'
    assert row["events"][0]["attributes"] == '{"q":"1","q":"2"}'


@pytest.mark.parametrize("name", ["blackfriday", "blackfriday_otel"])
def test_pool_samples_round_trip(chdb_conn: Connection, name: str) -> None:
    store, _ = exported(chdb_conn, name)
    local = (
        store.con.sql("SELECT * EXCLUDE (run_id, file_id) FROM pool_samples ORDER BY pid, pool, 1")
        .to_arrow_table()
        .to_pylist()
    )
    view = chdb_conn.query_arrow(
        f"SELECT * EXCEPT (run_id, file_id) FROM {name}_work.pool_samples "
        "ORDER BY pid, pool, time_unix_nano"
    ).to_pylist()
    assert local and view == local


def test_a_window_and_services_filter_the_spans(chdb_conn: Connection) -> None:
    store, target = exported(chdb_conn, "hotrod")
    starts = sorted(r["start_ns"] for r in local_spans(store))
    window = (starts[len(starts) // 4], starts[len(starts) // 2])
    services = ("customer", "mysql")
    create_canonical_views(target, None, "hotrod_window", window=window, services=services)
    kept = [r for r in local_spans(store) if r["service"] in services]
    # whole traces: those whose first span of the services started in the window
    first: dict[str, int] = {}
    for r in kept:
        first[r["trace_id"]] = min(first.get(r["trace_id"], r["start_ns"]), r["start_ns"])
    expected = [r for r in kept if window[0] <= first[r["trace_id"]] <= window[1]]
    got = view_spans(chdb_conn, "hotrod_window")
    assert expected and len(expected) < len(starts)
    assert [key(r) for r in got] == [key(r) for r in expected]


def test_the_window_reaches_the_partition_and_primary_key(chdb_conn: Connection) -> None:
    _, target = exported(chdb_conn, "blackfriday")
    create_canonical_views(target, None, "bf_window", window=(0, 10**18), services=("checkout",))
    plan = "\n".join(
        chdb_conn.query_arrow("EXPLAIN indexes = 1 SELECT count() FROM bf_window.spans")
        .column(0)
        .to_pylist()
    )
    assert "Partition" in plan and "PrimaryKey" in plan
    assert "ServiceName" in plan and "Timestamp" in plan


def test_fingerprints_come_back_once_per_statement_shape(chdb_conn: Connection) -> None:
    store, _ = exported(chdb_conn, "blackfriday")
    keys, db_spans = fingerprint_statements(chdb_conn, "blackfriday_work")
    local = store.con.sql(
        "SELECT db_system, key, fingerprint, operation, tables FROM statements ORDER BY 1, 2"
    ).to_arrow_table()
    remote = chdb_conn.query_arrow(
        "SELECT db_system, key, fingerprint, operation, tables FROM blackfriday_work.statements "
        "ORDER BY db_system, key"
    )
    spans = store.sql("SELECT count(*) AS n FROM spans WHERE db_statement IS NOT NULL")["n"][0]
    assert (keys, db_spans) == (local.num_rows, spans)
    assert keys < db_spans / 100  # the point: shapes, not spans, leave ClickHouse
    assert remote.to_pylist() == local.to_pylist()
    columns = "span_id, fingerprint, comment_trace_id, comment_span_id"
    local_db_spans = store.con.sql(f"SELECT {columns} FROM db_spans ORDER BY 1").fetchall()
    remote_db_spans = chdb_conn.query_arrow(
        f"SELECT {columns} FROM blackfriday_work.db_spans ORDER BY span_id"
    ).to_pylist()
    assert [tuple(r.values()) for r in remote_db_spans] == local_db_spans


HOSTILE = (
    "SELECT 'it''s' FROM t WHERE a = '\\' OR 1=1; --",
    "UPDATE t SET x = 'a\\nb'\n WHERE id = 7 /* traceparent='00-aa-bb-01' */",
    "'); DROP TABLE otel_traces; --",
    "SELECT \"ünï\" FROM 表 WHERE s = '\\\\x00 \\t ✓'",
)


def _otlp_line(statements: tuple[str, ...], route: str, attribute: str) -> str:
    spans = [
        {
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": f"{i + 1:016x}",
            "name": text[:20],
            "kind": 3,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
            "endTimeUnixNano": str(1_700_000_000_000_100_000 + i),
            "attributes": [
                {"key": "db.system", "value": {"stringValue": "postgresql"}},
                {"key": "db.statement", "value": {"stringValue": text}},
                {"key": "http.route", "value": {"stringValue": route}},
                {"key": attribute, "value": {"stringValue": attribute}},
            ],
        }
        for i, text in enumerate(statements)
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "s'\\x"}}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]})


def test_hostile_text_survives_export_and_view_byte_exact(
    chdb_conn: Connection, tmp_path: Path
) -> None:
    route = "/a'b\\c/\n{id}/'); DROP TABLE x; --/ü"
    attribute = "k'\"\\\n✓"
    path = tmp_path / "hostile.jsonl"
    path.write_text(_otlp_line(HOSTILE, route, attribute) + "\n", encoding="utf-8")
    store = ingested(path)
    target = export_to(store, chdb_conn, "hostile")
    view = view_spans(chdb_conn, "hostile_work")
    assert sorted(r["db_statement"] for r in view) == sorted(HOSTILE)
    assert {r["http_route"] for r in view} == {route}
    assert {r["service"] for r in view} == {"s'\\x"}
    assert all(r["attributes"][attribute] == attribute for r in view)
    assert not _first_difference(local_spans(store), view)
    assert target.columns("otel_traces")  # the table is still there
    fingerprint_statements(chdb_conn, "hostile_work")
    local_keys = store.con.sql("SELECT key FROM statements ORDER BY key").fetchall()
    remote = chdb_conn.query_arrow("SELECT key FROM hostile_work.statements ORDER BY key")
    assert [k for (k,) in local_keys] == remote.column("key").to_pylist()
    store.close()


def test_statement_key_is_the_store_macro(chdb_conn: Connection) -> None:
    store, _ = exported(chdb_conn, "blackfriday")
    texts = [
        *HOSTILE,
        "SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'",
        "SELECT * FROM t WHERE id = $1 /* app='a',traceparent='00-x' */ ;",
        "INSERT INTO t VALUES (%s, %(name)s, ?)",
        "SELECT * FROM t WHERE a = :1 AND id IN (:2, :3, :b$1)",
        "SELECT * FROM t WHERE a = @P0 AND id IN (@P1, @p2, @id)",
        "DECLARE @a INT = 1; SELECT * FROM t WHERE id IN (@a, @p0)",
        "SELECT coalesce($1, $2) FROM t WHERE id in ($3, $4)",
        *(t for (t,) in store.con.sql("SELECT DISTINCT db_statement FROM spans").fetchall() if t),
    ]
    pairs = [(d, t) for t in texts for d in ("postgresql", " Oracle", "mssql", None)]
    expected = [store.con.execute("SELECT statement_key(?, ?)", p).fetchone()[0] for p in pairs]  # type: ignore[index]
    values = ", ".join(
        f"({i}, {'NULL' if d is None else _literal(d)}, {_literal(t)})"
        for i, (d, t) in enumerate(pairs)
    )
    got = chdb_conn.query_arrow(
        f"SELECT {statement_key_sql('d', 's')} AS key FROM (SELECT * FROM VALUES("
        f"'i UInt32, d Nullable(String), s String', {values})) ORDER BY i"
    )
    assert len(set(expected)) < len(expected), "the dialects' lists collapse"
    assert got.column("key").to_pylist() == expected


def _literal(text: str) -> str:
    from correlate.clickhouse.otel_schema import quote_string

    return quote_string(text)


def test_an_older_exporter_table_is_read(chdb_conn: Connection) -> None:
    # Before ScopeName was a column, the scope was an attribute; Duration was Int64.
    tables = OtelTables(database="older")
    target = chdb_conn.using(tables)
    ddl = tables.traces_ddl().replace("    ScopeName String CODEC(ZSTD(1)),\n", "")
    ddl = ddl.replace("    ScopeVersion String CODEC(ZSTD(1)),\n", "")
    ddl = ddl.replace("Duration UInt64", "Duration Int64")
    chdb_conn.command("CREATE DATABASE older")
    chdb_conn.command(ddl)
    chdb_conn.command(
        "INSERT INTO older.otel_traces (Timestamp, TraceId, SpanId, SpanName, SpanKind, "
        "ServiceName, SpanAttributes, Duration, StatusCode) VALUES "
        "(toDateTime64('2024-01-01 00:00:00', 9, 'UTC'), '0af7651916cd43dd8448eb211c80319c', "
        "'00f067aa0ba902b7', 'GET /x', 'SPAN_KIND_SERVER', 'svc', "
        "map('otel.scope.name', 'flask', 'otel.scope.version', '1', 'http.route', '/x'), "
        "1500, 'STATUS_CODE_ERROR')"
    )
    create_canonical_views(target, None, "older_work")
    (row,) = view_spans(chdb_conn, "older_work")
    assert (row["kind"], row["status_code"], row["scope_name"]) == ("SERVER", "ERROR", "flask")
    assert row["attributes"] == {"http.route": "/x"}
    assert row["duration_ns"] == 1500 and row["end_ns"] == row["start_ns"] + 1500


def test_a_table_without_an_exporter_column_is_named(chdb_conn: Connection) -> None:
    tables = OtelTables(database="broken")
    chdb_conn.command("CREATE DATABASE broken")
    chdb_conn.command(
        tables.traces_ddl()
        .replace("    Duration UInt64 CODEC(ZSTD(1)),\n", "")
        .replace("    INDEX idx_duration Duration TYPE minmax GRANULARITY 1", "")
        .replace("GRANULARITY 1,\n\n)", "GRANULARITY 1\n)")
    )
    with pytest.raises(SchemaMismatchError, match="no column 'Duration'"):
        create_canonical_views(chdb_conn.using(tables), None, "broken_work")
