"""correlate collect: real OTLP exporters send to the receiver; ingest finds every span once."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.collect import Receiver
from correlate.errors import CorrelateError

from .collect_helpers import (
    dumps,
    expected_rows,
    ingested_rows,
    json_request,
    post,
    proto_request,
    recorded,
    sdk_spans,
    span_frames,
)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def receiver(run_dir: Path) -> Iterator[Receiver]:
    with Receiver(run_dir, http_port=0, grpc_port=None) as r:
        yield r


def _provider(exporter: object) -> tuple[object, object]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))  # type: ignore[arg-type]
    return recorded(provider)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_sdk_http_protobuf_spans_arrive_once_with_ids_and_times(
    run_dir: Path, compression: str
) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    with Receiver(run_dir, http_port=0, grpc_port=None) as receiver:
        exporter = OTLPSpanExporter(
            endpoint=f"{receiver.http_endpoint}/v1/traces",
            compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        )
        provider, memory = _provider(exporter)
        sdk_spans(provider, 100)
        provider.shutdown()  # type: ignore[attr-defined]
    assert receiver.counters.items["traces"] == 300
    assert receiver.counters.requests >= 300 // 64
    assert span_frames(run_dir) == 300  # in the file exactly once
    assert ingested_rows(run_dir) == expected_rows(memory)
    assert json.loads((run_dir / "run.json").read_text())["received"]["spans"] == 300


def test_sdk_grpc_spans_arrive_once_with_ids_and_times(run_dir: Path) -> None:
    pytest.importorskip("grpc", reason="grpcio is in the test extra")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    with Receiver(run_dir, http_port=None, grpc_port=0) as receiver:
        assert receiver.grpc_port
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True)
        provider, memory = _provider(exporter)
        sdk_spans(provider, 50)
        provider.shutdown()  # type: ignore[attr-defined]
    assert span_frames(run_dir) == 150
    assert ingested_rows(run_dir) == expected_rows(memory)


def test_sdk_metrics_and_logs_are_kept_as_otlp_json_lines(run_dir: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    with Receiver(run_dir, http_port=0, grpc_port=None) as receiver:
        exporter = OTLPMetricExporter(endpoint=f"{receiver.http_endpoint}/v1/metrics")
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        meters = MeterProvider(metric_readers=[reader])
        counter = meters.get_meter("tests").create_counter("orders")
        counter.add(3, {"route": "/a"})
        counter.add(1, {"route": "/b"})
        meters.shutdown()

        logs = ExportLogsServiceRequest()
        record = logs.resource_logs.add().scope_logs.add().log_records.add()
        record.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
        record.span_id = bytes.fromhex("b7ad6b7169203331")
        record.body.string_value = "declined"
        status, _, body = post(receiver.http_port or 0, "/v1/logs", logs.SerializeToString())
        assert (status, body) == (200, b"")
    assert receiver.counters.items["metrics"] == 2
    (metrics_file,) = (run_dir / "metrics").glob("collect-*.jsonl")
    (line,) = metrics_file.read_text().splitlines()
    metric = json.loads(line)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert metric["name"] == "orders"
    assert sorted(int(p["asInt"]) for p in metric["sum"]["dataPoints"]) == [1, 3]
    (logs_file,) = (run_dir / "logs").glob("collect-*.jsonl")
    log = json.loads(logs_file.read_text())["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    # ids in hex as OTLP/JSON has them, not protobuf's base64
    assert (log["traceId"], log["spanId"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )


@pytest.mark.parametrize("encoding", ["identity", "gzip", "zstd"])
def test_hand_built_json_spans(receiver: Receiver, run_dir: Path, encoding: str) -> None:
    import zstandard

    ids = [(f"{i:032x}", f"{i:016x}") for i in range(1, 6)]
    body = dumps(json_request(ids))
    encode = {"identity": bytes, "gzip": gzip.compress, "zstd": zstandard.compress}[encoding]
    status, head, answer = post(
        receiver.http_port or 0,
        "/v1/traces",
        encode(body),
        "application/json; charset=utf-8",
        {"Content-Encoding": encoding},
    )
    assert (status, head["Content-Type"], answer) == (200, "application/json", b"{}")
    receiver.stop()
    rows = ingested_rows(run_dir)
    assert [(r[0], r[1], r[3], r[4] - r[3]) for r in rows] == [
        (t, s, 1_800_000_000_000_000_000 + i, 5_000) for i, (t, s) in enumerate(ids)
    ]


def test_spans_with_bad_ids_are_a_partial_success(receiver: Receiver, run_dir: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    good = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    document = json_request([good, ("0" * 32, "b7ad6b7169203332"), ("xyz", "1")])
    status, _, answer = post(
        receiver.http_port or 0, "/v1/traces", dumps(document), "application/json"
    )
    assert status == 200
    partial = json.loads(answer)["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "trace id" in partial["errorMessage"]

    message = ExportTraceServiceRequest.FromString(proto_request(3, seed=7))
    message.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01"
    status, _, answer = post(receiver.http_port or 0, "/v1/traces", message.SerializeToString())
    assert status == 200
    assert ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans == 1
    receiver.stop()
    assert len(ingested_rows(run_dir)) == 1 + 2
    assert receiver.counters.rejected == 3


def _status(body: bytes) -> tuple[int, str]:
    """(code, message) of a google.rpc.Status with a short message, read by hand."""
    code, at = body[1], 2
    assert body[0] == 0x08 and body[at] == 0x12
    return code, body[at + 2 :].decode()


@pytest.mark.parametrize(
    ("path", "body", "content_type", "headers", "expected"),
    [
        ("/v1/traces", b"\xff\xff\xff", "application/x-protobuf", {}, 400),
        ("/v1/traces", b"{oops", "application/json", {}, 400),
        ("/v1/traces", b"[]", "application/json", {}, 400),
        ("/v1/metrics", b'{"resourceMetrics": 3}', "application/json", {}, 400),
        ("/v1/traces", b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400),
        ("/v1/traces", b"not zstd", "application/x-protobuf", {"Content-Encoding": "zstd"}, 400),
        ("/v1/traces", b"x", "text/plain", {}, 415),
        ("/v1/traces", b"x", "application/x-protobuf", {"Content-Encoding": "br"}, 415),
        ("/v2/traces", b"x", "application/x-protobuf", {}, 404),
    ],
)
def test_refusals(
    receiver: Receiver,
    run_dir: Path,
    path: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    status, _, answer = post(receiver.http_port or 0, path, body, content_type, headers)
    assert status == expected
    if expected == 400 and content_type == "application/x-protobuf":
        code, message = _status(answer)
        assert code == 3 and message
    if expected == 400 and content_type == "application/json":
        assert json.loads(answer)["code"] == 3
    # the connection still works, and nothing was written
    assert post(receiver.http_port or 0, "/v1/traces", proto_request(2))[0] == 200
    receiver.stop()
    assert span_frames(run_dir) == 2
    assert receiver.counters.refusals == {expected: 1}


def test_oversize_bodies_get_413_unread_and_inflated(run_dir: Path) -> None:
    with Receiver(run_dir, http_port=0, grpc_port=None, max_body_bytes=50_000) as receiver:
        port = receiver.http_port or 0
        big = proto_request(2000)
        assert len(big) > 50_000
        status, head, _ = post(port, "/v1/traces", big)
        assert (status, head.get("Connection")) == (413, "close")
        # a small gzip body that inflates past the limit
        bomb = gzip.compress(big)
        assert len(bomb) < 50_000
        status, _, _ = post(port, "/v1/traces", bomb, headers={"Content-Encoding": "gzip"})
        assert status == 413
        import zstandard

        zstd_bomb = zstandard.compress(big)
        assert len(zstd_bomb) < 50_000
        status, _, _ = post(port, "/v1/traces", zstd_bomb, headers={"Content-Encoding": "zstd"})
        assert status == 413
        assert post(port, "/v1/traces", proto_request(10))[0] == 200
    assert span_frames(run_dir) == 10
    assert receiver.budget.used == 0


def test_a_spent_budget_answers_503_with_retry_after(receiver: Receiver, run_dir: Path) -> None:
    port = receiver.http_port or 0
    held = receiver.budget.free
    assert receiver.budget.take(held)
    status, head, _ = post(port, "/v1/traces", proto_request(5))
    assert (status, head["Retry-After"]) == (503, "1")
    receiver.budget.give(held)
    assert post(port, "/v1/traces", proto_request(5))[0] == 200
    receiver.stop()
    assert span_frames(run_dir) == 5


def test_a_client_that_disconnects_mid_body_loses_nothing_acknowledged(
    receiver: Receiver, run_dir: Path
) -> None:
    port = receiver.http_port or 0
    assert post(port, "/v1/traces", proto_request(3, seed=1))[0] == 200
    body = proto_request(40, seed=2)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
    assert post(port, "/v1/traces", proto_request(4, seed=3))[0] == 200
    receiver.stop()
    assert span_frames(run_dir) == 7
    assert receiver.counters.aborted_requests == 1
    assert receiver.budget.used == 0


def test_chunked_gzip_body_as_node_sends_it(receiver: Receiver, run_dir: Path) -> None:
    body = gzip.compress(proto_request(25))
    chunks = b"".join(
        f"{len(body[i : i + 100]):x}\r\n".encode() + body[i : i + 100] + b"\r\n"
        for i in range(0, len(body), 100)
    )
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200 ")
    receiver.stop()
    assert span_frames(run_dir) == 25


def test_files_rotate_gzip_and_ingest_whole(run_dir: Path) -> None:
    with Receiver(run_dir, http_port=0, grpc_port=None, rotate_bytes=10_000) as receiver:
        for seed in range(12):
            assert post(receiver.http_port or 0, "/v1/traces", proto_request(100, seed))[0] == 200
    names = sorted(p.name for p in (run_dir / "spans").iterdir())
    assert len(names) >= 6
    # every full file was gzipped; the last one may be plain
    assert all(n.endswith(".binpb.gz") for n in names[:-1])
    assert not any(n.endswith(".tmp") for n in names)
    assert span_frames(run_dir) == 1200
    assert len(ingested_rows(run_dir)) == 1200
    # a second receiver into the same directory adds files, never overwrites
    with Receiver(run_dir, http_port=0, grpc_port=None) as again:
        assert post(again.http_port or 0, "/v1/traces", proto_request(5, seed=99))[0] == 200
    assert span_frames(run_dir) == 1205


def test_refuses_a_non_loopback_address_without_the_flag(tmp_path: Path) -> None:
    with pytest.raises(CorrelateError, match="--allow-remote"):
        Receiver(tmp_path, host="0.0.0.0", http_port=0, grpc_port=None)
    result = CliRunner().invoke(
        cli, ["collect", "--out", str(tmp_path / "r"), "--host", "0.0.0.0", "--no-grpc"]
    )
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output
    assert not (tmp_path / "r").exists()
    with Receiver(tmp_path, host="0.0.0.0", http_port=0, grpc_port=None, allow_remote=True) as r:
        assert post(r.http_port or 0, "/v1/traces", proto_request(1))[0] == 200


def test_a_busy_port_says_what_to_do(run_dir: Path) -> None:
    with (
        Receiver(run_dir, http_port=0, grpc_port=None) as first,
        pytest.raises(CorrelateError, match="--http-port"),
    ):
        Receiver(run_dir, http_port=first.http_port, grpc_port=None).start()


def test_collect_twin_stops_on_its_event_and_counts(run_dir: Path) -> None:
    stop = threading.Event()
    ready: list[Receiver] = []
    seen: list[str] = []

    def send(receiver: Receiver) -> None:
        ready.append(receiver)
        assert post(receiver.http_port or 0, "/v1/traces", proto_request(8))[0] == 200
        stop.set()

    result = correlate.collect(
        run_dir,
        http_port=0,
        grpc_port=None,
        stop=stop,
        ready=send,
        status=lambda s: seen.append(s.line()),
    )
    assert (result.spans, result.requests, result.stopped_by) == (8, 1, "stop")
    assert result.files == [run_dir / "spans" / "collect-000001.binpb"]
    assert "8 spans, 0 metric points, 0 log records in 1 requests" in result.summary()


def test_collect_command_runs_for_its_duration(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(
        cli, ["collect", "--out", str(out), "--http-port", "0", "--no-grpc", "--duration", "0.3s"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"listening: OTLP/HTTP http://127\.0\.0\.1:\d+; Ctrl-C to stop", lines[0])
    assert lines[1].startswith("collected for 0.")
    assert lines[1].endswith("(stopped by duration)")
    assert (
        lines[2]
        == f"0 spans, 0 metric points, 0 log records in 0 requests; 0.0 MB in 0 file(s) under {out}"
    )
    assert lines[3] == f"next: correlate analyze {out}"


def test_without_grpcio_grpc_is_skipped_with_a_clear_message(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from correlate.collect import grpc_server

    monkeypatch.setattr(grpc_server, "grpc_available", lambda: False)
    stop = threading.Event()
    stop.set()
    result = correlate.collect(run_dir, http_port=0, grpc_port=0, stop=stop)
    assert result.grpc_endpoint is None
    assert result.http_endpoint is not None
    assert "OTLP/gRPC is off: grpcio is not installed (pip install 'correlate[grpc]')" in (
        result.summary()
    )


def test_grpc_refusals_use_the_grpc_codes(run_dir: Path) -> None:
    grpc = pytest.importorskip("grpc", reason="grpcio is in the test extra")
    with Receiver(run_dir, http_port=None, grpc_port=0, max_body_bytes=50_000) as receiver:
        channel = grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}")
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        assert export(proto_request(4), timeout=10) == b""
        with pytest.raises(grpc.RpcError) as bad:
            export(b"\xff\xff\xff", timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as big:
            export(proto_request(2000), timeout=10)
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        held = receiver.budget.free
        receiver.budget.take(held)
        with pytest.raises(grpc.RpcError) as busy:
            export(proto_request(4, seed=5), timeout=10)
        assert busy.value.code() == grpc.StatusCode.UNAVAILABLE
        receiver.budget.give(held)
        channel.close()
    assert span_frames(run_dir) == 4
