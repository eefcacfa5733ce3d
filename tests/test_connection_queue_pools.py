"""An inferred connection queue is told once per pool, and both of its readers agree.

``unexplained_time`` says the routes that most likely queued for one pool in one finding,
each route with its wait as evidence; ``slow_query`` sets the inferred wait aside only on
those routes (the run's ``queued_routes`` table, read by both). Two services, or two
databases of one process, have pools of their own, each sized from its own holders.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import UnexplainedTimeSettings, slow_query, unexplained_time

from .builders import RunBuilder
from .test_connection_queue import _queued_run, queue_behind_work


def _shared_pool_run(routes: tuple[str, ...] = ("/a", "/b", "/c"), pool: int = 2) -> RunBuilder:
    """Requests every 10 ms, taking turns over ``routes``, each one 40 ms query on one pool
    of ``pool``: every route queues for the same connections."""
    b = RunBuilder()
    free = [0.0] * pool
    for i in range(90):
        start = i * 10.0
        at = max(start, heapq.heappop(free))
        heapq.heappush(free, at + 40)
        trace = b.new_id("t")
        r = b.request(trace, start, at + 41, routes[i % len(routes)])
        b.query(trace, r, at, at + 40, "SELECT count(*) FROM orders WHERE day = 1")
    return b


def test_one_pool_queue_is_one_finding_with_each_route_as_evidence() -> None:
    with open_run(_shared_pool_run().build(), "r") as run:
        found = unexplained_time(run)
    (finding,) = found
    listed = {r["route"]: r for r in finding.evidence["routes"]}
    assert set(listed) == {"/a", "/b", "/c"}
    assert all(r["queued_ms"] > 0.5 * r["app_ms"] and r["requests"] == 30 for r in listed.values())
    assert finding.route in listed  # the route that waited longest in all
    assert finding.evidence["holders_ceiling"] == 2
    assert finding.evidence["requests"] == 90
    assert finding.impact_ms == sum(r["queued_ms"] * r["requests"] for r in listed.values())
    for route in listed:
        assert route in finding.title
    assert "queued for a connection from a pool of about 2" in finding.explanation
    assert "read from the spans' timing, not measured" in finding.explanation


def _two_services_run() -> RunBuilder:
    """/a and /b of ``svc`` on a pool of two; /c of ``reports`` on a pool of three."""
    b = _shared_pool_run(routes=("/a", "/b"), pool=2)
    other = _queued_run(pool=3, every=8, route="/c")
    for span in other.spans:
        span["trace_id"] = f"o-{span['trace_id']}"
        span["span_id"] = f"o-{span['span_id']}"
        span["parent_id"] = span["parent_id"] and f"o-{span['parent_id']}"
        span["service"] = "reports"
    b.spans += other.spans
    return b


def test_two_services_queue_for_pools_of_their_own() -> None:
    b = _two_services_run()
    with open_run(b.build(), "r") as run:
        found = {f.evidence["service"]: f for f in unexplained_time(run)}
    assert {r["route"] for r in found["svc"].evidence["routes"]} == {"svc /a", "svc /b"}
    assert {r["route"] for r in found["reports"].evidence["routes"]} == {"reports /c"}
    assert found["svc"].evidence["holders_ceiling"] == 2
    assert found["reports"].evidence["holders_ceiling"] == 3


def _own_database_run() -> RunBuilder:
    """/report queues for a pool of two on the reports database; /api's traffic on the main
    database puts more holders at once in the process than /report's pool ever could."""
    b = _queued_run(route="/report")
    for span in b.spans:
        span["db_namespace"] = "reports" if span["kind"] == "CLIENT" else None
    for i in range(400):
        start = i * 1.5
        trace = b.new_id("t")
        r = b.request(trace, start, start + 61, "/api")
        b.query(trace, r, start + 50, start + 60, "SELECT * FROM users WHERE id = 1")
        b.spans[-1]["db_namespace"] = "shop"
    return b


def test_a_route_on_a_database_of_its_own_is_sized_from_that_databases_holders() -> None:
    b = _own_database_run()
    with open_run(b.build(), "r") as run:
        (finding,) = [f for f in unexplained_time(run) if "queued_ms" in f.evidence]
    assert [r["route"] for r in finding.evidence["routes"]] == ["/report"]
    assert finding.evidence["holders_ceiling"] == 2
    assert finding.evidence["database"] == "reports"
    assert "queued for a connection to reports from a pool of about 2" in finding.explanation


def _bursts_run() -> RunBuilder:
    """Three requests at once every 250 ms, one 100 ms query each, on a pool of two."""
    b = RunBuilder()
    for burst in range(20):
        t = burst * 250.0
        for at in (t, t, t + 100):
            trace = b.new_id("t")
            r = b.request(trace, t, at + 101, "/orders")
            b.query(trace, r, at, at + 100, "SELECT * FROM orders WHERE customer_id = 1")
    return b


def test_slow_query_reads_a_queue_only_where_unexplained_time_reports_one() -> None:
    # three requests at once every 250 ms on a pool of two: the third queues 100 ms for a
    # connection, most of the route's uncovered time, yet that time is 34 ms a request,
    # under unexplained_time's floor: no finding says there is a queue, so slow_query may
    # not point to one nor set it aside
    b = _bursts_run()
    with open_run(b.build(), "r") as run:
        unexplained = unexplained_time(run)
        (slow,) = slow_query(run)
    assert not unexplained
    assert "inferred_queue_ms" not in slow.evidence
    assert "queue for a connection" not in slow.explanation


def test_with_a_lower_floor_both_read_the_same_queue() -> None:
    # the same run with unexplained_time's floor under the route's uncovered time: the
    # queue is reported, and slow_query sets it aside and names the same pool
    lower = UnexplainedTimeSettings(min_app_ms=20.0, min_share=0.2)
    with open_run(_bursts_run().build(), "r") as run:
        (unexplained,) = unexplained_time(run, lower)
        (slow,) = slow_query(run, unexplained=lower)
    (listed,) = unexplained.evidence["routes"]
    assert listed["route"] == slow.route == "/orders"
    assert slow.evidence["inferred_queue_ms"] == pytest.approx(listed["queued_ms"])
    assert unexplained.evidence["holders_ceiling"] == 2
    assert "a pool of about 2" in slow.explanation


def test_a_slow_downstream_points_at_the_pool_queue_that_lists_its_callees_route() -> None:
    # the callee's route waited for the pool, listed second in the pool's one finding
    from correlate.analysis.findings import Finding
    from correlate.analysis.verdict import reconcile

    def finding(kind: str, route: str, **evidence: object) -> Finding:
        return Finding(
            kind=kind, severity="warning", title=f"{kind} in {route}", explanation="",
            suggestion="", threshold="", source="", route=route, evidence=dict(evidence),
        )  # fmt: skip

    queue = finding("unexplained_time", "/a", routes=[{"route": "/a"}, {"route": "/b"}])
    calls = finding("slow_downstream", "/front", callee_route="/b", shape="GET /b")
    (downstream,) = [f for f in reconcile([queue, calls]) if f.kind == "slow_downstream"]
    assert downstream.evidence["cause"] == "unexplained_time"
    assert "unexplained_time in /a" in downstream.suggestion


def _pool_named_on_some_spans_run() -> RunBuilder:
    """One pool of two, named on every other query's span only."""
    b = _shared_pool_run()
    queries = [s for s in b.spans if s["kind"] == "CLIENT"]
    for span in queries[1::2]:
        span["attributes"] = json.dumps({"db.client.connection.pool.name": "main"})
    return b


def _address_case_run() -> RunBuilder:
    """One pool of two whose spans spell its host in two cases (host names have none)."""
    b = _shared_pool_run()
    queries = [s for s in b.spans if s["kind"] == "CLIENT"]
    for i, span in enumerate(queries):
        span["server_address"] = "DB.internal" if i % 2 else "db.internal"
    return b


@pytest.mark.parametrize("run", [_pool_named_on_some_spans_run, _address_case_run])
def test_spans_that_name_one_pool_unevenly_still_count_one_pool(run: Any) -> None:
    with open_run(run().build(), "r") as opened:
        (finding,) = unexplained_time(opened)
    assert {r["route"] for r in finding.evidence["routes"]} == {"/a", "/b", "/c"}
    assert finding.evidence["holders_ceiling"] == 2


def _primary_and_replica_run() -> RunBuilder:
    """/a and /b queue for a pool of two on the primary, /r for a pool of five on a replica:
    both servers' database is called ``shop``."""
    b = _shared_pool_run(routes=("/a", "/b"), pool=2)
    for span in b.spans:
        if span["kind"] == "CLIENT":
            span["server_address"], span["db_namespace"] = "primary", "shop"
    free = [0.0] * 5
    for i in range(300):
        start = i * 3.0
        at = max(start, heapq.heappop(free))
        heapq.heappush(free, at + 20)
        trace = b.new_id("t")
        r = b.request(trace, start, at + 21, "/r")
        b.query(trace, r, at, at + 20, "SELECT * FROM stock WHERE sku = 1")
        b.spans[-1]["server_address"], b.spans[-1]["db_namespace"] = "replica", "shop"
    return b


def test_two_servers_with_one_database_name_are_two_pools() -> None:
    with open_run(_primary_and_replica_run().build(), "r") as run:
        found = unexplained_time(run)
    sizes = {
        frozenset(r["route"] for r in f.evidence["routes"]): f.evidence["holders_ceiling"]
        for f in found
    }
    assert sizes == {frozenset({"/a", "/b"}): 2, frozenset({"/r"}): 5}


def test_a_queue_read_under_a_lower_queue_share_is_not_called_most_of_the_time() -> None:
    # the wait is under half the uncovered time, read as a queue only with queue_share
    # lowered to 0.2, and the title says how much of it was the wait
    with open_run(queue_behind_work().build(), "r") as run:
        (finding,) = unexplained_time(run, UnexplainedTimeSettings(queue_share=0.2))
    share = finding.evidence["queued_ms"] / finding.evidence["app_ms"]
    assert 0.2 <= share < 0.5
    assert "most of it" not in finding.title
    assert f"{share:.0%} of it a wait before the first query" in finding.title


def _call_first_run() -> tuple[RunBuilder, float]:
    """A pool of two kept busy by /busy; every third request is /agg, which first calls a
    pricing service (a traced HTTP call of 20 or 300 ms), then queues for a connection like
    the rest, and works 80 ms after its query. Returns the run and /agg's mean real wait."""
    b = RunBuilder()
    arrivals = []
    for i in range(120):
        call = (20.0 if i % 2 else 300.0) if i % 3 == 0 else 0.0
        arrivals.append((i * 10.0 + call, i * 10.0, call))
    free, waits = [0.0, 0.0], []
    for ready, start, call in sorted(arrivals):
        at = max(ready, heapq.heappop(free))
        heapq.heappush(free, at + 25)
        trace = b.new_id("t")
        r = b.request(trace, start, at + 26 + (80 if call else 0), "/agg" if call else "/busy")
        if call:
            waits.append(at - ready)
            b.span(trace, start, ready, parent=r, kind="CLIENT", name="GET")
            b.spans[-1]["http_method"], b.spans[-1]["server_address"] = "GET", "pricing"
        b.query(trace, r, at, at + 25, "SELECT price FROM items WHERE id = 1")
    return b, sum(waits) / len(waits)


def test_a_traced_call_before_the_first_query_is_not_part_of_the_wait() -> None:
    # the lead of /agg includes its HTTP call, covered by a span: only the rest of the lead
    # can be the wait no span measures
    b, waited = _call_first_run()
    with open_run(b.build(), "r") as run:
        (finding,) = unexplained_time(run)
    (agg,) = [r for r in finding.evidence["routes"] if r["route"] == "/agg"]
    assert agg["queued_ms"] <= waited + 1


def test_a_queue_for_the_pool_of_a_pool_finding_is_its_unmeasured_wait() -> None:
    # a pool without checkout spans: its finding counts the failed checkouts, the queue
    # finding reads the waits that got a connection from timing; one cause, told once
    from correlate.analysis.findings import Finding
    from correlate.analysis.verdict import reconcile

    def finding(kind: str, explanation: str, **evidence: object) -> Finding:
        return Finding(
            kind=kind, severity="warning", title=f"{kind}!", explanation=explanation,
            suggestion="fix", threshold="", source="", route="/a", evidence=dict(evidence),
        )  # fmt: skip

    pool = finding("pool_saturation", "Saturated.", checkout_spans={"service": "shop"})
    queue = finding("unexplained_time", "", holders_ceiling=4, queued_ms=974.0, service="shop")
    found = {f.kind: f for f in reconcile([pool, queue])}
    assert found["pool_saturation"].explanation == (
        "Saturated. The requests that got a connection most likely waited too, 974.0 ms per "
        "request before their first query, unmeasured (“unexplained_time!”)."
    )
    assert found["unexplained_time"].suggestion.startswith("The same pool as “pool_saturation!”")
    assert found["unexplained_time"].evidence["cause"] == "pool_saturation"
    # another service's queue is its own
    other = finding("unexplained_time", "", holders_ceiling=4, queued_ms=9.0, service="api")
    found = {f.kind: f for f in reconcile([pool, other])}
    assert found["pool_saturation"].explanation == "Saturated."
    assert found["unexplained_time"].suggestion == "fix"
