"""Helpers for the receiver's tests: real SDK spans, raw HTTP, and reading what was written."""

from __future__ import annotations

import gzip
import http.client
import json
from pathlib import Path
from typing import Any

from correlate.store import open_store


def sdk_spans(provider: Any, n_traces: int) -> None:
    """Make ``n_traces`` traces of three spans each (a SERVER span, two children)."""
    from opentelemetry.trace import SpanKind

    tracer = provider.get_tracer("tests.collect")
    for i in range(n_traces):
        with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.route", "/a")
            with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as q:
                q.set_attribute("db.system", "postgresql")
                q.set_attribute("db.statement", f"SELECT {i}")
            with tracer.start_as_current_span("work"):
                pass


def recorded(provider: Any) -> tuple[Any, Any]:
    """Add an in-memory exporter to ``provider``: what the SDK made, to compare with."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def expected_rows(memory: Any) -> list[tuple[str, str, str | None, int, int]]:
    rows = []
    for span in memory.get_finished_spans():
        parent = span.parent.span_id if span.parent else None
        rows.append(
            (
                f"{span.context.trace_id:032x}",
                f"{span.context.span_id:016x}",
                f"{parent:016x}" if parent else None,
                span.start_time,
                span.end_time,
            )
        )
    return sorted(rows, key=lambda r: (r[0], r[1]))


def ingested_rows(run_dir: Path) -> list[tuple[str, str, str | None, int, int]]:
    """Every span row ``correlate ingest`` reads from ``run_dir``; no span may come twice."""
    with open_store(":memory:") as store:
        report = store.ingest([run_dir], "r")
        assert report.duplicates == 0
        assert report.skipped == 0, report.problems
        return [
            tuple(r)
            for r in store.con.execute(
                "SELECT trace_id, span_id, parent_id, start_ns, end_ns FROM spans "
                "ORDER BY trace_id, span_id"
            ).fetchall()
        ]


def span_frames(run_dir: Path) -> int:
    """Spans in every protobuf-framed file under ``run_dir/spans`` (plain or gzipped)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    total = 0
    for path in sorted((run_dir / "spans").glob("collect-*.binpb*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        at = 0
        while at < len(data):
            size = int.from_bytes(data[at : at + 4], "big")
            message = ExportTraceServiceRequest.FromString(data[at + 4 : at + 4 + size])
            total += sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
            at += 4 + size
    return total


def post(
    port: int,
    path: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST", path, body=body, headers={"Content-Type": content_type, **(headers or {})}
        )
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def json_request(spans: list[tuple[str, str]], service: str = "shop") -> dict[str, Any]:
    """An OTLP/JSON trace request with one span per (trace id, span id)."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "hand"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "GET /b",
                                "kind": 2,
                                "startTimeUnixNano": str(1_800_000_000_000_000_000 + i),
                                "endTimeUnixNano": str(1_800_000_000_000_000_000 + i + 5_000),
                                "status": {},
                            }
                            for i, (trace_id, span_id) in enumerate(spans)
                        ],
                    }
                ],
            }
        ]
    }


def proto_request(n: int, seed: int = 0) -> bytes:
    """A serialized ExportTraceServiceRequest of ``n`` spans with ids derived from ``seed``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    rs = message.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "shop"
    ss = rs.scope_spans.add()
    for i in range(n):
        span = ss.spans.add()
        span.trace_id = (seed * 1_000_003 + i + 1).to_bytes(16, "big")
        span.span_id = (seed * 1_000_003 + i + 1).to_bytes(8, "big")
        span.name = "GET /c"
        span.kind = 2
        span.start_time_unix_nano = 1_800_000_000_000_000_000 + i
        span.end_time_unix_nano = 1_800_000_000_000_000_000 + i + 1000
    return message.SerializeToString()


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()
