"""Database spans that start after their request answered: a trace context handed on wrongly.

Node's mysql2 pool runs a queued ``pool.query`` in the context of the request that released
the connection, so under load one early request's trace collects hundreds of later queries,
all starting after it answered. The run's gaps say so, with the count; a few calls made
after answering (fire-and-forget) say nothing.
"""

from __future__ import annotations

import correlate

from .builders import RunBuilder


def _run(late: int) -> RunBuilder:
    """Twenty requests with one query each; the first also gets ``late`` queries that start
    after it answered."""
    b = RunBuilder()
    for i in range(20):
        trace, start = f"t{i}", i * 100.0
        r = b.request(trace, start, start + 50, "/orders")
        b.query(trace, r, start + 5, start + 45, "SELECT * FROM orders WHERE id = 1")
        if i == 0:
            for k in range(late):
                at = 100.0 + 20 * k
                b.query(trace, r, at, at + 5, "SELECT name FROM customers WHERE id = 2")
    return b


def _gaps(b: RunBuilder) -> list[str]:
    with correlate.open_store(":memory:") as store:
        return correlate.analyze("r", store=b.build(store)).gaps


def test_many_queries_after_their_request_answered_are_told_as_a_context_leak() -> None:
    (gap,) = [g for g in _gaps(_run(late=40)) if "after the request they hang under" in g]
    assert gap.startswith("40 of 60 database spans start after the request they hang under")
    assert "another request's trace context" in gap
    assert "await pool.getConnection()" in gap


def test_a_few_calls_after_answering_are_fire_and_forget() -> None:
    assert not [g for g in _gaps(_run(late=3)) if "after the request they hang under" in g]
