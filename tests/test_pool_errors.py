"""Pools that make no checkout span, read from the error they fail a request with.

psycopg2's pool fails at once ("connection pool exhausted"); psycopg's blocks, then
raises ``PoolTimeout``. Neither makes a span for the checkout: the web framework's
instrumentation records the exception on the request. The runs here are simulated with
those rules (closed-loop users, a fixed pool, first come first served) and shaped as
opentelemetry-instrumentation-flask and -psycopg2 emit them: a SERVER span per request
with the exception as an event, a CLIENT span per query, and no ``connect`` span.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_errors import PATTERN, SIGNATURES, pool_of
from correlate.analysis.pool_inference import infer
from correlate.kinds import FindingKind

from .builders import RunBuilder, ns
from .test_leak import Service, _server, analysed, on_conflict, simulate

PSYCOPG2 = ("psycopg2.pool.PoolError", "connection pool exhausted")
PSYCOPG3 = ("psycopg_pool.PoolTimeout", "couldn't get a connection after 1.00 sec")

#: Each pool's words, as its own code writes them (the sources in pool_errors.SIGNATURES).
SAID = {
    "psycopg2": "psycopg2.pool.PoolError: connection pool exhausted",
    "psycopg_pool": "psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec",
    "sqlalchemy": "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
    "connection timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
    "hikaricp": "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not "
    "available, request timed out after 30000ms.",
    "dbcp": "java.sql.SQLException: Cannot get a connection, pool error Timeout waiting for idle "
    "object",
    "pg-pool": "Error: timeout exceeded when trying to connect",
    "generic-pool": "TimeoutError: ResourceRequest timed out",
    "sequelize": "SequelizeConnectionAcquireTimeoutError: Operation timeout",
    "knex": "KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. "
    "Are you missing a .transacting(trx) call?",
    "prisma": "PrismaClientKnownRequestError: Timed out fetching a new connection from the "
    "connection pool. (Current connection pool timeout: 10, connection limit: 5)",
    "npgsql": "Npgsql.NpgsqlException: The connection pool has been exhausted, either raise "
    "'Max Pool Size' (currently 100) or 'Timeout' (currently 15 seconds) in your connection string.",
    "sqlclient": "System.InvalidOperationException: Timeout expired.  The timeout period elapsed "
    "prior to obtaining a connection from the pool.",
    "mysqlconnector": "MySqlConnector.MySqlException: Connect Timeout expired. All pooled "
    "connections are in use.",
    "activerecord": "ActiveRecord::ConnectionTimeoutError: could not obtain a connection from the "
    "pool within 5.000 seconds (waited 5.000 seconds); all pooled connections were in use",
}

#: Errors near a pool's that are not it running dry.
NOT_SAID = (
    'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: '
    "Connection refused",
    "psycopg2.OperationalError: FATAL:  sorry, too many clients already",
    "FATAL: remaining connection slots are reserved for non-replication superuser connections",
    "psycopg2.pool.PoolError: connection pool is closed",
    "psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint",
    "TimeoutError: timed out",
    "requests.exceptions.ReadTimeout: HTTPConnectionPool(host='pay', port=80): Read timed out.",
    "urllib3.exceptions.MaxRetryError: HTTPConnectionPool(host='x', port=80): Max retries exceeded",
    # an HTTP client's pool, and a Redis client's on commons-pool: not the database's
    "httpx.PoolTimeout: timed out",
    "redis.clients.jedis.exceptions.JedisExhaustedPoolException: Could not get a resource since "
    "the pool is exhausted",
    "java.util.NoSuchElementException: Timeout waiting for idle object",
)


@pytest.mark.parametrize("name", SAID)
def test_each_pool_is_known_by_its_own_words(name: str) -> None:
    assert pool_of(SAID[name]) is not None


@pytest.mark.parametrize("text", NOT_SAID)
def test_other_errors_are_not_a_pool_running_dry(text: str) -> None:
    assert pool_of(text) is None


def test_every_signature_has_an_example_and_a_public_source() -> None:
    matched = {pool_of(text) for text in SAID.values()}
    assert matched == {s.pool for s in SIGNATURES}
    assert all(s.source.startswith("https://") for s in SIGNATURES)


@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda pre, said, post: pre + said + post,
            st.text(max_size=20),
            st.sampled_from([*SAID.values(), *NOT_SAID]),
            st.text(max_size=20),
        ),
    )
)
def test_the_sql_pattern_and_python_agree(text: str) -> None:
    # a connection of its own, every row fetched: the module's default connection is shared
    with duckdb.connect() as con:
        ((matched,),) = con.execute(
            "SELECT regexp_matches(lower($t), $p)", {"t": text, "p": PATTERN}
        ).fetchall()
    assert matched == (pool_of(text) is not None)


def fail_fast(
    b: RunBuilder,
    *,
    capacity: int = 8,
    users: Callable[[float], int] = lambda t: 12,
    seconds: float = 60,
    leaks: Callable[[int, int], bool] = lambda n, status: False,
    said: tuple[str, str] = PSYCOPG2,
) -> dict[str, int]:
    """A psycopg2 pool: a request finding every connection taken fails at once (500)."""
    free = [0.0] * capacity  # when each connection is next free (inf: leaked)
    arrivals = [(u * 7.0, u) for u in range(max(users(s * 1000.0) for s in range(int(seconds))))]
    heapq.heapify(arrivals)
    count = {"requests": 0, "failed": 0, "leaked": 0}
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= seconds * 1000:
            continue
        if user >= users(t):
            heapq.heappush(arrivals, (t + 100, user))
            continue
        n = count["requests"] = count["requests"] + 1
        method, status = ("POST", 409) if n % 40 == 0 else ("GET", 200)
        trace = b.new_id("t")
        conn = next((i for i, at in enumerate(free) if at <= t + 0.5), None)
        if conn is None:
            end = t + 2
            _request(b, trace, t, end, method, 500, said=said, raised_at=t + 1)
            count["failed"] += 1
        else:
            end = t + 0.5 + 20 + 30
            r = _request(b, trace, t, end, method, status)
            b.query(trace, r, t + 0.5, t + 20.5, "SELECT * FROM orders WHERE id = 1")
            leaked = leaks(n, status)
            free[conn] = float("inf") if leaked else end
            count["leaked"] += leaked
        heapq.heappush(arrivals, (end + 50, user))
    return count


def _request(
    b: RunBuilder,
    trace: str,
    start: float,
    end: float,
    method: str,
    status: int,
    *,
    said: tuple[str, str] | None = None,
    raised_at: float | None = None,
) -> str:
    sid = _server(b, trace, start, end, method, status, None)
    if said is not None and raised_at is not None:
        attributes = {"exception.type": said[0], "exception.message": said[1]}
        b.spans[-1]["events"] = [
            {"time_ns": ns(raised_at), "name": "exception", "attributes": json.dumps(attributes)}
        ]
    return sid


def without_checkout_spans(b: RunBuilder, said: tuple[str, str]) -> RunBuilder:
    """``b`` as a pool that makes no checkout span shows it: the failed checkouts' timeout
    as the pool's own error on the request."""
    b.spans = [span for span in b.spans if span["name"] != "connect"]
    for span in b.spans:
        for event in span["events"]:
            if event["name"] == "exception":
                event["attributes"] = json.dumps(
                    {"exception.type": said[0], "exception.message": said[1]}
                )
    return b


def test_a_leak_behind_a_pool_that_fails_at_once_is_named() -> None:
    b = RunBuilder()
    count = fail_fast(b, leaks=lambda n, status: status == 409)
    assert count["leaked"] >= 5 and count["failed"] >= 100
    (f,), (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "leak"
    assert f.kind == FindingKind.POOL_LEAK and f.severity == "critical"
    assert "POST /orders that answered 409" in f.title
    assert inf.culprit is not None and inf.culprit.p_value < 0.01
    assert "found no connection to take from the pool" in f.explanation
    assert "psycopg2.pool.PoolError: connection pool exhausted" in f.explanation
    assert f.evidence["requests_without_a_connection"] == count["failed"]
    assert f.evidence["pool_error_of"].startswith("psycopg2")


def test_saturation_behind_a_pool_that_fails_at_once_is_no_leak() -> None:
    b = RunBuilder()
    count = fail_fast(b, capacity=5, users=lambda t: 14)
    assert count["failed"] >= 100 and count["leaked"] == 0
    (f,), (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "saturation"
    assert f.kind == FindingKind.POOL_SATURATION
    assert inf.capacity_first == inf.capacity_last == 5
    assert "found no connection to take from the pool" in f.explanation


def test_a_leak_behind_a_pool_that_blocks_then_times_out_is_named() -> None:
    b = without_checkout_spans(_blocking_leak(), PSYCOPG3)
    (f,), (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "leak"
    assert f.kind == FindingKind.POOL_LEAK
    assert "psycopg_pool.PoolTimeout" in f.explanation
    # the blocked time is the pool's, not the application's
    with open_run(b.build(), "r") as run:
        (pool_ms, app_ms) = run.con.execute(
            f"SELECT sum(pool_ms), sum(app_ms) FROM {run.table('requests')} WHERE error"
        ).fetchone()
    assert pool_ms > 10 * app_ms


def _blocking_leak() -> RunBuilder:
    b = RunBuilder()
    simulate(b, Service(leaks=on_conflict), users=lambda t: 10)
    return b


def test_with_checkout_spans_their_failures_are_not_counted_twice() -> None:
    # SQLAlchemy's pool: the connect span fails, and the request records the same error
    b = _blocking_leak()
    failed = sum(
        1 for span in b.spans if span["name"] == "connect" and span["status_code"] == "ERROR"
    )
    for span in b.spans:
        for event in span["events"]:
            event["attributes"] = json.dumps(
                {
                    "exception.type": "sqlalchemy.exc.TimeoutError",
                    "exception.message": SAID["sqlalchemy"],
                }
            )
    (f,), _ = analysed(b)
    assert f.evidence["timeouts"] == failed
    assert f.evidence["requests_without_a_connection"] == 0


def test_the_error_is_read_on_any_span_of_the_request_or_its_status() -> None:
    b = RunBuilder()
    trace = b.new_id("t")
    r = b.request(trace, 0, 50, "/a", status=500, error=True)
    handler = b.span(
        trace,
        1,
        49,
        parent=r,
        name="handler",
        status="ERROR",
        events=[
            {
                "time_ns": ns(30),
                "name": "exception",
                "attributes": json.dumps(
                    {
                        "exception.type": "psycopg_pool.PoolTimeout",
                        "exception.message": "couldn't get a connection after 0.02 sec",
                    }
                ),
            }
        ],
    )
    b.query(trace, r, 2, 10)
    other = b.new_id("t")
    r2 = b.request(other, 100, 140, "/b", status=500, error=True)
    b.span(other, 101, 139, parent=r2, name="pool.query", status="ERROR")
    b.spans[-1]["status_message"] = "timeout exceeded when trying to connect"
    with open_run(b.build(), "r") as run:
        rows = run.con.execute(
            f"SELECT trace_id, (start_ns - {ns(0)}) / 1e6, (end_ns - {ns(0)}) / 1e6 "
            f"FROM {run.table('parts')} WHERE category = 'pool' ORDER BY trace_id"
        ).fetchall()
    # the wait began when the request's last query before it ended
    assert rows == [(trace, 10.0, 30.0), (other, 100.0, 139.0)]
    assert handler


@pytest.mark.clickhouse
@pytest.mark.parametrize("leak", [True, False], ids=["leak", "saturation"])
def test_clickhouse_reads_the_pools_errors_as_duckdb_does(chdb: object, leak: bool) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    b = RunBuilder()
    if leak:
        fail_fast(b, leaks=lambda n, status: status == 409)
    else:
        fail_fast(b, capacity=5, users=lambda t: 14)
    store = b.build()
    with open_run(store, "r") as run:
        local = [(f.kind, f.title, f.explanation) for f in pool_exhaustion(run)]
        local_inferred = infer(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    remote_run = Run(there, "r")  # type: ignore[arg-type]
    remote = [(f.kind, f.title, f.explanation) for f in pool_exhaustion(remote_run)]
    assert local and remote == local
    assert infer(remote_run, PoolSettings()) == local_inferred


def _emptied_run() -> RunBuilder:
    """A pool of three: three requests answer 409 and keep their connection; every request
    after them blocks for a second and fails with PoolTimeout, with nobody holding one."""
    b = RunBuilder()
    for i in range(120):
        t, trace = i * 100.0, b.new_id("t")
        leaks = i in (10, 20, 30)
        if i <= 30:
            r = _request(b, trace, t, t + 40, "POST" if leaks else "GET", 409 if leaks else 200)
            b.query(trace, r, t + 1, t + 21, "SELECT * FROM orders WHERE id = 1")
        else:
            _request(b, trace, t, t + 1002, "GET", 500, said=PSYCOPG3, raised_at=t + 1001)
    return b


def test_a_pool_emptied_with_nobody_holding_a_connection_is_a_leak() -> None:
    (f,), (inf, _) = analysed(_emptied_run())
    assert inf is not None and inf.verdict == "leak"
    assert f.kind == FindingKind.POOL_LEAK
    assert inf.emptied_from == 1 and inf.waits == 89
    assert "up to 1 request held a connection at once before the first checkout failed" in (
        f.explanation
    )
    assert "none did when any of the 89 failed checkouts found the pool empty" in f.explanation


def test_with_checkout_spans_an_empty_pool_and_no_holder_is_still_undecided() -> None:
    # a connect span can cover more than the pool (a new connection, a proxy): no verdict
    b = _emptied_run()
    for span in list(b.spans):
        if span["status_code"] == "ERROR":
            b.connect(span["trace_id"], span["span_id"], 0, 0, timeout=True)
            b.spans[-1].update(start_ns=span["start_ns"], end_ns=span["end_ns"] - 1_000_000)
            span["events"] = []
    _, (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "undecided"
    assert inf.reason.startswith("no request held a connection while others waited")


def test_a_pool_dry_from_the_start_is_not_called_a_configuration_problem() -> None:
    from correlate.analysis.detectors.errors import error_bursts

    b = RunBuilder()
    fail_fast(b, capacity=5, users=lambda t: 14)
    with open_run(b.build(), "r") as run:
        (f,) = error_bursts(run)
    assert f.kind == FindingKind.ERROR_RATE
    assert f.evidence["failed_waiting_for_a_connection"] == f.evidence["errors"]
    assert "the pool ran dry from the start (see the pool finding)" in f.explanation
    assert "configuration" not in f.explanation
    assert f.suggestion.startswith("Fix the pool finding first")


def test_a_burst_of_a_pool_failing_at_once_is_not_called_timeouts() -> None:
    from correlate.analysis.detectors.errors import error_bursts

    b = RunBuilder()
    fail_fast(b, leaks=lambda n, status: status == 409)
    with open_run(b.build(), "r") as run:
        bursts = error_bursts(run)
    assert bursts
    for f in bursts:
        assert "connection-pool checkouts that found no connection: see the pool" in (f.explanation)
        assert "timeouts" not in f.explanation
