"""Checkouts that failed because the database could not be reached are no pool finding.

A pool that ran dry opens no connection; a database out of reach refuses or drops every
one. So the same failed checkouts read as a leak when nothing else is said, and as the
database's outage when the connection attempts inside them failed too (node-postgres's
``pg.connect`` span under its ``pg-pool.connect``), from when they began to the end. A
lost connection or two early in a leaking run does not explain the leak away.
"""

from __future__ import annotations

import json

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors.errors import error_bursts
from correlate.analysis.detectors.pool import pool_exhaustion
from correlate.analysis.pool_pressure import unreachable
from correlate.kinds import FindingKind

from .builders import RunBuilder, ns
from .test_leak import analysed, leak_steady

REFUSED = "connect ECONNREFUSED 127.0.0.1:5432"
TERMINATED = "Connection terminated due to connection timeout"


def _lose(b: RunBuilder, message: str, *, until_ms: float | None = None, most: int = 0) -> int:
    """Under each failed checkout (before ``until_ms``; the first ``most`` only, if given) a
    connection attempt that failed with ``message``; how many were added."""
    failed = [
        s
        for s in b.spans
        if s["name"] == "connect"
        and s["status_code"] == "ERROR"
        and (until_ms is None or s["start_ns"] < ns(until_ms))
    ]
    for s in failed[:most] if most else failed:
        b.span(
            s["trace_id"], (s["start_ns"] - ns(0)) / 1e6, (s["end_ns"] - ns(0)) / 1e6,
            parent=s["span_id"],
            kind="CLIENT", name="pg.connect", db="postgresql", status="ERROR",
            events=[{"time_ns": s["end_ns"], "name": "exception",
                     "attributes": json.dumps({"exception.message": message})}],
        )  # fmt: skip
    return len(failed[:most] if most else failed)


def test_the_leak_without_its_connections_failing_is_a_leak() -> None:
    found, _ = analysed(leak_steady())
    assert [f.kind for f in found] == [FindingKind.POOL_LEAK]


@pytest.mark.parametrize("message", [REFUSED, TERMINATED, "SQLSTATE 08006"])
def test_failed_checkouts_whose_connection_attempts_failed_are_no_pool_finding(
    message: str,
) -> None:
    b = leak_steady()
    added = _lose(b, message)
    assert added >= 20
    store = b.build()
    with open_run(store, "r") as run:
        assert pool_exhaustion(run) == []
        lost = unreachable(run)
        assert lost.requests == added and lost.attempts == added
        assert lost.message == message
        bursts = error_bursts(run)
    assert bursts
    burst = max(bursts, key=lambda f: f.evidence["errors"])
    assert "The database was out of reach: from " in burst.explanation
    assert burst.evidence["failed_connection_attempts"] > 0
    assert "see the pool finding" not in burst.explanation
    assert "the database" in burst.suggestion


def test_a_lost_connection_or_two_early_in_a_leak_leave_it_a_leak() -> None:
    b = leak_steady()
    assert _lose(b, REFUSED, most=2) == 2
    found, _ = analysed(b)
    assert [f.kind for f in found] == [FindingKind.POOL_LEAK]


def test_connections_lost_only_in_the_first_half_of_the_failures_leave_it_a_leak() -> None:
    b = leak_steady()
    first = (min(s["start_ns"] for s in b.spans if s["status_code"] == "ERROR") - ns(0)) / 1e6
    last = (max(s["end_ns"] for s in b.spans if s["status_code"] == "ERROR") - ns(0)) / 1e6
    assert _lose(b, REFUSED, until_ms=first + (last - first) / 2) >= 3
    found, _ = analysed(b)
    assert [f.kind for f in found] == [FindingKind.POOL_LEAK]


@pytest.mark.clickhouse
def test_clickhouse_reads_the_lost_connections_alike(chdb: object) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    b = leak_steady()
    _lose(b, TERMINATED)
    store = b.build()
    with open_run(store, "r") as run:
        local = unreachable(run)
    there, _ = copied(store, chdb, "r")
    assert local.requests >= 20
    assert unreachable(Run(there, "r")) == local  # type: ignore[arg-type]
