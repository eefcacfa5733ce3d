"""Spans correlate did not shape: rows put into the exporter's ``otel_traces`` with SQL,
as the Collector writes them for other SDKs (Java's JDBC semantic conventions, the older
``SPAN_KIND_*``/``STATUS_CODE_*`` names, orphans), and analysed with ``--source``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import correlate
from correlate.clickhouse.connection import connect
from correlate.clickhouse.otel_schema import OtelTables
from correlate.clickhouse.source import open_source
from correlate.clickhouse.translate import literal
from tests.conftest import require_chdb

pytestmark = pytest.mark.clickhouse

T0 = "2026-11-27 10:00:00"


def _row(
    offset_ms: int,
    trace: int,
    span: str,
    parent: str,
    kind: str,
    attrs: dict[str, str],
    duration_ms: int,
    status: str = "STATUS_CODE_UNSET",
) -> str:
    """One exporter row: ``Timestamp`` ``offset_ms`` after :data:`T0`."""
    amap = "map(" + ", ".join(f"{literal(k)}, {literal(v)}" for k, v in attrs.items()) + ")"
    return (
        f"(addMilliseconds(toDateTime64({literal(T0)}, 9, 'UTC'), {offset_ms}), "
        f"{literal(f'{trace:032x}')}, {literal(span)}, {literal(parent)}, '', "
        f"{literal('GET /orders/{id}' if not parent else 'SELECT orders')}, {literal(kind)}, "
        f"'java-svc', map('service.name', 'java-svc'), '', '', {amap}, "
        f"{duration_ms * 1_000_000}, {literal(status)}, '', [], [], [], [], [], [], [])"
    )


def _java_rows(requests: int, orphans: bool) -> list[str]:
    """``requests`` Java requests a second apart, each with six JDBC calls (and, with
    ``orphans``, a seventh whose parent span never reached the table)."""
    rows = []
    for i in range(requests):
        server = f"{i:08x}00000001"
        route = {"http.route": "/orders/{id}", "http.request.method": "GET"}
        rows.append(_row(i * 1000, i, server, "", "SPAN_KIND_SERVER", route, 50))
        calls = 7 if orphans else 6
        for j in range(calls):
            parent = "deadbeefdeadbeef" if j == 6 else server
            jdbc = {
                "db.system.name": "postgresql",
                "db.query.text": f"SELECT * FROM orders WHERE id = {j}",
                "server.address": "pg.internal",
            }
            rows.append(
                _row(i * 1000 + 1 + j, i, f"{i:08x}000001{j:02x}", parent, "Client", jdbc, 5)
            )
    return rows


@pytest.fixture
def exporter_table(tmp_path: Path) -> Iterator[tuple[str, object]]:
    require_chdb()
    path = tmp_path / "chdb"
    conn = connect(f"chdb://{path}")
    tables = OtelTables(database="otel")
    conn.command("CREATE DATABASE otel")
    conn.command(tables.traces_ddl())

    def insert(rows: list[str]) -> None:
        conn.command(f"INSERT INTO {tables.traces_table} VALUES " + ", ".join(rows))

    yield f"chdb://{path}?database=otel", insert
    conn.close()


def test_a_window_without_load_results_lasts_from_its_first_request(exporter_table) -> None:  # type: ignore[no-untyped-def]
    url, insert = exporter_table
    insert(_java_rows(30, orphans=False))
    with open_source(url) as source:
        result = correlate.analyze(source.name, store=source)
    # the first request starts at T0, the last ends 29 s + 50 ms later
    assert result.summary["seconds"] == pytest.approx(29.05)
    assert result.summary["throughput_rps"] == pytest.approx(30 / 29.05)


def test_spans_whose_parent_never_arrived_go_to_their_trace_request(exporter_table) -> None:  # type: ignore[no-untyped-def]
    url, insert = exporter_table
    insert(_java_rows(3, orphans=True))
    with open_source(url) as source:
        result = correlate.analyze(source.name, store=source)
    routes = result.routes.set_index("route")
    assert routes.loc["/orders/{id}", "requests"] == 3
    # seven calls of 5 ms each: the orphan's too
    assert routes.loc["/orders/{id}", "db_calls"] == pytest.approx(7.0)


def test_a_recursive_query_with_two_seeds_stops_as_in_duckdb() -> None:
    require_chdb()
    import chdb
    import duckdb

    from correlate.clickhouse.translate import SETTINGS, to_clickhouse

    sql = (
        "WITH RECURSIVE r(n, d) AS (SELECT 1, 0 UNION ALL SELECT 100, 0 "
        "UNION ALL SELECT n + 1, d + 1 FROM r WHERE d < 3) SELECT n, d FROM r ORDER BY n, d"
    )
    expected = duckdb.sql(sql).fetchall()
    settings = ", ".join(f"{k} = {v}" for k, v in SETTINGS.items())
    text = chdb.query(f"{to_clickhouse(sql)} SETTINGS {settings}", "CSV").bytes().decode()
    got = [tuple(int(x) for x in line.split(",")) for line in text.split()]
    assert got == expected


def test_the_plan_capture_advice_names_a_source_run_as_one_shell_word(exporter_table) -> None:  # type: ignore[no-untyped-def]
    import shlex

    url, insert = exporter_table
    insert(_java_rows(3, orphans=False))

    def advice(source: Any) -> list[str]:
        gaps = correlate.analyze(source.name, store=source).gaps
        (gap,) = (g for g in gaps if "correlate plans capture" in g)
        return shlex.split(gap[gap.index("correlate plans capture") :].split("`")[0])

    # the source's own run is no local run: the advice captures into one the user names
    with open_source(url) as source:
        assert " " in source.name
        said = advice(source)
    assert said[3:4] == ["--source"] and said[said.index("--run") + 1] == "NAME"
    # a local run given with --run is named, one shell word however it is spelled
    with correlate.open_store(":memory:") as local:
        local.ensure_run("java shop; rm -rf ~", source=None, labels=None)
        with open_source(url, local=local, run="java shop; rm -rf ~") as source:
            said = advice(source)
    assert said[said.index("--run") + 1] == "java shop; rm -rf ~"
