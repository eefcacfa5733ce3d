"""A web request queues Celery tasks on RabbitMQ; the worker runs each with an N+1.

Standard instrumentation only: opentelemetry-instrumentation-celery (a PRODUCER span for
apply_async, a CONSUMER span for the task's run, the context in the message headers) and
-sqlalchemy on SQLite, exported by the SDK's OTLP/JSON file exporter. Celery's own test
worker runs the tasks in a thread of this process. Usage:
python celery_worker.py AMQP_URL DB_PATH OUT.jsonl TASKS
"""

from __future__ import annotations

import sys

from celery import Celery
from celery.contrib.testing.worker import start_worker
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text


def main(amqp_url: str, db_path: str, out: str, tasks: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    engine = create_engine(f"sqlite:///{db_path}")
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id integer PRIMARY KEY, order_id int, sku text)"))
        for i in range(1, 121):
            conn.execute(
                text("INSERT INTO items VALUES (:i, :o, :s)"),
                {"i": i, "o": i % 10, "s": f"sku-{i}"},
            )
    app = Celery("correlate_test_celery", broker=amqp_url, backend="cache+memory://")
    app.conf.task_default_queue = "correlate_test_celery"

    @app.task(name="orders.process")
    def process(order: int) -> int:
        with engine.connect() as conn:
            items = [
                r[0]
                for r in conn.execute(
                    text("SELECT id FROM items WHERE order_id = :o"), {"o": order}
                )
            ]
            for item in items:  # the N+1: one query per item
                conn.execute(text("SELECT sku FROM items WHERE id = :i"), {"i": item})
        return len(items)

    tracer = provider.get_tracer("tests.celery_worker")
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        results = []
        for i in range(tasks):
            with tracer.start_as_current_span(
                "POST /orders",
                kind=SpanKind.SERVER,
                attributes={"http.route": "/orders", "http.request.method": "POST"},
            ):
                results.append(process.delay(i % 10))
        for r in results:
            r.get(timeout=60)
    CeleryInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
