"""The route of a leak from a pool that makes no checkout span (analysis.pool_suspects).

Small runs of a shop whose ``/checkout`` runs ``BEGIN``, an ``INSERT`` and ``COMMIT`` on one
connection, as knex or node-postgres record it (each statement a span; knex's own span
around the driver's), and whose declined payments forget the ``COMMIT``/``ROLLBACK``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.findings import Finding
from correlate.analysis.pool_inference import Group
from correlate.analysis.pool_suspects import Suspects, matched_sessions, unended_transactions
from correlate.kinds import FindingKind

from .builders import RunBuilder

INSERT = "insert into orders (amount) values ($1) returning id"
#: the shop's run lasts this long (ms); the declined checkouts start at these moments
RUN_MS = 30_000
DECLINED = (6_000, 12_000, 18_000)

Body = Callable[[RunBuilder, str, str, float], float]


def committed(b: RunBuilder, trace: str, req: str, t: float) -> float:
    b.query(trace, req, t, t + 1, "BEGIN")
    _insert(b, trace, req, t + 1)
    b.query(trace, req, t + 4, t + 5, "COMMIT")
    return t + 5


def left_open(b: RunBuilder, trace: str, req: str, t: float) -> float:
    b.query(trace, req, t, t + 1, "BEGIN")
    _insert(b, trace, req, t + 1)
    return t + 4


def _insert(b: RunBuilder, trace: str, req: str, t: float) -> None:
    # knex's span around the driver's, each recording the statement
    outer = b.span(
        trace, t, t + 3, parent=req, kind="CLIENT", db="postgresql", sql=INSERT.replace("$1", "?"),
        scope="@opentelemetry/instrumentation-knex",
    )  # fmt: skip
    b.span(
        trace, t + 0.5, t + 2.5, parent=outer, kind="CLIENT", db="postgresql", sql=INSERT,
        scope="@opentelemetry/instrumentation-pg",
    )  # fmt: skip


def shop(
    *,
    declined: Body = left_open,
    at: tuple[float, ...] = DECLINED,
    rise: bool = True,
    routes: tuple[str, ...] = ("/checkout",),
    body: Body = committed,
) -> RunBuilder:
    """Product pages every 200 ms, checkouts every 500 ms; the declined checkouts (``at``)
    answer 402 by ``declined``, the others 201 by ``body``. With ``rise`` every request
    takes three times longer in the run's last third (waiting, unseen, for a connection)."""
    b = RunBuilder()
    for k, t in enumerate(range(0, RUN_MS, 200)):
        slow = 3 if rise and t > 2 * RUN_MS / 3 else 1
        trace = f"p{k}"
        req = b.request(trace, t, t + 20 * slow, "/products/:id")
        b.query(trace, req, t + 2 * slow, t + 3 * slow, "select * from products where id = $1")
    for k, t in enumerate(range(100, RUN_MS, 500)):
        slow = 3 if rise and t > 2 * RUN_MS / 3 else 1
        trace = f"c{k}"
        req = b.request(trace, t, t + 30 * slow, "/checkout", status=201)
        body(b, trace, req, t + 10 * slow)
    for k, t in enumerate(at):
        trace = f"declined{k}"
        req = b.span(
            trace, t, t + 30, kind="SERVER", route=routes[k % len(routes)], http_status=402,
            events=[{"time_ns": 0, "name": "exception",
                     "attributes": json.dumps({"exception.type": "PaymentDeclined"})}],
        )  # fmt: skip
        declined(b, trace, req, t + 10)
    return b


def _read(
    b: RunBuilder, reader: Callable[..., Suspects | None] = unended_transactions
) -> Suspects | None:
    with open_run(b.build(), "r") as run:
        return reader(run, PoolSettings())


def _findings(b: RunBuilder) -> list[Finding]:
    with open_run(b.build(), "r") as run:
        return pool_exhaustion(run)


DECLINED_402 = Group("/checkout", None, 402, "PaymentDeclined")


def test_transactions_never_ended_name_the_route_status_and_exception() -> None:
    got = _read(shop())
    assert got is not None
    assert (got.group, got.count, got.total) == (DECLINED_402, 3, 3)
    assert got.traces == ("declined0", "declined1", "declined2")
    assert got.detail["began"] == len(range(100, RUN_MS, 500)) + 3
    assert got.detail["ended_elsewhere"] == 0


def test_alone_with_latency_rising_they_are_a_leak_not_cpu_work() -> None:
    # no checkout span, no pool error: the leak's only trace is the open transactions
    (f,) = _findings(shop())
    assert f.kind == FindingKind.POOL_LEAK
    assert (
        f.title == "Connection-pool leak in /checkout that answered 402 and raised PaymentDeclined"
    )
    assert f.route == "/checkout"
    assert f.trace_ids == ("declined0", "declined1", "declined2")
    assert "3 requests began a database transaction and ended without committing" in (f.explanation)
    assert "the median request took 20.0 ms in the run's first third and 60.0 ms" in (f.explanation)
    assert f.suggestion.startswith("End the transaction on every path")
    assert "Start with the path of every /checkout that answered 402" in f.suggestion
    assert f.evidence["leak_suspects"]["suspects"] == 3


def test_without_latency_rising_they_raise_nothing_of_their_own() -> None:
    assert _findings(shop(rise=False)) == []


def test_one_alone_raises_nothing_of_its_own() -> None:
    assert _findings(shop(at=(6_000,))) == []


def test_suspects_spread_over_routes_name_none() -> None:
    b = shop(at=(3_000, 6_000, 9_000, 12_000), routes=("/checkout", "/refund", "/cart", "/cart2"))
    got = _read(b)
    assert got is not None and got.total == 4 and got.group is None
    assert _findings(b) == []


def test_a_request_cut_by_the_runs_end_is_no_suspect() -> None:
    # its COMMIT never came: the run ended (the load stopped) while it ran
    assert _read(shop(at=(RUN_MS - 500,))) is None


def test_autocommit_requests_begin_nothing() -> None:
    def autocommit(b: RunBuilder, trace: str, req: str, t: float) -> float:
        _insert(b, trace, req, t)
        return t + 3

    assert _read(shop(declined=autocommit, body=autocommit)) is None


def test_a_commit_after_the_response_ends_the_transaction() -> None:
    def committed_later(b: RunBuilder, trace: str, req: str, t: float) -> float:
        left_open(b, trace, req, t)
        # a callback that commits after the response was sent: same trace, outside the
        # request's time
        b.query(trace, req, t + 100, t + 101, "COMMIT")
        return t + 101

    assert _read(shop(declined=committed_later)) is None


def test_a_driver_that_records_no_commit_names_nothing() -> None:
    # every transaction begins and none ends in the spans: the ends are not recorded
    assert _read(shop(body=left_open)) is None


@pytest.mark.parametrize(
    ("statements", "open_"),
    [
        (["SAVEPOINT sa_1", "ROLLBACK TO SAVEPOINT sa_1", "RELEASE SAVEPOINT sa_1", "COMMIT"], False),
        (["SAVEPOINT sa_1", "ROLLBACK TO SAVEPOINT sa_1"], True),
        (["PREPARE TRANSACTION 'tx1'"], False),  # two-phase: the session is free again
        (["ROLLBACK"], False),
        (["END"], False),
        (["COMMIT", "BEGIN ISOLATION LEVEL SERIALIZABLE"], True),
    ],
)  # fmt: skip
def test_savepoints_end_nothing_and_two_phase_commit_frees_the_session(
    statements: list[str], open_: bool
) -> None:
    def declined(b: RunBuilder, trace: str, req: str, t: float) -> float:
        left_open(b, trace, req, t)
        for k, sql in enumerate(statements):
            b.query(trace, req, t + 5 + k, t + 5.5 + k, sql)
        return t + 5 + len(statements)

    got = _read(shop(declined=declined))
    assert (got is not None and got.total == 3) is open_


# -- correlate watch's sessions held idle in transaction -------------------------------------


def _watched(b: RunBuilder, gaps: tuple[float, ...], *, ahead_ms: float = 40_000.0) -> None:
    """Samples from 20 s on in which the sessions of the declined checkouts sit idle in
    transaction, each last statement seen ``gap`` ms after its span began (the server's
    clock ``ahead_ms`` ahead)."""
    for at in (20_000, 25_000, 29_000):
        sessions = [
            (100 + k, "idle_in_transaction", DECLINED[k] + 11 + 0.5 + gap, INSERT)
            for k, gap in enumerate(gaps)
        ]
        b.watched(at, [*sessions, (200, "idle", 0.0, None)], server_ahead_ms=ahead_ms)


def test_each_held_session_names_the_request_that_ran_its_last_statement() -> None:
    b = shop(rise=False)
    _watched(b, (0.2, 0.3, 0.1))
    got = _read(b, matched_sessions)
    assert got is not None and got.source == "database sessions"
    assert (got.group, got.count, got.total) == (DECLINED_402, 3, 3)
    assert [m["trace_id"] for m in got.detail["matches"]] == ["declined0", "declined1", "declined2"]


def test_the_held_sessions_and_their_route_make_the_leak() -> None:
    b = shop()
    _watched(b, (0.2, 0.3, 0.1))
    (f,) = _findings(b)
    assert f.kind == FindingKind.POOL_LEAK
    assert f.evidence["leak_suspects"]["source"] == "database sessions"
    assert "of the 3 sessions the database saw held idle in transaction, 3 last ran" in (
        f.explanation
    )
    assert "Start with the path of every /checkout that answered 402" in f.suggestion


def test_a_session_with_two_requests_near_its_statement_matches_neither() -> None:
    b = shop(rise=False)
    _watched(b, (0.2, 0.3, 0.1))
    # another request's INSERT began 0.5 ms from the first session's statement
    req = b.request("near", DECLINED[0], DECLINED[0] + 30, "/checkout", status=201)
    committed(b, "near", req, DECLINED[0] + 10 + 0.7)
    got = _read(b, matched_sessions)
    assert got is not None
    assert [m["trace_id"] for m in got.detail["matches"]] == ["declined1", "declined2"]


def test_a_session_whose_statement_no_span_began_near_matches_nothing() -> None:
    b = shop(rise=False)
    _watched(b, (-60.0, 300.0, 2_000.0))
    got = _read(b, matched_sessions)
    assert got is not None and got.group is None and got.detail["matches"] == []


@pytest.mark.clickhouse
def test_clickhouse_names_the_same_suspects(chdb: object) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    b = shop()
    _watched(b, (0.2, 0.3, 0.1))
    store = b.build()
    with open_run(store, "r") as run:
        local = [unended_transactions(run, PoolSettings()), matched_sessions(run, PoolSettings())]
    there, _ = copied(store, chdb, "r")
    remote = Run(there, "r")  # type: ignore[arg-type]
    assert local[0] is not None and local[1] is not None
    assert [
        unended_transactions(remote, PoolSettings()),
        matched_sessions(remote, PoolSettings()),
    ] == local


def test_they_name_the_route_of_a_leak_read_from_the_pools_errors() -> None:
    # from 20 s the pool refuses product pages (knex's own error, no checkout span): the
    # errors say the pool ran dry, the open transactions say whose connections it lacks
    b = shop(rise=False)
    for k, t in enumerate(range(20_050, RUN_MS - 3_000, 100)):
        b.span(
            f"dry{k}", t, t + 1_500, kind="SERVER", route="/products/:id", http_status=500,
            status="ERROR",
            events=[{"time_ns": 0, "name": "exception", "attributes": json.dumps({
                "exception.type": "KnexTimeoutError",
                "exception.message": "Knex: Timeout acquiring a connection. The pool is "
                "probably full. Are you missing a .transacting(trx) call?"})}],
        )  # fmt: skip
    (f,) = _findings(b)
    assert f.kind == FindingKind.POOL_LEAK
    assert f.evidence["requests_without_a_connection"] > 20
    assert (
        f.title == "Connection-pool leak in /checkout that answered 402 and raised PaymentDeclined"
    )
    assert f.trace_ids == ("declined0", "declined1", "declined2")
    assert "Record the run with correlate.instrument" not in f.suggestion


#: the moment the database stops answering in :func:`frozen`, and how long each request
#: after it waits before its client gives up (ms)
FREEZE_MS, GAVE_UP_MS = 20_000, 4_000


def frozen(*, others_answered: bool = False) -> RunBuilder:
    """The shop's traffic until the database stops answering at ``FREEZE_MS``; two
    checkouts had begun their transaction just before, and sent a statement that never came
    back. Every request from then on waits until its client gives up (Node answers 200 for
    it), with no query ending, unless ``others_answered``: product pages still get theirs."""
    b = RunBuilder()
    for k, t in enumerate(range(0, RUN_MS, 200)):
        trace = f"p{k}"
        if t < FREEZE_MS or others_answered:
            req = b.request(trace, t, t + 20, "/products/:id")
            b.query(trace, req, t + 2, t + 3, "select * from products where id = $1")
        else:
            b.request(trace, t, t + GAVE_UP_MS, "/products/:id")
    for k, t in enumerate(range(100, FREEZE_MS - 100, 500)):
        trace = f"c{k}"
        committed(b, trace, b.request(trace, t, t + 30, "/checkout", status=201), t + 10)
    for k, t in enumerate((FREEZE_MS - 20, FREEZE_MS - 10)):
        trace = f"hung{k}"
        req = b.request(trace, t, t + GAVE_UP_MS, "/checkout", status=200)
        b.query(trace, req, t + 1, t + 2, "BEGIN")
    return b


def test_transactions_cut_short_by_a_database_that_stopped_answering_are_no_leak() -> None:
    # before, these two were "transactions never ended" and, with the latency every request
    # after the freeze shows, a critical leak of the connections the hang held
    assert _read(frozen()) is None
    assert [f.kind for f in _findings(frozen())] == []


def test_a_transaction_left_waiting_while_the_database_answered_others_stays_a_suspect() -> None:
    got = _read(frozen(others_answered=True))
    assert got is not None and got.total == 2 and got.traces == ("hung0", "hung1")


@pytest.mark.parametrize("others_answered", [False, True])
def test_clickhouse_tells_a_hung_transaction_as_duckdb_does(
    chdb: object, others_answered: bool
) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = frozen(others_answered=others_answered).build()
    with open_run(store, "r") as run:
        local = unended_transactions(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    assert unended_transactions(Run(there, "r"), PoolSettings()) == local  # type: ignore[arg-type]
    assert (local is not None) == others_answered
