"""Queries that never returned hold a pool's connections as a leak does; a leak must still
read as a leak.

The runs are small simulations of examples/node-shop's shape (a pg Pool with checkout
spans, a transaction per request, a load generator that gives up on a request after a
timeout): a network that stops answering mid-transaction, on pools from one connection to
ten, against leaks and saturation whose requests work on for a while after their queries,
which makes them look silent too.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.findings import Finding
from correlate.analysis.pool_inference import infer
from correlate.analysis.pool_stalled import stalled_holds
from correlate.kinds import FindingKind

from .builders import RunBuilder

HUNG = "Connection pool held by queries that never returned"


def shop(
    b: RunBuilder,
    *,
    capacity: int = 10,
    users: int = 12,
    seconds: float = 30,
    leaks: Callable[[int], bool] = lambda n: False,
    tail_ms: Callable[[int, bool], float] = lambda n, leaked: 5.0,
    freeze_at: float | None = None,
    client_timeout_ms: float = 4000,
    pool_timeout_ms: float = 2000,
    leak_status: int = 402,
    think_ms: float = 50,
) -> dict[str, int]:
    """Write a closed-loop shop's spans into ``b``, as node-postgres's pool and Node's
    instrumentations emit them: a checkout span per request (an error when the pool found
    no connection within ``pool_timeout_ms``), BEGIN, a query, then ``tail_ms`` of work no
    span covers before the answer. A request that ``leaks`` answers 402 and keeps its
    connection. From ``freeze_at`` on, no statement returns: a request whose query was
    running then, or that starts one later, holds its connection for good and ends when its
    client gives up (``client_timeout_ms``), with the status Node gives it, 200."""
    free = [0.0] * capacity
    arrivals = [(u * 7.0, u) for u in range(users)]
    heapq.heapify(arrivals)
    count = {"requests": 0, "failed": 0, "leaked": 0, "hung": 0}
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= seconds * 1000:
            continue
        n = count["requests"] = count["requests"] + 1
        trace = b.new_id("t")
        conn = min(range(capacity), key=free.__getitem__)
        acquired = max(t + 0.5, free[conn])
        if acquired > t + pool_timeout_ms:
            end = min(t + pool_timeout_ms + 1, t + client_timeout_ms)
            r = b.request(trace, t, end, "/checkout", status=503, error=True)
            b.connect(trace, r, t, t + pool_timeout_ms, timeout=True)
            count["failed"] += 1
        else:
            begun, done = acquired + 1, acquired + 21
            if freeze_at is not None and done > freeze_at:
                end = t + client_timeout_ms  # the client gives up; Node ends the span, 200
                r = b.request(trace, t, end, "/checkout", status=200)
                b.connect(trace, r, t, acquired)
                if begun <= freeze_at:
                    b.query(trace, r, acquired, begun, "BEGIN")
                free[conn] = float("inf")
                count["hung"] += 1
            else:
                leaked = leaks(n)
                end = done + tail_ms(n, leaked)
                r = b.request(trace, t, end, "/checkout", status=leak_status if leaked else 201)
                b.connect(trace, r, t, acquired)
                b.query(trace, r, acquired, begun, "BEGIN")
                b.query(trace, r, begun, done, "SELECT * FROM orders WHERE id = 1")
                free[conn] = float("inf") if leaked else end
                count["leaked"] += leaked
        heapq.heappush(arrivals, (end + think_ms, user))
    # one event up front, so the frame's events column is typed from its first rows
    first = next(span for span in b.spans if span["kind"] == "SERVER")
    first["events"] = [{"time_ns": first["start_ns"], "name": "log", "attributes": "{}"}]
    return count


def findings(**shape: object) -> tuple[list[Finding], str | None]:
    """The pool findings of a shop of ``shape``, and the pool's inferred verdict."""
    b = RunBuilder()
    shop(b, **shape)  # type: ignore[arg-type]
    with open_run(b.build(), "r") as run:
        inferred = infer(run, PoolSettings())
        return pool_exhaustion(run), inferred.verdict if inferred else None


@pytest.mark.parametrize("capacity", [2, 3, 10])
def test_a_network_that_stops_answering_mid_transaction_is_a_hang(capacity: int) -> None:
    # BEGIN returned, the next statement never did; the pool's capacity reads as a leak's
    (f,), verdict = findings(capacity=capacity, users=capacity + 2, freeze_at=10_000)
    assert verdict == "leak"
    assert f.kind == FindingKind.POOL_EXHAUSTED and f.title.startswith(HUNG)
    hung = f.evidence["hung_requests"]
    assert hung["took_their_connection_before_the_first_failure"] == capacity
    assert hung["silent_at_once"] == capacity
    assert 9.9 <= hung["from_s"] <= hung["to_s"] <= 10.1
    assert hung["median_silence_s"] == pytest.approx(4.0, abs=0.05)
    assert f"At 10 s, {capacity} requests took a connection and went silent" in f.explanation
    assert "statement_timeout" in f.suggestion
    # the hung requests are the finding's traces, shown where the evidence's dict is not
    assert f.trace_ids and list(f.trace_ids) == hung["traces"]


def test_a_hang_on_a_pool_of_one_is_left_to_the_leak_rule() -> None:
    # one silent request is no pattern: a leaking request that works on would look the same
    (f,), _ = findings(capacity=1, users=3, freeze_at=10_000)
    assert f.kind == FindingKind.POOL_LEAK


def test_a_leak_whose_requests_work_on_after_their_last_query_is_still_a_leak() -> None:
    # each leaking request spends 1.5 s after its ROLLBACK (an uninstrumented call, a
    # render) before it answers 402: silent, as a hung one, but one at a time
    leaks, tail = (lambda n: n % 40 == 0), (lambda n, leaked: 1500.0 if leaked else 5.0)
    (f,), verdict = findings(leaks=leaks, tail_ms=tail)
    assert verdict == "leak"
    assert f.kind == FindingKind.POOL_LEAK, f.title
    assert "hung_requests" not in f.evidence


@pytest.mark.parametrize("status", [402, 200])
def test_a_fast_leak_whose_requests_work_on_is_still_a_leak(status: int) -> None:
    # one request in ten leaks and works on for 3 s: the pool is empty within a second,
    # its leaking requests all silent at once, as hung ones would be. An error status is
    # an answer; without one, the queries that returned while they were silent say the
    # database was answering
    leaks, tail = (lambda n: n % 10 == 0), (lambda n, leaked: 3000.0 if leaked else 5.0)
    (f,), verdict = findings(leaks=leaks, tail_ms=tail, leak_status=status)
    assert verdict == "leak"
    assert f.kind == FindingKind.POOL_LEAK, f.title
    b = RunBuilder()
    shop(b, leaks=leaks, tail_ms=tail, leak_status=status)
    with open_run(b.build(), "r") as run:
        held = stalled_holds(run, "svc", 1000)
    if status == 402:
        assert held.requests == 0
    else:
        assert held.at_once >= 9 and held.answered > 0


def test_saturation_whose_requests_work_on_after_their_queries_is_still_saturation() -> None:
    # every request works 1.2 s after its queries, holding its connection: a full pool
    # of silent requests, which give their connections back
    (f,), verdict = findings(capacity=5, users=14, tail_ms=lambda n, leaked: 1200.0)
    assert verdict == "saturation"
    assert f.kind == FindingKind.POOL_SATURATION, f.title


def test_a_leak_whose_clients_give_up_before_the_pool_does_is_still_a_leak() -> None:
    # the load generator aborts at 1 s, the pool's checkout fails at 2 s: the requests
    # waiting for a connection end first, with no failed checkout yet
    (f,), _ = findings(leaks=lambda n: n % 40 == 0, client_timeout_ms=1000)
    assert f.kind == FindingKind.POOL_LEAK


def test_more_silent_requests_than_connections_are_no_hang() -> None:
    b = RunBuilder()
    shop(b, capacity=10, users=30, freeze_at=10_000, tail_ms=lambda n, leaked: 1100.0)
    with open_run(b.build(), "r") as run:
        held = stalled_holds(run, "svc", 1000)
    assert held.before_failures > 11
    assert not held.explains(capacity=10, slack=1, at_least=3)


@pytest.mark.clickhouse
@pytest.mark.parametrize("shape", ["hang", "leak"])
def test_clickhouse_reads_the_hung_requests_as_duckdb_does(chdb: object, shape: str) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    b = RunBuilder()
    if shape == "hang":
        shop(b, capacity=2, users=4, freeze_at=10_000)
    else:
        shop(
            b,
            leaks=lambda n: n % 10 == 0,
            tail_ms=lambda n, leaked: 3000.0 if leaked else 5.0,
            leak_status=200,
        )
    store = b.build()
    with open_run(store, "r") as run:
        local = [(f.kind, f.title, f.explanation, f.evidence) for f in pool_exhaustion(run)]
        local_held = stalled_holds(run, "svc", 1000)
    there, _ = copied(store, chdb, "r")
    remote_run = Run(there, "r")  # type: ignore[arg-type]
    remote = [(f.kind, f.title, f.explanation, f.evidence) for f in pool_exhaustion(remote_run)]
    assert local and remote == local
    assert stalled_holds(remote_run, "svc", 1000) == local_held
    assert (local_held.answered > 0) == (shape == "leak")
    assert local_held.explains(capacity=2 if shape == "hang" else 10, slack=1, at_least=3) == (
        shape == "hang"
    )
