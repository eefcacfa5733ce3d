"""Write real OpenTelemetry SDK spans of requests on a fresh SQLAlchemy engine.

A SQLAlchemy engine whose pool has never connected, so the dialect's first-connect
statements (server version, schema, session settings) run inside the first request that
uses it, as they do in a freshly started worker. opentelemetry-instrumentation-sqlalchemy
does not see them (SQLAlchemy runs them without its events); the driver's instrumentation
does, and auto-instrumentation turns on both: opentelemetry-instrumentation-psycopg for
PostgreSQL, -dbapi's integration (what -pymysql wraps) for MySQL and MariaDB. Each
``GET /dashboard`` reads ``WIDE`` columns of one row, one statement each (distinct shapes,
below any fan-out threshold); ``GET /report`` makes ``MANY`` distinct reads (a genuine
fan-out). The table is made beforehand by an engine of its own, not traced. Exported by
the SDK's OTLP/JSON file exporter. Usage: python first_connect_producer.py DSN OUT.jsonl MODE,
MODE ``driver`` (the driver's instrumentation alone) or ``both`` (and SQLAlchemy's).
"""

from __future__ import annotations

import sys

from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text

WIDE = 18
MANY = 24
COLUMNS = max(WIDE, MANY)


def instrument_driver(dialect: str, provider: TracerProvider) -> None:
    """The driver's own instrumentation: psycopg's, or the DB-API integration on PyMySQL."""
    if dialect == "postgresql":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(tracer_provider=provider)
    else:
        import pymysql
        from opentelemetry.instrumentation.dbapi import trace_integration

        trace_integration(pymysql, "connect", "mysql", tracer_provider=provider)


def main(dsn: str, out: str, mode: str) -> None:
    setup = create_engine(dsn)
    with setup.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ctest_wide"))
        listed = ", ".join(f"c{i} INTEGER" for i in range(COLUMNS))
        conn.execute(text(f"CREATE TABLE ctest_wide (id INTEGER PRIMARY KEY, {listed})"))
        values = ", ".join(str(i) for i in range(COLUMNS))
        conn.execute(text(f"INSERT INTO ctest_wide VALUES (1, {values})"))
    provider = TracerProvider(resource=Resource.create({"service.name": "dashboard"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    engine = create_engine(dsn)
    if mode == "both":
        SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    instrument_driver(engine.dialect.name, provider)
    tracer = provider.get_tracer("tests.first_connect_producer")
    for route, reads, times in (("/dashboard", WIDE, 5), ("/report", MANY, 2)):
        for _ in range(times):
            with (
                tracer.start_as_current_span(
                    f"GET {route}",
                    kind=SpanKind.SERVER,
                    attributes={
                        "http.request.method": "GET",
                        "http.route": route,
                        "http.response.status_code": 200,
                    },
                ),
                engine.connect() as conn,
            ):
                for i in range(reads):
                    conn.execute(text(f"SELECT c{i} FROM ctest_wide WHERE id = :id"), {"id": 1})
    if mode == "both":
        SQLAlchemyInstrumentor().uninstrument()
    engine.dispose()
    provider.shutdown()
    with setup.begin() as conn:
        conn.execute(text("DROP TABLE ctest_wide"))
    setup.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in ("driver", "both"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
