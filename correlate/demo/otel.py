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

#: How the demo service can be recorded: ``correlate.instrument``, or stock OpenTelemetry.
INSTRUMENTS = ("correlate", "otel")


@dataclass
class OtelRecording:
    """A tracer provider exporting to the run directory, and how to stop it."""

    tracer_provider: Any
    _instrumentor: Any

    def close(self) -> None:
        """Stop instrumenting and flush every span to the file."""
        self._instrumentor.uninstrument()
        self.tracer_provider.shutdown()


def record_otel(engine: Engine, run_dir: str | os.PathLike[str], service: str) -> OtelRecording:
    """Instrument ``engine`` with the official SQLAlchemy instrumentation and export
    spans as OTLP JSON lines into ``run_dir/spans`` (instrument the web framework with
    the returned ``tracer_provider``)."""
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    spans = Path(run_dir) / "spans"
    try:
        spans.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create {spans}: {exc}") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(FileSpanExporter(spans / f"spans-{os.getpid()}.jsonl"))
    )
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(engine=engine, tracer_provider=provider)
    return OtelRecording(provider, instrumentor)
