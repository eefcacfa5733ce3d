"""Lock contention on a real PostgreSQL: spans say the requests queue, correlate watch says on what.

Several sessions update one row, each holding its row lock across a slow HTTP
call (the demo's fraud-check stub) before committing, recorded with
``correlate.instrument`` while ``correlate watch`` polls the server. The
detector must find the queue from the spans and confirm it from the lock waits
the watcher recorded: the blocked statement, the relation, and the blocking
session idle in its transaction while it waits for the HTTP call.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import lock_contention
from correlate.kinds import FindingKind

SCHEMA = "correlate_contention_test"
ROUNDS = 8


def _session_work(
    engine: object, tracer: object, fraud: object, rounds: int, start: threading.Barrier
) -> None:
    from opentelemetry.trace import SpanKind
    from sqlalchemy import text

    start.wait(timeout=30)  # all sessions at the row at once, however busy the machine
    for _ in range(rounds):
        with (
            tracer.start_as_current_span(  # type: ignore[attr-defined]
                "POST /buy",
                kind=SpanKind.SERVER,
                attributes={"http.route": "/buy", "http.request.method": "POST"},
            ),
            engine.begin() as conn,  # type: ignore[attr-defined]
        ):
            conn.execute(
                text(f"UPDATE {SCHEMA}.stock SET units = units - 1 WHERE sku = :sku"),
                {"sku": "doorbuster"},
            )
            fraud.check({"sku": "doorbuster"})  # type: ignore[attr-defined]
            conn.execute(
                text(f"INSERT INTO {SCHEMA}.sales (sku) VALUES (:sku)"), {"sku": "doorbuster"}
            )


def test_sessions_queueing_on_one_row_are_found_and_confirmed_by_the_database(
    pg_dsn: str, tmp_path: Path
) -> None:
    pytest.importorskip("psycopg")
    URLLibInstrumentor = pytest.importorskip(
        "opentelemetry.instrumentation.urllib"
    ).URLLibInstrumentor
    from sqlalchemy import create_engine, text

    from correlate.demo.fraud import FraudClient, start_fraud_stub
    from correlate.instrument import record
    from correlate.watch import watch

    engine = create_engine(pg_dsn, pool_size=6, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(text(f"CREATE TABLE {SCHEMA}.stock (sku text PRIMARY KEY, units int)"))
        conn.execute(text(f"CREATE TABLE {SCHEMA}.sales (id serial PRIMARY KEY, sku text)"))
        conn.execute(text(f"INSERT INTO {SCHEMA}.stock VALUES ('doorbuster', 1000)"))
    run_dir = tmp_path / "run"
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch,
        args=(pg_dsn, run_dir),
        kwargs={"interval": 0.05, "stop": stop, "handle_signals": False},
    )
    stub = start_fraud_stub(latency_s=0.08)
    rec = record(engine, run_dir, "shop", set_global=False, sample_interval=0.5)
    urllib_instrumentor = URLLibInstrumentor()  # the fraud check's CLIENT span
    urllib_instrumentor.instrument(tracer_provider=rec.tracer_provider)
    try:
        watcher.start()
        fraud = FraudClient(stub.url)
        tracer = rec.tracer_provider.get_tracer("test")
        start = threading.Barrier(4)
        sessions = [
            threading.Thread(target=_session_work, args=(engine, tracer, fraud, ROUNDS, start))
            for _ in range(4)
        ]
        for t in sessions:
            t.start()
        for t in sessions:
            t.join(timeout=60)
    finally:
        urllib_instrumentor.uninstrument()
        rec.close()
        stop.set()
        watcher.join(timeout=30)
        stub.close()
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()

    with correlate.open_store(":memory:") as store:
        store.ingest([run_dir], run="live")
        with open_run(store, "live") as run:
            (f,) = lock_contention(run)
    assert f.kind == FindingKind.LOCK_CONTENTION and f.route == "/buy"
    assert f.severity in ("warning", "critical")
    assert f"{SCHEMA}.stock" in f.title and "HTTP call POST /fraud-check" in f.title
    ev = f.evidence
    # 4 sessions × ROUNDS rounds, one at a time behind the row: most of them waited
    assert ev["executions"] == 4 * ROUNDS and ev["queued"] >= 2 * ROUNDS
    assert ev["contended_median_ms"] >= 40  # at least half a fraud call of 80 ms
    # the database's side: sessions blocked on this very statement, on the stock table,
    # behind a session idle in its transaction (it is waiting for the HTTP call)
    assert ev["db_lock_waits"] >= 3 and ev["db_blocked_sessions"] >= 2
    assert ev["db_lock_relation"] == f"{SCHEMA}.stock"
    assert ev["db_lock_mode"] == "ShareLock" or ev["db_lock_type"] == "tuple"
    assert "UPDATE" in (ev["db_blocking_query"] or "") or "INSERT" in (
        ev["db_blocking_query"] or ""
    )
    assert ev["db_blocking_idle_in_transaction_share"] >= 0.5
    assert "The database confirms it" in f.explanation
