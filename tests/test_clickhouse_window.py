"""``--window`` on a ClickHouse source keeps whole traces: those whose first span started
in the window, with their spans that started after its end, and none of a trace that
began before it. Rows are put into the exporter's ``otel_traces`` with SQL, a few
traces around one minute's window."""

from __future__ import annotations

from typing import Any

import pytest

import correlate
from correlate.clickhouse.connection import ClickHouseError, Connection, connect
from correlate.clickhouse.otel_schema import OtelTables
from correlate.clickhouse.source import EmptyWindowError, open_source
from correlate.clickhouse.translate import literal
from correlate.clickhouse.views import create_canonical_views
from correlate.clickhouse.window import TRACE_SLACK_NS
from tests.conftest import require_chdb

pytestmark = pytest.mark.clickhouse

T0 = "2026-11-27 10:00:00"
WINDOW = "2026-11-27T10:00..2026-11-27T10:01"
#: the minute after, its start just past WINDOW's end
NEXT_WINDOW = "2026-11-27T10:01:00.5..2026-11-27T10:02"
SERVER, CLIENT = "Server", "Client"


def _span(
    at_ms: int,
    trace: int,
    span: int,
    parent: int | None,
    kind: str,
    duration_ms: int,
    *,
    service: str = "shop",
    route: str | None = None,
    sql: str | None = None,
) -> str:
    """One exporter row, starting ``at_ms`` after :data:`T0` (before it when negative)."""
    attrs = {}
    if route is not None:
        attrs = {"http.route": route, "http.request.method": "GET"}
    if sql is not None:
        attrs = {"db.system.name": "postgresql", "db.query.text": sql}
    amap = "map(" + ", ".join(f"{literal(k)}, {literal(v)}" for k, v in attrs.items()) + ")"
    values = [
        f"addMilliseconds(toDateTime64({literal(T0)}, 9, 'UTC'), {at_ms})",
        literal(f"{trace:032x}"),
        literal(f"{span:016x}"),
        literal("" if parent is None else f"{parent:016x}"),
        literal(route or (sql or "call").split(" ")[0]),
        literal(kind),
        literal(service),
        f"map('service.name', {literal(service)})",
        amap,
        str(duration_ms * 1_000_000),
    ]
    return f"({', '.join(values)})"


def _rows() -> list[str]:
    end = 60_000  # the window's end, in ms after T0
    return [
        # 1: well inside
        _span(10_000, 1, 11, None, SERVER, 100, route="/inside"),
        _span(10_010, 1, 12, 11, CLIENT, 20, sql="SELECT 1"),
        # 2: starts a second before the end; its second query starts after it
        _span(end - 1_000, 2, 21, None, SERVER, 3_000, route="/late"),
        _span(end - 900, 2, 22, 21, CLIENT, 100, sql="SELECT 2"),
        _span(end + 500, 2, 23, 21, CLIENT, 1_500, sql="SELECT 3"),
        # 3: began two seconds before the start; its query is inside the window
        _span(-2_000, 3, 31, None, SERVER, 4_000, route="/early"),
        _span(1_000, 3, 32, 31, CLIENT, 500, sql="SELECT 4"),
        # 4: shop calls ledger, which queries
        _span(20_000, 4, 41, None, SERVER, 300, route="/pay"),
        _span(20_010, 4, 42, 41, CLIENT, 200),
        _span(20_020, 4, 43, 42, SERVER, 150, service="ledger", route="/ledger"),
        _span(20_030, 4, 44, 43, CLIENT, 50, service="ledger", sql="SELECT 5"),
        # 5: lasts longer than the slack; its last query starts past it
        _span(30_000, 5, 51, None, SERVER, 200_000, route="/long"),
        _span(30_100, 5, 52, 51, CLIENT, 10, sql="SELECT 6"),
        _span(end + TRACE_SLACK_NS // 1_000_000 + 65_000, 5, 53, 51, CLIENT, 10, sql="SELECT 7"),
        # 6: ledger began before the window and called shop inside it
        _span(-1_000, 6, 61, None, SERVER, 3_000, service="ledger", route="/job"),
        _span(-500, 6, 62, 61, CLIENT, 700, service="ledger"),
        _span(500, 6, 63, 62, SERVER, 100, route="/callback"),
        # 7: in the next minute
        _span(end + 30_000, 7, 71, None, SERVER, 100, route="/next"),
        _span(end + 30_010, 7, 72, 71, CLIENT, 20, sql="SELECT 8"),
    ]


@pytest.fixture(scope="module")
def source_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _exporter_table(tmp_path_factory, "chdb_window", _rows())


def _exporter_table(factory: pytest.TempPathFactory, name: str, rows: list[str]) -> str:
    """A chDB directory whose ``otel.otel_traces`` holds ``rows`` (:func:`_span` values)."""
    require_chdb()
    path = factory.mktemp(name)
    conn = connect(f"chdb://{path}")
    tables = OtelTables(database="otel")
    conn.command("CREATE DATABASE otel")
    conn.command(tables.traces_ddl())
    columns = (
        "Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, "
        "ResourceAttributes, SpanAttributes, Duration"
    )
    try:
        conn.command(f"INSERT INTO {tables.traces_table} ({columns}) VALUES " + ", ".join(rows))
    finally:
        conn.close()  # the rows are on disk; each test opens the directory again
    return f"chdb://{path}?database=otel"


def _spans(source: Any, run_id: int = 1) -> dict[int, set[int]]:
    """The span ids read, by trace, as the numbers :func:`_span` was given."""
    rows = source.sql(f"SELECT trace_id, span_id FROM spans WHERE run_id = {run_id}")
    traces: dict[int, set[int]] = {}
    for trace, span in zip(rows["trace_id"], rows["span_id"], strict=True):
        traces.setdefault(int(trace, 16), set()).add(int(span, 16))
    return traces


def _route(result: Any, route: str) -> dict[str, Any]:
    (row,) = (r for r in result.routes.to_dict("records") if r["route"].endswith(route))
    return dict(row)


def test_a_window_keeps_whole_traces_that_started_in_it(source_url: str) -> None:
    with open_source(source_url, window=WINDOW) as source:
        spans = _spans(source)
        count = source.spans
        result = correlate.analyze(source.name, store=source)
    assert spans == {
        1: {11, 12},
        2: {21, 22, 23},  # 23 started after the window's end
        4: {41, 42, 43, 44},
        5: {51, 52},  # 53 started later than the slack after the end: not read
    }  # 3 and 6 began before the window, 7 after it
    assert count == 11
    late = _route(result, "/late")
    # both queries are the request's DB time, none of it application time
    assert late["db_calls"] == 2
    assert late["db_ms"] == pytest.approx(1_600)
    assert late["app_ms"] == pytest.approx(1_400)
    assert not [r for r in result.routes["route"] if r.endswith(("/early", "/callback"))]


def test_services_keep_their_spans_and_their_own_first_span(source_url: str) -> None:
    with open_source(source_url, window=WINDOW, services=["shop"]) as source:
        spans = _spans(source)
        result = correlate.analyze(source.name, store=source)
    # ledger's spans are left out; trace 6's first span of shop is in the window
    assert spans == {1: {11, 12}, 2: {21, 22, 23}, 4: {41, 42}, 5: {51, 52}, 6: {63}}
    assert _route(result, "/late")["db_ms"] == pytest.approx(1_600)
    assert {r["service"] for r in result.routes.to_dict("records")} == {"shop"}


def test_a_baseline_window_keeps_whole_traces_too(source_url: str) -> None:
    """Adjacent windows share no trace: the late query stays with its request's window."""
    with open_source(source_url, window=NEXT_WINDOW, baseline_window=WINDOW) as source:
        candidate, baseline = _spans(source, 1), _spans(source, 2)
    assert candidate == {7: {71, 72}}
    assert baseline[2] == {21, 22, 23}
    assert set(baseline) == {1, 2, 4, 5}


def test_a_window_reads_the_table_by_its_time_and_order_keys(source_url: str) -> None:
    """Every read of the table, the choice of traces too, is bounded on ``Timestamp``:
    ClickHouse refuses the query otherwise under these settings."""
    from correlate.clickhouse.window import parse_window

    conn: Connection = connect(source_url)
    try:
        start, end = parse_window(WINDOW)
        assert start is not None and end is not None
        create_canonical_views(conn, None, "window_keys", window=(start, end))
        forced = "SETTINGS force_index_by_date = 1, force_primary_key = 1"
        row = conn.query_arrow(f"SELECT count() AS n FROM window_keys.spans {forced}")
        assert row.to_pylist() == [{"n": 11}]
        # the settings do refuse a read of the whole table, in a subquery too
        unbounded = "SELECT TraceId FROM otel.otel_traces WHERE ServiceName = 'shop'"
        with pytest.raises(ClickHouseError, match="INDEX_NOT_USED"):
            conn.query_arrow(
                "SELECT count() AS n FROM otel.otel_traces WHERE Timestamp >= "
                f"toDateTime64({literal(T0)}, 9, 'UTC') AND TraceId IN ({unbounded}) {forced}"
            )
    finally:
        conn.command("DROP DATABASE IF EXISTS window_keys")


def test_a_window_of_spans_of_earlier_traces_only_says_so(source_url: str) -> None:
    """Its only spans are queries of traces 3 and 6, which began before it: the error says
    that they are there and why they are not the window's, not that there are none."""
    window = "2026-11-27T10:00:00.5..2026-11-27T10:00:01.5"
    with pytest.raises(EmptyWindowError) as caught:
        open_source(source_url, window=window)
    assert str(caught.value).startswith("no trace started in otel.otel_traces of chdb://")
    assert str(caught.value).endswith(
        "between 2026-11-27T10:00:00.5Z and 2026-11-27T10:00:01.5Z: its 2 spans there are of "
        "traces that began before it (a window keeps the traces whose first span started "
        "in it); start --window earlier"
    )


@pytest.fixture(scope="module")
def traceless_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Spans without a trace id (as some test suites send them) around :data:`WINDOW`,
    and one trace inside it."""
    no_trace = literal(f"{0:032x}")
    rows = [
        _span(10_000, 1, 11, None, SERVER, 100, route="/inside"),
        _span(-5_000, 0, 1, None, CLIENT, 10, sql="SELECT 1"),  # in the slack before
        _span(5_000, 0, 2, None, CLIENT, 10, sql="SELECT 2"),  # inside
        _span(70_000, 0, 3, None, CLIENT, 10, sql="SELECT 3"),  # in the slack after
    ]
    return _exporter_table(
        tmp_path_factory, "chdb_traceless", [r.replace(no_trace, "''") for r in rows]
    )


def test_spans_without_a_trace_id_are_each_a_trace_of_their_own(traceless_url: str) -> None:
    """Not one trace of them all: the one that started in the window is its, the others not."""
    with open_source(traceless_url, window=WINDOW) as source:
        rows = source.sql("SELECT trace_id, span_id FROM spans ORDER BY span_id")
    assert [int(s, 16) for s in rows["span_id"]] == [2, 11]
    assert rows["trace_id"].isna().tolist() == [True, False]
