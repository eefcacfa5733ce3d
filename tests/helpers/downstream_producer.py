"""Write real OpenTelemetry SDK spans of a service whose route waits on another service.

Two Flask apps in one process, both instrumented by the official Flask and SQLAlchemy
instrumentations: ``storefront`` serves ``GET /cart/<id>`` (a little work of its own, then
one HTTP call to ``pricing``), ``pricing`` serves ``GET /quotes/<id>`` (a slow query on
SQLite, then a little code). The call between them is a CLIENT span written with the SDK
(the HTTP client instrumentations are not installed here) with the stable HTTP client
attributes, its context injected into the request headers, so the pricing request's SERVER
span is its child as on the wire. Run as a subprocess (instrumentations patch globals).
Usage: python downstream_producer.py OUT.jsonl REQUESTS
"""

from __future__ import annotations

import sys
import time

from flask import Flask
from opentelemetry import context, propagate
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text


def _provider(service: str, out: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    return provider


def main(out: str, requests: int) -> None:
    shop, prices = _provider("storefront", out), _provider("pricing", out)
    engine = create_engine("sqlite://")
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=prices)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE quote (id INTEGER PRIMARY KEY, cents INTEGER)"))
        conn.execute(text("INSERT INTO quote VALUES (1, 100), (2, 250)"))

    pricing = Flask("pricing")

    @pricing.get("/quotes/<int:quote_id>")
    def quote(quote_id: int) -> dict[str, int]:
        with engine.connect() as conn:
            # a slow statement: a recursive count standing in for a scan
            conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < 300000) SELECT count(*) FROM n, quote WHERE quote.id = :id"
                ),
                {"id": quote_id},
            )
        time.sleep(0.002)
        return {"id": quote_id}

    storefront = Flask("storefront")
    pricing_client = pricing.test_client()
    tracer = shop.get_tracer("tests.downstream_producer")

    @storefront.get("/cart/<int:cart_id>")
    def cart(cart_id: int) -> dict[str, int]:
        time.sleep(0.003)
        url = f"http://pricing:8080/quotes/{cart_id % 2 + 1}"
        with tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": url,
                "server.address": "pricing",
                "server.port": 8080,
            },
        ) as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            # as in another process: pricing sees the trace only through the headers
            token = context.attach(context.Context())
            try:
                response = pricing_client.get(
                    url.removeprefix("http://pricing:8080"), headers=headers
                )
            finally:
                context.detach(token)
            span.set_attribute("http.response.status_code", response.status_code)
        return {"id": cart_id}

    FlaskInstrumentor().instrument_app(storefront, tracer_provider=shop)
    FlaskInstrumentor().instrument_app(pricing, tracer_provider=prices)
    client = storefront.test_client()
    for n in range(requests):
        assert client.get(f"/cart/{1000 + n}").status_code == 200
    shop.shutdown()
    prices.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
