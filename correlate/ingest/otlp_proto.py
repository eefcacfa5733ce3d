"""OTLP protobuf files: the Collector's ``file`` exporter framing, varint-delimited
messages, and a single raw ``ExportTraceServiceRequest``.

Facts relied on (the Collector's ``fileexporter`` README, opentelemetry-collector-contrib
``exporter/fileexporter``; the protobuf encoding guide,
https://protobuf.dev/programming-guides/encoding/; opentelemetry-proto's
``trace.proto`` and ``trace_service.proto``; protobuf's JSON mapping):

- The Collector's framing (``format: proto``): a sequence of frames, each a
  4-byte **big-endian** unsigned length, then that many bytes of one serialized
  ``ExportTraceServiceRequest``. There is no header or trailer. The
  exporter's own ``zstd`` compression compresses each message on its own in
  the same framing, and with ``format: json`` each is OTLP/JSON text (its
  ``file_writer.go``): both are read (see :mod:`~correlate.ingest.otlp_framing`).
- Varint-delimited messages (protobuf's ``writeDelimitedTo`` /
  ``parseDelimitedFrom``, how a stream of messages is usually written to a
  file): each message preceded by its length as a base-128 varint.
  ``TracesData`` and ``ExportTraceServiceRequest`` have the same wire form
  (field 1, ``resource_spans``), so either may be framed so.
- One raw message: the whole file is a single ``ExportTraceServiceRequest``
  (or ``TracesData``), as an OTLP/HTTP body saved to a file. On the wire that
  is a sequence of field-1 entries (tag ``0x0a``, a varint length, one
  ``ResourceSpans``); each entry is read as a request of its own, so a cut
  file keeps its complete entries.
- Which framing a file has is decided from its head: the one whose frames
  tile the bytes read exactly (each frame starting with tag ``0x0a``), tried
  in the order Collector, varint-delimited, raw. The Collector's length
  starts with a zero byte for any message under 16 MiB, which neither other
  framing does; varint-delimited and raw would both have to tile the head by
  chance for the choice to be wrong.
- Any of them may be compressed (read through :func:`correlate.fileio.open_bytes`).
- ``google.protobuf.json_format`` is *not* OTLP/JSON: it writes ids as
  base64 and enums as names. So each message goes through
  ``MessageToDict(msg, use_integers_for_enums=True)`` and then ``traceId``,
  ``spanId`` and ``parentSpanId`` of every span and every span link (the
  only places those fields exist in a trace request) are turned from base64
  into hex. 64-bit integers come out as decimal strings, ``bytesValue`` stays
  base64: both as OTLP/JSON has them. The result is read by the OTLP/JSON
  reader's SQL (:mod:`correlate.ingest.otlp_json`), so both formats give the
  same span rows.

Records are numbered by message (1-based; for a raw file, by ``ResourceSpans``
entry), so a problem reads ``FILE:7: message 7 at byte 1234: …``. A frame whose length runs past the
end of the file (a file cut short while being written, or not this format
at all) ends the reading with one problem; what came before is kept, since
nothing after a broken frame can be found again. A message that fails to
parse is one problem, and reading goes on with the next frame.

Cost: unlike the JSON formats, where DuckDB does the parsing, every message
is converted in Python (protobuf parse, ``MessageToDict``, ``json.dumps``),
one message at a time. Measured on 5,000 and 20,000 SDK spans (4 attributes
each, 100 per message; python 3.11, protobuf 7.36 with upb, a busy 2-core
machine): 55-95 µs of CPU per span, i.e. about 10,000-18,000 spans/s, most
of it in ``MessageToDict``. At 5,000 spans the whole ingest took about as
long as the same spans as OTLP/JSON lines (1.6 s each), since DuckDB's
per-batch work dominates there; on big files the conversion is the extra
cost. A hand-written walk over the message measured about 2.7x faster than
``MessageToDict``, should this ever matter.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from correlate.errors import InputError
from correlate.fileio import LineBatch, open_bytes
from correlate.ingest import otlp_json
from correlate.ingest.otlp_framing import frames, framing_of, is_json
from correlate.ingest.spanformat import SpanFormat
from correlate.inputs import Head

#: Flush a batch once its JSON texts reach about this many characters.
BATCH_CHARS = 16 * 1024 * 1024
#: How much of a file decides its framing.
_SNIFF_BYTES = 64 * 1024

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def batches(path: Path, batch_chars: int = BATCH_CHARS) -> Iterator[LineBatch]:
    """Yield the file's messages as OTLP/JSON texts, numbered from 1, in batches."""
    try:
        stream = open_bytes(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None
    with stream:
        yield from _batches(stream, batch_chars)


def _batches(stream: IO[bytes], batch_chars: int) -> Iterator[LineBatch]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    batch = LineBatch([], [])
    size = 0
    try:
        head = stream.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        reason = f"compressed stream is damaged or cut short ({exc})"
        yield LineBatch([], [], bad=[(1, f"message 1 at byte 0: {reason}")])
        return
    # Not proto at all (--format forced on it): read as the Collector's framing, which
    # reports where its first frame goes wrong.
    framing = framing_of(head) or "collector"
    for frame in frames(_Prefixed(head, stream), framing):
        number, offset, payload = frame.number, frame.offset, frame.payload
        batch.position = offset
        if payload is None:
            batch.bad.append((number, f"message {number} at byte {offset}: {frame.problem}"))
            continue
        batch.position = frame.end
        if is_json(payload):  # the Collector's format: json with compression: zstd
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                reason = "a JSON message that is not UTF-8 text"
                batch.bad.append((number, f"message {number} at byte {offset}: {reason}"))
                continue
        else:
            try:
                message = ExportTraceServiceRequest.FromString(payload)
            except DecodeError as exc:
                reason = (
                    f"not an OTLP ExportTraceServiceRequest ({exc}) in a {len(payload)}-byte frame"
                )
                batch.bad.append((number, f"message {number} at byte {offset}: {reason}"))
                continue
            text = to_otlp_json(message)
        batch.numbers.append(number)
        batch.lines.append(text)
        size += len(text)
        if size >= batch_chars:
            yield batch
            batch = LineBatch([], [], position=batch.position)
            size = 0
    if batch.lines or batch.bad:
        yield batch


class _Prefixed:
    """``stream`` with ``prefix`` (bytes already read from it) put back in front."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(size)
        if size < 0:
            data, self._prefix = self._prefix + self._stream.read(), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        if len(data) < size:
            data += self._stream.read(size - len(data))
        return data


def to_otlp_json(message: Any) -> str:
    """An ``ExportTraceServiceRequest`` as one line of OTLP/JSON (hex ids, integer enums)."""
    from google.protobuf.json_format import MessageToDict

    request: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    # An empty request serializes to nothing; say "no spans" rather than "not OTLP".
    request.setdefault("resourceSpans", [])
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False)


def _hex_ids(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if value is not None:
            obj[key] = base64.b64decode(value).hex()


def sniff(head: Head) -> bool:
    """Binary, and the frames of one framing tile the head (see :mod:`~correlate.ingest.otlp_framing`).

    The same framing around metrics (an ExportMetricsServiceRequest) is otlp-metrics-proto's.
    """
    return head.binary and framing_of(head.data) is not None and not head.once(_holds_metrics)


def _holds_metrics(head: Head) -> bool:
    from correlate.ingest.otlp_metrics import sniff_proto

    return sniff_proto(head)


FORMAT = SpanFormat(
    name="otlp-proto",
    help="OTLP protobuf: the Collector file exporter's framing (4-byte length before each "
    "message), varint-delimited messages, or one raw ExportTraceServiceRequest",
    sniff=sniff,
    schema=otlp_json.DOCUMENT,
    raw_sql=otlp_json.raw_spans_sql,
    envelope_problems_sql=otlp_json.problem_docs_sql,
    batches=batches,
)
