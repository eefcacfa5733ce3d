"""Make a service under load test write everything correlate needs.

One call, in the service::

    from correlate.instrument import record

    rec = record(engine, run_dir="runs/bf-1", service_name="checkout")
    FlaskInstrumentor().instrument_app(app, tracer_provider=rec.tracer_provider)
    try:
        serve(app)
    finally:
        rec.close()

The run directory it writes is described in ``docs/run-directory.md``.
"""

from __future__ import annotations

from correlate.instrument.recording import RecordError, Recording, RecordingStats, record

__all__ = ["RecordError", "Recording", "RecordingStats", "record"]
