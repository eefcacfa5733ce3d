"""Leak or saturation from spans alone, on runs simulated against a pool with real rules.

Each run comes from :func:`simulate`: closed-loop users (like Locust) against a
service whose requests take a connection from a fixed-size pool, first come first
served, and give it back when they end — except the leaking path, which keeps it.
Spans are shaped like the OpenTelemetry SQLAlchemy and Flask instrumentations emit
them: a SERVER span per request, a ``connect`` CLIENT span with ``db.system``
around the checkout (ERROR with a ``TimeoutError`` event when the pool timed out),
then a query span.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.findings import Finding
from correlate.analysis.pool_inference import infer
from correlate.analysis.verdict import reconcile
from correlate.kinds import FindingKind

from .builders import RunBuilder, ns


@dataclass(frozen=True)
class Service:
    capacity: int = 10
    db_ms: float = 50.0
    app_ms: float = 100.0
    think_ms: float = 250.0
    timeout_ms: float = 1000.0
    #: every n-th request is a POST /orders answered 409 (the others: GET 200, POST 201)
    conflict_every: int = 80
    #: whether a request keeps its connection: (start ms, request number, status) -> bool
    leaks: Callable[[float, int, int], bool] = lambda t, n, status: False
    #: the connection goes back after the query (``with engine.connect()``), not at the end
    release_after_query: bool = False
    #: ...this long after the query ends
    release_lag_ms: float = 1.0
    #: the leaking request answers at once, and its end is stamped this long before its
    #: checkout's (the JavaScript SDK's millisecond start clock)
    leak_stamped_early_ms: float | None = None


def simulate(
    b: RunBuilder, svc: Service, users: Callable[[float], int], seconds: float = 60
) -> dict[str, int]:
    """Write the run's spans into ``b``; returns counts of what happened."""
    free = [0.0] * svc.capacity  # when each connection is next free (inf: leaked)
    max_users = max(users(t * 1000.0) for t in range(int(seconds) + 1))
    arrivals = [(u * 13.0, u) for u in range(max_users)]
    heapq.heapify(arrivals)
    count = {"requests": 0, "leaked": 0, "timeouts": 0, "conflicts": 0}
    while arrivals:
        t, user = heapq.heappop(arrivals)
        if t >= seconds * 1000:
            continue
        if user >= users(t):
            heapq.heappush(arrivals, (t + 250, user))
            continue
        n = count["requests"] = count["requests"] + 1
        if n % svc.conflict_every == 0:
            method, status = "POST", 409
        elif n % 3 == 0:
            method, status = "POST", 201
        else:
            method, status = "GET", 200
        trace = f"t{n}"
        conn = min(range(svc.capacity), key=lambda i: free[i])
        acquired = max(t + 0.5, free[conn])
        if acquired > t + svc.timeout_ms:
            end = t + svc.timeout_ms + 2
            r = _server(b, trace, t, end, method, 500, "TimeoutError")
            b.connect(trace, r, t, t + svc.timeout_ms, timeout=True)
            count["timeouts"] += 1
        else:
            leaked = svc.leaks(t, n, status)
            early = svc.leak_stamped_early_ms if leaked else None
            end = acquired + svc.db_ms + svc.app_ms if early is None else acquired - early
            r = _server(b, trace, t, end, method, status, None)
            b.connect(trace, r, t, acquired)
            if early is None:
                b.query(
                    trace, r, acquired, acquired + svc.db_ms, "SELECT * FROM orders WHERE id = 1"
                )
            back = acquired + svc.db_ms + svc.release_lag_ms if svc.release_after_query else end
            free[conn] = float("inf") if leaked else back
            count["leaked"] += leaked
            count["conflicts"] += status == 409
        b.user_request(user, t, end - t, "/orders")
        heapq.heappush(arrivals, (end + svc.think_ms, user))
    return count


def _server(
    b: RunBuilder,
    trace: str,
    start: float,
    end: float,
    method: str,
    status: int,
    exception: str | None,
) -> str:
    events = (
        [
            {
                "time_ns": ns(end),
                "name": "exception",
                "attributes": json.dumps({"exception.type": exception}),
            }
        ]
        if exception
        else None
    )
    sid = b.span(
        trace,
        start,
        end,
        kind="SERVER",
        name=f"{method} /orders",
        route="/orders",
        http_status=status,
        status="ERROR" if status >= 500 else "UNSET",
        events=events,
    )
    b.spans[-1]["http_method"] = method
    return sid


def analysed(b: RunBuilder) -> tuple[list[Finding], object]:
    store = b.build()
    with open_run(store, "r") as run:
        found = pool_exhaustion(run)
        inferred = infer(run, PoolSettings())
        every = reconcile(run.findings())
    return found, (inferred, every)


# -- the scenarios ------------------------------------------------------------------------


def on_conflict(t: float, n: int, status: int) -> bool:
    return status == 409


LEAK = Service(leaks=on_conflict)


def leak_steady() -> RunBuilder:
    b = RunBuilder()
    simulate(b, LEAK, users=lambda t: 10)
    return b


def leak_ramp_down() -> RunBuilder:
    b = RunBuilder()
    simulate(
        b,
        Service(conflict_every=120, leaks=on_conflict),
        users=lambda t: 16 if t < 25_000 else 4,
        seconds=80,
    )
    return b


def saturation_steady() -> RunBuilder:
    b = RunBuilder()
    simulate(b, Service(capacity=5), users=lambda t: 20)
    return b


def saturation_recovers() -> RunBuilder:
    b = RunBuilder()
    simulate(b, Service(capacity=5), users=lambda t: 20 if t < 30_000 else 3)
    return b


def too_little() -> RunBuilder:
    b = RunBuilder()
    simulate(b, Service(capacity=1, think_ms=0), users=lambda t: 3, seconds=1.2)
    return b


def early_release_leak() -> RunBuilder:
    b = RunBuilder()
    svc = Service(leaks=on_conflict, release_after_query=True, db_ms=100, app_ms=50)
    simulate(b, svc, users=lambda t: 10)
    return b


SCENARIOS = {
    "leak_steady": leak_steady,
    "early_release_leak": early_release_leak,
    "leak_ramp_down": leak_ramp_down,
    "saturation_steady": saturation_steady,
    "saturation_recovers": saturation_recovers,
    "too_little": too_little,
}


@pytest.mark.parametrize(
    "make",
    [leak_steady, leak_ramp_down, early_release_leak],
    ids=["steady", "ramp_down", "early_release"],
)
def test_a_leak_is_named_with_its_route_status_and_statistic(
    make: Callable[[], RunBuilder],
) -> None:
    (f,), (inf, _) = analysed(make())
    assert f.kind == FindingKind.POOL_LEAK
    assert inf.verdict == "leak"
    culprit = f.evidence["checkout_spans"]["culprit"]
    assert (culprit["route"], culprit["method"], culprit["status"]) == ("/orders", "POST", 409)
    assert culprit["p_value"] < 0.01
    assert culprit["drops_followed"] >= 2
    assert f.route == "/orders"
    assert "POST /orders that answered 409" in f.title
    assert f"{culprit['drops_followed']} of {culprit['drops']} capacity drops follow" in (
        f.explanation
    )
    assert inf.capacity_last < inf.capacity_first
    assert f.trace_ids


def test_a_leak_ends_with_requests_waiting_on_an_idle_database() -> None:
    (f,), (inf, _) = analysed(leak_steady())
    assert inf.capacity_last == 0
    assert inf.idle_waits > 0 and inf.idle_waits >= 0.9 * inf.final_waits
    assert "the database was idle" in f.explanation
    assert f.severity == "critical"  # checkouts timed out


@pytest.mark.parametrize(
    "make", [saturation_steady, saturation_recovers], ids=["steady", "recovers"]
)
def test_saturation_is_a_full_pool_of_live_requests(make: Callable[[], RunBuilder]) -> None:
    (f,), (inf, _) = analysed(make())
    assert inf.verdict == "saturation"
    assert f.kind == FindingKind.POOL_SATURATION
    assert inf.capacity_first == inf.capacity_last == 5
    assert inf.at_capacity_share >= 0.8
    assert "It is no leak" in f.explanation
    assert "leak cannot be ruled out" not in f.explanation


def test_saturation_when_connections_go_back_before_the_request_ends() -> None:
    b = RunBuilder()
    svc = Service(capacity=3, db_ms=100, app_ms=50, think_ms=100, release_after_query=True)
    simulate(b, svc, users=lambda t: 20)
    (f,), (inf, _) = analysed(b)
    assert inf.verdict == "saturation" and f.kind == FindingKind.POOL_SATURATION
    assert "held all 3 connections" in f.explanation


def test_too_little_data_says_it_cannot_tell() -> None:
    (f,), (inf, _) = analysed(too_little())
    assert inf.verdict == "undecided"
    assert f.kind == FindingKind.POOL_EXHAUSTED
    assert "cannot be told apart" in f.title
    assert "at least 20 are needed" in f.explanation


def test_no_route_is_named_when_none_stands_out() -> None:
    # one request in 80 keeps its connection, whatever its route and status
    b = RunBuilder()
    simulate(b, Service(leaks=lambda t, n, status: n % 80 == 7), users=lambda t: 10)
    (f,), (inf, _) = analysed(b)
    assert inf.verdict == "leak" and f.kind == FindingKind.POOL_LEAK
    assert inf.culprit is None and f.route is None
    assert "no route stands out" in f.explanation


@pytest.mark.parametrize(
    ("name", "kind"),
    [("pg-pool.connect", "CLIENT"), ("generic-pool.acquire", "INTERNAL"), ("connect", "CLIENT")],
)
def test_other_instrumentations_checkout_spans_are_read(name: str, kind: str) -> None:
    b = RunBuilder()
    simulate(b, Service(capacity=5), users=lambda t: 20, seconds=30)
    for span in b.spans:
        if span["name"] == "connect":
            span["name"], span["kind"] = name, kind
    (f,), (inf, _) = analysed(b)
    assert f.kind == FindingKind.POOL_SATURATION and inf.verdict == "saturation"


def test_every_checkout_span_name_counts_as_pool_wait() -> None:
    from correlate.analysis.pool_inference import CHECKOUT_SPAN_NAMES
    from correlate.analysis.requests import CATEGORY_SQL

    for name in CHECKOUT_SPAN_NAMES:
        assert f"'{name}'" in CATEGORY_SQL


# -- one coherent verdict ---------------------------------------------------------------


def causes(findings: list[Finding]) -> set[str]:
    """The pool causes the findings name: their own kind, or the cause they defer to."""
    pool = {
        str(k)
        for k in (FindingKind.POOL_LEAK, FindingKind.POOL_SATURATION, FindingKind.POOL_EXHAUSTED)
    }
    named = set()
    for f in findings:
        if str(f.kind) in pool:
            named.add(str(f.kind))
        elif str(f.evidence.get("cause")) in pool:  # a fan-out may defer to its N+1: not a pool
            named.add(str(f.evidence["cause"]))
        text = f"{f.title} {f.explanation} {f.suggestion}".lower()
        if f.kind != FindingKind.POOL_LEAK and "connections are leaking" in text:
            named.add("pool_leak")
    return named


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_findings_name_one_cause_for_the_pool(name: str) -> None:
    _, (_, every) = analysed(SCENARIOS[name]())
    assert len(causes(every)) <= 1, [(f.kind, f.title) for f in every]
    pool = [f for f in every if f.kind.startswith("pool_")]
    for f in every:
        if f.evidence.get("cause"):
            assert pool and f.evidence["cause"] == pool[0].kind
            assert pool[0].title in f.suggestion


@pytest.mark.parametrize(
    "sample",
    [
        "checkout-blackfriday",
        "checkout-fixed",
        "checkout-blackfriday-otel",
        "checkout-saturation-otel",
    ],
)
def test_committed_samples_name_one_cause(sample: str) -> None:
    import correlate

    with correlate.open_store(":memory:") as store:
        result = correlate.analyze(f"sample_traces/{sample}", store=store)
    assert len(causes(result.findings)) <= 1, [(f.kind, f.title) for f in result.findings]


# -- no span set crashes the inference --------------------------------------------------

spans = st.lists(
    st.tuples(
        st.floats(0, 20_000),  # request start
        st.floats(0, 3_000),  # connect wait
        st.floats(0, 500),  # hold
        st.booleans(),  # connect failed
        st.sampled_from([200, 201, 409, 500]),
        st.booleans(),  # has a query
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans, st.integers(1, 40))
def test_random_span_sets_never_crash_the_inference(rows: list, min_waits: int) -> None:
    b = RunBuilder()
    for i, (start, wait, hold, failed, status, query) in enumerate(rows):
        trace = f"t{i}"
        r = b.request(trace, start, start + wait + hold, "/x", status=status)
        b.connect(trace, r, start, start + wait, timeout=failed)
        if query and not failed:
            b.query(trace, r, start + wait, start + wait + hold / 2)
    store = b.build()
    s = PoolSettings(min_waits=min_waits, min_windows=1, min_window_waits=1)
    with open_run(store, "r") as run:
        inf = infer(run, s)
        found = pool_exhaustion(run, s)
    if rows:
        assert inf is not None and inf.verdict in ("leak", "saturation", "undecided")
        assert 0 <= inf.at_capacity_share <= 1
        if inf.culprit:
            assert 0 <= inf.culprit.p_value <= 1
    assert all(f.kind.startswith("pool_") for f in found)
    assert len(found) <= 1


def test_a_request_waiting_in_a_later_checkout_is_not_a_holder() -> None:
    """node-postgres's pool.query takes a client per statement: a request between its
    statements holds nothing, and while it waits for its next client it is a waiter."""
    b = RunBuilder()
    # a pool of one connection; every 100 ms: A takes it, queries, gives it back and asks
    # again while B, which got it next, holds it for 50 ms
    for k in range(30):
        t = k * 100.0
        a = _server(b, f"a{k}", t, t + 60, "GET", 200, None)
        b.connect(f"a{k}", a, t, t + 1)
        b.query(f"a{k}", a, t + 1, t + 5)
        b.connect(f"a{k}", a, t + 6, t + 56)  # waits for B's connection
        b.query(f"a{k}", a, t + 56, t + 59)
        r = _server(b, f"b{k}", t + 5, t + 56, "POST", 201, None)
        b.connect(f"b{k}", r, t + 5, t + 5.5)
        b.query(f"b{k}", r, t + 5.5, t + 55)
    store = b.build()
    with open_run(store, "r") as run:
        inferred = infer(run, PoolSettings(min_waits=5, window_s=1.0, min_windows=2))
    assert inferred is not None and inferred.waits == 30
    # one connection, held by B, at every wait: not two (A is waiting, not holding)
    assert {n for _, n in inferred.levels} == {1}
    assert inferred.verdict == "saturation"


def test_a_leak_is_named_when_neither_reading_of_the_hold_is_exact() -> None:
    """The connection goes back a while after the last query and well before the request
    ends (node-postgres under a busy event loop): at a wait, the holders until their last
    query are too few and the holders until their end too many, so the waits that see the
    level are sparse; a drop's window must reach to the request that kept its connection."""
    b = RunBuilder()
    svc = Service(
        leaks=on_conflict, release_after_query=True, release_lag_ms=30, db_ms=100, app_ms=80
    )
    simulate(b, svc, users=lambda t: 10)
    (f,), (inf, _) = analysed(b)
    assert inf.verdict == "leak"
    culprit = f.evidence["checkout_spans"]["culprit"]
    assert (culprit["route"], culprit["method"], culprit["status"]) == ("/orders", "POST", 409)
    assert culprit["p_value"] < 0.01


def test_a_leaking_request_that_seems_to_end_before_its_checkout_is_still_named() -> None:
    """Node's SDK stamps starts with a millisecond clock: a request that answers right after
    its checkout can seem to end a fraction of a millisecond before the checkout does."""
    b = RunBuilder()
    simulate(b, Service(leaks=on_conflict, leak_stamped_early_ms=0.05), users=lambda t: 10)
    (f,), (inf, _) = analysed(b)
    assert inf.verdict == "leak"
    culprit = f.evidence["checkout_spans"]["culprit"]
    assert (culprit["route"], culprit["method"], culprit["status"]) == ("/orders", "POST", 409)
