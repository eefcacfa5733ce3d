"""OTLP metrics in the shapes they reach a run directory, as plain data points.

Three shapes are read (facts from the OTLP specification's JSON encoding,
opentelemetry-proto ``metrics/v1/metrics.proto``, the Collector's ``file``
exporter README, and the Python SDK's ``MetricsData.to_json``):

- **OTLP/JSON lines**: one ``ExportMetricsServiceRequest`` per line,
  ``{"resourceMetrics": [...]}``, camelCase keys, 64-bit integers as decimal
  strings, attributes as ``[{"key", "value": {"stringValue": …}}]``. The
  Collector's file exporter (``format: json``), the OTLP JSON file exporter
  and ``correlate collect`` (``metrics/``) write this.
- **The Python SDK's own JSON** (``ConsoleMetricExporter``, or any exporter
  that writes ``MetricsData.to_json()``): snake_case keys, one document per
  export (pretty-printed over many lines, or one a line), attributes as a
  plain object, and the point kind not named (``data`` holds the points; a
  histogram's have ``bucket_counts``, a sum has ``is_monotonic``).
- **Protobuf** in any framing :mod:`correlate.ingest.otlp_framing` reads for
  spans: the Collector's (``format: proto``, a 4-byte big-endian length before
  each serialized ``ExportMetricsServiceRequest``), varint-delimited messages,
  or one raw request (see :func:`framing_of`). Each message goes through
  protobuf's JSON mapping (camelCase, 64-bit integers as strings, as OTLP/JSON).
  It is told from a span file by its first message, which must parse as a
  metrics request with a named metric holding data; a first message longer
  than the 64 KiB a sniffer sees is taken for spans.

Every data point becomes a :class:`Point` with the metric's name, unit and
kind (``sum``, ``gauge``, ``histogram``, ``summary``), its temporality, its
point attributes and resource attributes, and a value: the number of a sum
or gauge, the count and sum of a histogram or summary.

>>> doc = {"resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [
...     {"metrics": [{"name": "db.client.connection.count", "unit": "{connection}",
...       "sum": {"aggregationTemporality": 2, "dataPoints": [{"timeUnixNano": "5",
...         "asInt": "3", "attributes": [{"key": "db.client.connection.state",
...         "value": {"stringValue": "used"}}]}]}}]}]}]}
>>> [(p.name, p.kind, p.value, p.attributes) for p in points_of(doc)]
[('db.client.connection.count', 'sum', 3.0, {'db.client.connection.state': 'used'})]
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.errors import InputError
from correlate.fileio import DamagedStreamError, open_bytes, read_head
from correlate.inputs import Head

if TYPE_CHECKING:
    from correlate.ingest.otlp_framing import Framing

__all__ = [
    "CUMULATIVE",
    "DELTA",
    "Point",
    "Problem",
    "framing_of",
    "points_of",
    "read_points",
    "read_proto_points",
    "sniff",
    "sniff_proto",
]

#: OTLP ``AggregationTemporality``
DELTA, CUMULATIVE = 1, 2
#: the kinds a metric's data can be, camelCase (OTLP/JSON) → our word
_KINDS = {
    "sum": "sum",
    "gauge": "gauge",
    "histogram": "histogram",
    "exponentialHistogram": "histogram",
    "exponential_histogram": "histogram",
    "summary": "summary",
}
_START = re.compile(r'^\{\s*"resource_?[mM]etrics"\s*:')


@dataclass(frozen=True)
class Point:
    """One data point of one metric."""

    name: str
    unit: str
    #: ``sum``, ``gauge``, ``histogram`` or ``summary``
    kind: str
    #: :data:`DELTA`, :data:`CUMULATIVE`, or 0 (a gauge, or not said)
    temporality: int
    monotonic: bool
    time_unix_nano: int
    start_unix_nano: int | None
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(repr=False)
    #: a sum's or gauge's number; a histogram's or summary's sum
    value: float
    #: a histogram's or summary's count; None for sums and gauges
    count: int | None = None


@dataclass(frozen=True)
class Problem:
    line: int | None
    reason: str


def sniff(head: Head) -> bool:
    """Whether a file starts with a metrics document of either JSON shape."""
    return head.text_like and _START.match(head.stripped) is not None


def sniff_proto(head: Head) -> bool:
    """Whether a binary file starts with an ``ExportMetricsServiceRequest`` in any framing
    (its first message read whole from the file when the head holds only its start)."""
    if not head.binary:
        return False
    return framing_of(head.data) is not None or _first_message_is_metrics(head)


#: How far into a file a sniffer reads for a first message longer than the head.
FIRST_MESSAGE_BYTES = 16 << 20


def _first_message_is_metrics(head: Head) -> bool:
    from correlate.ingest.otlp_framing import FRAMINGS, first_frame_end

    ends = (first_frame_end(head.data, framing) for framing in FRAMINGS)
    wanted = [end for end in ends if end and len(head.data) < end <= FIRST_MESSAGE_BYTES]
    if not wanted or head.path is None:
        return False
    try:
        with open_bytes(head.path) as stream:
            data = stream.read(max(wanted))
    except (OSError, InputError):
        return False
    return len(data) > len(head.data) and framing_of(data) is not None


def framing_of(data: bytes) -> Framing | None:
    """The framing (of :mod:`~correlate.ingest.otlp_framing`) whose first message in
    ``data`` (a file's first bytes) is a metrics request with named metrics holding data.

    resource_metrics is field 1 of a request as resource_spans is, so the span
    framings read metrics too: the Collector's, varint-delimited (what an SDK
    writes with ``writeDelimitedTo``), and one raw request (an OTLP/HTTP body).
    """
    from correlate.ingest.otlp_framing import FRAMINGS, SNIFF_EXPANSION, frames, is_json

    for framing in FRAMINGS:
        # a sniffer's bound: a small compressed message may expand to the whole bound per file
        first = next(frames(io.BytesIO(data), framing, SNIFF_EXPANSION), None)
        if first is None or not first.payload:
            continue
        if is_json(first.payload):  # the Collector's format: json with compression: zstd
            if isinstance(_json_request(first.payload), dict):
                return framing
        elif _metrics_request(first.payload) is not None:
            return framing
    return None


def _json_request(payload: bytes) -> dict[str, Any] | Problem:
    """A metrics request given as OTLP/JSON text, or why it is not one."""
    try:
        document = json.loads(payload)
    except ValueError as exc:
        return Problem(None, f"a JSON message that does not parse ({_why(exc)})")
    except RecursionError:
        return Problem(None, "a JSON message nested too deeply to read")
    if not isinstance(document, dict) or not isinstance(document.get("resourceMetrics"), list):
        return Problem(None, "a JSON message without resourceMetrics")
    return document


def _metrics_request(payload: bytes) -> Any:
    """The parsed request when ``payload`` is a metrics request with named metrics holding data."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    try:
        message = ExportMetricsServiceRequest.FromString(payload)
    except (DecodeError, ValueError):
        return None
    metrics = [m for rm in message.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    if not metrics or not all(m.name and m.WhichOneof("data") for m in metrics):
        return None
    return message


def read_proto_points(path: Path) -> Iterator[Point | Problem]:
    """The points of every framed message in ``path``; a :class:`Problem` per bad one.

    Problems are numbered by message (1-based), as for spans in this framing.
    """
    from google.protobuf.json_format import MessageToDict

    from correlate.ingest.otlp_framing import frames, is_json

    try:
        head = read_head(path)
    except DamagedStreamError:
        head = b""  # the frames below say where it breaks
    framing = framing_of(head) or "collector"  # forced: the Collector's says what is wrong
    try:
        stream = open_bytes(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    with stream:
        for frame in frames(stream, framing):
            number, payload = frame.number, frame.payload
            where = f"message {number} at byte {frame.offset}"
            if payload is None:
                yield Problem(number, f"{where}: {frame.problem}")
                continue
            if is_json(payload):
                document = _json_request(payload)
                if isinstance(document, Problem):
                    yield Problem(number, f"{where}: {document.reason}")
                else:
                    yield from points_of(document)
                continue
            message = _metrics_request(payload)
            if message is None:
                yield Problem(number, f"{where}: not an OTLP ExportMetricsServiceRequest")
                continue
            yield from points_of(MessageToDict(message, use_integers_for_enums=True))


def read_points(path: Path) -> Iterator[Point | Problem]:
    """The points of every document in ``path``, and a :class:`Problem` per bad document.

    Documents are one a line, or (the SDK's console output) pretty-printed
    one after another; a problem names the line its document starts on. A
    compressed file cut short (a Collector stopped mid-write) gives the
    documents before the cut, and a problem at the line it breaks in.
    """
    data, cut = _read_to_cut(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut is None or exc.start < len(data) - 4:
            raise InputError(f"not UTF-8 text ({exc.reason})", path) from None
        text = data[: exc.start].decode("utf-8")  # the cut fell inside a character
    if cut is not None:
        text = text[: text.rfind("\n") + 1]  # the broken last line is the cut's problem
    for line, document in _documents(text):
        if isinstance(document, Problem):
            yield document
            continue
        try:
            yield from points_of(document)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            yield Problem(line, f"not an OTLP metrics document: {_why(exc)}")
    if cut is not None:
        line = text.count("\n") + 1
        yield Problem(line, f"{cut.reason}; the file breaks inside this line")


def _read_to_cut(path: Path) -> tuple[bytes, DamagedStreamError | None]:
    """The file's (decompressed) bytes, up to where a damaged stream breaks, and the break."""
    chunks: list[bytes] = []
    try:
        with open_bytes(path) as stream:
            # small reads: what a failing read had decompressed is lost with it
            while chunk := stream.read(1 << 14):
                chunks.append(chunk)
    except DamagedStreamError as exc:
        return b"".join(chunks), exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    return b"".join(chunks), None


def _documents(text: str) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    decoder = json.JSONDecoder()
    at, line, end = 0, 1, len(text)
    while True:
        while at < end and text[at] in " \t\r\n\ufeff":
            if text[at] == "\n":
                line += 1
            at += 1
        if at >= end:
            return
        try:
            value, stop = decoder.raw_decode(text, at)
        except (ValueError, RecursionError) as exc:
            yield line, Problem(line, f"not JSON: {_why(exc)}")
            # skip to the next line and try again from there
            nxt = text.find("\n", at)
            if nxt < 0:
                return
            at, line = nxt + 1, line + 1
            continue
        if not isinstance(value, dict):
            yield line, Problem(line, f"a JSON {type(value).__name__}, not a metrics document")
        else:
            yield line, value
        line += text.count("\n", at, stop)
        at = stop


def points_of(document: dict[str, Any]) -> Iterator[Point]:
    """The points of one metrics document (OTLP/JSON or the SDK's ``to_json``)."""
    resources = _get(document, "resourceMetrics", "resource_metrics")
    if resources is None:
        raise ValueError("no resourceMetrics")
    for rm in resources:
        resource = _attributes(_get(rm.get("resource") or {}, "attributes") or [])
        for sm in _get(rm, "scopeMetrics", "scope_metrics") or []:
            for metric in sm.get("metrics") or []:
                yield from _metric_points(metric, resource)


def _metric_points(metric: dict[str, Any], resource: dict[str, Any]) -> Iterator[Point]:
    name = str(metric["name"])
    unit = str(metric.get("unit") or "")
    kind, data = _kind_and_data(metric)
    if data is None:
        return
    temporality = _temporality(_get(data, "aggregationTemporality", "aggregation_temporality"))
    monotonic = bool(_get(data, "isMonotonic", "is_monotonic"))
    for dp in _get(data, "dataPoints", "data_points") or []:
        start = _get(dp, "startTimeUnixNano", "start_time_unix_nano")
        count = None
        if kind in ("histogram", "summary"):
            count = int(dp.get("count") or 0)
            value = float(dp.get("sum") or 0.0)
        else:
            value = _number(dp)
        yield Point(
            name=name,
            unit=unit,
            kind=kind,
            temporality=temporality if kind != "gauge" else 0,
            monotonic=monotonic,
            time_unix_nano=int(_get(dp, "timeUnixNano", "time_unix_nano")),
            start_unix_nano=int(start) if start not in (None, "", 0, "0") else None,
            attributes=_attributes(dp.get("attributes") or []),
            resource=resource,
            value=value,
            count=count,
        )


def _kind_and_data(metric: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    for key, kind in _KINDS.items():
        if isinstance(metric.get(key), dict):
            return kind, metric[key]
    data = metric.get("data")  # the SDK's to_json: the kind is not named
    if not isinstance(data, dict):
        return "gauge", None
    points = data.get("data_points") or []
    first = points[0] if points else {}
    if "bucket_counts" in first or "positive" in first:
        return "histogram", data
    if "quantile_values" in first:
        return "summary", data
    if "is_monotonic" in data:
        return "sum", data
    return "gauge", data


def _temporality(value: Any) -> int:
    if isinstance(value, str):  # protobuf's JSON mapping may name the enum
        return {"AGGREGATION_TEMPORALITY_DELTA": DELTA}.get(value, CUMULATIVE)
    return int(value or 0)


def _number(dp: dict[str, Any]) -> float:
    for key in ("asInt", "as_int", "asDouble", "as_double", "value"):
        if key in dp and dp[key] is not None:
            return float(dp[key])
    raise ValueError("a data point without a value")


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):  # the SDK's to_json: a plain object
        return dict(raw)
    out: dict[str, Any] = {}
    for item in raw:
        out[str(item["key"])] = _any_value(item.get("value") or {})
    return out


def _any_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return json.dumps(value, sort_keys=True)


def _get(node: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in node:
            return node[key]
    return None


def _why(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:200] or type(exc).__name__
