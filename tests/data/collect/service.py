"""A stand-in for a service under load, for tests of ``correlate record``.

Exports spans with the OpenTelemetry SDK's OTLP exporter configured only by
the environment (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL), as
any service would, then copies a k6 result file to the path it is given.

usage: python service.py K6_OUT N_REQUESTS [EXIT_CODE]

With SERVICE_READY=PATH it then writes PATH and serves on until SIGTERM, like a
service that runs until it is stopped.
"""

import os
import shutil
import signal
import sys
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

assert os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("service")
for i in range(int(sys.argv[2])):
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", "GET")
        span.set_attribute("http.route", "/orders")
        span.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("SELECT shop", kind=SpanKind.CLIENT) as query:
            query.set_attribute("db.system", "postgresql")
            query.set_attribute("db.statement", f"SELECT * FROM orders WHERE id = {i}")
provider.shutdown()
if "SERVICE_READY" in os.environ:
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    Path(os.environ["SERVICE_READY"]).write_text("ready")
    while not stopped:
        time.sleep(0.05)
shutil.copyfile(Path(__file__).parents[1] / "load" / "k6.json", sys.argv[1])
sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
