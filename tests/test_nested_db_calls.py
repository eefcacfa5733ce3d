"""A database call recorded by a query builder over its driver is one call: the driver's.

knex's instrumentation makes a CLIENT span of each statement with ``?`` placeholders, and
pg's, within it, a CLIENT span of the same statement as the server gets it (``$1``), as
``tests/data/knex/`` shows. The knex span is a wrapper of the call; the pg span is the call.
Constructed runs shaped as those spans are, and the recorded run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.analysis.run import Run
from correlate.fingerprint import fingerprint
from correlate.kinds import FindingKind

from .builders import RunBuilder

KNEX = "@opentelemetry/instrumentation-knex"
PG = "@opentelemetry/instrumentation-pg"
ORDERS_KNEX = 'select * from "orders" order by "id" desc limit ?'
ORDERS_PG = 'select * from "orders" order by "id" desc limit $1'
CUSTOMER_KNEX = 'select * from "customers" where "id" = ? limit ?'
CUSTOMER_PG = 'select * from "customers" where "id" = $1 limit $2'
SPEND_KNEX = 'select sum("amount") as "total" from "orders" where "customer_id" = ? limit ?'
SPEND_PG = 'select sum("amount") as "total" from "orders" where "customer_id" = $1 limit $2'
DATA = Path(__file__).parent / "data" / "knex"


def _call(
    b: RunBuilder, trace: str, parent: str, start: float, end: float, sql: tuple[str, str]
) -> str:
    """knex's span over pg's, as the two instrumentations record one query: pg's starts
    a little later and ends a little sooner."""
    knex = b.span(trace, start, end, parent=parent, kind="CLIENT", db="postgresql",
                  sql=sql[0], scope=KNEX, name="first test.orders")  # fmt: skip
    b.span(trace, start + 0.05, end - 0.1, parent=knex, kind="CLIENT", db="postgresql",
           sql=sql[1], scope=PG, name="pg.query:SELECT test")  # fmt: skip
    return knex


def _knex_run(requests: int = 20) -> RunBuilder:
    """An N+1 on /orders/recent (the orders, then each one's customer) and a slow query on
    /customers/:id/spend, every statement recorded by knex and pg."""
    b = RunBuilder()
    for i in range(requests):
        at = i * 100.0
        trace = f"r{i}"
        r = b.request(trace, at, at + 14, "/orders/recent", scope="http")
        handler = b.span(trace, at + 0.5, at + 13.5, parent=r, name="request handler")
        _call(b, trace, handler, at + 1, at + 2, (ORDERS_KNEX, ORDERS_PG))
        for n in range(10):
            _call(b, trace, handler, at + 2 + n, at + 2.9 + n, (CUSTOMER_KNEX, CUSTOMER_PG))
        trace = f"s{i}"
        r = b.request(trace, at + 50, at + 95, "/customers/:id/spend", scope="http")
        handler = b.span(trace, at + 50.5, at + 94.5, parent=r, name="request handler")
        _call(b, trace, handler, at + 52, at + 92, (SPEND_KNEX, SPEND_PG))
    return b


@pytest.fixture
def knex_run() -> Iterator[Run]:
    store = _knex_run().build()
    run = Run(store, "r")
    yield run
    run.close()
    store.close()


def test_each_statement_is_one_call(knex_run: Run) -> None:
    routes = knex_run.routes().set_index("route")
    assert routes.loc["/orders/recent", "db_calls"] == 11
    assert routes.loc["/customers/:id/spend", "db_calls"] == 1
    queries = knex_run.queries()
    # one row per statement, under the driver's text's fingerprint, with the driver's time
    assert sorted(queries["calls"]) == [20, 20, 200]
    pg = {fingerprint(sql, "postgresql").id for sql in (ORDERS_PG, CUSTOMER_PG, SPEND_PG)}
    assert set(queries["fingerprint"]) == pg
    spend = queries.set_index("fingerprint").loc[fingerprint(SPEND_PG, "postgresql").id]
    assert spend["total_ms"] == pytest.approx(20 * 39.85)
    assert knex_run.doubled_db_spans == 20 * 12


def test_the_wrappers_own_time_is_the_applications(knex_run: Run) -> None:
    spend = knex_run.requests().query("route == '/customers/:id/spend'")
    # 45 ms: 39.85 ms of pg's call, the rest (knex's own 0.15 ms among it) the app's
    assert list(spend["db_ms"].round(6).unique()) == [39.85]
    assert list(spend["app_ms"].round(6).unique()) == [5.15]


def test_one_n_plus_one_and_the_slow_query(knex_run: Run) -> None:
    found = knex_run.findings()
    n_plus_one = [f for f in found if f.kind == FindingKind.N_PLUS_ONE]
    assert [(f.route, f.fingerprint) for f in n_plus_one] == [
        ("/orders/recent", fingerprint(CUSTOMER_PG, "postgresql").id)
    ]
    assert n_plus_one[0].evidence["calls_per_request"] == 10
    slow = [f for f in found if f.kind == FindingKind.SLOW_QUERY]
    assert [(f.route, f.fingerprint) for f in slow] == [
        ("/customers/:id/spend", fingerprint(SPEND_PG, "postgresql").id)
    ]


def _request_calls(b: RunBuilder) -> tuple[int, float]:
    store = b.build()
    run = Run(store, "r")
    row = run.con.execute(f"SELECT db_calls, db_ms FROM {run.table('requests')}").fetchone()
    run.close()
    store.close()
    assert row is not None
    return int(row[0]), float(row[1])


def test_a_call_deeper_below_its_wrapper_is_still_the_call() -> None:
    # Prisma-like: the ORM's span, a span of its own engine, then the driver's query
    b = RunBuilder()
    r = b.request("t", 0, 50)
    orm = b.query("t", r, 5, 45, "SELECT 1")
    engine = b.span("t", 6, 44, parent=orm, name="engine")
    b.query("t", engine, 10, 40, "SELECT 1")
    assert _request_calls(b) == (1, pytest.approx(30))


def test_a_connect_span_below_a_query_does_not_make_it_a_wrapper() -> None:
    # pg's statement-less connect span under the query that had to open a connection
    b = RunBuilder()
    r = b.request("t", 0, 50)
    query = b.query("t", r, 5, 45, SPEND_KNEX)
    b.span("t", 6, 10, parent=query, kind="CLIENT", db="postgresql", name="pg.connect")
    calls, db_ms = _request_calls(b)
    assert (calls, db_ms) == (2, pytest.approx(40))


def test_a_call_to_another_database_below_is_no_record_of_the_same_call() -> None:
    # a cache read made inside a database span's callback: two calls
    b = RunBuilder()
    r = b.request("t", 0, 50)
    query = b.query("t", r, 5, 45, "SELECT 1")
    b.span("t", 10, 20, parent=query, kind="CLIENT", db="redis", sql="GET k")
    assert _request_calls(b) == (2, pytest.approx(40))


def test_recorded_knex_run_reports_its_n_plus_one_once() -> None:
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(DATA / "nplus1", store=store)
        row = store.con.execute("SELECT count(*) FROM spans WHERE scope_name = ?", [KNEX])
        (knex_spans,) = row.fetchone() or (0,)
    n_plus_one = [f for f in analysis.findings if f.kind == FindingKind.N_PLUS_ONE]
    assert [(f.route, f.fingerprint, f.evidence["calls_per_request"]) for f in n_plus_one] == [
        ("/orders/recent", fingerprint(CUSTOMER_PG, "postgresql").id, 10)
    ]
    # every query once, under the driver's text: one call of the product's per request of
    # /products/:id and /checkout
    queries = analysis.queries.set_index("fingerprint")
    assert queries.index.is_unique and queries["normalized"].is_unique
    assert not queries["normalized"].str.contains("?", regex=False).any()
    product = fingerprint('select * from "products" where "id" = $1 limit $2', "postgresql")
    requests = analysis.routes.set_index("route").loc[["/products/:id", "/checkout"], "requests"]
    assert queries.loc[product.id, "calls"] == requests.sum() > 0
    # each knex span is a wrapper of pg's call
    assert knex_spans > 0
    assert [g for g in analysis.gaps if g.startswith(f"{knex_spans} statement(s) were")]
