"""The database stopped answering, told from a pool that leaked dry (detectors/stall.py).

Both runs are simulated as a Node service shows them in its spans: closed-loop users, a
pool of five that lends a connection per statement (``pg-pool.connect`` then the query), no
checkout timeout (a checkout waits for good and its span never ends), and a client that
gives up on a request after ``GIVE_UP_MS``, which ends the request's span with status 200.
From ``FROM_MS`` on either the database answers nothing (a call started then never ends)
or every fourth request keeps its connection after answering (a leak). Either way no query
ends once the pool is out; only in the first were calls in flight when the silence began.
"""

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

CAPACITY, GIVE_UP_MS, FROM_MS, END_MS = 5, 4000.0, 10_000.0, 30_000.0


def service(
    b: RunBuilder,
    *,
    hang: bool,
    checkouts: bool = True,
    cancelled_at: float | None = None,
    never_ended: bool = False,
) -> None:
    """``checkouts``: the pool spans each checkout; ``cancelled_at``: the calls the database
    never answered end then (a server that cancels them as it shuts down), else never;
    ``never_ended``: nor do their requests (a server stopped with them waiting), of which
    only a first call that was answered is exported."""
    free = [0.0] * CAPACITY  # when each connection is next free (inf: held for good)
    arrivals = [(u * 13.0, u) for u in range(8)]
    heapq.heapify(arrivals)
    n = 0
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= END_MS - GIVE_UP_MS:
            continue
        trace, n = b.new_id("t"), n + 1
        conn = min(range(CAPACITY), key=lambda i: free[i])
        acquired = max(t + 0.5, free[conn])
        if acquired > t + GIVE_UP_MS:  # still waiting when its client gives up
            end = t + GIVE_UP_MS
            _server(b, trace, t, end, "GET", 200, None)
        elif hang and acquired >= FROM_MS and never_ended:  # nor does its request
            end = t + GIVE_UP_MS  # when its client gives up
            b.query(trace, b.new_id(), acquired - 2, acquired - 1, "BEGIN")
            free[conn] = float("inf")
        elif hang and acquired >= FROM_MS:  # its query never returns
            end = t + GIVE_UP_MS
            r = _server(b, trace, t, end, "GET", 200, None)
            if checkouts:
                b.connect(trace, r, t, acquired)
            if cancelled_at is not None:
                b.query(trace, r, acquired + 1, cancelled_at, "SELECT * FROM orders WHERE id = 1")
            free[conn] = float("inf")
        else:
            end = acquired + 60
            r = _server(b, trace, t, end, "GET", 200, None)
            if checkouts:
                b.connect(trace, r, t, acquired)
            b.query(trace, r, acquired + 1, acquired + 50, "SELECT * FROM orders WHERE id = 1")
            free[conn] = end
            if not hang and acquired >= FROM_MS and n % 4 == 0:  # it answered, and kept it
                free[conn] = float("inf")
        heapq.heappush(arrivals, (end + 20, user))


def test_a_database_that_stops_answering_is_a_stall() -> None:
    b = RunBuilder()
    service(b, hang=True)
    with open_run(b.build(), "r") as run:
        (f,) = database_stall(run)
    assert f.kind == FindingKind.DATABASE_STALL and f.severity == "critical"
    assert f.title == (
        "The database stopped answering at 10 s: no query of svc ended until the run's end"
    )
    assert 9.9 <= f.evidence["from_s"] <= 10.1
    assert f.evidence["calls_in_flight"] == CAPACITY
    assert f.evidence["requests_failed"] == 0  # nothing failed: every request waited
    assert "until its client gave up (none failed)." in f.explanation
    assert "0 did" not in f.explanation and f.explanation.startswith("Before 10 s svc had ")


def test_a_pool_that_leaked_dry_is_no_stall() -> None:
    # the same silence once the pool is out, but every request in it waits for a
    # connection: none has a call in flight, so the database was not what stopped
    b = RunBuilder()
    service(b, hang=False)
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


def test_calls_that_ended_only_when_cancelled_are_in_flight_with_no_checkout_span() -> None:
    # no pool span at all (asyncpg under SQLAlchemy): the calls the database never answered
    # end when the server shuts down and cancels them, their spans running through the
    # silence — the calls in flight a checkout span would otherwise show
    b = RunBuilder()
    service(b, hang=True, checkouts=False, cancelled_at=END_MS)
    with open_run(b.build(), "r") as run:
        (f,) = database_stall(run)
    assert 9.9 <= f.evidence["from_s"] <= 10.1
    assert f.evidence["calls_in_flight"] == CAPACITY
    assert "none of those calls was ever answered" in f.explanation


def test_requests_that_never_ended_are_in_flight_with_no_checkout_span() -> None:
    # no pool span, and the requests whose calls the database never answered never ended
    # either: only their first call, answered, was exported, in a trace with no request,
    # under a parent (the request) that never ended
    b = RunBuilder()
    service(b, hang=True, checkouts=False, never_ended=True)
    with open_run(b.build(), "r") as run:
        (f,) = database_stall(run)
    assert 9.9 <= f.evidence["from_s"] <= 10.1
    assert f.evidence["calls_in_flight"] == CAPACITY


def test_a_pool_with_no_checkout_span_that_leaked_dry_is_no_stall() -> None:
    b = RunBuilder()
    service(b, hang=False, checkouts=False)
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


def test_a_slow_database_that_answers_is_no_stall() -> None:
    b = RunBuilder()
    for i in range(200):
        trace, t = b.new_id("t"), i * 100.0
        r = _server(b, trace, t, t + 80, "GET", 200, None)
        b.connect(trace, r, t, t + 1)
        b.query(trace, r, t + 2, t + 70, "SELECT * FROM orders WHERE id = 1")
    # one request's query takes 3 s while the others go on being answered
    trace = b.new_id("t")
    r = _server(b, trace, 5000.0, 8100.0, "GET", 200, None)
    b.connect(trace, r, 5000.0, 5001.0)
    b.query(trace, r, 5002.0, 8050.0, "SELECT pg_sleep(3)")
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


@pytest.mark.clickhouse
@pytest.mark.parametrize(
    ("hang", "never_ended"),
    [(True, False), (True, True), (False, False)],
    ids=["stall", "never-ended", "leak"],
)
def test_clickhouse_finds_the_stall_as_duckdb_does(
    chdb: object, hang: bool, never_ended: bool
) -> None:
    b = RunBuilder()
    service(b, hang=hang, checkouts=not never_ended, never_ended=never_ended)
    assert bool(stalls_alike(b, chdb)) == hang


def stalls_alike(b: RunBuilder, chdb: object) -> list[tuple[str, str, dict[str, object]]]:
    """The stalls of ``b``'s run (title, explanation, evidence), once they are the same
    from ClickHouse as from DuckDB."""
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = b.build()
    with open_run(store, "r") as run:
        local = [(f.title, f.explanation, f.evidence) for f in database_stall(run)]
    there, _ = copied(store, chdb, "r")
    remote = [(f.title, f.explanation, f.evidence) for f in database_stall(Run(there, "r"))]  # type: ignore[arg-type]
    assert remote == local
    return local


def test_a_pause_between_stages_does_not_hide_a_stall_after_it() -> None:
    # a first stage, then half a minute with no requests at all (a wider gap than the
    # stall, but nobody ran in it), then the stage in which the database stops
    b = RunBuilder()
    for i in range(100):
        trace, t = b.new_id("t"), -60_000.0 + i * 100
        r = _server(b, trace, t, t + 60, "GET", 200, None)
        b.connect(trace, r, t, t + 1)
        b.query(trace, r, t + 2, t + 50, "SELECT * FROM orders WHERE id = 1")
    service(b, hang=True)
    with open_run(b.build(), "r") as run:
        (f,) = database_stall(run)
    assert 69.9 <= f.evidence["from_s"] <= 70.1


def test_a_slow_service_called_while_holding_a_connection_is_no_stall() -> None:
    # every request takes a connection, then calls another service that takes 5 s from
    # 10 s on: the pool of five runs out and no query ends for seconds, but each call
    # that held a connection reported back
    b = RunBuilder()
    free = [0.0] * CAPACITY
    for i in range(400):
        trace, t = b.new_id("t"), i * 50.0
        conn = min(range(CAPACITY), key=lambda k: free[k])
        acquired = max(t + 0.5, free[conn])
        if acquired > t + GIVE_UP_MS:
            _server(b, trace, t, t + GIVE_UP_MS, "GET", 200, None)
            continue
        slow = 5000.0 if acquired >= FROM_MS else 5.0
        r = _server(b, trace, t, acquired + slow + 60, "GET", 200, None)
        b.connect(trace, r, t, acquired)
        b.span(trace, acquired + 1, acquired + 1 + slow, parent=r, kind="CLIENT")
        b.query(trace, r, acquired + 2 + slow, acquired + 50 + slow, "SELECT 1")
        free[conn] = acquired + slow + 60
    with open_run(b.build(), "r") as run:
        assert database_stall(run) == []


def _said(kind: FindingKind, title: str, **evidence: object) -> Finding:
    return Finding(kind, "critical", title, "", "", "", "", evidence=dict(evidence))


@pytest.mark.parametrize("pool_service", ["orders", "payments"])
def test_the_stall_is_info_only_beside_its_own_services_pool_hang(pool_service: str) -> None:
    stall = _said(FindingKind.DATABASE_STALL, "stopped", service="orders")
    hang = _said(
        FindingKind.POOL_EXHAUSTED,
        "held",
        hung_requests={},
        checkout_spans={"service": pool_service},
    )
    (seen,) = [f for f in reconcile([stall, hang]) if f.kind == FindingKind.DATABASE_STALL]
    assert seen.severity == ("info" if pool_service == "orders" else "critical")


def test_the_rate_before_counts_from_the_services_first_call() -> None:
    # another service ran for a minute before this one had its first call
    b = RunBuilder()
    for i in range(60):
        b.request(b.new_id("t"), -60_000.0 + i * 1000, -60_000.0 + i * 1000 + 5, service="gw")
    service(b, hang=True)
    with open_run(b.build(), "r") as run:
        (f,) = database_stall(run)
    seconds = f.evidence["from_s"] - 60  # the service's first call came at 60 s
    assert f.evidence["calls_per_second_before"] == pytest.approx(
        f.evidence["calls_before"] / seconds, rel=0.01
    )
    assert f"({round(f.evidence['calls_per_second_before'])} a second" in f.explanation


@pytest.mark.parametrize(
    "told_by", [None, "checkout_spans", "leak_suspects", "leaks", "pool_samples"]
)
def test_a_leak_told_by_waits_alone_beside_a_stall_is_the_hang(told_by: str | None) -> None:
    # checkouts that timed out and a wait that never recovered, with no checkout span,
    # holder or suspect: the stall's calls held the connections
    stall = _said(FindingKind.DATABASE_STALL, "The database stopped answering", service="svc")
    evidence: dict[str, object] = {"pool_wait_ms": 4000.0, "requests_without_a_connection": 2}
    if told_by is not None:
        evidence[told_by] = {"service": "svc"}
    leak = _said(FindingKind.POOL_LEAK, "Connection-pool leak", **evidence)
    (pool,) = [f for f in reconcile([stall, leak]) if f.kind in POOL_KINDS]
    if told_by is None:
        assert pool.kind == FindingKind.POOL_EXHAUSTED and pool.severity == "critical"
        assert pool.title.startswith("Connection pool held by queries that never returned")
        assert pool.evidence["cause"] == FindingKind.DATABASE_STALL
        assert pool.explanation.startswith(
            "Requests spent 4.00 s waiting for a database connection, and 2 found none to take."
        )
        assert "“The database stopped answering”" in pool.explanation
    else:  # the leak has evidence of its own
        assert pool.kind == FindingKind.POOL_LEAK and pool.title == "Connection-pool leak"


@pytest.mark.parametrize("pool_service", ["svc", "payments"])
def test_a_pool_that_could_not_tell_beside_its_services_stall_is_the_hang(
    pool_service: str,
) -> None:
    stall = _said(FindingKind.DATABASE_STALL, "The database stopped answering", service="svc")
    undecided = _said(
        FindingKind.POOL_EXHAUSTED,
        "Connection pool exhausted: leak or saturation cannot be told apart",
        checkout_spans={"service": pool_service, "verdict": "undecided"},
    )
    (pool,) = [f for f in reconcile([stall, undecided]) if f.kind in POOL_KINDS]
    if pool_service == "svc":
        assert pool.title.startswith("Connection pool held by queries that never returned")
        assert pool.evidence["cause"] == FindingKind.DATABASE_STALL
    else:  # another service's pool: not this stall's doing
        assert pool.title == undecided.title and "cause" not in pool.evidence
