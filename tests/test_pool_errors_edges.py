"""A pool's own errors read by an outsider: where the words travel, what runs beside them.

The runs of tests/test_pool_errors.py are one service and its pool. Here the words reach
a caller (gRPC and many HTTP clients carry a failed call's message back), requests beside
the failing ones call a cache rather than the database, and the words themselves are hostile
or huge.
"""

from __future__ import annotations

import json

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.pool_errors import HEAD_CHARS, IS_ERROR_PART, pool_of
from correlate.analysis.pool_pressure import unreachable
from correlate.kinds import FindingKind

from .builders import RunBuilder, ns
from .test_leak import analysed
from .test_pool_errors import PSYCOPG2, PSYCOPG3, _emptied_run, _request, fail_fast


def _exception(at: float, type_: str, message: str) -> list[dict[str, object]]:
    attributes = {"exception.type": type_, "exception.message": message}
    return [{"time_ns": ns(at), "name": "exception", "attributes": json.dumps(attributes)}]


def _failed_parts_by_service(b: RunBuilder) -> dict[str, int]:
    with open_run(b.build(), "r") as run:
        rows = run.con.execute(
            f"SELECT r.service, count(*) FROM {run.table('parts')} p "
            f"JOIN {run.table('requests')} r ON r.th = p.th AND r.rh = p.rh "
            f"WHERE {IS_ERROR_PART} GROUP BY r.service ORDER BY r.service"
        ).fetchall()
    return {str(service): int(n) for service, n in rows}


def _called_through_grpc(b: RunBuilder, failures: int) -> None:
    """``front`` calls ``orders`` over gRPC; ``orders``' psycopg2 pool is empty. The gRPC
    server sends the exception's text back as the status details, so the client span and
    the caller's own request (the RpcError propagates) carry the pool's words too."""
    details = "Exception calling application: connection pool exhausted"
    for i in range(failures):
        t, trace = i * 100.0, b.new_id("t")
        front = b.span(
            trace, t, t + 10, kind="SERVER", name="GET /checkout", route="/checkout",
            http_status=500, status="ERROR", service="front",
            events=_exception(t + 9, "grpc._channel._InactiveRpcError",
                              f"<_InactiveRpcError of RPC that terminated with: "
                              f"status = StatusCode.UNKNOWN details = \"{details}\">"),
        )  # fmt: skip
        call = b.span(
            trace, t + 1, t + 8, parent=front, kind="CLIENT", name="/orders.Orders/Get",
            status="ERROR", service="front",
        )  # fmt: skip
        b.spans[-1]["status_message"] = details
        b.span(
            trace, t + 2, t + 7, parent=call, kind="SERVER", name="/orders.Orders/Get",
            status="ERROR", service="orders", events=_exception(t + 6, *PSYCOPG2),
        )  # fmt: skip


def test_a_callers_request_is_not_charged_with_the_pool_of_the_service_it_called() -> None:
    b = RunBuilder()
    _called_through_grpc(b, 20)
    assert _failed_parts_by_service(b) == {"orders": 20}


def test_a_pools_failures_said_again_by_its_callers_are_counted_once() -> None:
    b = RunBuilder()
    fail_fast(b, capacity=5, users=lambda t: 14)
    for span in b.spans:
        span["service"] = "orders"
    expected = sum(1 for s in b.spans if s["events"])
    _called_through_grpc(b, 20)
    with open_run(b.build(), "r") as run:
        (f,) = pool_exhaustion(run)
    assert f.evidence["requests_without_a_connection"] == expected + 20


def _with_cache_reads(b: RunBuilder, *, start: float, end: float) -> None:
    """Requests of the same service that read a Redis cache and never touch the database,
    one every 50 ms, each read lasting 30 ms."""
    t = start
    while t < end:
        trace = b.new_id("t")
        r = _request(b, trace, t, t + 40, "GET", 200)
        b.spans[-1]["name"] = b.spans[-1]["http_route"] = "/cached"
        b.span(trace, t + 1, t + 31, parent=r, kind="CLIENT", name="GET", db="redis", sql="GET ?")
        t += 50


def test_a_cache_call_is_no_checkout_of_the_database_pool() -> None:
    b = _emptied_run()
    _with_cache_reads(b, start=3080, end=12000)
    (f,), (inf, _) = analysed(b)
    assert inf is not None and inf.verdict == "leak", inf.reason
    assert f.kind == FindingKind.POOL_LEAK
    assert inf.emptied_from == 1


def test_a_huge_pool_error_is_not_quoted_whole() -> None:
    b = RunBuilder()
    said = (PSYCOPG3[0], PSYCOPG3[1] + " " + "x" * 200_000)
    # ten seconds: 900 such errors, 180 MB of them
    fail_fast(b, capacity=5, users=lambda t: 14, seconds=10, said=said)
    with open_run(b.build(), "r") as run:
        (f,) = pool_exhaustion(run)
    assert "couldn't get a connection" in f.explanation
    assert len(f.explanation) < 5_000


@pytest.mark.parametrize(("before", "read"), [(0, True), (HEAD_CHARS, False)])
def test_the_words_of_a_pool_or_a_driver_are_read_at_the_head_of_an_error_only(
    before: int, read: bool
) -> None:
    b = RunBuilder()
    pool_words = "x" * before + " connection pool exhausted " + "y" * 50
    trace = b.new_id("t")
    r = _request(b, trace, 100, 150, "GET", 500, said=("E", pool_words), raised_at=120)
    b.query(trace, r, 101, 110)
    trace = b.new_id("t")
    r = _request(b, trace, 200, 250, "GET", 500)
    b.query(trace, r, 201, 210)
    b.spans[-1]["status_code"] = "ERROR"
    b.spans[-1]["status_message"] = "x" * before + " connection refused"
    with open_run(b.build(), "r") as run:
        (failed,) = run.con.execute(
            f"SELECT count(*) FROM {run.table('parts')} WHERE {IS_ERROR_PART}"
        ).fetchone()
        lost = unreachable(run)
    assert (pool_of("E: " + pool_words) is not None) is read
    assert failed == read
    assert lost.requests == read


@pytest.mark.parametrize("time_ns", [None, 0])
def test_an_exception_without_a_time_is_a_failure_at_the_request(time_ns: int | None) -> None:
    b = RunBuilder()
    trace = b.new_id("t")
    r = _request(b, trace, 100, 150, "GET", 500, said=PSYCOPG2, raised_at=120)
    b.spans[-1]["events"][0]["time_ns"] = time_ns
    b.query(trace, r, 101, 110)
    with open_run(b.build(), "r") as run:
        rows = run.con.execute(
            f"SELECT (start_ns - {ns(0)}) / 1e6, (end_ns - {ns(0)}) / 1e6 "
            f"FROM {run.table('parts')} WHERE {IS_ERROR_PART}"
        ).fetchall()
    assert len(rows) == 1
    start, end = rows[0]
    assert start is not None and end is not None and 100 <= start <= end <= 150


#: A pool's words inside an exception message that carries every kind of markup.
HOSTILE = (
    '<img src="http://evil.example/r.png"> [click](http://evil.example) @team #123 | x | y |'
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\u202e `code` \r\n> q\n"
    "connection pool exhausted <script>alert(1)</script> ![i](http://evil.example/i.png)"
)


@pytest.fixture(scope="module")
def reports() -> dict[str, tuple[str, str]]:
    """Each renderer's report of a run failed by its pool, with hostile and benign words."""
    import correlate
    from correlate.analysis.evidence import collect
    from correlate.render.registry import find_renderer

    out: dict[str, list[str]] = {"markdown": [], "html": [], "text": []}
    for message in (HOSTILE, "x connection pool exhausted"):
        b = RunBuilder()
        fail_fast(b, capacity=5, users=lambda t: 14, seconds=20, said=(PSYCOPG2[0], message))
        with b.build() as store:
            evidence = collect(store, correlate.analyze("r", store=store))
            for name in out:
                out[name].append(find_renderer("report", name)(evidence, width=100))
    return {name: (hostile, benign) for name, (hostile, benign) in out.items()}


def test_a_hostile_pool_error_stays_text_in_every_report(
    reports: dict[str, tuple[str, str]],
) -> None:
    from .test_hostile_output import (
        assert_inert_html,
        assert_inert_markdown,
        assert_inert_terminal,
    )

    assert "connection pool exhausted" in reports["html"][0]  # the finding quotes it
    assert_inert_markdown(*reports["markdown"])
    assert_inert_html(*reports["html"])
    assert_inert_terminal(reports["text"][0])


def _grpc_run() -> RunBuilder:
    b = RunBuilder()
    _called_through_grpc(b, 20)
    return b


def _cache_run() -> RunBuilder:
    b = _emptied_run()
    _with_cache_reads(b, start=3080, end=12000)
    return b


def _timeless_run() -> RunBuilder:
    b = RunBuilder()
    for i in range(20):
        trace = b.new_id("t")
        r = _request(b, trace, i * 100, i * 100 + 50, "GET", 500, said=PSYCOPG3, raised_at=0)
        b.spans[-1]["events"][0]["time_ns"] = None
        b.query(trace, r, i * 100 + 1, i * 100 + 10)
    return b


@pytest.mark.clickhouse
@pytest.mark.parametrize("make", [_grpc_run, _cache_run, _timeless_run])
def test_clickhouse_reads_these_runs_as_duckdb_does(chdb: object, make: object) -> None:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.pool_inference import infer
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = make().build()  # type: ignore[operator]
    query = (
        "SELECT r.service, count(*), sum(p.end_ns - p.start_ns) FROM {parts} p "
        "JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh WHERE " + IS_ERROR_PART.replace(
            "category", "p.category").replace("span_id", "p.span_id").replace(
            "status_code", "p.status_code") + " GROUP BY r.service ORDER BY r.service"
    )  # fmt: skip

    def read(run: Run) -> tuple[object, ...]:
        rows = run.con.execute(
            query.format(parts=run.table("parts"), reqs=run.table("requests"))
        ).fetchall()
        found = [(f.kind, f.title, f.explanation) for f in pool_exhaustion(run)]
        return [tuple(int(v) if isinstance(v, int) else v for v in r) for r in rows], found

    with open_run(store, "r") as run:
        local = read(run)
        assert local[0], "the run has failed checkouts"
        local_inferred = infer(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    remote_run = Run(there, "r")  # type: ignore[arg-type]
    assert read(remote_run) == local
    assert infer(remote_run, PoolSettings()) == local_inferred


def _refused_run() -> RunBuilder:
    """Half the requests fail from the start: the database refuses their connection."""
    b = RunBuilder()
    refused = ("psycopg2.OperationalError", 'connection to server at "db" failed: refused')
    for i in range(200):
        t, trace = i * 50.0, b.new_id("t")
        failed = i % 2 == 0
        r = b.request(trace, t, t + 20, "/orders", status=500 if failed else 200, error=failed)
        b.connect(trace, r, t + 1, t + 3, timeout=failed)
        if failed:
            b.spans[-1]["events"] = _exception(t + 3, *refused)
        else:
            b.query(trace, r, t + 4, t + 10)
    return b


def test_a_refused_connection_from_the_start_is_no_pool_running_dry() -> None:
    """A checkout span that fails because the database refuses the connection is a
    configuration or dependency problem, as the error-rate finding always said."""
    from correlate.analysis.detectors.errors import error_bursts

    with open_run(_refused_run().build(), "r") as run:
        (f,) = error_bursts(run)
        assert pool_exhaustion(run) == []
    assert f.evidence["failed_waiting_for_a_connection"] == 0
    assert "configuration, dependency or deployment problem" in f.explanation
    assert "see the pool finding" not in f.explanation


def _untyped_checkout_run() -> RunBuilder:
    """node-postgres under @opentelemetry/instrumentation-pg: a checkout span that gave up
    records an exception with no type and words of the instrumentation's own, while the
    request's handler span says the pool's ("timeout exceeded when trying to connect")."""
    b = RunBuilder()
    untyped = {"exception.message": "PostgreSQL error of type 'Error' occurred (code: UNKNOWN)"}
    for i in range(200):
        t, trace = i * 50.0, b.new_id("t")
        failed = i % 2 == 0
        r = b.request(trace, t, t + 20, "/orders", status=503 if failed else 200, error=failed)
        b.connect(trace, r, t + 1, t + 3, timeout=failed)
        if failed:
            b.spans[-1]["events"] = [
                {"time_ns": ns(t + 3), "name": "exception", "attributes": json.dumps(untyped)}
            ]
            b.span(trace, t + 3, t + 4, parent=r, name="request handler - /orders",
                   status="ERROR",
                   events=_exception(t + 4, "Error", "timeout exceeded when trying to connect"))  # fmt: skip
        else:
            b.query(trace, r, t + 4, t + 10)
    return b


def test_an_untyped_checkout_failure_is_the_pool_running_dry_when_the_trace_says_so() -> None:
    from correlate.analysis.detectors.errors import error_bursts

    with open_run(_untyped_checkout_run().build(), "r") as run:
        (burst,) = error_bursts(run)
        (pool,) = pool_exhaustion(run)
    assert burst.evidence["failed_waiting_for_a_connection"] == burst.evidence["errors"] > 0
    assert "see the pool finding" in burst.explanation
    assert pool.evidence["timeouts"] == 100
    assert pool.evidence["checkouts_timed_out"] is True
    assert "100 checkouts timed out, failing 100 requests" in pool.explanation


@pytest.mark.clickhouse
@pytest.mark.parametrize("make", [_refused_run, _emptied_run, _untyped_checkout_run])
def test_clickhouse_counts_the_failures_for_want_of_a_connection_as_duckdb_does(
    chdb: object, make: object
) -> None:
    from correlate.analysis.detectors.errors import error_bursts
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = make().build()  # type: ignore[operator]
    with open_run(store, "r") as run:
        local = error_bursts(run)
    there, _ = copied(store, chdb, "r")
    assert local and error_bursts(Run(there, "r")) == local  # type: ignore[arg-type]


# -- known, not fixed -------------------------------------------------------------------


def test_a_client_error_quoting_the_words_is_no_failed_checkout() -> None:
    b = RunBuilder()
    for i in range(30):
        said = ("ValueError", "invalid name: 'connection pool exhausted'")
        _request(b, b.new_id("t"), i * 100, i * 100 + 20, "POST", 400, said=said, raised_at=5)
    assert _failed_parts_by_service(b) == {}


@pytest.mark.parametrize("status", [429, 408, 503, 500])
def test_a_request_told_to_come_back_later_may_have_failed_for_the_pool(status: int) -> None:
    b = RunBuilder()
    for i in range(30):
        _request(b, b.new_id("t"), i * 100, i * 100 + 20, "GET", status, said=PSYCOPG2, raised_at=5)
    assert _failed_parts_by_service(b) == {"svc": 30}


@pytest.mark.xfail(
    strict=True,
    reason="the errors are dropped for a whole service once any of its checkouts has a "
    "span: a second pool without spans (another database) goes unseen",
)
def test_a_second_pool_without_spans_is_seen_beside_one_with_them() -> None:
    b = RunBuilder()
    for i in range(30):
        trace, t = b.new_id("t"), i * 100.0
        r = _request(b, trace, t, t + 60, "GET", 500, said=PSYCOPG2, raised_at=t + 50)
        b.connect(trace, r, t + 1, t + 2)
        b.query(trace, r, t + 3, t + 40)
    assert _failed_parts_by_service(b) == {"svc": 30}


@pytest.mark.xfail(
    strict=True,
    reason="one pool is read per run (the service that waited most): another service's "
    "many failed checkouts hide a leak behind checkout spans",
)
def test_a_leak_is_not_hidden_by_another_services_saturated_pool() -> None:
    from .test_leak import Service, on_conflict, simulate

    b = RunBuilder()
    simulate(b, Service(leaks=on_conflict), users=lambda t: 10)
    for span in b.spans:
        span["service"] = "a"
    fail_fast(b, capacity=5, users=lambda t: 14, seconds=30)
    for span in b.spans:
        span["service"] = span["service"].replace("svc", "b")
    found, _ = analysed(b)
    assert FindingKind.POOL_LEAK in {f.kind for f in found}


def _held_over_a_call() -> RunBuilder:
    """A psycopg2 pool of three, every connection returned: each request takes one, calls
    a payment service for 250 ms, then runs its one query. Once arrivals quicken, a request
    finding all three out fails at once, while the holders are still in their call."""
    b = RunBuilder()
    free = [0.0] * 3
    for k in range(400):
        a, trace = (k * 400.0 if k < 20 else 8000 + (k - 20) * 80.0), b.new_id("t")
        conn = next((i for i, at in enumerate(free) if at <= a), None)
        if conn is None:
            _request(b, trace, a, a + 2, "GET", 500, said=PSYCOPG2, raised_at=a + 1)
            continue
        r = _request(b, trace, a, a + 257, "GET", 200)
        b.span(trace, a + 1, a + 251, parent=r, kind="CLIENT", name="POST")
        b.query(trace, r, a + 251, a + 256, "UPDATE orders SET paid = true WHERE id = 1")
        free[conn] = a + 257
    return b


def test_connections_held_over_a_call_before_the_first_query_are_no_leak() -> None:
    found, (inf, _) = analysed(_held_over_a_call())
    assert FindingKind.POOL_LEAK not in {f.kind for f in found}
    assert inf is not None and inf.verdict == "undecided"
    assert "had one after the first checkout failed" in inf.reason


@pytest.mark.clickhouse
def test_clickhouse_leaves_connections_held_over_a_call_undecided(chdb: object) -> None:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.pool_inference import infer
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = _held_over_a_call().build()
    with open_run(store, "r") as run:
        local = infer(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    assert local is not None and local.verdict == "undecided"
    assert infer(Run(there, "r"), PoolSettings()) == local  # type: ignore[arg-type]
