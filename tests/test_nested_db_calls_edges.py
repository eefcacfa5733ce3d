"""Nested database spans on hostile or unusual shapes: each call counts once.

TypeORM's instrumentation names the database as TypeORM's driver type (``postgres``),
pg's as the semantic conventions do (``postgresql``): both are PostgreSQL, so TypeORM's
span is a wrapper of pg's call. A wrapper of two statements counts both; a database span
under another of a different database is a call of its own.
"""

from __future__ import annotations

import pytest

from correlate.analysis.run import Run

from .builders import RunBuilder

ORDERS = "SELECT * FROM orders WHERE customer_id = $1"
ITEMS = "SELECT * FROM order_items WHERE order_id = $1"


def _calls(b: RunBuilder) -> int:
    store = b.build()
    run = Run(store, "r")
    try:
        return int(run.routes().set_index("route").loc["/orders", "db_calls"])
    finally:
        run.close()
        store.close()


def _request(b: RunBuilder, trace: str = "t1") -> str:
    return b.request(trace, 0, 50, "/orders")


@pytest.mark.parametrize(
    ("outer", "inner"),
    [("postgres", "postgresql"), ("postgresql", "postgres"), ("MySQL", "mysql"),
     ("mariadb", "mysql")],
)  # fmt: skip
def test_one_database_under_another_name_is_one_call(outer: str, inner: str) -> None:
    b = RunBuilder()
    r = _request(b)
    w = b.span("t1", 1, 10, parent=r, kind="CLIENT", db=outer, sql=ORDERS, scope="typeorm")
    b.span("t1", 2, 9, parent=w, kind="CLIENT", db=inner, sql=ORDERS, scope="pg")
    assert _calls(b) == 1


def test_a_wrapper_of_two_statements_counts_both() -> None:
    b = RunBuilder()
    r = _request(b)
    w = b.span("t1", 1, 20, parent=r, kind="CLIENT", db="postgresql", sql=ORDERS, scope="orm")
    b.span("t1", 2, 9, parent=w, kind="CLIENT", db="postgresql", sql=ORDERS, scope="pg")
    b.span("t1", 10, 19, parent=w, kind="CLIENT", db="postgresql", sql=ITEMS, scope="pg")
    assert _calls(b) == 2


def test_a_call_of_another_database_below_is_its_own_call() -> None:
    b = RunBuilder()
    r = _request(b)
    w = b.span("t1", 1, 20, parent=r, kind="CLIENT", db="postgresql", sql=ORDERS, scope="pg")
    b.span("t1", 2, 9, parent=w, kind="CLIENT", db="redis", sql="GET k", scope="redis")
    assert _calls(b) == 2


def test_a_call_deep_below_a_wrapper_counts_once() -> None:
    b = RunBuilder()
    r = _request(b)
    parent = b.span("t1", 1, 40, parent=r, kind="CLIENT", db="postgresql", sql=ORDERS)
    for k in range(30):
        parent = b.span("t1", 1 + k * 0.1, 40 - k * 0.1, parent=parent, name=f"layer {k}")
    b.span("t1", 5, 30, parent=parent, kind="CLIENT", db="postgresql", sql=ORDERS, scope="pg")
    assert _calls(b) == 1


def test_a_call_in_another_request_below_is_that_requests_own() -> None:
    # a database proxy traced as a service: its request, and its own call, hang below
    b = RunBuilder()
    r = _request(b)
    w = b.span("t1", 1, 20, parent=r, kind="CLIENT", db="postgresql", sql=ORDERS)
    proxy = b.span("t1", 2, 19, parent=w, kind="SERVER", route="/proxy", service="proxy")
    b.span("t1", 3, 18, parent=proxy, kind="CLIENT", db="postgresql", sql=ORDERS, service="proxy")
    store = b.build()
    run = Run(store, "r")
    try:
        calls = run.routes().set_index("route")["db_calls"].to_dict()
    finally:
        run.close()
        store.close()
    assert calls == {"svc /orders": 1, "proxy /proxy": 1}


def test_a_call_that_is_its_own_parent_does_not_hide_the_requests_calls() -> None:
    b = RunBuilder()
    r = _request(b)
    b.span("t1", 1, 5, parent=r, kind="CLIENT", db="postgresql", sql=ORDERS)
    b.span("t1", 6, 9, parent="loop", span_id="loop", kind="CLIENT", db="postgresql", sql=ITEMS)
    a = b.span(
        "t1", 10, 12, parent="cyc2", span_id="cyc1", kind="CLIENT", db="postgresql", sql=ITEMS
    )
    b.span("t1", 10, 12, parent=a, span_id="cyc2", kind="CLIENT", db="postgresql", sql=ITEMS)
    assert _calls(b) == 1
