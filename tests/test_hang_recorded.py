"""A frozen database connection on stacks whose pool makes no checkout span, recorded once.

Each run is a service under load behind tests/helpers/tcp_cut.py's proxy, frozen a few
seconds in (nothing closed, nothing passes): the queries in flight never return, and
unless the pool times a checkout out nothing fails. Their READMEs say how each was recorded
and what was kept.

- tests/data/hang/asyncpg-frozen: the FastAPI + SQLAlchemy async + asyncpg shop
  (tests/helpers/asyncpg_shop.py, stock instrumentations); the calls the freeze caught end
  only when uvicorn's shutdown cancels them, their spans running through the silence.
- tests/data/hang/asyncpg-frozen-pool-timeout: the same with a checkout timeout of 2 s,
  so that every request after the freeze failed waiting for a connection.
- tests/data/hang/asyncpg-killed-pool-timeout: the same, the server killed rather than
  shut down, so that the requests the freeze caught never ended.
- tests/data/hang/node-mysql-frozen: examples/node-mysql (a mysql2 pool of 3 on MariaDB);
  the calls the freeze caught never end, and no span shows them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

import correlate
from correlate.analysis.verdict import Analysis
from correlate.kinds import FindingKind

DATA = Path(__file__).parent / "data" / "hang"
#: when each proxy froze (ns since the epoch, the recording host's clock)
FROZEN_AT_NS = {
    "asyncpg-frozen": 1796680705350284596,
    "asyncpg-frozen-pool-timeout": 1796681118705635478,
    "asyncpg-killed-pool-timeout": 1796681753443890846,
    "node-mysql-frozen": 1796680632546079902,
}
NOT_THE_POOL = {FindingKind.POOL_LEAK, FindingKind.POOL_SATURATION, FindingKind.POOL_EXHAUSTED}


@cache
def _analyse(name: str) -> tuple[Analysis, float]:
    """The run's analysis, and the freeze in seconds from its first request."""
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(DATA / name, store=store, run=name)
        (first,) = store.con.execute(
            "SELECT min(start_ns) FROM spans WHERE kind = 'SERVER'"
        ).fetchone() or (0,)
    return analysis, (FROZEN_AT_NS[name] - first) / 1e9


def test_a_frozen_network_under_fastapi_on_asyncpg_is_the_database_stalling() -> None:
    analysis, frozen_s = _analyse("asyncpg-frozen")
    text = analysis.to_text(color=False, width=120)
    assert not {f.kind for f in analysis.findings} & NOT_THE_POOL, text
    (stall,) = [f for f in analysis.findings if f.kind == FindingKind.DATABASE_STALL]
    assert stall.severity == "critical", text
    assert stall.title == (
        "The database stopped answering at 2 s: no query of shop ended until the run's end"
    )
    ev = stall.evidence
    assert frozen_s - 0.5 <= ev["from_s"] <= frozen_s + 0.1, (frozen_s, text)
    # the reports pool's two and the main pool's connections, each in a request whose call
    # was cancelled at shutdown; no checkout span among them
    assert ev["calls_in_flight"] >= 3 and ev["requests_failed"] == 0, text
    assert "none of those calls was ever answered" in stall.explanation
    # the routes' waits are that stall's, not their own code's
    waits = [f for f in analysis.findings if f.kind == FindingKind.UNEXPLAINED_TIME]
    assert waits and all(f.evidence.get("cause") == "database_stall" for f in waits), text


@pytest.mark.parametrize(
    ("name", "failed"),
    [("asyncpg-frozen-pool-timeout", 19), ("asyncpg-killed-pool-timeout", 24)],
    ids=["cancelled", "never-ended"],
)
def test_a_frozen_network_under_asyncpg_whose_checkouts_time_out_is_a_hang_not_a_leak(
    name: str, failed: int
) -> None:
    """Every checkout after the freeze timed out and the wait stayed as the load fell: from
    the waits alone, a leak. No checkout span, no request that kept a connection: the calls
    the database never answered held them (their spans ended when the shutdown cancelled
    them, or their requests never ended), and the pool finding says so."""
    analysis, frozen_s = _analyse(name)
    text = analysis.to_text(color=False, width=120)
    kinds = {f.kind for f in analysis.findings}
    assert FindingKind.POOL_LEAK not in kinds and FindingKind.POOL_SATURATION not in kinds, text
    (stall,) = [f for f in analysis.findings if f.kind == FindingKind.DATABASE_STALL]
    assert frozen_s - 0.5 <= stall.evidence["from_s"] <= frozen_s + 0.1, (frozen_s, text)
    assert stall.evidence["requests_failed"] == failed and stall.evidence["calls_in_flight"] >= 3
    (pool,) = [f for f in analysis.findings if f.kind == FindingKind.POOL_EXHAUSTED]
    assert pool.title.startswith("Connection pool held by queries that never returned"), text
    assert pool.evidence["cause"] == "database_stall" and pool.evidence["timeouts"] == failed
    assert stall.title in pool.explanation and "statement_timeout" in pool.suggestion
    assert "it is a leak" not in pool.explanation, text
    # the failures point at the pool finding, which names the hang
    (burst,) = [f for f in analysis.findings if f.kind == FindingKind.ERROR_BURST]
    assert "see the pool finding" in burst.explanation, text


def test_a_frozen_network_under_node_mysql_is_no_pool_finding() -> None:
    analysis, _ = _analyse("node-mysql-frozen")
    text = analysis.to_text(color=False, width=120)
    # nothing failed and no checkout was seen: the pool's story cannot be told, and is not
    assert analysis.summary["error_rate"] == 0 and analysis.summary["pool_checkouts"] == 0
    assert not {f.kind for f in analysis.findings} & NOT_THE_POOL, text
    assert not [f for f in analysis.findings if f.severity == "critical"], text


@pytest.mark.xfail(
    strict=True,
    reason="mysql2's pool makes no checkout span and the calls the freeze caught never end, "
    "so no span shows a call in flight: the 12 s in which no query answered cannot be told "
    "from a pool that leaked dry, and reads as unexplained time in every route",
)
def test_a_frozen_network_under_node_mysql_is_the_database_stalling() -> None:
    analysis, frozen_s = _analyse("node-mysql-frozen")
    text = analysis.to_text(color=False, width=120)
    (stall,) = [f for f in analysis.findings if f.kind == FindingKind.DATABASE_STALL]
    assert frozen_s - 0.5 <= stall.evidence["from_s"] <= frozen_s + 0.1, (frozen_s, text)
    waits = [f for f in analysis.findings if f.kind == FindingKind.UNEXPLAINED_TIME]
    assert all(f.evidence.get("cause") == "database_stall" for f in waits), text
