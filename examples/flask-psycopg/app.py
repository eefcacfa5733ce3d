"""A Flask shop on a PostgreSQL connection pool, traced by stock OpenTelemetry only.

The pool is psycopg2's ThreadedConnectionPool (``POOL=psycopg2``) or psycopg 3's
psycopg_pool.ConnectionPool (``POOL=psycopg``); neither makes a span for a checkout.
With ``LEAK=1`` a declined payment answers 500 without giving its connection back.
Settings are environment variables, listed in README.md.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

POOL = os.environ.get("POOL", "psycopg2")
DATABASE_URL = os.environ["DATABASE_URL"]  # postgresql://user@host:port/dbname
POOL_SIZE = int(os.environ.get("POOL_SIZE", "5"))
POOL_MIN = int(os.environ.get("POOL_MIN", "1"))  # psycopg2: connections kept when given back
POOL_TIMEOUT = float(os.environ.get("POOL_TIMEOUT", "1"))  # psycopg_pool: seconds a checkout waits
LEAK = os.environ.get("LEAK", "0") == "1"
SLOW_MS = float(os.environ.get("SLOW_MS", "0"))  # GET /products sleeps this long in the database
DECLINED_CARD = "4000000000000002"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fp_products (id int PRIMARY KEY, name text NOT NULL, "
    "price numeric(10, 2) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fp_orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, "
    "total numeric(10, 2) NOT NULL)",
    "INSERT INTO fp_products SELECT i, 'product ' || i, 1 + i % 50 FROM generate_series(1, 200) i "
    "ON CONFLICT DO NOTHING",
)


class PaymentDeclined(Exception):
    pass


def make_pool() -> Any:
    """The pool, its driver instrumented; the tables are made first, on a connection that
    is not traced, so the run holds only the requests' spans."""
    if POOL == "psycopg2":
        import psycopg2
        import psycopg2.pool
        from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor

        setup = psycopg2.connect(DATABASE_URL)
        with setup, setup.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
        setup.close()
        Psycopg2Instrumentor().instrument()
        return psycopg2.pool.ThreadedConnectionPool(POOL_MIN, POOL_SIZE, DATABASE_URL)
    if POOL == "psycopg":
        import psycopg
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from psycopg_pool import ConnectionPool

        with psycopg.connect(DATABASE_URL) as setup:
            for statement in SCHEMA:
                setup.execute(statement)
        PsycopgInstrumentor().instrument()
        return ConnectionPool(
            DATABASE_URL, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=POOL_TIMEOUT, open=True
        )
    raise SystemExit(f"POOL must be psycopg2 or psycopg, not {POOL!r}")


provider = TracerProvider(resource=Resource.create({"service.name": f"shop-{POOL}"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
pool = make_pool()
app = Flask(__name__)
FlaskInstrumentor().instrument_app(app, excluded_urls="healthz")


@app.get("/healthz")
def healthz() -> Any:
    return "ok"


@app.get("/products")
def products() -> Any:
    conn = pool.getconn()
    try:
        with conn.cursor() as cur:
            if SLOW_MS:
                cur.execute("SELECT pg_sleep(%s)", (SLOW_MS / 1000,))
            cur.execute("SELECT id, name, price FROM fp_products ORDER BY id LIMIT 20")
            rows = cur.fetchall()
        conn.commit()
    finally:
        pool.putconn(conn)
    return jsonify([{"id": i, "name": name, "price": float(price)} for i, name, price in rows])


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> Any:
    conn = pool.getconn()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, customer_id, total FROM fp_orders WHERE id = %s", (order_id,))
            row = cur.fetchone()
        conn.commit()
    finally:
        pool.putconn(conn)
    if row is None:
        return jsonify(error="no such order"), 404
    return jsonify(id=row[0], customer_id=row[1], total=float(row[2]))


@app.post("/checkout")
def checkout() -> Any:
    body = request.get_json(silent=True) or {}
    conn = pool.getconn()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO fp_orders (customer_id, total) VALUES (%s, %s) RETURNING id",
                (int(body.get("customer_id", 1)), float(body.get("total", 10))),
            )
            (order_id,) = cur.fetchone()
            if body.get("card") == DECLINED_CARD:
                raise PaymentDeclined(f"card declined for order {order_id}")
        conn.commit()
    except Exception:
        if not LEAK:  # the fix; with LEAK=1 the error path keeps its connection
            conn.rollback()
            pool.putconn(conn)
        raise
    pool.putconn(conn)
    return jsonify(id=order_id), 201


if __name__ == "__main__":
    from waitress import serve

    # SystemExit runs the SDK's exit hook, which exports the last spans
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "8000")),
        threads=int(os.environ.get("THREADS", "16")),
    )
