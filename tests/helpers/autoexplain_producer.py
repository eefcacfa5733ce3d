"""Real SDK spans with sqlcommenter, and the auto_explain plans PostgreSQL logs for them.

Run as a subprocess (the instrumentor and tracer provider stay in that process):

    python autoexplain_producer.py DSN SPANS.jsonl [SERVER_LOG_SLICE]

Every connection loads auto_explain for its session (we are superuser) with
``log_min_duration=0``, ``log_format=json`` and ``log_level=log``; the
instrumentation appends a ``traceparent`` comment to each statement, so each
plan the server logs names the exact DB span. With a third argument, the
slice of the server's own stderr log written meanwhile is copied there, read
through ``pg_read_file('/proc/self/fd/2')`` (the backend's stderr); that only
works when the server's stderr is a regular file, as with Debian's
pg_ctlcluster. The script exits 3 when it is not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, event, text

SESSION_SETUP = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_format = 'json'",
    "SET auto_explain.log_level = 'log'",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
)

#: The requests the "service" makes: (route, statements with parameters).
REQUESTS: tuple[tuple[str, tuple[tuple[str, dict[str, object]], ...]], ...] = (
    (
        "/customers/{id}/orders",
        (
            ("SELECT id, total FROM ax_orders WHERE customer_id = :cid", {"cid": 7}),
            ("SELECT id, total FROM ax_orders WHERE customer_id = :cid", {"cid": 8}),
        ),
    ),
    (
        "/orders/{id}",
        (
            (
                # a multi-line text with a tab and a quote: the log must keep them
                "SELECT o.id, o.total, 'it''s\tpaid' AS note\nFROM ax_orders o\nWHERE o.id = :oid",
                {"oid": 2},
            ),
            ("UPDATE ax_orders SET total = total + 1 WHERE id = :oid", {"oid": 2}),
        ),
    ),
)


def _server_log_size(conn: object) -> int | None:
    row = conn.execute(  # type: ignore[attr-defined]
        text("SELECT size, isdir FROM pg_stat_file('/proc/self/fd/2', true)")
    ).fetchone()
    return None if row is None or row[0] is None or row[1] else int(row[0])


def main(dsn: str, spans_out: str, log_out: str | None = None) -> int:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-api"}))
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(spans_out)))
    engine = create_engine(dsn)

    @event.listens_for(engine, "connect")
    def _auto_explain(dbapi_connection: object, _record: object) -> None:
        with dbapi_connection.cursor() as cur:  # type: ignore[attr-defined]
            for statement in SESSION_SETUP:
                cur.execute(statement)
        dbapi_connection.commit()  # type: ignore[attr-defined]

    with engine.begin() as conn:
        start = _server_log_size(conn) if log_out else None
        if log_out and start is None:
            return 3
        conn.execute(text("DROP TABLE IF EXISTS ax_orders"))
        conn.execute(
            text(
                "CREATE TABLE ax_orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total NUMERIC)"
            )
        )
        conn.execute(
            text("INSERT INTO ax_orders SELECT g, g % 50, g * 1.5 FROM generate_series(1, 500) g")
        )
    SQLAlchemyInstrumentor().instrument(
        engine=engine, tracer_provider=provider, enable_commenter=True
    )
    tracer = provider.get_tracer("tests.autoexplain_producer")
    for route, statements in REQUESTS:
        with (
            tracer.start_as_current_span(
                f"GET {route}",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "GET", "http.route": route},
            ),
            engine.begin() as conn,
        ):
            for sql, params in statements:
                conn.execute(text(sql), params)
    SQLAlchemyInstrumentor().uninstrument()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ax_orders"))
        if log_out:
            assert start is not None
            end = _server_log_size(conn)
            data = conn.execute(
                text("SELECT pg_read_binary_file('/proc/self/fd/2', :start, :n)"),
                {"start": start, "n": (end or start) - start},
            ).scalar_one()
            Path(log_out).write_bytes(bytes(data))
    engine.dispose()
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
