"""How OTLP protobuf messages are laid out in a file: which framing, and its frames.

Three framings are read (see :mod:`correlate.ingest.otlp_proto` for their
sources): ``collector`` (a 4-byte big-endian length before each message),
``varint`` (a base-128 varint length before each message) and ``raw`` (one
message, whose field-1 entries are taken one by one). Every frame's payload
is the bytes of an ``ExportTraceServiceRequest``: for ``raw``, a one-entry
request made of the entry's own tag, length and body.

The Collector's ``file`` exporter with ``compression: zstd`` (and without its
``exporter.file.nativeCompression`` feature gate, which writes a plain ``.zst``
stream instead) compresses each message on its own inside the same framing,
and with ``format: json`` the message is OTLP/JSON text: such a payload is
decompressed here (under the bound on decompressed bytes per file), and
:func:`is_json` tells the two apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["FRAMINGS", "Frame", "Framing", "frames", "framing_of", "is_json"]

Framing = Literal["collector", "varint", "raw"]


class Readable(Protocol):
    """A binary stream, as far as reading frames needs one."""

    def read(self, size: int = -1, /) -> bytes: ...


#: The framings in the order they are tried.
FRAMINGS: tuple[Framing, ...] = ("collector", "varint", "raw")

#: protobuf cannot serialize a message of 2 GiB or more, so a bigger length
#: means the bytes are not this framing.
MAX_MESSAGE_BYTES = 2**31 - 1
#: A request's (and a TracesData's) only field: 1, resource_spans, length-delimited.
RESOURCE_SPANS_TAG = 0x0A
#: How a Zstandard frame starts: a message the Collector compressed on its own.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Decompressed bytes a sniffer gives one compressed message of a file's head: a whole
#: request of a few thousand spans that repeat one statement compresses a hundredfold
#: and more, and a message that expands past this is neither proof nor disproof.
SNIFF_EXPANSION = 32 * 1024 * 1024
_EXPANDS_PAST = "zstd-compressed messages expand"
#: Read a frame's body in pieces, so a garbage length costs only what is there.
_READ_CHUNK = 8 * 1024 * 1024

_WHAT = {
    "collector": "the Collector's proto framing",
    "varint": "varint-delimited messages",
    "raw": "one raw ExportTraceServiceRequest",
}


@dataclass(frozen=True)
class Frame:
    """One message of a file: its number (from 1), where it starts, its payload or a problem."""

    number: int
    offset: int
    end: int
    payload: bytes | None
    problem: str = ""


def framing_of(data: bytes) -> Framing | None:
    """The framing whose frames tile ``data`` (a file's first bytes), or None.

    First the framings whose frames tile ``data`` exactly (a whole small file);
    then those whose last frame runs past its end (``data`` may be only the
    head of the file, or the file may be cut short). Every frame must start
    where the one before ended, and its message with the resource_spans tag.
    A frame running past the end proves little (four bytes of anything make a
    length), so there a Collector length must start with a zero byte, as it
    does for every message under 16 MiB. A whole message in ``data`` must parse.
    Varint-delimited messages never start with an empty one: read as varints,
    a Collector length's zero bytes would be empty messages that tile a cut
    Collector file.
    """
    for exact in (True, False):
        for framing in FRAMINGS:
            if _tiles(data, framing, exact=exact) and _some_parse(data, framing):
                return framing
    return None


def _some_parse(data: bytes, framing: Framing) -> bool:
    """True when a whole message in ``data`` parses as a request (or none is whole).

    Not only the first: a file whose first message is damaged is still this framing.
    """
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    pos, whole = 0, 0
    while pos < len(data) and whole < 16:
        header = _header(data, pos, framing)
        if header is None or header == "more":
            break
        size, length = header
        if pos + size + length > len(data):
            break
        whole += 1
        payload = data[pos + size : pos + size + length]
        if framing == "collector" and payload.startswith(ZSTD_MAGIC):
            payload, problem = _expand(payload, SNIFF_EXPANSION)
            if problem.startswith(_EXPANDS_PAST):
                whole -= 1  # too large to check here: it proves nothing either way
            if not problem and is_json(payload) and _json_request(payload):
                return True
            if problem or is_json(payload):
                pos += size + length
                continue
        try:
            ExportTraceServiceRequest.FromString(payload)
        except DecodeError:
            pos += size + length
            continue
        return True
    return whole == 0


def is_json(payload: bytes) -> bool:
    """True when a (decompressed) message is OTLP/JSON text rather than protobuf: the
    Collector's ``format: json`` with ``compression: zstd``. A protobuf request starts
    with its field-1 tag, never with ``{``."""
    return payload[:1] == b"{"


def _json_request(payload: bytes) -> bool:
    import json

    try:
        request = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(request, dict) and bool(request.keys() & {"resourceSpans", "resourceMetrics"})


def _tiles(data: bytes, framing: Framing, *, exact: bool) -> bool:
    pos = 0
    # At least one whole message seen: a file of empty frames only (zero bytes, say)
    # is no proof; after one, damage further on is the reader's to report.
    messages = False
    while pos < len(data):
        header = _header(data, pos, framing)
        if header is None or header == "more":
            return messages and not exact
        size, length = header
        body = pos + size
        if framing == "varint" and pos == 0 and length == 0:
            # An empty first message is what the Collector's zero high bytes of a length
            # read as: no writer starts a stream of messages with an empty one.
            return False
        if length and not _starts_a_message(data, body, framing):
            return messages and not exact
        if body + length > len(data):  # runs past the end
            return not exact and (messages or framing != "collector" or data[pos] == 0)
        messages = messages or length > 0
        pos = body + length
    return messages


def _starts_a_message(data: bytes, body: int, framing: Framing) -> bool:
    """True when a message may start at ``body``: the resource_spans tag, or for the
    Collector's framing a Zstandard frame (as much of its magic as ``data`` holds)."""
    if body >= len(data):
        return False
    if data[body] == RESOURCE_SPANS_TAG:
        return True
    return framing == "collector" and ZSTD_MAGIC.startswith(data[body : body + len(ZSTD_MAGIC)])


def _header(data: bytes, pos: int, framing: Framing) -> tuple[int, int] | Literal["more"] | None:
    """(header bytes, body length) of the frame at ``pos``; "more" when ``data``
    ends inside the header; None when no frame of ``framing`` starts there."""
    if framing == "collector":
        if pos + 4 > len(data):
            return "more"
        length = int.from_bytes(data[pos : pos + 4], "big")
        return (4, length) if length <= MAX_MESSAGE_BYTES else None
    start = pos
    if framing == "raw":
        if data[pos] != RESOURCE_SPANS_TAG:
            return None
        pos += 1
    length, shift = 0, 0
    while True:
        if pos >= len(data):
            return "more"
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 28:
            return None
    if length > MAX_MESSAGE_BYTES:
        return None
    # For raw, the tag and length are part of the payload (a one-entry request).
    return (0, pos - start + length) if framing == "raw" else (pos - start, length)


def first_frame_end(data: bytes, framing: Framing) -> int | None:
    """Where the first frame of ``framing`` in ``data`` (a file's first bytes) ends,
    perhaps past the end of ``data``; None when none starts there."""
    header = _header(data, 0, framing)
    if header is None or header == "more":
        return None
    size, length = header
    return size + length


def frames(stream: Readable, framing: Framing, budget: int | None = None) -> Iterator[Frame]:
    """The frames of ``stream``; stops after the first that cannot be read whole.

    A Collector message compressed on its own is given decompressed; one that does
    not decompress is a problem frame, and reading goes on with the next. The
    messages may expand to ``budget`` bytes in all (default: the bound per file).
    """
    from correlate.fileio.streams import current_limit

    if budget is None:  # decompressed bytes the file's messages may still take
        budget = current_limit()
    number = 0
    offset = 0
    while True:
        number += 1
        try:
            head, problem = _read_header(stream, framing)
            if not head and not problem:
                return
            length = _length(head, framing) if not problem else 0
            if not problem and length > MAX_MESSAGE_BYTES:
                problem = (
                    f"frame says {length} bytes, more than a protobuf message can hold "
                    f"(not {_WHAT[framing]}, or the file is damaged here)"
                )
            body = b"" if problem else _read(stream, length)
        except (OSError, EOFError, zlib.error) as exc:
            yield Frame(
                number, offset, offset, None, f"compressed stream is damaged or cut short ({exc})"
            )
            return
        if not problem and len(body) < length:
            problem = f"frame says {length} bytes but only {len(body)} remain (file cut short?)"
        if problem:
            yield Frame(number, offset, offset, None, problem)
            return
        payload = head + body if framing == "raw" else body
        end = offset + len(head) + len(body)
        if framing == "collector" and payload.startswith(ZSTD_MAGIC):
            payload, problem = _expand(payload, budget)
            budget -= len(payload)
            if problem.startswith(_EXPANDS_PAST):
                yield Frame(number, offset, end, None, problem)
                return
        yield Frame(number, offset, end, None if problem else payload, problem)
        offset = end


def _read_header(stream: Readable, framing: Framing) -> tuple[bytes, str]:
    """The frame's header bytes, and a problem when it is cut or not this framing."""
    if framing == "collector":
        head = _read(stream, 4)
        if 0 < len(head) < 4:
            return head, f"the file ends inside a frame's 4-byte length ({len(head)} byte(s) left)"
        return head, ""
    head = stream.read(1)
    if not head:
        return b"", ""
    if framing == "raw" and head[0] != RESOURCE_SPANS_TAG:
        return head, (
            f"byte 0x{head[0]:02x} where a resource_spans entry (tag 0x0a) belongs "
            "(not one raw ExportTraceServiceRequest, or the file is damaged here)"
        )
    varint = b"" if framing == "raw" else head
    while not varint or varint[-1] & 0x80:
        if len(varint) >= 5:
            return head, f"a length of more than 5 varint bytes (not {_WHAT[framing]})"
        byte = stream.read(1)
        if not byte:
            return head, "the file ends inside a frame's varint length"
        varint += byte
        head += byte if framing == "raw" else b""
    return (head if framing == "raw" else varint), ""


def _length(head: bytes, framing: Framing) -> int:
    if framing == "collector":
        return int.from_bytes(head, "big")
    varint = head[1:] if framing == "raw" else head
    length = 0
    for i, byte in enumerate(varint):
        length |= (byte & 0x7F) << (7 * i)
    return length


def _read(stream: Readable, size: int) -> bytes:
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


def _expand(payload: bytes, budget: int) -> tuple[bytes, str]:
    """(the decompressed message, "") of a Zstandard-compressed payload, or (b"", a
    problem) when it is damaged or would take more than ``budget`` bytes."""
    from correlate.fileio.codecs import codec_named, expand_bytes
    from correlate.fileio.streams import current_limit, past_the_bound

    codec = codec_named("zstd")
    try:
        data = expand_bytes(codec, payload, budget)
    except codec.errors() as exc:
        return b"", f"a zstd-compressed message that does not decompress ({exc})"
    if len(data) > budget:
        return b"", f"{_EXPANDS_PAST} {past_the_bound(current_limit())}"
    return data, ""
