"""The figures of a slow-query finding add up: each is said of the whole it is part of.

The share is of the route's time outside pool waits; the time in the query and the time
outside pool waits it is compared with are both per request of the route, whether the
request ran the query or not; the time in each request that ran it is said apart, with
how many did; and the latency it is set beside shows the pool waits that make up the rest.
"""

from __future__ import annotations

import re

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import slow_query

from .builders import RunBuilder
from .test_connection_queue import _queued_run
from .test_detectors import findings

STATEMENT = "SELECT * FROM products WHERE category = 7"


def _half_failing_at_once(b: RunBuilder) -> None:
    """/products: five requests run a 60 ms query and 15 ms of code; five fail in 5 ms."""
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        if i % 2:
            b.request(trace, start, start + 5, "/products", status=500, error=True)
            continue
        r = b.request(trace, start, start + 75, "/products")
        b.query(trace, r, start, start + 60, STATEMENT)


def _figures(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+(?:\.\d+)?) ms", text)]


def test_time_in_the_query_is_per_request_of_the_route_not_more_than_its_whole() -> None:
    b = RunBuilder()
    _half_failing_at_once(b)
    (f,) = findings(b, slow_query)
    # 300 ms of query over 10 requests, whose time outside pool waits is 400 ms in all
    assert f.explanation.startswith(
        "The query on products takes 75% of /products's time outside pool waits: 30.0 ms of "
        "the 40.0 ms a request of the route spends outside them on average, and 75% of its "
        "40.0 ms average latency. 5 of the route's 10 requests ran it, for 60.0 ms each "
        "(median call 60.0 ms, p95 60.0 ms)."
    )
    assert f.evidence["share_of_time_outside_pool_wait"] == pytest.approx(0.75)
    assert f.evidence["route_mean_outside_pool_wait_ms"] == pytest.approx(40.0)


def test_the_share_is_of_the_time_outside_pool_waits_and_the_latency_shows_them() -> None:
    b = RunBuilder()
    for i in range(10):  # 500 ms waiting for a connection, then 60 ms of query, 15 of code
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 575, "/products")
        b.connect(trace, r, start, start + 500)
        b.query(trace, r, start + 500, start + 560, STATEMENT)
    (f,) = findings(b, slow_query)
    assert f.explanation.startswith(
        "The query on products takes 80% of /products's time outside pool waits: 60.0 ms of "
        "the 75.0 ms a request of the route spends outside them on average, and 10% of its "
        "575.0 ms average latency, 500.0 ms of which is pool waits. Every request of the "
        "route ran it (median call 60.0 ms, p95 60.0 ms)."
    )


def test_an_inferred_queue_is_in_the_pool_waits_the_latency_is_made_of() -> None:
    with open_run(_queued_run(pool=2).build(), "r") as run:
        (f,) = run.findings((slow_query,))
    e = f.evidence
    query, outside, latency, waits = _figures(f.explanation)[:4]
    # each figure as the evidence has it, and they add up: the part within its whole
    assert query == pytest.approx(e["db_ms"] / e["route_requests"], abs=0.05)
    assert outside == pytest.approx(e["route_mean_outside_pool_wait_ms"], abs=0.05)
    assert latency == pytest.approx(e["route_mean_ms"], abs=0.05)
    assert query <= outside and outside + waits == pytest.approx(latency, abs=0.1)
    assert query / outside == pytest.approx(e["share_of_time_outside_pool_wait"], abs=0.01)
    assert query / latency == pytest.approx(e["share_of_latency"], abs=0.01)
    assert waits >= e["inferred_queue_ms"] - 0.05
    assert f"The waits include {e['inferred_queue_ms']:.1f} ms per request" in f.explanation or (
        f"The waits are {e['inferred_queue_ms']:.1f} ms per request" in f.explanation
    )
