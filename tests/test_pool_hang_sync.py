"""Queries that never returned on a synchronous server: a hang whose requests never end.

The runs are simulated as a WSGI service (Flask on waitress, SQLAlchemy's pool) shows one
in its spans: closed-loop users, a pool of five, first come first served. From ``HANG_MS``
on the database answers nothing: a request that takes a connection then waits in its
query for good. Its worker never returns, so its SERVER span never ends and is never
exported; what of it ended is, its ``connect`` checkout (whose parent, the request, is
missing from the trace). The load generator gives up on it and goes on; every later
checkout times out (a request answered 500 with a failed ``connect`` span), with no
query running anywhere: the pool's side of a leak.
"""

from __future__ import annotations

import heapq

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.pool_stalled import stalled_holds
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_leak import _server

CAPACITY, TIMEOUT_MS, GIVE_UP_MS = 5, 1000.0, 5000.0
HANG_MS, END_MS = 10_000.0, 30_000.0


def hung_service(b: RunBuilder, *, answers: bool = False, users: int = 8) -> int:
    """Write the run into ``b``; returns how many requests hung. ``answers``: from
    ``HANG_MS`` on, every fourth request answers and keeps its connection instead (a leak,
    for comparison)."""
    free = [0.0] * CAPACITY  # when each connection is next free (inf: held for good)
    arrivals = [(u * 13.0, u) for u in range(users)]
    heapq.heapify(arrivals)
    hung = n = 0
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= END_MS - 2 * TIMEOUT_MS:
            continue
        trace, n = b.new_id("t"), n + 1
        conn = min(range(CAPACITY), key=lambda i: free[i])
        acquired = max(t + 0.5, free[conn])
        if acquired > t + TIMEOUT_MS:
            end = t + TIMEOUT_MS + 2
            r = _server(b, trace, t, end, "GET", 500, "TimeoutError")
            b.connect(trace, r, t, t + TIMEOUT_MS, timeout=True)
        elif acquired >= HANG_MS and not answers:
            # the request's span never ends: only its checkout reaches the trace
            b.connect(trace, b.new_id("unended"), t, acquired)
            free[conn], end = float("inf"), t + GIVE_UP_MS
            hung += 1
        else:
            end = acquired + 150
            r = _server(b, trace, t, end, "GET", 200, None)
            b.connect(trace, r, t, acquired)
            b.query(trace, r, acquired, acquired + 50, "SELECT * FROM orders WHERE id = 1")
            if acquired >= HANG_MS and answers and n % 4 == 0:  # a leak: it answered
                free[conn] = float("inf")
                hung += 1
        heapq.heappush(arrivals, (end + 250, user))
    # the run's last moment: the load generator's last request ends then
    b.span("last", END_MS - 1, END_MS, kind="SERVER", route="/health", http_status=200)
    return hung


def test_requests_that_never_ended_are_a_hang_not_a_leak() -> None:
    b = RunBuilder()
    assert hung_service(b) == CAPACITY
    with open_run(b.build(), "r") as run:
        findings = pool_exhaustion(run)
    assert [f.kind for f in findings] == [FindingKind.POOL_EXHAUSTED]
    (f,) = findings
    assert f.title.startswith("Connection pool held by queries that never returned")
    hung = f.evidence["hung_requests"]
    assert hung["requests"] == hung["never_ended"] == CAPACITY
    assert hung["took_their_connection_before_the_first_failure"] == CAPACITY
    assert 10.0 <= hung["from_s"] <= hung["to_s"] <= 11.0
    # silent from their checkout to the run's end
    assert 18.0 <= hung["median_silence_s"] <= 20.0
    assert hung["routes"] == []
    assert "none of them ever ended: the run stopped with their workers still waiting" in (
        f.explanation
    )
    assert "requests themselves ended" not in f.explanation
    assert "a request that never ended counts as its checkout in a trace with no request" in (
        f.threshold
    )


def test_the_same_pool_emptied_by_requests_that_answered_is_a_leak() -> None:
    b = RunBuilder()
    assert hung_service(b, answers=True) == CAPACITY
    with open_run(b.build(), "r") as run:
        assert stalled_holds(run, "svc", 1000.0).requests == 0
        findings = pool_exhaustion(run)
    assert [f.kind for f in findings] == [FindingKind.POOL_LEAK]


def _quiet_run(b: RunBuilder) -> None:
    """Requests every 100 ms for 30 s, each with its checkout and query."""
    for i in range(300):
        t, trace = i * 100.0, b.new_id("t")
        r = b.request(trace, t, t + 60)
        b.connect(trace, r, t, t + 1)
        b.query(trace, r, t + 1, t + 51)


@pytest.mark.parametrize(
    "case",
    [
        "counted",
        # a checkout under a parent that ended: a background job's, in a root of its own
        "job_with_a_root",
        # a checkout that is itself the root: nothing above it was left running
        "root_checkout",
        # taken before the run's first request: the service starting
        "before_the_load",
        # something of its trace ended within the run's last second: still running
        "reported_at_the_end",
        # the checkout itself failed: no connection was held
        "failed",
    ],
)
def test_which_traces_without_a_request_count_as_requests_that_never_ended(case: str) -> None:
    b = RunBuilder()
    _quiet_run(b)
    at = -500.0 if case == "before_the_load" else 5_000.0
    trace = b.new_id("job")
    parent = b.new_id("unended")
    if case == "job_with_a_root":
        parent = b.span(trace, at, at + 100, name="nightly-report")
    b.connect(
        trace, parent if case != "root_checkout" else None,  # type: ignore[arg-type]
        at, at + 2, timeout=case == "failed",
    )  # fmt: skip
    if case == "reported_at_the_end":
        b.query(trace, parent, at + 2, 29_500)
    with open_run(b.build(), "r") as run:
        found = stalled_holds(run, "svc", 1000.0)
    assert (found.requests, found.unended) == ((1, 1) if case == "counted" else (0, 0))
    if case == "counted":
        assert found.traces == (trace,)
        # from its checkout's end to the run's last span's end
        assert found.silent_ns == int((30_000 - 40 - (at + 2)) * 1e6)


@pytest.mark.clickhouse
def test_clickhouse_reads_the_hang_as_duckdb_does(chdb: object) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    b = RunBuilder()
    hung_service(b)
    store = b.build()
    with open_run(store, "r") as run:
        local = [(f.kind, f.title, f.explanation, f.evidence) for f in pool_exhaustion(run)]
    there, _ = copied(store, chdb, "r")
    remote = [
        (f.kind, f.title, f.explanation, f.evidence) for f in pool_exhaustion(Run(there, "r"))
    ]  # type: ignore[arg-type]
    assert local and local[0][1].startswith("Connection pool held by queries")
    assert remote == local
