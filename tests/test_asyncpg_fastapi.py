"""Open world: a FastAPI service on SQLAlchemy 2.0 async and asyncpg, as such services ship.

tests/helpers/asyncpg_shop.py is instrumented only with the standard FastAPI and asyncpg
instrumentations (no SQLAlchemy instrumentation: no span covers a wait for the pool),
served by uvicorn and driven over loopback. correlate's own commands then read what it
recorded: asyncpg's ``$1`` statements and ``BEGIN;``/``ROLLBACK;`` spans, FastAPI's route
templates and ASGI ``http send`` spans, queries awaited together with ``asyncio.gather``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import correlate

from .helpers.produce import produce

SHOP = Path(__file__).parent / "helpers" / "asyncpg_shop.py"


def _correlate(*args: str | Path) -> str:
    """Run a ``correlate`` command; it must succeed and write nothing to stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "correlate", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


def _db_time_ms(spans_file: Path) -> dict[str, tuple[float, float]]:
    """Per route, the mean over requests of the union of their CLIENT spans' intervals and
    of their sum, computed from the exported spans themselves."""
    traces: dict[str, list[Any]] = defaultdict(list)
    for line in spans_file.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    traces[span["traceId"]].append(span)
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for spans in traces.values():
        (server,) = [s for s in spans if s["kind"] == 2]
        calls = sorted(
            (int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]))
            for s in spans
            if s["kind"] == 3
        )
        union, end = 0, 0
        for a, b in calls:
            union += max(b, end) - max(a, end)
            end = max(end, b)
        (route,) = [
            a["value"]["stringValue"] for a in server["attributes"] if a["key"] == "http.route"
        ]
        times[route].append((union / 1e6, sum(b - a for a, b in calls) / 1e6))
    return {
        route: (sum(u for u, _ in v) / len(v), sum(t for _, t in v) / len(v))
        for route, v in times.items()
    }


@dataclass
class Shop:
    """One recorded run of the shop, read by correlate's commands."""

    prefix: str
    spans: Path
    captured: str
    verdict: str
    result: correlate.Analysis
    routes: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def shop(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The shop recorded once (tables under a unique prefix, dropped afterwards), then
    ingested, its plans captured and analysed by the ``correlate`` commands."""
    for module in ("fastapi", "uvicorn", "asyncpg", "opentelemetry.instrumentation.asyncpg"):
        pytest.importorskip(module)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    prefix, tmp = f"apg{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("asyncpg")
    spans, db = tmp / "spans.jsonl", tmp / "runs.duckdb"
    try:
        asyncpg_dsn = make_url(pg_dsn).set(drivername="postgresql+asyncpg")
        produce(SHOP, asyncpg_dsn.render_as_string(hide_password=False), prefix, spans)
        _correlate("ingest", spans, "--run", "shop", "--db", db)
        captured = _correlate("plans", "capture", "--run", "shop", "--dsn", pg_dsn, "--db", db)
        verdict = _correlate("analyze", "shop", "--db", db, "--no-color")
        with correlate.open_store(db, read_only=True) as store:
            result = correlate.analyze("shop", store=store)
            with correlate.open_run(store, "shop") as run:
                routes = {r["route"]: r for r in run.routes().to_dict("records")}
        yield Shop(prefix, spans, captured, verdict, result, routes)
    finally:
        engine = create_engine(pg_dsn)
        with engine.begin() as con:
            for table in ("orders", "customers", "products", "events"):
                con.execute(text(f"DROP TABLE IF EXISTS {prefix}_{table}"))
        engine.dispose()


@pytest.mark.postgres
def test_a_fastapi_service_on_asyncpg_is_read_right(shop: Shop) -> None:
    prefix, result, routes, verdict = shop.prefix, shop.result, shop.routes, shop.verdict

    # the slow report's plan: a scan the bound LIKE pattern cannot use an index for
    assert f"CREATE INDEX ON {prefix}_events (kind)" in shop.captured

    # FastAPI's templates are the routes; every request and query is attributed
    assert set(routes) == {"/orders", "/dashboard", "/report", "/products/{product_id}"}
    assert routes["/products/{product_id}"]["requests"] == 30
    assert not [gap for gap in result.gaps if "belong to no request" in gap]
    seen = {(f.kind, f.route) for f in result.findings if f.severity != "info"}
    assert seen == {
        ("n_plus_one", "/orders"),
        ("unexplained_time", "/report"),
        ("slow_query", "/report"),
    }, verdict

    # the async N+1: one `await session.get(Customer, …)` per order
    (n1,) = [f for f in result.findings if f.kind == "n_plus_one"]
    assert n1.evidence["calls_per_request"] == 12
    assert f"{prefix}_customers" in n1.title

    # asyncio.gather of five different queries: their DB time is the union of overlapping
    # spans (less than their sum), and it is no N+1 of BEGIN; or ROLLBACK;
    union, total = _db_time_ms(shop.spans)["/dashboard"]
    assert routes["/dashboard"]["db_ms"] == pytest.approx(union, rel=1e-3)
    assert union < 0.8 * total
    assert not [f for f in result.findings if f.route == "/dashboard"]

    # the pool of 2: no span records the queue; correlate says so and reads it from timing
    assert any("no pool telemetry or connect spans" in gap for gap in result.gaps)
    assert "Where the time went: pool wait not recorded," in verdict
    (wait,) = [f for f in result.findings if f.kind == "unexplained_time"]
    assert wait.evidence["queued_ms"] > 0.5 * wait.evidence["app_ms"]
    assert "read from the spans' timing, not measured" in wait.explanation
    (slow,) = [f for f in result.findings if f.kind == "slow_query"]
    assert slow.evidence["critical_plan"] and slow.evidence["inferred_queue_ms"] > 0
    assert slow.suggestion == f"CREATE INDEX ON {prefix}_events (kind)"

    # the clean route: nothing to say
    assert not [f for f in result.findings if f.route == "/products/{product_id}"]
