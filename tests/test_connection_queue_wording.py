"""An inferred queue for a connection is told in words that hold in any analysis.

A slow query on a queued route says what the queue is (a pool of about N, read from
timing) rather than pointing at a finding that the caller may not have asked for; a slow
downstream whose callee queues for a pool does not call that wait the callee's own code;
and two pools with one database name, on two servers, are told apart by their address.
"""

from __future__ import annotations

import heapq
import json

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import slow_downstream, slow_query, unexplained_time
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_connection_queue import _queued_run
from .test_connection_queue_pools import _own_database_run, _primary_and_replica_run


def test_slow_query_alone_says_what_the_queue_is_without_pointing_elsewhere() -> None:
    with open_run(_queued_run(pool=2).build(), "r") as run:
        found = run.findings((slow_query,))
    (slow,) = found
    assert slow.evidence["inferred_queue_ms"] > 100
    assert "unexplained-time finding" not in slow.explanation
    assert "a pool of about 2" in slow.explanation
    assert "read from the spans' timing" in slow.explanation


def test_slow_query_beside_unexplained_time_names_the_same_pool() -> None:
    with open_run(_queued_run(pool=3, every=8).build(), "r") as run:
        found = run.findings()
    (slow,) = [f for f in found if f.kind == FindingKind.SLOW_QUERY]
    (queue,) = [f for f in found if f.kind == FindingKind.UNEXPLAINED_TIME]
    assert queue.evidence["holders_ceiling"] == 3
    assert "a pool of about 3" in queue.explanation
    assert "a pool of about 3" in slow.explanation


def _caller_and_queued_callee_run(pool: int = 2, arrivals: int = 40, work: float = 0) -> RunBuilder:
    """``shop /checkout`` calls ``payments /charge`` once a request, every 10 ms; the callee
    runs one 40 ms query on a pool of ``pool``, queuing for it with no span meanwhile, then
    works ``work`` ms in its own code."""
    b = RunBuilder()
    free = [0.0] * pool
    for i in range(arrivals):
        start = i * 10.0
        at = max(start + 2, heapq.heappop(free))
        heapq.heappush(free, at + 40)
        end = at + 40 + work
        trace = b.new_id("t")
        r = b.span(trace, start, end + 3, kind="SERVER", route="/checkout", service="shop")
        sid = b.span(
            trace, start + 1, end + 2, parent=r, kind="CLIENT", name="POST", service="shop",
            template="/charge",
        )  # fmt: skip
        b.spans[-1]["attributes"] = json.dumps(
            {"http.request.method": "POST", "url.full": "http://payments:8080/charge"}
        )
        server = b.span(
            trace, start + 1.5, end + 1, parent=sid, kind="SERVER", route="/charge",
            service="payments",
        )  # fmt: skip
        b.span(
            trace, at, at + 40, parent=server, kind="CLIENT", db="postgresql",
            sql="SELECT * FROM ledger WHERE account = 42", service="payments",
        )  # fmt: skip
    return b


def test_a_callee_queued_for_a_pool_is_not_said_to_spend_it_in_its_own_code() -> None:
    with open_run(_caller_and_queued_callee_run().build(), "r") as run:
        (queue,) = [f for f in unexplained_time(run) if "queued_ms" in f.evidence]
        (down,) = slow_downstream(run)
    ev = down.evidence
    assert ev["callee_route"] == "payments /charge"
    assert queue.route == ev["callee_route"]
    # most of the callee's time is the wait the queue finding reads from timing
    assert ev["callee_queued_ms"] > 0.5 * ev["callee_mean_ms"]
    assert ev["callee_app_ms"] < 0.2 * ev["callee_mean_ms"]
    parts = ("pool", "db", "downstream", "queued", "app")
    assert sum(ev[f"callee_{p}_ms"] for p in parts) == pytest.approx(ev["callee_mean_ms"])
    assert "is its own code" not in down.explanation
    assert "a pool of about 2" in down.explanation
    assert "read from the spans' timing" in down.explanation
    assert "its own code" not in down.suggestion


def test_a_callee_with_no_queue_keeps_its_own_code() -> None:
    # the same calls with a pool large enough that nobody waits, and the callee working
    # 100 ms after its query: that time is its own
    with open_run(_caller_and_queued_callee_run(pool=50, work=100).build(), "r") as run:
        (down,) = slow_downstream(run)
    assert down.evidence["callee_queued_ms"] == 0
    assert down.evidence["callee_app_ms"] > 100
    assert "is its own code" in down.explanation
    assert "pool of about" not in down.explanation


def test_two_servers_with_one_database_name_are_told_apart_by_address() -> None:
    b = _primary_and_replica_run()
    for span in b.spans:
        if span["kind"] == "CLIENT":
            span["server_port"] = 5432
    with open_run(b.build(), "r") as run:
        found = unexplained_time(run)
    by_routes = {frozenset(r["route"] for r in f.evidence["routes"]): f for f in found}
    primary, replica = by_routes[frozenset({"/a", "/b"})], by_routes[frozenset({"/r"})]
    assert "connections to shop on primary:5432 " in primary.explanation
    assert "a connection to shop on primary:5432 from a pool of about 2" in primary.explanation
    assert "a connection to shop on replica:5432 from a pool of about 5" in replica.explanation
    assert "replica" not in primary.explanation and "primary" not in replica.explanation


def test_one_pool_to_a_database_keeps_the_short_label() -> None:
    b = _own_database_run()
    for span in b.spans:
        if span["kind"] == "CLIENT":
            span["server_address"], span["server_port"] = "db.internal", 5432
    with open_run(b.build(), "r") as run:
        (finding,) = [f for f in unexplained_time(run) if "queued_ms" in f.evidence]
    assert "a connection to reports from a pool of about 2" in finding.explanation
    assert "db.internal" not in finding.explanation


def test_an_ipv6_server_is_bracketed_before_its_port() -> None:
    b = _primary_and_replica_run()
    for span in b.spans:
        if span["kind"] == "CLIENT":
            span["server_port"] = 5432
            if span.get("server_address") == "primary":
                span["server_address"] = "fd00::1"
    with open_run(b.build(), "r") as run:
        found = unexplained_time(run)
    text = " ".join(f.explanation for f in found)
    assert "shop on [fd00::1]:5432" in text and "shop on replica:5432" in text
