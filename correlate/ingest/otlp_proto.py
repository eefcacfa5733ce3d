"""OTLP protobuf as the Collector's ``file`` exporter writes it (``format: proto``).

Facts relied on (the Collector's ``fileexporter`` README, opentelemetry-collector-contrib
``exporter/fileexporter``; protobuf's JSON mapping):

- The file is a sequence of frames: a 4-byte **big-endian** unsigned length,
  then that many bytes of one serialized ``ExportTraceServiceRequest``. There
  is no header or trailer. The file may be compressed (read through
  :func:`correlate.fileio.open_bytes`). The exporter's own ``zstd``
  compression (each message compressed on its own, same framing) is not
  read: such a message is reported as zstd-compressed.
- ``google.protobuf.json_format`` is *not* OTLP/JSON: it writes ids as
  base64 and enums as names. So each message goes through
  ``MessageToDict(msg, use_integers_for_enums=True)`` and then ``traceId``,
  ``spanId`` and ``parentSpanId`` of every span and every span link (the
  only places those fields exist in a trace request) are turned from base64
  into hex. 64-bit integers come out as decimal strings, ``bytesValue`` stays
  base64: both as OTLP/JSON has them. The result is read by the OTLP/JSON
  reader's SQL (:mod:`correlate.ingest.otlp_json`), so both formats give the
  same span rows.

Records are numbered by message (1-based), so a problem reads
``FILE:7: message 7 at byte 1234: …``. A frame whose length runs past the
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
from correlate.ingest.spanformat import SpanFormat
from correlate.inputs import Head

#: Flush a batch once its JSON texts reach about this many characters.
BATCH_CHARS = 16 * 1024 * 1024
#: protobuf cannot serialize a message of 2 GiB or more, so a bigger frame
#: length means the bytes are not this framing.
MAX_MESSAGE_BYTES = 2**31 - 1
#: Read a frame's body in pieces, so a garbage length costs only what is there.
_READ_CHUNK = 8 * 1024 * 1024

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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
    for number, offset, payload, problem in frames(stream):
        batch.position = offset
        if payload is None:
            batch.bad.append((number, f"message {number} at byte {offset}: {problem}"))
            continue
        batch.position = offset + 4 + len(payload)
        if payload.startswith(_ZSTD_MAGIC):
            reason = (
                "the message is zstd-compressed (the Collector's compression: zstd), which "
                "correlate does not read; export without compression, or gzip the whole file"
            )
            batch.bad.append((number, f"message {number} at byte {offset}: {reason}"))
            continue
        try:
            message = ExportTraceServiceRequest.FromString(payload)
        except DecodeError as exc:
            reason = f"not an OTLP ExportTraceServiceRequest ({exc}) in a {len(payload)}-byte frame"
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


def frames(stream: IO[bytes]) -> Iterator[tuple[int, int, bytes | None, str]]:
    """(message number, byte offset, body or None, problem) for each frame.

    Stops after the first frame that cannot be read whole.
    """
    number = 0
    offset = 0
    while True:
        number += 1
        try:
            head = _read(stream, 4)
            if not head:
                return
            length = int.from_bytes(head, "big")
            body = _read(stream, length) if len(head) == 4 and length <= MAX_MESSAGE_BYTES else b""
        except (OSError, EOFError, zlib.error) as exc:
            yield number, offset, None, f"compressed stream is damaged or cut short ({exc})"
            return
        if len(head) < 4:
            problem = f"the file ends inside a frame's 4-byte length ({len(head)} byte(s) left)"
        elif length > MAX_MESSAGE_BYTES:
            problem = (
                f"frame says {length} bytes, more than a protobuf message can hold "
                "(not the Collector's proto framing, or the file is damaged here)"
            )
        elif len(body) < length:
            problem = f"frame says {length} bytes but only {len(body)} remain (file cut short?)"
        else:
            yield number, offset, body, ""
            offset += 4 + length
            continue
        yield number, offset, None, problem
        return


def _read(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the stream."""
    if size <= _READ_CHUNK:
        return stream.read(size)
    parts = []
    left = size
    while left > 0:
        part = stream.read(min(left, _READ_CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


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
    """Collector framing: a big-endian uint32 length, then an ExportTraceServiceRequest
    whose first field is resource_spans (field 1, length-delimited: tag 0x0a)."""
    data = head.data
    if not head.binary or len(data) < 5:
        return False
    length = int.from_bytes(data[:4], "big")
    # the same framing around metrics (an ExportMetricsServiceRequest) is otlp-metrics-proto's
    return 0 < length < (1 << 30) and data[4] == 0x0A and not head.once(_holds_metrics)


def _holds_metrics(head: Head) -> bool:
    from correlate.ingest.otlp_metrics import sniff_proto

    return sniff_proto(head)


FORMAT = SpanFormat(
    name="otlp-proto",
    help="OTLP protobuf as the Collector file exporter writes it "
    "(4-byte length before each message)",
    sniff=sniff,
    schema=otlp_json.DOCUMENT,
    raw_sql=otlp_json.raw_spans_sql,
    envelope_problems_sql=otlp_json.problem_docs_sql,
    batches=batches,
)
