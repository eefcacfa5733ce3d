"""Edges of ``database_stall`` and of its rewrite of a pool finding (verdict._defer_to_stall)."""

from __future__ import annotations

import heapq

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors.stall import database_stall
from correlate.analysis.findings import Finding
from correlate.analysis.verdict import POOL_KINDS, reconcile
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_leak import _server
from .test_pool_errors import PSYCOPG2, _request
from .test_stall import END_MS, service, stalls_alike


def leaking_with_reports(b: RunBuilder) -> None:
    """A psycopg2 pool of eight (no checkout span; a request finding none fails at once with
    the pool's error) that every 40th request leaks a connection from (POST answering 409);
    three users ask for a report (a 3 s query) as the fifth leaks."""
    free = [0.0] * 8
    arrivals = [(u * 7.0, u) for u in range(12)]
    heapq.heapify(arrivals)
    n, leaked, reported = 0, 0, 0
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= 40_000:
            continue
        n, trace = n + 1, b.new_id("t")
        report = leaked >= 5 and reported < 3
        conn = next((i for i, at in enumerate(free) if at <= t + 0.5), None)
        if conn is None:
            end = t + 2
            _request(b, trace, t, end, "GET", 500, said=PSYCOPG2, raised_at=t + 1)
        elif report:
            reported += 1
            end = t + 3050
            r = _request(b, trace, t, end, "GET", 200)
            b.query(
                trace, r, t + 0.5, t + 3020.5, "SELECT region, sum(total) FROM orders GROUP BY 1"
            )
            free[conn] = end
        else:
            status = 409 if n % 40 == 0 else 200
            end = t + 50.5
            r = _request(b, trace, t, end, "POST" if status == 409 else "GET", status)
            b.query(trace, r, t + 0.5, t + 20.5, "SELECT * FROM orders WHERE id = 1")
            free[conn] = float("inf") if status == 409 else end
            leaked += status == 409
        heapq.heappush(arrivals, (end + 50, user))


def test_a_leak_with_a_slow_report_is_still_a_leak() -> None:
    # the three reports hold the last three connections for 3 s: no other query can run,
    # none ends, and the reports' spans run through the silence; but they were answered
    b = RunBuilder()
    leaking_with_reports(b)
    with open_run(b.build(), "r") as run:
        stalls = database_stall(run)
        every = reconcile(run.findings())
    assert stalls == []
    (pool,) = [f for f in every if f.kind in POOL_KINDS]
    assert pool.kind == FindingKind.POOL_LEAK


def quick_queries_for_a_minute() -> RunBuilder:
    """A run with a quick query a second for a minute."""
    b = RunBuilder()
    for i in range(60):
        trace, t = b.new_id("t"), i * 1000.0
        r = _server(b, trace, t, t + 30, "GET", 200, None)
        b.query(trace, r, t + 1, t + 21, "SELECT * FROM orders WHERE id = 1")
    return b


def test_long_analytic_queries_at_low_traffic_are_no_stall() -> None:
    # a quick query a second for a minute, then a batch starts three 5 s analytic queries
    # at once while the quick ones go on every 3 s; pages with no query keep 20 requests
    # running: no call ends for seconds, three spans run through it, and all answered
    b = quick_queries_for_a_minute()
    for k in range(3):
        trace, t = b.new_id("t"), 60_000.0 + k
        r = _server(b, trace, t, t + 5100, "POST", 200, None)
        b.query(trace, r, t + 1, t + 5001, "SELECT customer, sum(total) FROM orders GROUP BY 1")
    for i in range(10):
        trace, t = b.new_id("t"), 59_500.0 + i * 3000
        r = _server(b, trace, t, t + 30, "GET", 200, None)
        b.query(trace, r, t + 1, t + 21, "SELECT * FROM orders WHERE id = 1")
    for i in range(900):
        b.request(b.new_id("t"), 57_000.0 + i * 50, 57_000.0 + i * 50 + 1000)
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


def lost_requests_then_a_lull(b: RunBuilder) -> None:
    """A query every half second; from 30 s to 33.5 s the requests call a slow service and
    run none; and three requests at 5 s whose own spans were lost (the exporter dropped
    them): their queries are in traces with no request, under a parent that is not."""
    for i in range(120):
        t = i * 500.0
        if not 30_000 <= t < 33_500:
            trace = b.new_id("t")
            r = _server(b, trace, t, t + 30, "GET", 200, None)
            b.query(trace, r, t + 1, t + 21, "SELECT * FROM orders WHERE id = 1")
    for i in range(30):
        trace, t = b.new_id("t"), 30_000.0 + i * 100
        r = _server(b, trace, t, t + 1500, "GET", 200, None)
        b.span(trace, t + 1, t + 1490, parent=r, kind="CLIENT")
    for k in range(3):
        b.query(b.new_id("t"), b.new_id(), 5000.0 + k * 100, 5020.0 + k * 100, "SELECT 1")


def test_requests_whose_spans_were_lost_long_before_a_lull_are_not_in_flight() -> None:
    # their calls were answered 25 s before the lull: they are not requests that hung in it
    b = RunBuilder()
    lost_requests_then_a_lull(b)
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


def _said(kind: FindingKind, title: str, **evidence: object) -> Finding:
    return Finding(kind, "critical", title, "", "", "", "", evidence=dict(evidence))


def test_each_services_stall_is_info_beside_its_own_pool_hang() -> None:
    stalls = [_said(FindingKind.DATABASE_STALL, f"{s} stopped", service=s) for s in ("a", "b")]
    hangs = [
        _said(
            FindingKind.POOL_EXHAUSTED, f"{s} held", hung_requests={}, checkout_spans={"service": s}
        )
        for s in ("a", "b")
    ]
    seen = {f.title: f for f in reconcile([*stalls, *hangs])}
    assert seen["a stopped"].severity == seen["b stopped"].severity == "info"
    assert seen["b stopped"].evidence["cause"] == FindingKind.POOL_EXHAUSTED


def test_an_undecided_pool_of_the_second_stalled_service_is_its_hang() -> None:
    stalls = [_said(FindingKind.DATABASE_STALL, f"{s} stopped", service=s) for s in ("a", "b")]
    undecided = _said(
        FindingKind.POOL_EXHAUSTED,
        "Connection pool exhausted: leak or saturation cannot be told apart",
        checkout_spans={"service": "b", "verdict": "undecided"},
        pool_wait_ms=2500.0,
    )
    (pool,) = [f for f in reconcile([*stalls, undecided]) if f.kind in POOL_KINDS]
    assert pool.title.startswith("Connection pool held by queries that never returned")
    assert "“b stopped”" in pool.explanation


def test_the_hang_says_nothing_of_failed_checkouts_when_none_failed() -> None:
    # a pool with no checkout timeout that could not tell: nobody failed to get one
    stall = _said(FindingKind.DATABASE_STALL, "The database stopped answering", service="svc")
    undecided = _said(
        FindingKind.POOL_EXHAUSTED,
        "Connection pool exhausted: leak or saturation cannot be told apart",
        checkout_spans={"service": "svc", "verdict": "undecided"},
        pool_wait_ms=2500.0,
        requests_without_a_connection=0,
    )
    (pool,) = [f for f in reconcile([stall, undecided]) if f.kind in POOL_KINDS]
    assert pool.explanation.startswith(
        "Requests spent 2.50 s waiting for a database connection. The pool's connections"
    )
    assert "0 found" not in pool.explanation and "None" not in pool.explanation


@pytest.mark.clickhouse
@pytest.mark.parametrize("case", ["cancelled", "reports", "lost"])
def test_clickhouse_tells_cancelled_calls_from_answered_ones_as_duckdb_does(
    chdb: object, case: str
) -> None:
    b = RunBuilder()
    if case == "cancelled":
        service(b, hang=True, checkouts=False, cancelled_at=END_MS)
    elif case == "reports":
        leaking_with_reports(b)
    else:
        lost_requests_then_a_lull(b)
    assert bool(stalls_alike(b, chdb)) == (case == "cancelled")


@pytest.mark.xfail(
    strict=True,
    reason="slow queries answered as the run ends, with no call of the service begun after "
    "them, look like calls a shutting-down server cancelled (asyncpg's spans end then, with "
    "no error status): nothing in their spans tells the two apart",
)
def test_slow_queries_answered_as_the_run_ends_are_no_stall() -> None:
    # a quick query a second for a minute; the last three requests run a 5 s report each,
    # answered at the end, while pages with no query keep requests running
    b = quick_queries_for_a_minute()
    for k in range(3):
        trace, t = b.new_id("t"), 57_000.0 + k * 7
        r = _server(b, trace, t, t + 5100, "POST", 200, None)
        b.query(trace, r, t + 1, t + 5001 + k * 40, "SELECT customer, sum(total) FROM orders")
    for i in range(200):
        b.request(b.new_id("t"), 57_000.0 + i * 10, 57_000.0 + i * 10 + 1000)
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


@pytest.mark.xfail(
    strict=True,
    reason="a leak told by the waits alone (no checkout span, holder or suspect) names no "
    "service, so beside another service's stall it is taken for that stall's hang",
)
def test_a_leak_of_another_service_is_not_a_stalls_hang() -> None:
    stall = _said(FindingKind.DATABASE_STALL, "orders stopped", service="orders")
    leak = _said(
        FindingKind.POOL_LEAK,
        "Connection-pool leak",
        pool_wait_ms=4000.0,
        wait_ms_per_request_by_route={"POST /pay": 900.0},
        no_recovery={"from_s": 10.0},
    )
    (pool,) = [f for f in reconcile([stall, leak]) if f.kind in POOL_KINDS]
    assert pool.kind == FindingKind.POOL_LEAK
