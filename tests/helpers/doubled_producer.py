"""Write real OpenTelemetry SDK spans of requests whose statements two instrumentations record.

Auto-instrumentation (``opentelemetry-instrument``) turns on SQLAlchemy's instrumentation
and the driver's: opentelemetry-instrumentation-psycopg for PostgreSQL, -dbapi's
integration (what -pymysql wraps) for MySQL and MariaDB; each records every statement.
Each ``GET /items`` reads ``READS`` rows one statement at a time (one shape, a N+1). The
table is made beforehand by an engine of its own, not traced. Exported by the SDK's
OTLP/JSON file exporter. Usage: python doubled_producer.py DSN OUT.jsonl MODE, MODE
``both`` (SQLAlchemy's and the driver's instrumentation) or ``sqlalchemy`` (it alone).
"""

from __future__ import annotations

import sys

from first_connect_producer import instrument_driver  # this script's own folder
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text

READS = 6
REQUESTS = 8


def main(dsn: str, out: str, mode: str) -> None:
    setup = create_engine(dsn)
    with setup.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS dtest_items"))
        conn.execute(text("CREATE TABLE dtest_items (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        for i in range(READS):
            conn.execute(text("INSERT INTO dtest_items VALUES (:id, 'x')"), {"id": i})
    provider = TracerProvider(resource=Resource.create({"service.name": "items"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    engine = create_engine(dsn)
    if mode == "both":
        instrument_driver(engine.dialect.name, provider)
    with engine.connect() as conn:  # the first connection's setup, before any request
        conn.execute(text("SELECT 1"))
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    tracer = provider.get_tracer("tests.doubled_producer")
    for _ in range(REQUESTS):
        with (
            tracer.start_as_current_span(
                "GET /items",
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "GET",
                    "http.route": "/items",
                    "http.response.status_code": 200,
                },
            ),
            engine.connect() as conn,
        ):
            for i in range(READS):
                conn.execute(text("SELECT name FROM dtest_items WHERE id = :id"), {"id": i})
    SQLAlchemyInstrumentor().uninstrument()
    engine.dispose()
    provider.shutdown()
    with setup.begin() as conn:
        conn.execute(text("DROP TABLE dtest_items"))
    setup.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in ("both", "sqlalchemy"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
