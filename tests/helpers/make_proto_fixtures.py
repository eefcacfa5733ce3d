"""Write the OTLP protobuf framing fixtures with the real opentelemetry-proto classes.

    python -m tests.helpers.make_proto_fixtures

Writes into tests/data/otlp/:

- ``varint-delimited.binpb``: three messages, each preceded by its length as a
  base-128 varint (protobuf's writeDelimitedTo): a TracesData, an
  ExportTraceServiceRequest, and a TracesData again (the two have the same wire
  form), 2 + 1 + 2 spans;
- ``raw-request.binpb``: one raw ExportTraceServiceRequest of two
  ResourceSpans (two services), 3 spans, as an OTLP/HTTP body saved to a file.

The spans are the same shape as the SDK's: hex-able ids, a SERVER span with
HTTP attributes and a CLIENT database span under it.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

OUT = Path(__file__).resolve().parent.parent / "data" / "otlp"
START = 1_795_594_408_000_000_000


def varint(n: int) -> bytes:
    """``n`` as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def kv(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )
    return KeyValue(key=key, value=any_value)


def pair(trace: int, route: str) -> list[Span]:
    """A SERVER span and the database CLIENT span it made."""
    trace_id = trace.to_bytes(16, "big")
    server_id = (trace << 8 | 1).to_bytes(8, "big")
    start = START + trace * 1_000_000_000
    return [
        Span(
            trace_id=trace_id,
            span_id=server_id,
            name=f"GET {route}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + 30_000_000,
            attributes=[kv("http.route", route), kv("http.response.status_code", 200)],
        ),
        Span(
            trace_id=trace_id,
            span_id=(trace << 8 | 2).to_bytes(8, "big"),
            parent_span_id=server_id,
            name="SELECT shop",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start + 5_000_000,
            end_time_unix_nano=start + 25_000_000,
            attributes=[
                kv("db.system", "postgresql"),
                kv("db.statement", "SELECT * FROM orders WHERE id = %(id)s"),
            ],
        ),
    ]


def resource_spans(service: str, spans: list[Span]) -> ResourceSpans:
    return ResourceSpans(
        resource=Resource(attributes=[kv("service.name", service)]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="fixture"), spans=spans)],
    )


def main() -> None:
    messages = [
        TracesData(resource_spans=[resource_spans("shop", pair(1, "/orders/{id}"))]),
        ExportTraceServiceRequest(
            resource_spans=[resource_spans("shop", pair(2, "/orders/{id}")[:1])]
        ),
        TracesData(resource_spans=[resource_spans("shop", pair(3, "/customers/{id}"))]),
    ]
    delimited = b"".join(varint(m.ByteSize()) + m.SerializeToString() for m in messages)
    (OUT / "varint-delimited.binpb").write_bytes(delimited)
    raw = ExportTraceServiceRequest(
        resource_spans=[
            resource_spans("shop", pair(4, "/cart")),
            resource_spans("pricing", pair(5, "/prices/{sku}")[:1]),
        ]
    )
    (OUT / "raw-request.binpb").write_bytes(raw.SerializeToString())


if __name__ == "__main__":
    main()
