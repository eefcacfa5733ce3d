"""Write real OpenTelemetry ASGI spans of a service whose handler takes an asyncio lock.

opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware`` around a bare ASGI app,
served in this process (the test drives the app as a server would: ``receive`` gives the
request, ``send`` takes the response). Each of ``REQUESTS`` concurrent ``POST /notify``
requests holds one ``asyncio.Lock`` for ``HOLD_MS`` inside the application's own span
``mailer http send`` (the service sends a mail over HTTP; its span name merely ends as the
instrumentation's do). The instrumentation records a span per protocol message; with
``renamed`` a span processor renames them when they start (``asgi message``), as a
deployment's naming rules may. Usage: python asgi_producer.py OUT.jsonl REQUESTS HOLD_MS
[renamed]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


class _Rename(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        asgi = scope is not None and scope.name == "opentelemetry.instrumentation.asgi"
        if asgi and span.kind is SpanKind.INTERNAL:  # not the request's SERVER span
            span.update_name("asgi message")


def main(out: str, requests: int, hold_ms: float, renamed: bool) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "notifier"}))
    if renamed:
        provider.add_span_processor(_Rename())
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    tracer = provider.get_tracer("tests.asgi_producer")
    lock = asyncio.Lock()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        with tracer.start_as_current_span("mailer http send"):
            async with lock:
                await asyncio.sleep(hold_ms / 1000)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"queued"})

    served = OpenTelemetryMiddleware(app, tracer_provider=provider)

    async def one(k: int) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/notify", "raw_path": b"/notify",
            "query_string": b"", "root_path": "", "headers": [(b"host", b"notifier")],
            "client": ("127.0.0.1", 40000 + k), "server": ("127.0.0.1", 8000),
        }  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            await asyncio.sleep(0)

        await asyncio.sleep(k * hold_ms / 4000)  # arrivals a quarter of a hold apart
        await served(scope, receive, send)

    async def serve() -> None:
        await asyncio.gather(*(one(k) for k in range(requests)))

    asyncio.run(serve())
    provider.shutdown()


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:] == ["renamed"])
