"""The contention detectors in ClickHouse (chDB): the same findings as in DuckDB, and what
crosses back does not grow with the executions swept.

A run is built locally, every table of its store copied into a chDB database
(:func:`tests.test_clickhouse_engine.copied`), and the detector run there through
:class:`correlate.clickhouse.engine.Engine`, which records the rows and bytes of every
result. The same run at ten times the requests must bring back exactly as many rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import lock_contention, section_contention
from correlate.analysis.findings import Finding
from correlate.analysis.run import Run
from tests.test_clickhouse_engine import copied

from .builders import RunBuilder
from .test_contention import _first_come, checkouts, sessions_on_one_row
from .test_section_contention import requests

pytestmark = pytest.mark.clickhouse


def _both(
    b: RunBuilder, detector: Callable[[Run], list[Finding]], conn: Any
) -> tuple[list[Finding], list[Finding], list[tuple[int, int, str]]]:
    """The detector's findings in DuckDB and in ClickHouse, and what the ClickHouse run
    brought back while the detector ran (bytes, rows, statement)."""
    store = b.build()
    with open_run(store, "r") as run:
        local = detector(run)
    copy, engine = copied(store, conn, "r")
    remote = Run(copy, "r")  # type: ignore[arg-type]
    remote.con  # noqa: B018 - the run's tables, built before counting
    engine.fetches.clear()
    found = detector(remote)
    store.close()
    return local, found, list(engine.fetches)


def _same(local: list[Finding], remote: list[Finding]) -> None:
    assert [(f.kind, f.severity, f.title, f.route, f.fingerprint) for f in remote] == [
        (f.kind, f.severity, f.title, f.route, f.fingerprint) for f in local
    ]
    for a, b in zip(local, remote, strict=True):
        assert b.trace_ids == a.trace_ids
        assert b.evidence.keys() == a.evidence.keys()
        for key, value in a.evidence.items():
            if isinstance(value, float):
                assert b.evidence[key] == pytest.approx(value, rel=1e-9), key
            else:
                assert b.evidence[key] == value, key


def _rows(fetches: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """Rows per statement, the statement without its run's table prefix."""
    return [(rows, re.sub(r"correlate_a\d+_", "", statement)) for _, rows, statement in fetches]


def test_lock_contention_in_clickhouse_finds_the_same_and_brings_back_no_executions(
    chdb: Any,
) -> None:
    small, large = RunBuilder(), RunBuilder()
    checkouts(small, bursts=20)
    checkouts(large, bursts=200)
    local, remote, fetched = _both(small, lock_contention, chdb)
    assert [f.kind for f in local] == ["lock_contention"]
    _same(local, remote)
    local_large, remote_large, fetched_large = _both(large, lock_contention, chdb)
    _same(local_large, remote_large)
    assert remote_large[0].evidence["executions"] == 10 * remote[0].evidence["executions"]
    # ten times the executions, the same rows back: a few per statement, none per execution
    assert _rows(fetched_large) == _rows(fetched)
    assert max(rows for _, rows, _ in fetched) <= 3


def test_lock_contention_in_clickhouse_takes_the_same_baseline_of_a_queue_that_never_drains(
    chdb: Any,
) -> None:
    """The executions that waited for nobody, and when the queued ended after a hold
    ended, are swept alike: the same queue found, and the same quick UPDATEs of rows of
    their own not taken for one."""
    queue, side_by_side = RunBuilder(), RunBuilder()
    sessions_on_one_row(queue, _first_come)
    quick = frozenset({(1, 3), (2, 5)})
    sessions_on_one_row(
        side_by_side, _first_come, lock=False, update_ms=60, call_ms=0, stagger=15, quick=quick
    )
    local, remote, _ = _both(queue, lock_contention, chdb)
    assert [f.evidence["uncontended_median_ms"] for f in local] == [pytest.approx(1)]
    _same(local, remote)
    local, remote, _ = _both(side_by_side, lock_contention, chdb)
    assert local == remote == []


def test_section_contention_in_clickhouse_finds_the_same_and_brings_back_no_executions(
    chdb: Any,
) -> None:
    small, large = RunBuilder(), RunBuilder()
    requests(small, bursts=20, call_ms=5)
    requests(large, bursts=200, call_ms=5)
    local, remote, fetched = _both(small, section_contention, chdb)
    assert [f.kind for f in local] == ["section_contention"]
    _same(local, remote)
    local_large, remote_large, fetched_large = _both(large, section_contention, chdb)
    _same(local_large, remote_large)
    assert remote_large[0].evidence["executions"] == 10 * remote[0].evidence["executions"]
    assert _rows(fetched_large) == _rows(fetched)
    assert max(rows for _, rows, _ in fetched) <= 4
