"""examples/node-mysql end to end: Express on a mysql2 pool over MariaDB, the official OTel SDK.

The service (instrumented only by ``@opentelemetry/sdk-node`` and the auto-instrumentations
installed from its lock file) runs under ``correlate record`` with ``--dsn`` for
``correlate watch``; plans come from ``correlate plans capture`` on MariaDB. What a user must
see: the N+1 on ``/orders/recent``, the unindexed filter of ``/customers/:id/orders`` as a
slow query with MariaDB's plan, and the queue for the pool of three told for what it is —
mysql2's pool makes no span and no metric, so the wait is read from the spans' timing and
said to be, never measured nor called the route's own code. A short second run with
``pool.query()`` (POOL_QUERY=1) must report the spans its context leak misplaces. Needs node
and npm, ``npm ci`` in examples/node-mysql (``make test`` and ``.ci/run`` do it) and MariaDB.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.kinds import FindingKind

from .conftest import _no_skip
from .readme_quotes import quoted_findings, unmatched

SERVICE = Path(__file__).parent.parent / "examples" / "node-mysql"
SERVICE_PORT, HTTP_PORT = 14630, 14631
POOL_SIZE = 3

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def _needs(reason: str) -> None:
    if _no_skip():
        pytest.fail(reason + " and CORRELATE_NO_SKIP is set", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def service_dsn(mysql_dsn: str) -> str:
    """The test database without the service's tables: it creates and seeds its own (nm_…)."""
    from sqlalchemy import create_engine, text

    if shutil.which("node") is None or shutil.which("npm") is None:
        _needs("node and npm are not installed (the Node example needs Node 20)")
    if not (SERVICE / "node_modules" / "@opentelemetry" / "sdk-node").is_dir():
        _needs("examples/node-mysql has no node_modules: run `npm ci` there (make test does)")
    engine = create_engine(mysql_dsn)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS nm_orders, nm_customers"))
    finally:
        engine.dispose()
    return mysql_dsn


def _record(tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> Path:
    """Run the service under ``correlate record`` for DURATION seconds; the store's path."""
    from sqlalchemy import make_url

    url = make_url(dsn)
    for name, value in {
        "MYSQL_HOST": url.host or "127.0.0.1",
        "MYSQL_PORT": str(url.port or 3306),
        "MYSQL_USER": url.username or "root",
        "MYSQL_PASSWORD": url.password or "",
        "MYSQL_DATABASE": url.database or "test",
        "POOL_SIZE": str(POOL_SIZE),
        "PORT": str(SERVICE_PORT),
        "SHOP_URL": f"http://127.0.0.1:{SERVICE_PORT}",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    out, db = tmp_path / "run", tmp_path / "store.duckdb"
    recorded = CliRunner().invoke(
        cli,
        [
            "record", "--out", str(out), "--dsn", dsn, "--http-port", str(HTTP_PORT),
            "--no-grpc", "--linger", "1s", "--db", str(db), "--no-color",
            "--", str(SERVICE / "run.sh"),
        ],
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    assert "command exited with 0" in recorded.output
    assert (out / "db" / "activity.jsonl").stat().st_size > 0  # correlate watch on MariaDB
    return db


def test_the_node_mysql_verdict_names_the_n_plus_one_the_scan_and_the_pool_queue(
    tmp_path: Path, service_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import make_url

    db = _record(
        tmp_path,
        service_dsn,
        monkeypatch,
        DURATION=os.environ.get("NODE_MYSQL_DURATION", "10"),
    )
    with correlate.open_store(db) as store:
        capture = store.capture_plans("run", service_dsn)
        assert capture.captured >= 3, capture
        analysis = correlate.analyze("run", store=store)
        # instrumentation-mysql2 speaks the current conventions (db.system.name "mysql",
        # db.query.text with the values formatted in) and names spans by their verb
        spans = store.con.execute(
            """
            SELECT db_system, count(*), count(DISTINCT db_statement), min(name), max(name)
            FROM spans WHERE kind = 'CLIENT' AND db_statement LIKE '%nm_customers WHERE id =%'
            GROUP BY ALL
            """
        ).fetchall()
        shapes = store.con.execute(
            """
            SELECT count(DISTINCT fingerprint) FROM statements
            WHERE normalized LIKE 'SELECT name FROM nm_customers WHERE id = %'
            """
        ).fetchone()
        plan_sources = dict(
            store.con.execute(
                "SELECT fingerprint, source FROM plans WHERE raw IS NOT NULL"
            ).fetchall()
        )
    text = analysis.to_text(color=False, width=120)
    assert len(spans) == 1, spans
    system, calls, texts, first_name, last_name = spans[0]
    assert system == "mysql" and (first_name, last_name) == ("SELECT", "SELECT")
    assert calls > texts > 1  # a text per customer id...
    assert shapes == (1,)  # ...and one statement shape for all of them

    # every route by its Express template; every query inside its request
    routes = set(analysis.routes["route"])
    assert {"/orders/recent", "/customers/:id/orders", "/reports/daily", "/customers/:id"} <= routes
    # only the seeding statements, run before any request, belong to none
    assert analysis.summary["unattributed_spans"] <= 10, text

    findings = analysis.findings
    by_route: dict[str, set[str]] = {}
    for f in findings:
        by_route.setdefault(f.route or "", set()).add(f.kind)

    # the N+1: one nm_customers query per order of /orders/recent
    n_plus_one = [f for f in findings if f.kind == FindingKind.N_PLUS_ONE]
    assert [f.route for f in n_plus_one] == ["/orders/recent"], text
    assert "nm_customers" in n_plus_one[0].title and "10×" in n_plus_one[0].title

    # the unindexed filter: a slow query on nm_orders with MariaDB's plan and the index
    scans = [
        f
        for f in findings
        if f.kind == FindingKind.SLOW_QUERY and f.route == "/customers/:id/orders"
    ]
    assert len(scans) == 1, text
    scan = scans[0]
    assert "nm_orders" in scan.title and "ALL reads all of about" in scan.explanation, text
    assert scan.suggestion.startswith(
        "CREATE INDEX nm_orders_customer_id_idx ON nm_orders (customer_id)"
    ), text
    assert plan_sources.get(scan.fingerprint) == "mariadb", plan_sources

    # the pool queue: not measured (no pool span or metric), so the breakdown has no pool
    # wait and says why; the uncovered time is read as a queue for a pool of three, and
    # said to be read from timing, once for the pool, with every route that waits
    assert analysis.summary["time_share"]["pool"] == 0
    assert any(gap.startswith("no pool telemetry or connect spans") for gap in analysis.gaps)
    (queued,) = [
        f for f in findings if f.kind == FindingKind.UNEXPLAINED_TIME and "queued_ms" in f.evidence
    ]
    waits = {r["route"]: r for r in queued.evidence["routes"]}
    assert set(waits) >= {"/orders/recent", "/customers/:id"}, text
    assert all(r["queued_ms"] > 0.5 * r["app_ms"] for r in waits.values()), text
    assert queued.evidence["holders_ceiling"] == POOL_SIZE, text
    assert queued.evidence["database"] == make_url(service_dsn).database, text
    assert f"from a pool of about {POOL_SIZE}" in queued.explanation
    assert "not measured" in queued.explanation and "in its own code" not in queued.explanation
    # the report that holds a connection is the slow statement behind the queue; capture
    # will not run its SLEEP() on the server, and the finding says so rather than ask for it
    (report,) = [f for f in findings if f.route == "/reports/daily" and f.kind == "slow_query"]
    assert "Plan capture did not explain it: the statement calls SLEEP()" in report.explanation

    # the clean route: nothing of its own beyond waiting in the queue
    clean = by_route.get("/customers/:id", set())
    assert clean <= {FindingKind.UNEXPLAINED_TIME}, text

    # the verdict the README quotes is in this run's words, figures aside
    quote = SERVICE / "README.md"
    matched, missing = unmatched(quote, text)
    assert missing == [] and 2 * matched >= len(quoted_findings(quote)), text


def test_pool_query_under_load_puts_queries_in_other_requests_traces_and_the_run_says_so(
    tmp_path: Path, service_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``pool.query()`` (POOL_QUERY=1) instrumentation-mysql2 starts a queued query's
    span in the context of the request that released the connection: the spans are wrong
    at the source, and correlate cannot put them back, only say how many and why."""
    db = _record(tmp_path, service_dsn, monkeypatch, DURATION="4", POOL_QUERY="1")
    with correlate.open_store(db) as store:
        analysis = correlate.analyze("run", store=store)
    (gap,) = [g for g in analysis.gaps if "after the request they hang under" in g]
    late, total = (int(n.replace(",", "")) for n in gap.split(" database spans")[0].split(" of "))
    assert late >= 10 and late >= total / 10, gap
    assert "await pool.getConnection()" in gap
