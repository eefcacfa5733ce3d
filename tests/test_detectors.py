"""Each detector on small constructed runs: it fires on its pattern and stays quiet otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import (
    error_bursts,
    n_plus_one,
    pool_exhaustion,
    slow_query,
    throughput_knee,
    unexplained_time,
)
from correlate.analysis.detectors import load as load_rules
from correlate.analysis.findings import Finding

from .builders import RunBuilder

#: (start_ms, users) -> per-request composition in ms: {"pool": …, "db": …, "app": …}
Shape = Callable[[float, int], dict[str, float]]


def closed_loop(
    b: RunBuilder,
    shape: Shape,
    *,
    seconds: float = 60,
    users: Callable[[float], int] = lambda t: 10,
    think: float = 100,
    route: str = "/a",
    error: Callable[[float], bool] = lambda t: False,
) -> None:
    """Users that send a request, wait for it, think, and send the next (like Locust)."""
    max_users = max(users(t * 1000.0) for t in range(int(seconds) + 1))
    for user in range(max_users):
        t = user * 7.0
        while t < seconds * 1000:
            if user >= users(t):
                t += 250
                continue
            parts = shape(t, users(t))
            duration = sum(parts.values())
            trace = b.new_id("t")
            failed = error(t)
            r = b.request(
                trace, t, t + duration, route, status=503 if failed else 200, error=failed
            )
            at = t
            if parts.get("pool"):
                b.connect(trace, r, at, at + parts["pool"], timeout=failed)
                at += parts["pool"]
            if parts.get("db") and not failed:
                b.query(trace, r, at, at + parts["db"], "SELECT * FROM t WHERE id = 1")
            b.user_request(user, t, duration, route)
            t += duration + think


def findings(b: RunBuilder, detector: Callable[..., list[Finding]]) -> list[Finding]:
    store = b.build()
    with open_run(store, "r") as run:
        return detector(run)


def healthy(t: float, users: int) -> dict[str, float]:
    return {"pool": 1, "db": 5, "app": 10}


# -- N+1 ------------------------------------------------------------------------------


def _listing(b: RunBuilder, calls: int, each: float, *, same_parent: bool = True) -> None:
    for i in range(10):
        trace = f"t{i}"
        start = i * 1000.0
        r = b.request(trace, start, start + 20 + calls * (each + 2), "/list")
        b.query(trace, r, start + 1, start + 10, "SELECT * FROM orders ORDER BY id LIMIT 20")
        at = start + 12
        for n in range(calls):
            parent = r if same_parent else b.span(trace, at, at + each + 2, parent=r)
            b.connect(trace, parent, at, at + 1)  # between the queries: must not hide them
            b.query(
                trace, parent, at + 1, at + 1 + each, f"SELECT * FROM items WHERE order_id = {n}"
            )
            at += each + 2


def test_n_plus_one_found_with_connect_spans_in_between() -> None:
    b = RunBuilder()
    _listing(b, calls=8, each=10)
    (f,) = findings(b, n_plus_one)
    assert f.kind == "n_plus_one" and f.route == "/list"
    assert f.evidence["calls_per_request"] == 8
    assert f.evidence["requests"] == 10
    assert f.severity == "warning"  # below the critical 10 calls
    assert "items" in f.title
    assert len(f.trace_ids) == 3


def test_n_plus_one_fix_names_the_eager_loading_of_each_common_orm() -> None:
    # Django's lazy foreign key (`order.customer.name` per row) is the commonest N+1 in
    # Python; its fix is select_related / prefetch_related, as selectinload is SQLAlchemy's
    b = RunBuilder()
    _listing(b, calls=8, each=10)
    (f,) = findings(b, n_plus_one)
    for fix in ("selectinload", "select_related / prefetch_related", "JOIN FETCH", "Include"):
        assert fix in f.suggestion


def test_savepoints_of_a_get_or_create_loop_are_the_loops_not_n_plus_ones() -> None:
    # Django's get_or_create per item, as psycopg's instrumentation records it: each call
    # is a SELECT, then SAVEPOINT "s<thread>_x<n>", INSERT and RELEASE of a new name
    b = RunBuilder()
    for i in range(10):
        trace, at = f"t{i}", i * 1000.0
        r = b.request(trace, at, at + 200, "tags/")
        for n in range(1, 13):
            for sql in (
                f'SELECT "tag"."id" FROM "tag" WHERE "tag"."name" = \'{n}\' LIMIT 21',
                f'SAVEPOINT "s1407_x{n}"',
                f'INSERT INTO "tag" ("name") VALUES (\'{n}\') RETURNING "tag"."id"',
                f'RELEASE SAVEPOINT "s1407_x{n}"',
            ):
                b.query(trace, r, at + 1, at + 3, sql)
                at += 3
    found = findings(b, n_plus_one)
    assert sorted(f.evidence["statement"].split()[0] for f in found) == ["INSERT", "SELECT"]
    assert all(f.evidence["calls_per_request"] == 12 for f in found)


def test_n_plus_one_critical_from_ten_calls() -> None:
    b = RunBuilder()
    _listing(b, calls=12, each=10)
    (f,) = findings(b, n_plus_one)
    assert f.severity == "critical"


@pytest.mark.parametrize(
    ("calls", "each", "same_parent"),
    # a fast loop is found whatever its union: tests/test_repeated.py
    [(4, 30, True), (8, 10, False)],
    ids=["too-few-calls", "each-under-its-own-parent"],
)
def test_n_plus_one_quiet(calls: int, each: float, same_parent: bool) -> None:
    b = RunBuilder()
    _listing(b, calls=calls, each=each, same_parent=same_parent)
    assert findings(b, n_plus_one) == []


def test_n_plus_one_overlapping_calls_count_by_their_union() -> None:
    b = RunBuilder()
    for i in range(5):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 200, "/fan")
        for n in range(6):  # six parallel 60 ms queries: union 60 ms, not 360 ms
            b.query(trace, r, i * 1000 + 10, i * 1000 + 70, f"SELECT * FROM x WHERE id = {n}")
    (f,) = findings(b, n_plus_one)
    assert f.evidence["union_ms_per_request"] == pytest.approx(60)


# -- slow query -------------------------------------------------------------------------


def _route_with_query(
    b: RunBuilder,
    db: float,
    app: float,
    pool: float = 0,
    sql: str = "SELECT * FROM orders WHERE customer_id = 7",
    system: str = "postgresql",
) -> None:
    for i in range(10):
        trace = f"t{i}"
        start = i * 1000.0
        r = b.request(trace, start, start + pool + db + app, "/customers/<id>/orders")
        if pool:
            b.connect(trace, r, start, start + pool)
        b.span(trace, start + pool, start + pool + db, parent=r, kind="CLIENT", db=system, sql=sql)


def test_slow_query_found_even_when_pool_wait_dominates() -> None:
    b = RunBuilder()
    _route_with_query(b, db=60, app=15, pool=500)
    (f,) = findings(b, slow_query)
    assert f.kind == "slow_query" and f.route == "/customers/<id>/orders"
    assert f.evidence["share_of_time_outside_pool_wait"] == pytest.approx(0.8)
    assert f.severity == "warning"  # 60 of 575 ms of latency
    assert "No plan is linked" in f.explanation
    assert "correlate plans capture" in f.suggestion


@pytest.mark.parametrize(
    ("sql", "system", "called"),
    [
        ("SELECT pg_sleep(0.05)", "postgresql", "pg_sleep()"),
        ("SELECT SLEEP(0.05) AS held", "mariadb", "SLEEP()"),
        ("SELECT refresh_totals(7), now()", "postgresql", "refresh_totals(), now()"),
    ],
)
def test_slow_query_that_reads_no_table_is_the_work_of_what_it_calls(
    sql: str, system: str, called: str
) -> None:
    b = RunBuilder()
    _route_with_query(b, db=60, app=15, sql=sql, system=system)
    (f,) = findings(b, slow_query)
    assert f.suggestion.startswith(f"Its time is the work of {called} itself")
    assert "index" not in f.suggestion.replace("not a scan an index would avoid", "")
    assert "correlate plans capture" not in f.suggestion
    assert "It reads no table" in f.explanation
    assert "No plan is linked" not in f.explanation


def test_slow_query_of_a_bare_select_is_no_work_of_its_own() -> None:
    b = RunBuilder()
    _route_with_query(b, db=60, app=15, sql="SELECT 1")
    (f,) = findings(b, slow_query)
    assert f.suggestion.startswith("It reads no table and calls no function")
    assert "CREATE INDEX" not in f.suggestion and "filtered columns" not in f.suggestion


def test_slow_query_critical_when_it_is_most_of_the_latency() -> None:
    b = RunBuilder()
    _route_with_query(b, db=80, app=10)
    (f,) = findings(b, slow_query)
    assert f.severity == "critical"


def test_slow_query_of_a_call_with_no_statement() -> None:
    # statement capture turned off: the system and span name stand for the query, which
    # has no tables to name (they were read as a list and failed: 'NAType' not iterable)
    b = RunBuilder()
    for i in range(10):
        r = b.request(f"t{i}", i * 1000.0, i * 1000.0 + 100, "/orders")
        b.span(f"t{i}", i * 1000.0 + 1, i * 1000.0 + 91, parent=r, kind="CLIENT", db="postgresql")
    (f,) = findings(b, slow_query)
    assert f.title == "Slow query in /orders: one query, median 90.0 ms per call"
    assert f.fingerprint == "postgresql CLIENT"


@pytest.mark.parametrize(
    ("db", "app"), [(8, 2), (60, 200)], ids=["fast-query-dominant", "slow-query-not-dominant"]
)
def test_slow_query_quiet(db: float, app: float) -> None:
    b = RunBuilder()
    _route_with_query(b, db=db, app=app)
    assert findings(b, slow_query) == []


def test_slow_query_explains_with_plan_insights() -> None:
    b = RunBuilder()
    _route_with_query(b, db=80, app=10)
    store = b.build()
    fp = store.con.execute("SELECT fingerprint FROM statements").fetchone()[0]
    store.con.execute(
        "INSERT INTO plans (plan_id, run_id, fingerprint, link, source, raw) "
        "VALUES (7, 1, ?, 'fingerprint', 'test', '{}')",
        [fp],
    )
    store.con.execute(
        "INSERT INTO plan_insights VALUES (7, 'seq_scan_selective_filter', 'critical', 1, "
        "'orders', 'Seq Scan on orders removes 99% of 100000 rows (filter: customer_id)', "
        "'CREATE INDEX ON orders (customer_id);', '{}', false)"
    )
    with open_run(store, "r") as run:
        (f,) = slow_query(run)
    assert "Seq Scan on orders" in f.explanation
    assert f.suggestion == "CREATE INDEX ON orders (customer_id);"
    assert f.evidence["plan_id"] == 7


def _refused_by_capture(b: RunBuilder) -> Finding:
    """The slow query of ``b``'s one statement, whose capture was refused for its SLEEP()."""
    store = b.build()
    fp = store.con.execute("SELECT fingerprint FROM statements").fetchone()[0]
    store.con.execute(
        "INSERT INTO plans (plan_id, run_id, fingerprint, link, source, reason) "
        "VALUES (8, 1, ?, 'fingerprint', 'mariadb', 'the statement calls SLEEP()')",
        [fp],
    )
    with open_run(store, "r") as run:
        (f,) = slow_query(run)
    return f


def test_slow_query_says_why_capture_explained_no_plan() -> None:
    b = RunBuilder()
    _route_with_query(b, db=80, app=10)
    f = _refused_by_capture(b)
    assert "Plan capture did not explain it: the statement calls SLEEP()." in f.explanation
    assert "No plan is linked" not in f.explanation
    assert "correlate plans capture" not in f.suggestion  # it was run, and refused
    assert "an index on the filtered columns" in f.suggestion  # it reads a table


def test_slow_query_that_reads_no_table_keeps_captures_refusal() -> None:
    b = RunBuilder()
    _route_with_query(b, db=80, app=10, sql="SELECT SLEEP(0.3)", system="mariadb")
    f = _refused_by_capture(b)
    assert "Plan capture did not explain it: the statement calls SLEEP()." in f.explanation
    assert f.suggestion.startswith("Its time is the work of SLEEP() itself")


# -- pool: leak vs saturation ---------------------------------------------------------


def leaking(t: float, users: int) -> dict[str, float]:
    # the wait grows with time, whatever the load
    return {"pool": min(2500.0, max(0.0, (t - 20_000) / 10)), "db": 5, "app": 10}


def test_pool_leak_named_from_leak_suspects_and_samples() -> None:
    b = RunBuilder()
    closed_loop(b, leaking, users=lambda t: 10 if t < 50_000 else 3)
    first = b.spans[0]
    for i in range(4):
        b.leak(first["trace_id"], first["span_id"], 10_000 + i * 5000, route="/pay")
    for s in range(60):
        b.sample(s * 1000, checked_out=min(10, max(0, (s - 10) // 4)))
    (f,) = findings(b, pool_exhaustion)
    assert f.kind == "pool_leak"
    assert f.route == "/pay"
    assert f.evidence["leaked_connections"] == 4
    assert f.evidence["pool_samples"]["at_end"] >= 1
    assert "app.py:12" in f.suggestion
    assert f.severity == "critical"


def test_pool_leak_from_spans_alone_when_wait_does_not_recover() -> None:
    b = RunBuilder()
    closed_loop(b, leaking, users=lambda t: 10 if t < 40_000 else 4)
    (f,) = findings(b, pool_exhaustion)
    assert f.kind == "pool_leak"
    assert f.route is None
    assert f.evidence["no_recovery"]["final_load"] < f.evidence["no_recovery"]["peak_load"]


def saturating(t: float, users: int) -> dict[str, float]:
    # the wait follows the number of users and goes away with them
    return {"pool": max(0, users - 5) * 40.0, "db": 20, "app": 10}


def test_pool_saturation_when_wait_tracks_load_and_recovers() -> None:
    b = RunBuilder()
    closed_loop(
        b,
        saturating,
        users=lambda t: 2 if t < 10_000 else (15 if t < 40_000 else 2),
    )
    for s in range(60):
        b.sample(s * 1000, checked_out=10 if 10 <= s < 40 else 2)
    (f,) = findings(b, pool_exhaustion)
    assert f.kind == "pool_saturation"
    assert f.evidence["share_of_request_time"] >= 0.10


def test_pool_quiet_when_waits_are_small() -> None:
    b = RunBuilder()
    closed_loop(b, healthy)
    for s in range(60):
        b.sample(s * 1000, checked_out=1 if s % 3 else 0)
    assert findings(b, pool_exhaustion) == []


# -- errors ---------------------------------------------------------------------------


def test_error_burst_names_exceptions_and_status() -> None:
    b = RunBuilder()
    closed_loop(
        b,
        lambda t, u: {"pool": 2500 if 30_000 <= t < 45_000 else 1, "db": 5, "app": 5},
        error=lambda t: 30_000 <= t < 45_000,
    )
    (f,) = findings(b, error_bursts)
    assert f.kind == "error_burst"
    assert f.evidence["exceptions"] == {"TimeoutError": f.evidence["errors"]}
    assert f.evidence["status_codes"] == {"503": f.evidence["errors"]}
    assert 28 <= f.evidence["from_s"] <= 34


def test_error_burst_quiet_for_client_errors_and_a_steady_rate() -> None:
    b = RunBuilder()
    for i in range(200):
        trace = f"t{i}"
        # 4xx are the client's doing; a steady 5% of 5xx from the start is no burst
        b.request(trace, i * 300, i * 300 + 20, "/a", status=402 if i % 3 == 0 else 200)
        if i % 20 == 0:
            b.request(f"e{i}", i * 300, i * 300 + 20, "/b", status=500, error=True)
    assert findings(b, error_bursts) == []


# -- load: degradation and knee -------------------------------------------------------


def test_degradation_at_steady_load_names_what_grew() -> None:
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"pool": 1, "db": 5 + t / 300, "app": 10})
    (f,) = findings(b, load_rules.degradation)
    assert f.kind == "degradation"
    assert "database time" in f.title
    assert f.evidence["load"] == pytest.approx(10)


def test_degradation_quiet_when_latency_is_flat_or_load_unknown() -> None:
    b = RunBuilder()
    closed_loop(b, healthy)
    assert findings(b, load_rules.degradation) == []
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": 5 + t / 300, "app": 10})
    b.client.clear()  # no load-generator results and no run.json: no way to call load steady
    assert findings(b, load_rules.degradation) == []


def ramp(t: float) -> int:
    return min(20, 1 + int(t // 2000))


def test_throughput_knee_names_the_part_that_grows() -> None:
    b = RunBuilder()
    # up to 8 users the service keeps up; past that, each extra user waits for a connection
    closed_loop(
        b,
        lambda t, u: {"pool": max(0, u - 8) * 60.0, "db": 10, "app": 10},
        users=ramp,
        seconds=50,
    )
    (f,) = findings(b, throughput_knee)
    assert f.kind == "throughput_knee"
    assert "pool wait" in f.title
    assert f.evidence["load"] > 8


def test_throughput_knee_quiet_while_throughput_follows_load() -> None:
    b = RunBuilder()
    closed_loop(b, healthy, users=ramp, seconds=50)
    assert findings(b, throughput_knee) == []


# -- unexplained time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "db", "expected"),
    [(120, 10, 1), (30, 5, 0), (60, 80, 0)],
    ids=["mostly-app", "under-the-floor", "db-dominated"],
)
def test_unexplained_time(app: float, db: float, expected: int) -> None:
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": db, "app": app}, seconds=20)
    found = findings(b, unexplained_time)
    assert len(found) == expected
    if found:
        assert found[0].route == "/a"
        assert found[0].evidence["share"] > 0.5


def test_errors_from_the_start_are_a_high_error_rate() -> None:
    b = RunBuilder()
    closed_loop(b, healthy, seconds=20, error=lambda t: int(t) % 3 == 0 or t < 30_000)
    (f,) = findings(b, error_bursts)
    assert f.kind == "error_rate" and f.severity == "critical"
    assert f.evidence["error_rate"] > 0.15
    assert f.explanation.startswith(f"Of the first {f.evidence['requests']} requests")
    assert "against 0% at the start" not in f.explanation


# -- client against server ------------------------------------------------------------


def _client_run(b: RunBuilder, gap: float, reach: int) -> None:
    for i in range(40):
        start = i * 100.0
        b.user_request(i % 4, start, 20 + gap, "/a")
        if i < reach:
            b.span(
                f"c{i}",
                start + gap / 2,
                start + gap / 2 + 20,
                parent=f"p{i}",
                kind="SERVER",
                route="/a",
                http_status=200,
            )


def test_time_outside_the_server_and_requests_lost() -> None:
    from correlate.analysis.detectors.client import outside_server

    b = RunBuilder()
    _client_run(b, gap=200, reach=30)
    found = {f.kind: f for f in findings(b, outside_server)}
    assert found["outside_server"].evidence["outside_p50_ms"] == pytest.approx(200)
    assert found["never_reached"].evidence["never_reached"] == 10


def test_client_quiet_when_server_spans_cover_the_client() -> None:
    from correlate.analysis.detectors.client import outside_server

    b = RunBuilder()
    _client_run(b, gap=5, reach=40)
    assert findings(b, outside_server) == []


def test_locust_otel_client_spans_are_the_clients_view() -> None:
    from correlate.analysis.client import client_vs_server

    b = RunBuilder()
    for i in range(10):
        root = b.span(f"t{i}", i * 100, i * 100 + 80, kind="CLIENT", name="GET /a")
        b.span(f"t{i}", i * 100 + 10, i * 100 + 30, parent=root, kind="SERVER", route="/a")
    b.span("lost", 0, 5, kind="CLIENT", name="GET /a")  # never reached the server
    store = b.build()
    with correlate.open_run(store, "r") as run:
        (row,) = client_vs_server(run).itertuples()
        assert run.unattributed_spans == 1  # only the lost request's span
    assert (row.client_requests, row.reached_server, row.never_reached) == (11, 10, 1)
    assert row.outside_p50_ms == pytest.approx(60)


def test_error_burst_without_status_codes_and_not_from_the_pool() -> None:
    import json

    b = RunBuilder()
    for i in range(300):
        start = i * 200.0
        failed = start >= 30_000
        r = b.span(
            f"t{i}",
            start,
            start + 50,
            kind="SERVER",
            name="Checkout/Pay",
            status="ERROR" if failed else "UNSET",
        )  # gRPC-like: no HTTP status at all
        events = (
            [
                {
                    "time_ns": 0,
                    "name": "exception",
                    "attributes": json.dumps({"exception.type": "requests.exceptions.ReadTimeout"}),
                }
            ]
            if failed
            else None
        )
        b.span(
            f"t{i}",
            start + 5,
            start + 45,
            parent=r,
            kind="CLIENT",
            name="POST http://bank",
            status="ERROR" if failed else "UNSET",
            events=events,
        )
    (f,) = findings(b, error_bursts)
    assert f.evidence["status_codes"] == {"no status": f.evidence["errors"]}
    assert f.evidence["exceptions"] == {"requests.exceptions.ReadTimeout": f.evidence["errors"]}
    assert "pool" not in f.explanation and "pool" not in f.suggestion


def test_n_plus_one_counts_requests_not_loops() -> None:
    b = RunBuilder()
    for i in range(10):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 400, "/a")
        for loop in range(2):  # two loops under two parents in one request
            parent = b.span(trace, i * 1000 + loop * 200, i * 1000 + loop * 200 + 190, parent=r)
            for n in range(6):
                at = i * 1000 + loop * 200 + n * 30
                b.query(trace, parent, at, at + 25, f"SELECT * FROM x WHERE id = {n}")
    (f,) = findings(b, n_plus_one)
    assert (f.evidence["requests"], f.evidence["route_requests"]) == (10, 10)
    assert f.evidence["calls_per_request"] == 12
    assert f.evidence["union_ms_per_request"] == pytest.approx(300)
    assert f.severity == "critical"


def test_a_leak_without_pressure_is_a_warning_that_says_so() -> None:
    b = RunBuilder()
    closed_loop(b, healthy, seconds=20)
    first = b.spans[0]
    b.leak(first["trace_id"], first["span_id"], 5_000)
    (f,) = findings(b, pool_exhaustion)
    assert f.kind == "pool_leak" and f.severity == "warning"
    assert f.explanation.startswith("Connections are taken and not given back: 1 connection")
    assert "The pool has absorbed it so far" in f.explanation
    assert "every route pays" not in f.explanation
    assert f.impact_ms == 0.0
    assert f.evidence["never_returned"] is None  # no checkouts recorded to tell


def test_a_refused_connection_is_not_a_pool_timeout() -> None:
    import json

    b = RunBuilder()
    for i in range(30):
        r = b.request(f"t{i}", i * 100, i * 100 + 20, status=500, error=True)
        b.span(
            f"t{i}",
            i * 100 + 1,
            i * 100 + 2,
            parent=r,
            kind="CLIENT",
            name="connect",
            db="postgresql",
            status="ERROR",
            events=[
                {
                    "time_ns": 0,
                    "name": "exception",
                    "attributes": json.dumps({"exception.type": "psycopg.OperationalError"}),
                }
            ],
        )
    assert findings(b, pool_exhaustion) == []


def test_connection_attempts_retried_under_one_checkout_are_no_n_plus_one() -> None:
    """node-postgres's pg.connect (a database CLIENT span without a statement) retried
    under one pg-pool.connect while the database is out of reach opens connections; it
    runs no query, so it is no N+1."""
    b = RunBuilder()
    for k in range(10):
        trace, start = f"t{k}", k * 1_000.0
        r = b.request(trace, start, start + 400, "/orders", status=500, error=True)
        pool = b.span(trace, start + 1, start + 390, parent=r, kind="CLIENT",
                      name="pg-pool.connect", status="ERROR")  # fmt: skip
        for n in range(8):
            at = start + 2 + n * 40
            b.span(trace, at, at + 30, parent=pool, kind="CLIENT", name="pg.connect",
                   db="postgresql", status="ERROR")  # fmt: skip
    assert findings(b, n_plus_one) == []
