"""Slow queries that do not flicker: a dominant query with a critical plan insight is a
finding whatever its speed; severity from share, plan and rows read per call."""

from __future__ import annotations

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import slow_query
from correlate.analysis.findings import Finding

from .builders import RunBuilder


def run_with(
    db: float, app: float, *, severity: str | None, rows_read: float = 5000, pool: float = 0
) -> list[Finding]:
    """Ten requests of one route, each one query of ``db`` ms and ``app`` ms of its own;
    with a plan insight of ``severity`` (none when ``None``) on the query."""
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + pool + db + app, "/orders")
        if pool:  # a pool wait: the query dominates the time outside it, not the latency
            b.connect(trace, r, start, start + pool)
        b.query(
            trace, r, start + pool, start + pool + db, "SELECT * FROM orders WHERE customer_id = 7"
        )
    store = b.build()
    if severity:
        fp = store.con.execute("SELECT fingerprint FROM statements").fetchone()[0]
        store.con.execute(
            "INSERT INTO plans (plan_id, run_id, fingerprint, link, source, raw) "
            "VALUES (3, 1, ?, 'fingerprint', 'test', '{}')",
            [fp],
        )
        store.con.execute(
            "INSERT INTO plan_insights VALUES (3, 'seq_scan_selective_filter', ?, 1, 'orders', "
            "'Seq Scan on orders reads every row to return a few', "
            "'CREATE INDEX ON orders (customer_id);', ?, false)",
            [severity, f'{{"rows_read": {rows_read}, "rows_returned": 3}}'],
        )
    with open_run(store, "r") as run:
        return slow_query(run)


def test_a_fast_dominant_query_with_a_critical_plan_is_found() -> None:
    (f,) = run_with(db=4, app=1, severity="critical", pool=20)
    assert f.severity == "warning"  # 4 of 25 ms of latency, 5000 rows a call
    assert f.evidence["critical_plan"] is True
    assert f.evidence["plan_rows_read_per_call"] == 5000
    assert f.suggestion == "CREATE INDEX ON orders (customer_id);"


@pytest.mark.parametrize(
    ("db", "app", "severity"),
    [(4, 1, None), (4, 1, "warning"), (0.5, 0.1, "critical"), (4, 20, "critical")],
    ids=["no-plan", "plan-without-critical-insight", "trivial-query", "not-dominant"],
)
def test_quiet(db: float, app: float, severity: str | None) -> None:
    assert run_with(db=db, app=app, severity=severity) == []


def test_a_critical_plan_reading_millions_of_rows_per_call_is_critical() -> None:
    (f,) = run_with(db=4, app=1, severity="critical", rows_read=2_000_000, pool=20)
    assert f.evidence["share_of_latency"] < 0.5
    assert f.severity == "critical"
