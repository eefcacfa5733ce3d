"""A request that reads a cart's items from Redis in batches: the standard instrumentation's spans.

opentelemetry-instrumentation-redis records a command with its arguments sanitised to
``?`` (``MGET ? ? ?``: one ``?`` per key) and a pipeline as one span whose statement is
its commands, one a line. Each ``GET /cart`` request reads its cart's items (1 to 6 of
them, by request) with one ``MGET``, reads them again through a pipeline of one ``GET``
per item and a ``SET`` of the cart's timestamp, and ``DEL``\\s them. Exported by the SDK's
OTLP/JSON file exporter. Run as a subprocess (the instrumentor patches redis-py once per
process). Usage: python redis_batch_producer.py REDIS_URL OUT.jsonl REQUESTS
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

PREFIX = "correlate-test:cart:"


def main(url: str, out: str, requests: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "cart"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    RedisInstrumentor().instrument(tracer_provider=provider)
    cache = redis.Redis.from_url(url)
    tracer = provider.get_tracer("tests.redis_batch_producer")
    for n in range(requests):
        keys = [f"{PREFIX}{n}:{item}" for item in range(n % 6 + 1)]
        cache.mset(dict.fromkeys(keys, 1))
        with tracer.start_as_current_span(
            "GET /cart",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/cart", "http.request.method": "GET"},
        ):
            assert all(cache.mget(keys))
            with cache.pipeline() as pipe:
                for key in keys:
                    pipe.get(key)
                pipe.set(f"{PREFIX}{n}:seen", n)
                pipe.execute()
            cache.delete(*keys, f"{PREFIX}{n}:seen")
    RedisInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
