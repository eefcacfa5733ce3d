"""The three OTLP signals a receiver takes: what each request holds and how it is checked.

Facts relied on (the OTLP specification, "OTLP/HTTP" and "OTLP/gRPC";
opentelemetry-proto's ``collector/*/v1`` services):

- Traces, metrics and logs arrive as ``Export{Trace,Metrics,Logs}ServiceRequest``,
  on ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` (HTTP) or as the
  ``Export`` method of ``opentelemetry.proto.collector.{trace,metrics,logs}.v1``
  ``{Trace,Metrics,Logs}Service`` (gRPC).
- A server that accepts only part of a request answers success with
  ``partial_success`` holding how many items it rejected and why.
- OTLP/JSON writes trace and span ids as hex (32 and 16 digits), not base64
  as protobuf's JSON mapping would, and enums as integers.

A span whose trace or span id is not 16 / 8 bytes (or is all zero) cannot be
joined to anything, so it is rejected here, counted, and left out of the file;
the rest of its request is kept.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

#: One signal's names: its URL path, gRPC service, run-directory folder and item noun.
SIGNAL_NAMES = ("traces", "metrics", "logs")

_HEX_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_HEX_SPAN = re.compile(r"[0-9a-fA-F]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_ID_KEYS = frozenset(("traceId", "spanId", "parentSpanId"))


class BadRequest(ValueError):
    """A body that is not the request it claims to be (HTTP 400, gRPC INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Decoded:
    """A request, checked: what to write, how many items it held, and what was rejected."""

    signal: str
    #: items accepted (spans, metric data points, log records)
    items: int
    rejected: int
    reason: str
    #: the bytes to keep: a serialized request (protobuf) or one JSON line (without newline)
    payload: bytes
    #: "binpb" (a serialized protobuf message) or "jsonl" (an OTLP/JSON object)
    encoding: str


def _classes(signal: str) -> tuple[Any, Any]:
    """(request class, response class) of a signal."""
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as m

        return m.ExportTraceServiceRequest, m.ExportTraceServiceResponse
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mm

        return mm.ExportMetricsServiceRequest, mm.ExportMetricsServiceResponse
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lm

    return lm.ExportLogsServiceRequest, lm.ExportLogsServiceResponse


def decode_protobuf(signal: str, body: bytes) -> Decoded:
    """Check a serialized ``Export…ServiceRequest`` of ``signal``.

    Traces stay protobuf (the file exporter's framing is written around them);
    metrics and logs become OTLP/JSON lines, which is what a later ingest reads.

    >>> decode_protobuf("traces", b"").items
    0
    >>> decode_protobuf("traces", b"\\xff")
    Traceback (most recent call last):
    ...
    correlate.collect.signals.BadRequest: not an ExportTraceServiceRequest: ...
    """
    from google.protobuf.message import DecodeError

    request_class, _ = _classes(signal)
    message = request_class()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"not an {request_class.__name__}: {exc}") from None
    if signal == "traces":
        rejected = _drop_bad_spans(message)
        items = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        payload = body if not rejected else message.SerializeToString()
        reason = _bad_ids(rejected)
        return Decoded(signal, items, rejected, reason, payload if items else b"", "binpb")
    document = _to_otlp_json(message)
    items = count_items(signal, document)
    payload = json.dumps(document, separators=(",", ":")).encode() if items else b""
    return Decoded(signal, items, 0, "", payload, "jsonl")


def decode_json(signal: str, body: bytes) -> Decoded:
    """Check an OTLP/JSON ``Export…ServiceRequest`` of ``signal``; keep it as one JSON line.

    >>> d = decode_json("logs", b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{}]}]}]}')
    >>> d.items, d.payload
    (1, b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}')
    >>> decode_json("traces", b"[]")
    Traceback (most recent call last):
    ...
    correlate.collect.signals.BadRequest: not an OTLP/JSON traces request: a JSON array, not an object
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        kind = type(document).__name__.replace("list", "array").replace("dict", "object")
        raise BadRequest(f"not an OTLP/JSON {signal} request: a JSON {kind}, not an object")
    rejected = _drop_bad_json_spans(document) if signal == "traces" else 0
    items = count_items(signal, document)
    payload = json.dumps(document, separators=(",", ":")).encode() if items else b""
    return Decoded(signal, items, rejected, _bad_ids(rejected), payload, "jsonl")


def _bad_ids(rejected: int) -> str:
    if not rejected:
        return ""
    return (
        f"{rejected} span(s) without a valid trace id (16 bytes) and span id (8 bytes), "
        "not all zero"
    )


_CONTAINERS = {
    "traces": ("resourceSpans", "scopeSpans", "spans"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
}
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def _list(node: Any, key: str, where: str) -> list[Any]:
    value = node.get(key, [])
    if not isinstance(value, list):
        raise BadRequest(f"{where}{key} is not an array")
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest(f"{where}{key} holds a {type(item).__name__}, not an object")
    return value


def _leaves(signal: str, document: dict[str, Any]) -> list[list[Any]]:
    """The innermost lists of an OTLP/JSON request: spans, metrics or log records, per scope."""
    outer, middle, inner = _CONTAINERS[signal]
    found = []
    for resource in _list(document, outer, ""):
        for scope in _list(resource, middle, f"{outer}[]."):
            found.append(_list(scope, inner, f"{outer}[].{middle}[]."))
    return found


def count_items(signal: str, document: dict[str, Any]) -> int:
    """Spans, metric data points or log records in an OTLP/JSON request.

    >>> count_items("metrics", {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
    ...     {"name": "m", "sum": {"dataPoints": [{}, {}]}}]}]}]})
    2
    """
    leaves = _leaves(signal, document)
    if signal != "metrics":
        return sum(len(leaf) for leaf in leaves)
    points = 0
    for metrics in leaves:
        for metric in metrics:
            for key in _METRIC_DATA:
                data = metric.get(key)
                if isinstance(data, dict):
                    points += len(_list(data, "dataPoints", f"metric {key}."))
    return points


def _drop_bad_spans(message: Any) -> int:
    rejected = 0
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            bad = [
                i
                for i, span in enumerate(ss.spans)
                if len(span.trace_id) != 16
                or len(span.span_id) != 8
                or not any(span.trace_id)
                or not any(span.span_id)
            ]
            for i in reversed(bad):
                del ss.spans[i]
            rejected += len(bad)
    return rejected


def _valid_hex(value: Any, pattern: re.Pattern[str], zero: str) -> bool:
    return isinstance(value, str) and bool(pattern.fullmatch(value)) and value != zero


def _drop_bad_json_spans(document: dict[str, Any]) -> int:
    rejected = 0
    for spans in _leaves("traces", document):
        keep = [
            s
            for s in spans
            if _valid_hex(s.get("traceId"), _HEX_TRACE, _ZERO_TRACE)
            and _valid_hex(s.get("spanId"), _HEX_SPAN, _ZERO_SPAN)
        ]
        rejected += len(spans) - len(keep)
        spans[:] = keep
    return rejected


def _to_otlp_json(message: Any) -> dict[str, Any]:
    """A protobuf request as OTLP/JSON: protobuf's JSON mapping, ids turned from base64 to hex."""
    from google.protobuf.json_format import MessageToDict

    document: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(document)
    return document


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def response(signal: str, decoded: Decoded | None, *, as_json: bool) -> bytes:
    """The ``Export…ServiceResponse`` for a request, with ``partial_success`` if items were rejected.

    >>> response("traces", None, as_json=True)
    b'{}'
    """
    rejected = decoded.rejected if decoded is not None else 0
    noun = {"traces": "Spans", "metrics": "DataPoints", "logs": "LogRecords"}[signal]
    if as_json:
        if not rejected:
            return b"{}"
        assert decoded is not None
        partial = {f"rejected{noun}": str(rejected), "errorMessage": decoded.reason}
        return json.dumps({"partialSuccess": partial}).encode()
    _, response_class = _classes(signal)
    message = response_class()
    if rejected:
        assert decoded is not None
        field = re.sub(r"(?<!^)([A-Z])", r"_\1", noun).lower()
        setattr(message.partial_success, f"rejected_{field}", rejected)
        message.partial_success.error_message = decoded.reason
    return bytes(message.SerializeToString())


def status_body(code: int, message: str, *, as_json: bool) -> bytes:
    """A ``google.rpc.Status`` (code, message), the body of an OTLP/HTTP error response.

    Encoded by hand (two fields) so the receiver needs no googleapis package.

    >>> status_body(3, "bad", as_json=False)
    b'\\x08\\x03\\x12\\x03bad'
    >>> status_body(3, "bad", as_json=True)
    b'{"code": 3, "message": "bad"}'
    """
    if as_json:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
