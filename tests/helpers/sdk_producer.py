"""Write real OpenTelemetry SDK spans for a tiny "request" that runs SQL.

Run as a subprocess: the semantic-convention mode (OTEL_SEMCONV_STABILITY_OPT_IN)
is read once per process. Usage: python sdk_producer.py DSN OUT.jsonl
"""

from __future__ import annotations

import sys

from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import create_engine, text


def main(dsn: str, out: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-api"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    engine = create_engine(dsn)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    tracer = provider.get_tracer("tests.sdk_producer")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ctest_orders"))
        conn.execute(
            text("CREATE TABLE ctest_orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
        )
        conn.execute(text("INSERT INTO ctest_orders VALUES (1, 7), (2, 7), (3, 8)"))
    with (
        tracer.start_as_current_span(
            "GET /customers/{id}/orders",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/customers/{id}/orders",
                "http.response.status_code": 200,
            },
        ),
        engine.connect() as conn,
    ):
        for cid in (7, 8):
            conn.execute(text("SELECT id FROM ctest_orders WHERE customer_id = :cid"), {"cid": cid})
    with tracer.start_as_current_span("GET /boom", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", "/boom")
        span.set_attribute("http.response.status_code", 500)
        try:
            raise ValueError("payment declined")
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "payment declined"))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ctest_orders"))
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
