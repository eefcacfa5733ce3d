"""Record the demo service with nothing of correlate's in it: stock OpenTelemetry only.

``correlate demo --instrument otel`` runs the service the way a user's service is
usually instrumented: the OpenTelemetry SDK, the official SQLAlchemy, Flask and urllib
instrumentations, and the SDK's OTLP JSON file exporter
(opentelemetry-exporter-otlp-json-file) writing ``spans/spans-<pid>.jsonl``. No
pool samples, checkouts or leak suspects are written, so the analysis has to tell
a leak from saturation from the spans alone (the SQLAlchemy ``connect`` spans).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.demo.errors import DemoError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: How often the SDK exports the pool metric (its default, 60 s, would give a handful of points).
METRICS_INTERVAL_S = 1.0

#: How the demo service can be recorded: ``correlate.instrument``, or stock OpenTelemetry.
INSTRUMENTS = ("correlate", "otel")


@dataclass
class OtelRecording:
    """A tracer provider exporting to the run directory, and how to stop it."""

    tracer_provider: Any
    _instrumentor: Any
    meter_provider: Any = None

    def close(self) -> None:
        """Stop instrumenting and flush every span and metric point to the files."""
        self._instrumentor.uninstrument()
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def record_otel(engine: Engine, run_dir: str | os.PathLike[str], service: str) -> OtelRecording:
    """Instrument ``engine`` with the official SQLAlchemy instrumentation and export
    spans and metrics as OTLP JSON lines into ``run_dir/spans`` and ``run_dir/metrics``
    (instrument the web framework with the returned ``tracer_provider``)."""
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    spans, metrics = Path(run_dir) / "spans", Path(run_dir) / "metrics"
    try:
        spans.mkdir(parents=True, exist_ok=True)
        metrics.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create {spans} and {metrics}: {exc}") from exc
    resource = Resource.create({"service.name": service, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(FileSpanExporter(spans / f"spans-{os.getpid()}.jsonl"))
    )
    instrumentor = SQLAlchemyInstrumentor()
    reader = PeriodicExportingMetricReader(
        FileMetricExporter(metrics / f"metrics-{os.getpid()}.jsonl"),
        export_interval_millis=METRICS_INTERVAL_S * 1000,
    )
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    instrumentor.instrument(engine=engine, tracer_provider=provider, meter_provider=meters)
    return OtelRecording(provider, instrumentor, meters)
