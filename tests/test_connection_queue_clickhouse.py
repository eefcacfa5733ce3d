"""Waits for a connection read from the spans' timing, in ClickHouse (chDB) as in DuckDB.

Each run of :mod:`tests.test_connection_queue` is built locally, its store copied into a
chDB database (:func:`tests.test_clickhouse_engine.copied`) and ``lead_waits`` made there:
every request's ceiling, lead and queued time, and the findings that read them, must be
the local ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlate.analysis import open_run
from correlate.analysis.connection_queue import lead_waits
from correlate.analysis.detectors import slow_query, unexplained_time
from correlate.analysis.run import Run
from tests.test_clickhouse_engine import copied

from . import test_connection_queue as runs
from . import test_connection_queue_pools as pools
from .builders import RunBuilder

pytestmark = pytest.mark.clickhouse

RUNS: dict[str, Callable[[], RunBuilder]] = {
    "queue on a pool of two": runs._queued_run,
    "queue behind the route's own work": lambda: runs._queued_run(pool=1, query=20, before=30),
    "no pool, rising concurrency": runs._no_pool_run,
    "a cache lookup first": runs._cached_queue_run,
    "a batch of messages": runs._batch_run,
    "queries gathered": runs._gathered_run,
    "two replicas": runs._replicas_run,
    "one pool, three routes": pools._shared_pool_run,
    "two services": pools._two_services_run,
    "a database of its own": pools._own_database_run,
    "bursts under the floor": pools._bursts_run,
    "a pool named on some spans": pools._pool_named_on_some_spans_run,
    "a host in two cases": pools._address_case_run,
    "a primary and a replica": pools._primary_and_replica_run,
    "a queue for the thread": runs._busy_event_loop_run,
    "replicas told apart by host": runs._host_replicas_run,
    "a traced call first": lambda: pools._call_first_run()[0],
}


def _read(run: Run) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    table = lead_waits(run)
    rows = run.con.execute(
        f"""SELECT trace_id, ceiling, round(lead_ms, 6), round(queued_ms, 6)
            FROM {table} w JOIN {run.table("requests")} r USING (th, rh)
            ORDER BY trace_id"""
    ).fetchall()
    findings = [
        (f.kind, f.title, f.explanation, f.evidence.get("queued_ms"), f.evidence.get("routes"))
        for f in unexplained_time(run) + slow_query(run)
    ]
    return rows, findings


@pytest.mark.parametrize("name", RUNS)
def test_clickhouse_reads_the_same_waits_as_duckdb(chdb: Any, name: str) -> None:
    store = RUNS[name]().build()
    with open_run(store, "r") as run:
        local_rows, local_findings = _read(run)
    copy, _ = copied(store, chdb, "r")
    remote_rows, remote_findings = _read(Run(copy, "r"))  # type: ignore[arg-type]
    store.close()
    assert local_rows
    assert [(t, int(c), lead, q) for t, c, lead, q in remote_rows] == local_rows
    assert [
        (k, t, e, q if q is None else pytest.approx(q), r) for k, t, e, q, r in remote_findings
    ] == local_findings
