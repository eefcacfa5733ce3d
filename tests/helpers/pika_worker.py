"""A web request publishes messages to RabbitMQ; a worker processes each with an N+1.

Standard instrumentation only: opentelemetry-instrumentation-pika (PRODUCER and CONSUMER
spans, the trace context carried in the message headers) and -sqlalchemy, exported by
the SDK's OTLP/JSON file exporter. Run as a subprocess (instrumentors patch modules
once per process). Usage: python pika_worker.py AMQP_URL DSN OUT.jsonl MESSAGES
"""

from __future__ import annotations

import sys

import pika
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.pika import PikaInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text

QUEUE = "correlate_test_orders"


def main(amqp_url: str, dsn: str, out: str, messages: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    engine = create_engine(dsn)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    PikaInstrumentor().instrument(tracer_provider=provider)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ctest_items"))
        conn.execute(
            text("CREATE TABLE ctest_items (id serial PRIMARY KEY, order_id int, sku text)")
        )
        conn.execute(
            text(
                "INSERT INTO ctest_items (order_id, sku) "
                "SELECT g % 10, 'sku-' || g FROM generate_series(1, 120) g"
            )
        )
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(QUEUE)
    channel.queue_purge(QUEUE)
    tracer = provider.get_tracer("tests.pika_worker")
    for i in range(messages):
        with tracer.start_as_current_span(
            "POST /orders",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/orders", "http.request.method": "POST"},
        ):
            channel.basic_publish("", QUEUE, str(i % 10).encode())
    processed: list[int] = []

    def on_message(chan, method, properties, body):  # type: ignore[no-untyped-def]
        order = int(body)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM ctest_items WHERE order_id = :o"), {"o": order}
            )
            for (item,) in list(rows):  # the N+1: one query per item
                conn.execute(text("SELECT sku FROM ctest_items WHERE id = :i"), {"i": item})
        chan.basic_ack(method.delivery_tag)
        processed.append(order)
        if len(processed) == messages:
            chan.stop_consuming()

    channel.basic_consume(QUEUE, on_message)
    channel.start_consuming()
    channel.queue_delete(QUEUE)
    connection.close()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ctest_items"))
    PikaInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
