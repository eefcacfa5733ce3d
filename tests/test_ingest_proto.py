"""OTLP protobuf ingest (the Collector file exporter's ``format: proto`` framing)."""

from __future__ import annotations

import base64
import gzip
import json
import random
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

import correlate
from correlate.errors import CorrelateError, InputError
from correlate.ingest import otlp_proto
from correlate.ingest.detect import detect, detect_format
from correlate.store import Store

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
START = 1_764_060_000_000_000_000


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


def frame(*messages: bytes) -> bytes:
    """The Collector's proto framing: a 4-byte big-endian length before each message."""
    return b"".join(struct.pack(">I", len(m)) + m for m in messages)


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def request(*spans: Span, service: str = "shop-api") -> bytes:
    resource = Resource(attributes=[kv("service.name", string_value=service)])
    scope = InstrumentationScope(name="demo.scope", version="1.0")
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
        ]
    ).SerializeToString()


def server_span() -> Span:
    return Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="GET /orders/{id}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=START,
        end_time_unix_nano=START + 25_000_000,
        attributes=[
            kv("http.request.method", string_value="GET"),
            kv("http.route", string_value="/orders/{id}"),
            kv("http.response.status_code", int_value=500),
            kv("big", int_value=2**63 - 1),
            kv("ratio", double_value=0.25),
            kv("sampled", bool_value=True),
            kv("raw", bytes_value=b"\x00\x01\xff"),
        ],
        events=[
            Span.Event(
                time_unix_nano=START + 20_000_000,
                name="exception",
                attributes=[kv("exception.type", string_value="ValueError")],
            )
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="payment declined"),
    )


def db_span() -> Span:
    return Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("a1b2c3d4e5f60718"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="SELECT shop",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START + 2_000_000,
        end_time_unix_nano=START + 3_500_000,
        attributes=[
            kv("db.system.name", string_value="postgresql"),
            kv("db.query.text", string_value="SELECT * FROM orders WHERE id = $1"),
            kv("server.port", int_value=5432),
        ],
        links=[
            Span.Link(
                trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                span_id=bytes.fromhex("b7ad6b7169203331"),
                attributes=[kv("why", string_value="batch")],
            )
        ],
        status=Status(code=Status.STATUS_CODE_OK),
    )


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- good input ---------------------------------------------------------------------------


def test_protobuf_built_messages(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "traces.pb", frame(request(server_span()), request(db_span())))
    assert detect_format(path) == "otlp-proto"
    report = store.ingest([path], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (2, 2, 0)
    got = rows(
        store,
        "SELECT trace_id, span_id, parent_id, name, kind, service, scope_name, start_ns, end_ns, "
        "status_code, status_message, http_route, http_status_code, db_system, db_statement, "
        "server_port, attributes::VARCHAR, resource::VARCHAR FROM spans ORDER BY start_ns",
    )
    trace = TRACE.hex()
    assert got == [
        (trace, "00f067aa0ba902b7", None, "GET /orders/{id}", "SERVER", "shop-api", "demo.scope",
         START, START + 25_000_000, "ERROR", "payment declined", "/orders/{id}", 500, None, None,
         None,
         '{"http.request.method":"GET","http.route":"/orders/{id}",'
         '"http.response.status_code":500,"big":9223372036854775807,"ratio":0.25,'
         '"sampled":true,"raw":"AAH/"}',
         '{"service.name":"shop-api"}'),
        (trace, "a1b2c3d4e5f60718", "00f067aa0ba902b7", "SELECT shop", "CLIENT", "shop-api",
         "demo.scope", START + 2_000_000, START + 3_500_000, "OK", None, None, None,
         "postgresql", "SELECT * FROM orders WHERE id = $1", 5432,
         '{"db.system.name":"postgresql","db.query.text":"SELECT * FROM orders WHERE id = $1",'
         '"server.port":5432}',
         '{"service.name":"shop-api"}'),
    ]  # fmt: skip
    assert rows(store, "SELECT events, links FROM spans ORDER BY start_ns") == [
        (
            [
                {
                    "time_ns": START + 20_000_000,
                    "name": "exception",
                    "attributes": '{"exception.type":"ValueError"}',
                }
            ],
            [],
        ),
        (
            [],
            [
                {
                    "trace_id": "0af7651916cd43dd8448eb211c80319c",
                    "span_id": "b7ad6b7169203331",
                    "attributes": '{"why":"batch"}',
                }
            ],
        ),
    ]


def test_ids_are_hex_not_base64() -> None:
    text = otlp_proto.to_otlp_json(ExportTraceServiceRequest.FromString(request(db_span())))
    span = json.loads(text)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "a1b2c3d4e5f60718",
        "00f067aa0ba902b7",
    )
    assert span["links"][0]["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert (span["kind"], span["startTimeUnixNano"]) == (3, str(START + 2_000_000))


def test_gzip_gives_the_same_rows(store: Store, tmp_path: Path) -> None:
    data = frame(request(server_span()), request(db_span()))
    packed = tmp_path / "traces.pb.gz"
    with gzip.open(packed, "wb") as f:
        f.write(data)
    assert detect_format(packed) == "otlp-proto"
    store.ingest([packed], run="gz")
    store.ingest([write(tmp_path / "traces.pb", data)], run="plain")
    by_run = rows(
        store,
        "SELECT list(span_id || start_ns || attributes::VARCHAR ORDER BY span_id) "
        "FROM spans GROUP BY run_id ORDER BY run_id",
    )
    assert len(by_run) == 2 and by_run[0] == by_run[1]


def test_many_messages_are_batched_and_numbered_from_one(tmp_path: Path) -> None:
    path = write(tmp_path / "t.pb", frame(*[request(db_span())] * 5, b""))
    batches = list(otlp_proto.batches(path, batch_chars=1000))
    assert [b.numbers for b in batches] == [[1, 2], [3, 4], [5, 6]]
    assert batches[-1].lines[-1] == '{"resourceSpans":[]}'  # an empty request is no spans
    assert all(b.bad == [] for b in batches)


# -- the real OpenTelemetry SDK -----------------------------------------------------------


@pytest.fixture
def sdk_spans() -> Iterator[tuple[Any, ...]]:
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "sdk-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.proto", "9.9")
    with tracer.start_as_current_span(
        "GET /items/{id}",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/items/{id}", "http.response.status_code": 404},
    ) as server:
        with tracer.start_as_current_span(
            "SELECT items",
            kind=SpanKind.CLIENT,
            attributes={"db.query.text": "SELECT 1", "ratio": 1.5, "cached": False},
            links=[Link(server.get_span_context(), {"k": "v"})],
        ) as db:
            db.add_event("retry", {"attempt": 2})
        server.set_status(Status(StatusCode.ERROR, "not found"))
    with tracer.start_as_current_span("tick", kind=SpanKind.INTERNAL):
        pass
    yield tuple(exporter.get_finished_spans())
    provider.shutdown()


def test_real_sdk_spans_round_trip_exactly(
    store: Store, tmp_path: Path, sdk_spans: tuple[Any, ...]
) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    messages = [encode_spans(sdk_spans[:1]), encode_spans(sdk_spans[1:])]
    path = write(tmp_path / "sdk.pb", frame(*(m.SerializeToString() for m in messages)))
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.skipped) == (len(sdk_spans), 0)
    got = {
        r[1]: r
        for r in rows(
            store,
            "SELECT trace_id, span_id, parent_id, name, kind, service, scope_name, start_ns, "
            "end_ns, status_code, status_message, attributes, resource, events, links FROM spans",
        )
    }
    assert len(got) == len(sdk_spans)
    for span in sdk_spans:
        ctx = span.get_span_context()
        row = got[f"{ctx.span_id:016x}"]
        expected_status = span.status.status_code.name
        assert row[:11] == (
            f"{ctx.trace_id:032x}",
            f"{ctx.span_id:016x}",
            f"{span.parent.span_id:016x}" if span.parent else None,
            span.name,
            span.kind.name,
            "sdk-svc",
            "tests.proto",
            span.start_time,
            span.end_time,
            expected_status,
            span.status.description,
        )
        assert json.loads(row[11]) == dict(span.attributes)
        assert json.loads(row[12]) == dict(span.resource.attributes)
        assert [(e["time_ns"], e["name"], json.loads(e["attributes"])) for e in row[13]] == [
            (e.timestamp, e.name, dict(e.attributes)) for e in span.events
        ]
        assert [(k["trace_id"], k["span_id"], json.loads(k["attributes"])) for k in row[14]] == [
            (f"{k.context.trace_id:032x}", f"{k.context.span_id:016x}", dict(k.attributes))
            for k in span.links
        ]


# -- bad input ----------------------------------------------------------------------------


def test_truncated_last_frame_is_reported_and_earlier_messages_kept(
    store: Store, tmp_path: Path
) -> None:
    first, second = request(server_span()), request(db_span())
    data = frame(first, second)
    path = write(tmp_path / "cut.pb", data[:-10])
    report = store.ingest([path], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (1, 1, 1)
    offset = 4 + len(first)
    assert [(p.line, p.reason) for p in report.problems] == [
        (
            2,
            f"message 2 at byte {offset}: frame says {len(second)} bytes but only "
            f"{len(second) - 10} remain (file cut short?)",
        )
    ]
    assert rows(store, "SELECT span_id FROM spans") == [("00f067aa0ba902b7",)]


def test_cut_inside_the_length_prefix(store: Store, tmp_path: Path) -> None:
    first = request(server_span())
    path = write(tmp_path / "cut.pb", frame(first) + b"\x00\x00")
    report = store.ingest([path], run="r", format="otlp-proto")
    assert [(p.line, p.reason) for p in report.problems] == [
        (
            2,
            f"message 2 at byte {4 + len(first)}: "
            "the file ends inside a frame's 4-byte length (2 byte(s) left)",
        )
    ]
    assert report.spans_added == 1


def test_unparsable_message_is_skipped_and_reading_goes_on(store: Store, tmp_path: Path) -> None:
    # Field 1, length-delimited, with a length running past the message: not protobuf.
    junk = b"\x0a\x7f\x01"
    path = write(tmp_path / "junk.pb", frame(request(server_span()), junk, request(db_span())))
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.skipped) == (2, 1)
    (problem,) = report.problems
    assert problem.line == 2
    assert problem.reason.startswith(
        f"message 2 at byte {4 + len(request(server_span()))}: not an OTLP "
        "ExportTraceServiceRequest ("
    )
    assert problem.reason.endswith(") in a 3-byte frame")


# The Collector's file exporter with compression: zstd (its default, message-level
# compression): each message compressed on its own inside the 4-byte framing, and with
# format: json each message is the OTLP/JSON text of a request.
CHECKOUT = Path(__file__).parent / "data" / "otlp" / "checkout.jsonl"


def _collector_zstd(requests: list[bytes]) -> bytes:
    import zstandard

    return frame(*(zstandard.compress(r) for r in requests))


def _checkout_requests(kind: str) -> list[bytes]:
    from google.protobuf import json_format

    lines = [line for line in CHECKOUT.read_text().splitlines() if line.strip()]
    if kind == "json":
        return [line.encode() for line in lines]
    return [
        json_format.ParseDict(
            _base64_ids(json.loads(line)), ExportTraceServiceRequest()
        ).SerializeToString()
        for line in lines
    ]


def _base64_ids(node: Any) -> Any:
    """OTLP/JSON's hex ids as protobuf's JSON mapping wants bytes: base64."""
    import base64

    if isinstance(node, list):
        return [_base64_ids(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode()
        if key in ("traceId", "spanId", "parentSpanId") and value
        else _base64_ids(value)
        for key, value in node.items()
    }


@pytest.mark.parametrize("kind", ["json", "proto"])
def test_collector_zstd_messages_read_as_the_plain_file(tmp_path: Path, kind: str) -> None:
    every_column = "SELECT * EXCLUDE (run_id, file_id) FROM spans ORDER BY span_id"
    path = write(tmp_path / "spans.bin", _collector_zstd(_checkout_requests(kind)))
    with correlate.open_store(":memory:") as framed, correlate.open_store(":memory:") as plain:
        assert detect_format(path) == "otlp-proto"
        report = framed.ingest([path], run="r")
        plain.ingest([CHECKOUT], run="r")
        assert report.problems == [] and report.spans_added == 5
        assert rows(framed, every_column) == rows(plain, every_column)


def test_a_damaged_zstd_message_is_reported_and_the_next_read(store: Store, tmp_path: Path) -> None:
    import zstandard

    first, second = _checkout_requests("proto")
    broken = zstandard.compress(first)[:-6]  # cut inside its frame
    data = frame(broken) + _collector_zstd([second])
    path = write(tmp_path / "spans.bin", data)
    report = store.ingest([path], run="r", format="otlp-proto")
    [problem] = report.problems
    assert problem.line == 1
    assert problem.reason.startswith(
        "message 1 at byte 0: a zstd-compressed message that does not decompress ("
    )
    assert report.spans_added == len(ExportTraceServiceRequest.FromString(second)
                                     .resource_spans[0].scope_spans[0].spans)  # fmt: skip


def test_zstd_messages_stay_under_the_expansion_bound(store: Store, tmp_path: Path) -> None:
    requests = _checkout_requests("json")
    path = write(tmp_path / "spans.bin", _collector_zstd(requests))
    report = store.ingest([path], run="r", max_expanded_bytes=len(requests[0]) + 10)
    [problem] = report.problems
    assert (
        problem.line == 2 and "expand past" in problem.reason and "--max-expanded" in problem.reason
    )
    assert report.spans_added > 0  # the first message, within the bound


def test_collector_zstd_metrics_are_metrics(tmp_path: Path) -> None:
    """Metrics written the same way (format: json, compression: zstd) are read as the
    plain metrics file is, not as spans."""
    plain = Path(__file__).parent / "data" / "metrics" / "sqlalchemy-otlp.jsonl"
    lines = [line.encode() for line in plain.read_text().splitlines() if line.strip()]
    path = write(tmp_path / "metrics.bin", _collector_zstd(lines))
    assert detect(path).name == "otlp-metrics-proto"
    query = "SELECT * EXCLUDE (run_id, file_id) FROM pool_samples ORDER BY ALL"
    with correlate.open_store(":memory:") as framed, correlate.open_store(":memory:") as direct:
        framed.ingest([path], run="r")
        direct.ingest([plain], run="r")
        assert rows(framed, query) == rows(direct, query) != []


@pytest.mark.parametrize("kind", ["proto", "zstd proto", "zstd json"])
def test_metrics_whose_first_message_outgrows_the_head_are_metrics(
    tmp_path: Path, kind: str
) -> None:
    """A first message longer than the 64 KiB sniffed (a resource with a long attribute)
    is read whole from the file to tell metrics from spans."""
    import zstandard
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    plain = Path(__file__).parent / "data" / "metrics" / "sqlalchemy-otlp.jsonl"
    documents = [json.loads(line) for line in plain.read_text().splitlines() if line.strip()]
    noise = base64.b64encode(random.Random(7).randbytes(80_000)).decode()  # 107 KB
    long_value = {"stringValue": noise}  # one that compresses little
    documents[0]["resourceMetrics"][0]["resource"]["attributes"].append(
        {"key": "process.command_args", "value": long_value}
    )
    reference = tmp_path / "metrics.jsonl"
    reference.write_text("".join(json.dumps(d) + "\n" for d in documents))
    if kind == "zstd json":
        messages = [json.dumps(d).encode() for d in documents]
    else:
        messages = [
            json_format.ParseDict(d, ExportMetricsServiceRequest()).SerializeToString()
            for d in documents
        ]
    if kind.startswith("zstd"):
        messages = [zstandard.compress(m) for m in messages]
    assert len(messages[0]) > 64 * 1024
    path = write(tmp_path / "metrics.bin", frame(*messages))
    assert detect(path).name == "otlp-metrics-proto"
    query = "SELECT * EXCLUDE (run_id, file_id) FROM pool_samples ORDER BY ALL"
    with correlate.open_store(":memory:") as framed, correlate.open_store(":memory:") as direct:
        framed.ingest([path], run="r")
        direct.ingest([reference], run="r")
        assert rows(framed, query) == rows(direct, query) != []


def test_a_zstd_json_message_nested_too_deeply_is_a_problem_not_a_crash(
    tmp_path: Path,
) -> None:
    import zstandard

    deep = b'{"resourceMetrics": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}"
    plain = Path(__file__).parent / "data" / "metrics" / "sqlalchemy-otlp.jsonl"
    first = plain.read_text().splitlines()[0].encode()
    alone = write(tmp_path / "deep.bin", _collector_zstd([deep.replace(b"Metrics", b"Spans")]))
    with pytest.raises(CorrelateError, match="not OTLP protobuf"):
        detect(alone)
    path = write(tmp_path / "metrics.bin", _collector_zstd([first, deep]))
    assert detect(path).name == "otlp-metrics-proto"
    with correlate.open_store(":memory:") as store:
        report = store.ingest([path], run="r")
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, f"message 2 at byte {4 + len(zstandard.compress(first))}: a JSON message "
            "nested too deeply to read")
    ]  # fmt: skip


def _repeating_statement_request(spans: int) -> bytes:
    """One request of ``spans`` queries repeating one long statement (an N+1 loop): it
    compresses far more than a hundredfold."""
    statement = "SELECT " + ", ".join(f"orders.column_{i}" for i in range(150)) + " FROM orders"
    return request(
        *(
            Span(
                trace_id=TRACE,
                span_id=(n + 1).to_bytes(8, "big"),
                name="SELECT shop",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=START + n,
                end_time_unix_nano=START + n + 500,
                attributes=[kv("db.statement", string_value=statement)],
            )
            for n in range(spans)
        )
    )


def test_a_zstd_message_compressed_a_hundredfold_is_detected(tmp_path: Path) -> None:
    import zstandard

    plain = _repeating_statement_request(2000)
    compressed = zstandard.compress(plain)
    assert len(plain) > 100 * len(compressed)
    path = write(tmp_path / "spans.bin", frame(compressed))
    reference = write(tmp_path / "plain.bin", frame(plain))
    every_column = "SELECT * EXCLUDE (run_id, file_id) FROM spans ORDER BY span_id"
    with correlate.open_store(":memory:") as framed, correlate.open_store(":memory:") as direct:
        assert detect_format(path) == "otlp-proto"
        assert framed.ingest([path], run="r").problems == []
        direct.ingest([reference], run="r")
        assert rows(framed, every_column) == rows(direct, every_column)


def test_a_damaged_first_zstd_json_message_is_reported_not_the_file_refused(
    store: Store, tmp_path: Path
) -> None:
    import zstandard

    broken = zstandard.compress(b'{"resourceSpans": [ {"resource": ')
    path = write(tmp_path / "spans.bin", frame(broken) + _collector_zstd([request(server_span())]))
    assert detect_format(path) == "otlp-proto"
    report = store.ingest([path], run="r")
    assert report.spans_added == 1
    assert [p.line for p in report.problems] == [1]


def test_sniffing_a_zstd_bomb_decompresses_little(store: Store, tmp_path: Path) -> None:
    """A 256 MiB message under the bound per file (2 GiB) in a 10 KiB file: detecting
    the format does not expand it all, and reading stops at the bound asked for."""
    import tracemalloc

    import zstandard

    compressor = zstandard.ZstdCompressor().compressobj()
    zeros = bytes(1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()
    path = write(tmp_path / "spans.bin", frame(bomb) + _collector_zstd([request(server_span())]))
    assert path.stat().st_size < 64 * 1024
    tracemalloc.start()
    try:
        assert detect(path).name == "otlp-proto"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20
    with pytest.raises(InputError, match=r"spans.bin:1: .*expand past 64 MiB \(the bound"):
        store.ingest([path], run="r", max_expanded_bytes=64 << 20)


def test_a_message_larger_than_duckdbs_memory_is_a_problem(store: Store, tmp_path: Path) -> None:
    import zstandard

    compressor = zstandard.ZstdCompressor().compressobj()
    message = compressor.compress(b'{"resourceSpans":[],"padding":"')
    message += b"".join(compressor.compress(b"x" * (1 << 20)) for _ in range(40))
    message += compressor.compress(b'"}') + compressor.flush()
    path = write(tmp_path / "spans.bin", frame(message) + _collector_zstd([request(server_span())]))
    store.con.execute("SET memory_limit = '64MB'")
    report = store.ingest([path], run="r", format="otlp-proto")
    assert report.spans_added == 1 and [p.line for p in report.problems] == [1]
    assert "more than DuckDB can parse within its memory limit" in report.problems[0].reason
    assert "CORRELATE_MEMORY_LIMIT" in report.problems[0].reason


def test_impossible_length_stops_reading(store: Store, tmp_path: Path) -> None:
    first = request(server_span())
    path = write(tmp_path / "bad.pb", frame(first) + b"\xff\xff\xff\xff" + frame(first))
    report = store.ingest([path], run="r")
    assert [(p.line, p.reason) for p in report.problems] == [
        (
            2,
            f"message 2 at byte {4 + len(first)}: frame says 4294967295 bytes, more than a "
            "protobuf message can hold (not the Collector's proto framing, or the file is "
            "damaged here)",
        )
    ]
    assert report.spans_added == 1


def test_bad_span_fields_are_span_problems(store: Store, tmp_path: Path) -> None:
    short_id = Span(
        trace_id=TRACE, span_id=b"\x01\x02", start_time_unix_nano=1, end_time_unix_nano=2
    )
    backwards = Span(
        trace_id=TRACE, span_id=b"\x01" * 8, start_time_unix_nano=5, end_time_unix_nano=2
    )
    path = write(tmp_path / "bad.pb", frame(request(short_id, backwards, server_span())))
    report = store.ingest([path], run="r")
    # the two-byte id is kept, as a stable hex id; the original is an attribute
    assert (report.spans_read, report.spans_added) == (3, 2)
    assert [(p.line, p.reason) for p in report.problems] == [
        (1, "span 0101010101010101: span ends before it starts"),
    ]


# -- property: hostile input never escapes as anything but a CorrelateError ----------------

_TEXT = st.one_of(
    st.text(max_size=10), st.sampled_from(["</script>", "\x00", "é\u2028", "SELECT 1"])
)
_ANY_VALUE = st.one_of(
    st.builds(AnyValue, string_value=_TEXT),
    st.builds(AnyValue, int_value=st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(AnyValue, double_value=st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, bytes_value=st.binary(max_size=6)),
    st.builds(
        AnyValue,
        array_value=st.builds(
            ArrayValue, values=st.lists(st.builds(AnyValue, string_value=_TEXT), max_size=2)
        ),
    ),
    st.just(AnyValue()),
)
_ATTRS = st.lists(st.builds(KeyValue, key=_TEXT, value=_ANY_VALUE), max_size=3)
_ID = st.one_of(st.binary(min_size=0, max_size=20), st.binary(min_size=8, max_size=8))
_NANOS = st.integers(min_value=0, max_value=2**64 - 1)
_SPAN = st.builds(
    Span,
    trace_id=st.one_of(st.binary(min_size=16, max_size=16), _ID),
    span_id=_ID,
    parent_span_id=_ID,
    name=_TEXT,
    kind=st.integers(min_value=0, max_value=7),
    start_time_unix_nano=_NANOS,
    end_time_unix_nano=_NANOS,
    attributes=_ATTRS,
    events=st.lists(
        st.builds(Span.Event, time_unix_nano=_NANOS, name=_TEXT, attributes=_ATTRS), max_size=2
    ),
    links=st.lists(st.builds(Span.Link, trace_id=_ID, span_id=_ID, attributes=_ATTRS), max_size=2),
    status=st.builds(Status, code=st.integers(min_value=0, max_value=3), message=_TEXT),
)
_MESSAGE = st.builds(
    lambda spans, attrs, scope: ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=spans)],
            )
        ]
    ),
    st.lists(_SPAN, max_size=3),
    _ATTRS,
    _TEXT,
)

#: Problems about a frame or a message, rather than one span.
_MESSAGE_PROBLEM = "message "


def _check_counts(store: Store, report: Any) -> None:
    problems = [r for (r,) in store.con.execute("SELECT reason FROM problems").fetchall()]
    span_problems = sum(not r.startswith(_MESSAGE_PROBLEM) for r in problems)
    spans_skipped = sum(f.spans_skipped for f in report.files)
    assert (report.skipped, spans_skipped) == (len(problems), span_problems)
    assert report.spans_read == report.spans_added + report.duplicates + spans_skipped


def test_a_collector_file_cut_in_a_length_is_not_read_as_empty_varint_messages(
    tmp_path: Path,
) -> None:
    # Found by the property below: read as varints, the zero high bytes of the Collector's
    # lengths are empty messages, and a file cut inside its second length tiled as
    # varint-delimited messages, so the cut went unreported.
    empty = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(scope=InstrumentationScope())])]
    )
    data = frame(empty.SerializeToString(), empty.SerializeToString())
    cut = write(tmp_path / "cut.pb", data[:-7])  # three bytes of the second length left
    bad = [reason for b in otlp_proto.batches(cut) for _, reason in b.bad]
    assert bad == [
        "message 2 at byte 10: the file ends inside a frame's 4-byte length (3 byte(s) left)"
    ]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_MESSAGE, min_size=1, max_size=3), st.integers(min_value=0, max_value=40))
def test_hostile_messages_are_added_or_counted(
    messages: list[ExportTraceServiceRequest], cut: int
) -> None:
    bodies = [m.SerializeToString() for m in messages]
    data = frame(*bodies)
    ends = {sum(4 + len(b) for b in bodies[:n]) for n in range(len(bodies) + 1)}
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        whole = write(Path(tmp) / "whole.pb", data)
        # Well-framed protobuf: no exception at all, but the one that says no span at
        # all could be read.
        try:
            report = store.ingest([whole], run="whole", format="otlp-proto")
        except InputError as exc:
            assert "nothing could be read from this file" in str(exc)
        else:
            _check_counts(store, report)
            spans = sum(len(m.resource_spans[0].scope_spans[0].spans) for m in messages)
            assert report.spans_read == spans
        # The same bytes cut inside a frame: reported as a bad frame, never an exception.
        if cut and len(data) - cut not in ends and cut < len(data):
            cut_path = write(Path(tmp) / "cut.pb", data[:-cut])
            batches = list(otlp_proto.batches(cut_path))
            bad = [reason for b in batches for _, reason in b.bad]
            assert len(bad) == 1 and bad[0].startswith(_MESSAGE_PROBLEM)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = write(Path(tmp) / "noise.pb", data)
        try:
            report = store.ingest([path], run="r", format="otlp-proto")
        except CorrelateError:
            return
        _check_counts(store, report)
