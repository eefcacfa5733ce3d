"""Requests split into pool, DB, downstream and app time, on small constructed traces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.analysis import open_run

from .builders import RunBuilder


def _one(b: RunBuilder) -> dict[str, float]:
    store = b.build()
    run = open_run(store, "r")
    frame = run.requests()
    assert len(frame) == 1
    row = frame.iloc[0].to_dict()
    run.close()
    store.close()
    return row


def test_sequential_parts_and_app_remainder() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.connect("t1", r, 5, 15)
    b.query("t1", r, 20, 50)
    b.span("t1", 60, 70, parent=r, kind="CLIENT", name="GET http://other")
    row = _one(b)
    assert row["pool_ms"] == pytest.approx(10)
    assert row["db_ms"] == pytest.approx(30)
    assert row["downstream_ms"] == pytest.approx(10)
    assert row["app_ms"] == pytest.approx(50)
    assert row["db_calls"] == 1 and row["connects"] == 1


def test_parallel_queries_count_once() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.query("t1", r, 10, 60, "SELECT a FROM x WHERE id = 1")
    b.query("t1", r, 30, 80, "SELECT b FROM y WHERE id = 2")
    row = _one(b)
    assert row["db_ms"] == pytest.approx(70)  # union of [10,60] and [30,80]
    assert row["app_ms"] == pytest.approx(30)


def test_pool_wait_wins_over_an_overlapping_query_and_db_over_downstream() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.connect("t1", r, 0, 40)
    b.query("t1", r, 30, 60)
    b.span("t1", 50, 90, parent=r, kind="CLIENT", name="GET http://other")
    row = _one(b)
    assert row["pool_ms"] == pytest.approx(40)
    assert row["db_ms"] == pytest.approx(20)  # 40..60
    assert row["downstream_ms"] == pytest.approx(30)  # 60..90
    assert row["app_ms"] == pytest.approx(10)


def test_queries_under_nested_internal_spans_belong_to_the_request() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    mid = b.span("t1", 5, 95, parent=r, name="handler")
    inner = b.span("t1", 10, 90, parent=mid, name="service")
    b.query("t1", inner, 20, 40)
    row = _one(b)
    assert row["db_ms"] == pytest.approx(20)
    assert row["app_ms"] == pytest.approx(80)


def test_a_child_server_span_is_its_own_request_and_the_caller_sees_downstream_time() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100, "/front")
    call = b.span("t1", 10, 90, parent=r, kind="CLIENT", name="GET http://back")
    back = b.request("t1", 15, 85, "/back")
    b.query("t1", back, 20, 80)
    store = b.build()
    frame = open_run(store, "r").requests().set_index("route")
    assert frame.loc["/front", "downstream_ms"] == pytest.approx(80)
    assert frame.loc["/front", "db_ms"] == 0
    assert frame.loc["/back", "db_ms"] == pytest.approx(60)
    assert call


def test_missing_parent_attaches_to_the_request_containing_it() -> None:
    b = RunBuilder()
    b.request("t1", 0, 100, "/a")
    b.request("t1", 200, 300, "/b")
    lost = b.span("t1", 210, 290, parent="gone", name="handler")
    b.query("t1", lost, 220, 260)
    store = b.build()
    run = open_run(store, "r")
    frame = run.requests().set_index("route")
    assert frame.loc["/b", "db_ms"] == pytest.approx(40)
    assert frame.loc["/a", "db_ms"] == 0
    assert run.unattributed_spans == 0


def test_spans_of_a_trace_without_server_span_are_counted_unattributed() -> None:
    b = RunBuilder()
    b.request("t1", 0, 100)
    b.span("t2", 0, 10, name="cron job")
    b.query("t2", "s-none", 1, 5)
    run = open_run(b.build(), "r")
    assert run.unattributed_spans == 2


def test_clock_skewed_children_are_clipped_to_their_request() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.query("t1", r, -50, 30)  # starts before the request (skew)
    b.query("t1", r, 90, 400)  # ends long after it
    row = _one(b)
    assert row["db_ms"] == pytest.approx(40)
    assert row["app_ms"] == pytest.approx(60)


def test_a_parent_cycle_terminates() -> None:
    b = RunBuilder()
    b.request("t1", 0, 100)
    b.span("t1", 10, 20, parent="x2", span_id="x1")
    b.span("t1", 10, 20, parent="x1", span_id="x2")
    run = open_run(b.build(), "r")
    assert len(run.requests()) == 1


def test_fingerprint_shares_split_db_time() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.query("t1", r, 0, 30, "SELECT * FROM a WHERE id = 1")
    b.query("t1", r, 30, 40, "SELECT * FROM a WHERE id = 2")
    b.query("t1", r, 40, 60, "SELECT * FROM b")
    store = b.build()
    run = open_run(store, "r")
    q = run.con.execute(
        f"SELECT calls, db_ms FROM {run.table('request_queries')} ORDER BY calls DESC"
    ).fetchall()
    assert q == [(2, pytest.approx(40)), (1, pytest.approx(20))]


intervals = st.lists(
    st.tuples(
        st.sampled_from(["pool", "db", "down", "internal"]),
        st.integers(-50, 150),
        st.integers(0, 120),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(intervals)
def test_parts_never_exceed_the_whole(children: list[tuple[str, int, int]]) -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    parent = r
    for i, (what, start, length) in enumerate(children):
        end = start + length
        if what == "pool":
            b.connect("t1", parent, start, end)
        elif what == "db":
            b.query("t1", parent, start, end, f"SELECT {i} FROM t")
        elif what == "down":
            b.span("t1", start, end, parent=parent, kind="CLIENT", name="GET http://x")
        else:
            parent = b.span("t1", start, end, parent=r, name="step")
    row = _one(b)
    parts = [row["pool_ms"], row["db_ms"], row["downstream_ms"], row["app_ms"]]
    assert all(p >= 0 for p in parts)
    assert sum(parts) == pytest.approx(row["duration_ms"])


def test_open_run_by_path_and_single_run_default(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.duckdb"
    b = RunBuilder(name="only")
    b.request("t1", 0, 10)
    b.build(correlate.open_store(path)).close()
    with open_run(path) as run:
        assert run.name == "only"
        assert len(run.requests()) == 1


def test_routes_are_named_with_their_service_when_several_serve() -> None:
    b = RunBuilder()
    b.span("t1", 0, 10, kind="SERVER", route="/health", service="cart")
    b.span("t2", 0, 10, kind="SERVER", route="/health", service="orders")
    run = open_run(b.build(), "r")
    assert sorted(run.requests().route) == ["cart /health", "orders /health"]
    one = RunBuilder()
    one.span("t1", 0, 10, kind="SERVER", route="/health", service="cart")
    assert list(open_run(one.build(), "r").requests().route) == ["/health"]


def test_a_database_call_without_statement_is_database_time() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100)
    b.span("t1", 5, 95, parent=r, kind="CLIENT", name="GET", db="redis")
    store = b.build()
    with open_run(store, "r") as run:
        (row,) = run.requests().itertuples()
        assert (row.db_ms, row.app_ms) == (pytest.approx(90), pytest.approx(10))
        assert list(run.queries().fingerprint) == ["redis GET"]


def test_a_span_ending_before_it_starts_lasts_nothing() -> None:
    b = RunBuilder()
    r = b.request("t1", 50, 40)
    b.query("t1", r, 45, 42)
    (row,) = open_run(b.build(), "r").requests().itertuples()
    assert (row.duration_ms, row.db_ms, row.app_ms) == (0, 0, 0)


def test_a_route_given_without_its_leading_slash_is_the_same_route() -> None:
    # Django's instrumentation sets http.route to the URL pattern's route, "orders/<int:pk>/"
    b = RunBuilder()
    b.request("t1", 0, 10, route="orders/<int:pk>/")
    b.request("t2", 0, 10, route="/orders/<int:pk>/")
    b.request("t3", 0, 10, route="health")
    assert sorted(open_run(b.build(), "r").requests().route) == [
        "/orders/<int:pk>/",
        "/orders/<int:pk>/",
        "health",
    ]
