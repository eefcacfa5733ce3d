"""Write tests/data/metrics/sqlalchemy-*.json*: real SDK output of the SQLAlchemy pool metric.

A tiny SQLAlchemy 2.0 + psycopg app instrumented by opentelemetry-instrumentation-
sqlalchemy, against a real PostgreSQL: three connections checked out, one kept
(a leak), two returned; the SDK exports its metrics with the OTLP JSON file
exporter (``sqlalchemy-otlp.jsonl``, delta and cumulative) and the console
exporter (``sqlalchemy-console.json``, the SDK's own JSON), once per step.

usage: python tests/helpers/make_pool_metrics_fixture.py postgresql+psycopg://postgres@127.0.0.1:5432/test_metrics
"""

import sys
from pathlib import Path

from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.metrics import MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from sqlalchemy import create_engine, text

OUT = Path(__file__).parents[1] / "data" / "metrics"


def main(dsn: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    otlp = (OUT / "sqlalchemy-otlp.jsonl").open("w")
    console = (OUT / "sqlalchemy-console.json").open("w")
    delta = (OUT / "sqlalchemy-otlp-delta.jsonl").open("w")
    readers = [
        PeriodicExportingMetricReader(
            FileMetricExporter(stream=otlp), export_interval_millis=3_600_000
        ),
        PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=console, formatter=lambda m: m.to_json(indent=4) + "\n"),
            export_interval_millis=3_600_000,
        ),
        PeriodicExportingMetricReader(
            FileMetricExporter(
                stream=delta,
                preferred_temporality={UpDownCounter: AggregationTemporality.DELTA},
            ),
            export_interval_millis=3_600_000,
        ),
    ]
    resource = Resource.create({"service.name": "fixture", "process.pid": 4242})
    meters = MeterProvider(resource=resource, metric_readers=readers)
    engine = create_engine(dsn, pool_size=2, max_overflow=1)
    SQLAlchemyInstrumentor().instrument(engine=engine, meter_provider=meters)

    def export() -> None:
        for reader in readers:
            reader.collect()

    held = []
    for _ in range(3):  # three checkouts: used 1, 2, 3
        conn = engine.connect()
        conn.execute(text("SELECT 1"))
        held.append(conn)
        export()
    held.pop().close()  # two come back, one stays out
    export()
    held.pop().close()
    export()
    meters.shutdown()
    for fh in (otlp, console, delta):
        fh.close()


if __name__ == "__main__":
    main(sys.argv[1])
