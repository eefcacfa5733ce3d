"""Write real OpenTelemetry SDK spans of a threaded service with (or without) a lock in its code.

``THREADS`` worker threads, like a load test's users, each serve ``REQUESTS`` requests
one after another with a think time of 0 to ``12 × HOLD_MS`` between them (seeded): a
SERVER span ``GET /reserve``, a millisecond of its own, then the section ``reserve
stock`` (an INTERNAL span), then a millisecond more. Modes:

``wait``
    the section takes a process-wide ``threading.Lock`` inside its span (the span
    covers the wait and the critical part), and holds it for an I/O of ``HOLD_MS``;
``critical``
    the same lock, taken before the span starts (the span covers the critical part);
``free``
    no lock: the section does ``HOLD_MS`` of pure-Python CPU work (threads take turns
    under the interpreter lock) and then sleeps ``HOLD_MS``.

Usage: python section_producer.py OUT.jsonl MODE [THREADS REQUESTS HOLD_MS]
"""

from __future__ import annotations

import random
import sys
import threading
import time

from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer

LOCK = threading.Lock()


def _cpu(ms: float) -> None:
    """Busy Python bytecode for ``ms`` of this thread's CPU time."""
    end = time.thread_time() + ms / 1000
    n = 0
    while time.thread_time() < end:
        n += sum(range(200))


def _section(tracer: Tracer, mode: str, hold_ms: float) -> None:
    if mode == "wait":
        with tracer.start_as_current_span("reserve stock"), LOCK:
            time.sleep(hold_ms / 1000)
    elif mode == "critical":
        with LOCK, tracer.start_as_current_span("reserve stock"):
            time.sleep(hold_ms / 1000)
    else:
        with tracer.start_as_current_span("reserve stock"):
            _cpu(hold_ms)
            time.sleep(hold_ms / 1000)


def _worker(tracer: Tracer, mode: str, requests: int, hold_ms: float, seed: int) -> None:
    think = random.Random(seed)
    for _ in range(requests):
        time.sleep(think.uniform(0, 12 * hold_ms) / 1000)
        attributes = {
            "http.request.method": "GET",
            "http.route": "/reserve",
            "http.response.status_code": 200,
        }
        with tracer.start_as_current_span("GET /reserve", kind=SpanKind.SERVER,
                                          attributes=attributes):  # fmt: skip
            time.sleep(0.001)
            _section(tracer, mode, hold_ms)
            time.sleep(0.001)


def main(out: str, mode: str, threads: int, requests: int, hold_ms: float) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "inventory"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    tracer = provider.get_tracer("tests.section_producer")
    workers = [
        threading.Thread(target=_worker, args=(tracer, mode, requests, hold_ms, seed))
        for seed in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    provider.shutdown()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 6) or sys.argv[2] not in ("wait", "critical", "free"):
        sys.exit(__doc__)
    numbers = sys.argv[3:] or ["6", "20", "10"]
    main(sys.argv[1], sys.argv[2], int(numbers[0]), int(numbers[1]), float(numbers[2]))
