"""The analysis run inside ClickHouse (chDB) gives what it gives in DuckDB.

Each run's canonical tables are copied into a chDB database as they are, so
these tests check the translation of the analysis' SQL alone (the exporter's
schema and the views over it have their own tests): findings, the route
table, the query table and the timeline must be the same in both engines, and
every statement of a full report must run. One difference is allowed: a list
that is NULL in DuckDB is empty in ClickHouse, which has no nullable arrays.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.analysis.run import Run
from correlate.clickhouse.translate import literal, to_clickhouse
from correlate.store import Store

pytestmark = pytest.mark.clickhouse

ROOT = Path(__file__).parent.parent
SAMPLES = [
    "sample_traces/checkout-blackfriday",
    "sample_traces/checkout-blackfriday-otel",
    "sample_traces/checkout-fixed",
    "tests/data/peers/hotrod",
    "tests/data/peers/perf-sentinel",
    "tests/data/peers/zipkin",
]


class _Copied:
    """What :class:`Run` needs of a store, over a ClickHouse engine."""

    def __init__(self, engine: Any, run_id: int, name: str) -> None:
        self.con, self.path, self._id, self._name = engine, "chdb://test", run_id, name

    def run_id(self, name: str) -> int:
        return self._id

    def run_names(self) -> list[str]:
        return [self._name]

    def close(self) -> None:
        pass


_databases = iter(range(1_000_000))


def copied(store: Store, conn: Any, run: str) -> tuple[_Copied, Any]:
    """Every table of ``store`` in a new chDB database, made current; the db_spans view."""
    import pyarrow as pa

    from correlate.clickhouse.engine import Engine
    from correlate.schema import DB_SPANS_VIEW

    database = f"copied_{next(_databases)}"
    conn.command(f"CREATE DATABASE {database}")
    conn.command(f"USE {database}")
    engine = Engine(conn)
    tables = store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary"
    ).fetchall()
    for (table,) in tables:
        data = store.con.sql(f"SELECT * FROM {table}").to_arrow_table()
        plain = [
            c.cast(f.type.storage_type) if isinstance(f.type, pa.ExtensionType) else c
            for f, c in zip(data.schema, data.columns, strict=True)
        ]
        engine.register(table, pa.table(plain, names=data.column_names))
    view = DB_SPANS_VIEW[DB_SPANS_VIEW.index("CREATE VIEW") :].rstrip().rstrip(";")
    engine.execute(view)
    engine.bytes_fetched = 0
    engine.fetches.clear()
    return _Copied(engine, store.run_id(run), run), engine


def _same_frame(local: Any, remote: Any) -> None:
    assert list(local.columns) == list(remote.columns)
    assert len(local) == len(remote)
    for column in local.columns:
        for a, b in zip(local[column], remote[column], strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert (math.isnan(a) and math.isnan(b)) or math.isclose(
                    a, b, rel_tol=1e-6, abs_tol=1e-9
                ), (column, a, b)
            else:
                # ClickHouse has no NULL list: an absent list is empty there
                x, y = _plain(a), _plain(b)
                assert x == y or (x is None and y == []), (column, a, b)


def _plain(value: Any) -> Any:
    import pandas as pd

    if hasattr(value, "tolist"):
        value = value.tolist()
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_analysis_in_clickhouse_is_the_analysis_in_duckdb(sample: str, chdb: Any) -> None:
    with correlate.open_store(":memory:") as store:
        store.ingest([ROOT / sample], run="r")
        remote_store, engine = copied(store, chdb, "r")
        local, remote = Run(store, "r"), Run(remote_store, "r")  # type: ignore[arg-type]

        def summary(run: Run) -> list[tuple[Any, ...]]:
            return [
                (
                    f.kind,
                    f.severity,
                    f.title,
                    f.explanation,
                    f.route,
                    f.fingerprint,
                    round(f.impact_ms, 3),
                    f.trace_ids,  # the examples too: every detector breaks its ties
                )
                for f in run.findings()
            ]

        assert summary(remote) == summary(local)
        _same_frame(local.routes(), remote.routes())
        _same_frame(local.queries(), remote.queries())
        _same_frame(local.timeline(), remote.timeline())
        assert engine.statements > 10 and engine.bytes_fetched > 0


def test_every_statement_of_a_report_runs_in_clickhouse(chdb: Any) -> None:
    """A full report (evidence, figures' data, every renderer) through the engine."""
    with correlate.open_store(":memory:") as store:
        store.ingest([ROOT / "sample_traces/checkout-blackfriday"], run="bf")
        remote_store, engine = copied(store, chdb, "bf")
        page = correlate.report("bf", store=remote_store, format="json")  # type: ignore[arg-type]
        local = correlate.report("bf", store=store, format="json")
    assert '"pool_leak"' in page and page.count('"kind"') == local.count('"kind"')
    assert engine.statements >= 40  # the report's evidence ran there too


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "it's",
        "back\\slash",
        "\\'",
        "new\nline",
        "tab\tnul\x01",
        "ünï ☃ 𝄞",
        "'); DROP TABLE x; --",
    ],
)
def test_a_parameter_reaches_clickhouse_as_the_same_text(text: str, chdb: Any) -> None:
    assert chdb.query_arrow(to_clickhouse("SELECT $t AS t", {"t": text})).to_pylist() == [
        {"t": text}
    ]


@settings(max_examples=60, deadline=None)
@given(text=st.text())
def test_any_text_is_one_literal(text: str, chdb: Any) -> None:
    # NUL is cut from queries by chDB's C entry point; everything else must arrive whole
    text = text.replace("\x00", "")
    assert chdb.query_arrow(f"SELECT {literal(text)} AS t").to_pylist() == [{"t": text}]


def test_duckdb_semantics_kept_where_clickhouse_differs(chdb: Any) -> None:
    """The same statement, run by DuckDB and by ClickHouse, gives the same row."""
    import duckdb

    make = (
        "CREATE TABLE t AS SELECT x, CASE WHEN x % 2 = 0 THEN NULL ELSE x END AS n, "
        '\'{{"k": 42, "s": "v", "z": null}}\' AS j FROM {numbers}'
    )
    statement = """
        SELECT quantile_cont(x, 0.25) AS q, median(x) AS m, count(*) - 20 AS c,
               mode(CASE WHEN n < 5 THEN 1 ELSE n END) AS mo, any_value(j->>'k') AS k,
               any_value(j->>'missing') AS miss, any_value(j->>'z') AS z,
               list(x ORDER BY x DESC)[1:2] AS top,
               7 // 2 AS d, count(*) FILTER (WHERE x > 100) AS none
        FROM t WHERE x < $lim
    """
    correlated = "SELECT o.x, (SELECT count(*) FROM t u WHERE u.x > o.x + 5) AS n FROM t o"
    duck = duckdb.connect()
    duck.execute(make.format(numbers="(SELECT range AS x FROM range(10))"))
    expected = duck.execute(statement, {"lim": 10}).fetchall()
    chdb.command("CREATE DATABASE IF NOT EXISTS semantics")
    chdb.command("USE semantics")
    chdb.command("DROP TABLE IF EXISTS t")
    chdb.command(
        make.replace("CREATE TABLE t AS", "CREATE TABLE t ENGINE = Memory AS").format(
            numbers="(SELECT toInt64(number) AS x FROM numbers(10))"
        )
    )
    table = chdb.query_arrow(to_clickhouse(statement, {"lim": 10}))
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    table = chdb.query_arrow(to_clickhouse(correlated))
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == sorted(
        duck.execute(correlated).fetchall()
    )


def test_messages_processed_are_the_same_requests_in_clickhouse(chdb: Any) -> None:
    # a worker's CONSUMER spans, one wrapped in a "receive" CONSUMER span, and the
    # publisher's PRODUCER span: the same requests, routes and findings in both engines
    from .builders import RunBuilder

    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 5, "/orders")
        send = b.span(trace, start + 1, start + 2, parent=r, kind="PRODUCER", name="send")
        outer = b.span(trace, start + 20, start + 70, parent=send, kind="CONSUMER", name="receive")
        inner = b.span(trace, start + 21, start + 69, parent=outer, kind="CONSUMER", name="process")
        for n in range(12):
            at = start + 22 + n * 3
            b.query(trace, inner, at, at + 2, f"SELECT * FROM items WHERE id = {n}")
    store = b.build()
    remote_store, _ = copied(store, chdb, "r")
    local, remote = Run(store, "r"), Run(remote_store, "r")  # type: ignore[arg-type]
    assert set(local.routes()["route"]) == {"/orders", "process"}
    assert [(f.kind, f.route, f.impact_ms) for f in remote.findings()] == [
        (f.kind, f.route, f.impact_ms) for f in local.findings()
    ]
    _same_frame(local.routes(), remote.routes())
    # the hashes of ids differ between engines; each request is the same
    here, there = (
        run.requests().drop(columns=["th", "rh"]).sort_values("request_id", ignore_index=True)
        for run in (local, remote)
    )
    _same_frame(here, there)


def test_copies_and_routes_are_the_same_in_clickhouse(chdb: Any) -> None:
    # statements recorded twice (in sequence, and awaited together), and a route given
    # without its leading slash
    from .builders import RunBuilder

    b = RunBuilder()
    sql, scopes = "SELECT name FROM items WHERE id = 1", ("sqlalchemy", "psycopg")
    for i in range(4):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 100, "orders/<int:pk>/")
        for at, end in ((10, 20), (21, 30), (40, 70), (40.2, 60), (40.4, 65)):
            for scope, inset in zip(scopes, (0, 0.05), strict=True):
                b.query(trace, r, start + at + inset, start + end - inset, sql)
                b.spans[-1]["scope_name"] = scope
    store = b.build()
    remote_store, _ = copied(store, chdb, "r")
    local, remote = Run(store, "r"), Run(remote_store, "r")  # type: ignore[arg-type]
    assert local.doubled_db_spans == remote.doubled_db_spans == 4 * 5
    assert set(local.routes()["route"]) == {"/orders/<int:pk>/"}
    _same_frame(local.routes(), remote.routes())
    here, there = (
        run.requests().drop(columns=["th", "rh"]).sort_values("request_id", ignore_index=True)
        for run in (local, remote)
    )
    _same_frame(here, there)


def test_wrapped_calls_are_the_same_in_clickhouse(chdb: Any) -> None:
    # knex's span over pg's of each statement: the calls, the time and the findings
    from .test_nested_db_calls import _knex_run

    store = _knex_run(requests=6).build()
    remote_store, _ = copied(store, chdb, "r")
    local, remote = Run(store, "r"), Run(remote_store, "r")  # type: ignore[arg-type]
    assert local.doubled_db_spans == remote.doubled_db_spans == 6 * 12
    found = [(f.kind, f.route, f.fingerprint) for f in local.findings()]
    assert [kind for kind, _, _ in found] == ["slow_query", "n_plus_one"]
    assert [(f.kind, f.route, f.fingerprint) for f in remote.findings()] == found
    _same_frame(local.routes(), remote.routes())
    here, there = (
        run.requests().drop(columns=["th", "rh"]).sort_values("request_id", ignore_index=True)
        for run in (local, remote)
    )
    _same_frame(here, there)
