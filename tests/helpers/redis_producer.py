"""A request that reads a cache key per item: the standard Redis instrumentation's spans.

opentelemetry-instrumentation-redis (CLIENT spans, ``db.system=redis``, the command with
its arguments sanitised to ``?``), exported by the SDK's OTLP/JSON file exporter. Run as
a subprocess (the instrumentor patches redis-py once per process).
Usage: python redis_producer.py REDIS_URL OUT.jsonl REQUESTS
"""

from __future__ import annotations

import sys

import redis
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

PREFIX = "correlate-test:price:"


def main(url: str, out: str, requests: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "catalog"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    RedisInstrumentor().instrument(tracer_provider=provider)
    cache = redis.Redis.from_url(url)
    for item in range(12):
        cache.set(f"{PREFIX}{item}", item * 100)
    tracer = provider.get_tracer("tests.redis_producer")
    for _ in range(requests):
        with tracer.start_as_current_span(
            "GET /products",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/products", "http.request.method": "GET"},
        ):
            prices = [cache.get(f"{PREFIX}{item}") for item in range(12)]  # one GET per item
            assert all(p is not None for p in prices)
    cache.delete(*(f"{PREFIX}{item}" for item in range(12)))
    RedisInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
