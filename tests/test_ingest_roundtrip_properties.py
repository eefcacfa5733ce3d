"""Property: random valid OTLP batches, written in every framing and compression correlate
reads, with random damage, arrive whole — every undamaged span exactly once, every damaged
record reported where it is (its line, or its message number and byte offset).

Example counts come from a settings profile: ``quick`` (the default, seconds) or
``thorough`` (set ``CORRELATE_HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import InputError

settings.register_profile(
    "quick", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = settings.get_profile(os.environ.get("CORRELATE_HYPOTHESIS_PROFILE", "quick"))

FRAMINGS = ("json-lines", "collector", "varint", "raw")
DAMAGES = ("none", "cut", "bad-record", "bad-span", "bom", "utf-16")
START = 1_795_594_408_000_000_000


def _compress(name: str, data: bytes) -> bytes:
    if name == "gzip":
        return gzip.compress(data)
    if name == "bzip2":
        return bz2.compress(data)
    if name == "xz":
        return lzma.compress(data)
    if name == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


COMPRESSIONS = ("none", "gzip", "bzip2", "xz", "zstd")

# -- random valid batches ---------------------------------------------------------------------

HEX = "0123456789abcdef"
attribute = st.tuples(
    st.sampled_from(["http.route", "db.statement", "note", "n", "peer.service"]),
    st.one_of(st.text(max_size=20), st.integers(-(2**40), 2**40)),
)
span_body = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=30),
        "kind": st.integers(0, 5),
        "offset_ns": st.integers(0, 10**12),
        "duration_ns": st.integers(0, 10**10),
        "attributes": st.lists(attribute, max_size=3, unique_by=lambda a: a[0]),
        "root": st.booleans(),
    }
)
record = st.tuples(
    st.text(alphabet=HEX, min_size=32, max_size=32).filter(lambda t: set(t) != {"0"}),
    st.sampled_from(["shop", "pricing", "ünïcode svc"]),
    st.lists(span_body, min_size=1, max_size=3),
)


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    body: dict[str, Any]


def _spans(records: list[tuple[str, str, list[dict[str, Any]]]]) -> list[list[Span]]:
    """Spans with ids unique across the batch (record and position in it)."""
    out = []
    for r, (trace, service, bodies) in enumerate(records):
        spans = []
        for k, body in enumerate(bodies):
            span_id = f"{r + 1:08x}{k + 1:08x}"
            parent = None if body["root"] or k == 0 else spans[0].span_id
            spans.append(Span(trace, span_id, parent, service, body))
        out.append(spans)
    return out


def _json_record(spans: list[Span]) -> str:
    def value(v: str | int) -> dict[str, str]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}

    def span(s: Span) -> dict[str, Any]:
        out: dict[str, Any] = {
            "traceId": s.trace_id,
            "spanId": s.span_id,
            "name": s.body["name"],
            "kind": s.body["kind"],
            "startTimeUnixNano": str(START + s.body["offset_ns"]),
            "endTimeUnixNano": str(START + s.body["offset_ns"] + s.body["duration_ns"]),
            "attributes": [{"key": k, "value": value(v)} for k, v in s.body["attributes"]],
        }
        if s.parent_id:
            out["parentSpanId"] = s.parent_id
        return out

    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": spans[0].service}}]}
    return json.dumps(
        {
            "resourceSpans": [
                {"resource": resource, "scopeSpans": [{"spans": [span(s) for s in spans]}]}
            ]
        }
    )


def _proto_record(spans: list[Span]) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

    def kv(key: str, v: str | int) -> KeyValue:
        any_value = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)
        return KeyValue(key=key, value=any_value)

    def span(s: Span) -> PbSpan:
        return PbSpan(
            trace_id=bytes.fromhex(s.trace_id),
            span_id=bytes.fromhex(s.span_id),
            parent_span_id=bytes.fromhex(s.parent_id) if s.parent_id else b"",
            name=s.body["name"],
            kind=s.body["kind"],
            start_time_unix_nano=START + s.body["offset_ns"],
            end_time_unix_nano=START + s.body["offset_ns"] + s.body["duration_ns"],
            attributes=[kv(k, v) for k, v in s.body["attributes"]],
        )

    resource = Resource(attributes=[kv("service.name", spans[0].service)])
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource, scope_spans=[ScopeSpans(spans=[span(s) for s in spans])]
            )
        ]
    ).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


#: A message that declares a 127-byte resource_spans entry and holds one byte of it:
#: protobuf's parser refuses it (it cannot pass for unknown fields).
BROKEN_MESSAGE = b"\x0a\x7fx"


@dataclass
class Written:
    data: bytes
    #: the record number (line, or message) of the damaged record, and for binary
    #: framings the byte offset its frame starts at
    damaged: int | None = None
    offset: int | None = None
    #: (trace id, span id) of a span the checks reject, which must not arrive
    rejected: tuple[str, str] | None = None


def _write(framing: str, records: list[list[Span]], damage: str, at: int) -> Written:
    """The file's (uncompressed) bytes with ``damage`` done to record ``at``."""
    if framing == "json-lines":
        lines = [_json_record(spans) for spans in records]
        damaged = None
        rejected = None
        if damage == "bad-span":  # the first span of record ``at`` loses its trace id
            at = min(at, len(lines) - 1)
            doc = json.loads(lines[at])
            doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = ""
            lines[at] = json.dumps(doc)
            damaged, rejected = at + 1, (records[at][0].trace_id, records[at][0].span_id)
        if damage == "bad-record":
            lines.insert(at, '{"resourceSpans": [ not json')
            damaged = at + 1
        text = "".join(line + "\n" for line in lines)
        if damage == "cut":
            text = text[: -(len(lines[-1]) // 2 + 1)]
            damaged = len(lines)
        if damage == "bom":
            return Written(b"\xef\xbb\xbf" + text.encode())
        if damage == "utf-16":
            return Written(text.encode("utf-16"))
        return Written(text.encode(), damaged, rejected=rejected)
    payloads = [_proto_record(spans) for spans in records]
    # For "raw" the records, each a one-entry request ("0a <len> <ResourceSpans>"),
    # written one after another are one request with those entries.
    damaged = offset = None
    if damage == "bad-record":
        payloads.insert(at, BROKEN_MESSAGE)
        damaged = at + 1
    frames = []
    for p in payloads:
        if framing == "collector":
            frames.append(struct.pack(">I", len(p)) + p)
        elif framing == "varint":
            frames.append(_varint(len(p)) + p)
        else:
            frames.append(p)
    if damaged is not None:
        offset = sum(len(f) for f in frames[: damaged - 1])
    data = b"".join(frames)
    if damage == "cut":
        data = data[: -(len(payloads[-1]) // 2 + 1)]
        damaged, offset = len(frames), sum(len(f) for f in frames[:-1])
    return Written(data, damaged, offset)


_ONE = [("4bf92f3577b34da6a3ce929d0e0e4736", "shop", [dict(name="GET /a", kind=2,
         offset_ns=0, duration_ns=5, attributes=[("n", 1)], root=True)])]  # fmt: skip


def _every_framing_and_compression(test: Any) -> Any:
    """One explicit example per framing and compression, so each run covers them all."""
    for i, (framing, compression) in enumerate((f, c) for f in FRAMINGS for c in COMPRESSIONS):
        damage = DAMAGES[i % len(DAMAGES)]
        test = example(records=_ONE * 3, framing=framing, compression=compression,
                       damage=damage, at=i % 4, bulk=i % 2 == 0)(test)  # fmt: skip
    return test


@PROFILE
@_every_framing_and_compression
@given(
    st.lists(record, min_size=1, max_size=4),
    st.sampled_from(FRAMINGS),
    st.sampled_from(COMPRESSIONS),
    st.sampled_from(DAMAGES),
    st.integers(0, 4),
    st.booleans(),
)
def test_every_undamaged_span_arrives_once_and_every_damaged_record_is_reported(
    records: list[tuple[str, str, list[dict[str, Any]]]],
    framing: str,
    compression: str,
    damage: str,
    at: int,
    bulk: bool,
) -> None:
    """``bulk``: read as a big file is (an uncompressed copy of a codec DuckDB lacks, the
    byte scan, the salvage in pieces), with every size bound lowered to these small files."""
    with _as_big_files() if bulk else contextlib.nullcontext():
        _arrive_whole(records, framing, compression, damage, at)


@contextlib.contextmanager
def _as_big_files() -> Iterator[None]:
    from correlate.ingest import salvage, spanfile

    with (
        mock.patch.object(spanfile, "SALVAGE_MIN_BYTES", 1),
        mock.patch.object(spanfile, "EXPAND_MIN_BYTES", 1),
        mock.patch.object(salvage, "PIECE_BYTES", 400),
        mock.patch.object(salvage, "CAREFUL_BYTES", 100),
    ):
        yield


def _arrive_whole(
    records: list[tuple[str, str, list[dict[str, Any]]]],
    framing: str,
    compression: str,
    damage: str,
    at: int,
) -> None:
    if framing != "json-lines" and damage in ("bom", "utf-16", "bad-span"):
        damage = "none"  # text encodings (and JSON edits) do not apply to protobuf
    if framing == "raw" and damage == "bad-record":
        damage = "cut"  # one raw request has no records to put a broken one between
    spans = _spans(records)
    at = min(at, len(spans))  # where a broken record goes in
    written = _write(framing, spans, damage, at)
    lost = {written.damaged} if damage == "cut" else set()
    expected = {
        (s.trace_id, s.span_id)
        for n, record_spans in enumerate(spans, start=1)
        for s in record_spans
        if n not in lost and (s.trace_id, s.span_id) != written.rejected
    }
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / f"spans.{framing}.{compression}"
        path.write_bytes(_compress(compression, written.data))
        if damage == "utf-16":
            with pytest.raises(InputError, match="UTF-16 text"):
                store.ingest([path], run="r")
            return
        if not expected:
            with pytest.raises(InputError, match="nothing could be read from this file"):
                store.ingest([path], run="r")
            return
        report = store.ingest([path], run="r")
        got = store.con.execute("SELECT trace_id, span_id FROM spans").fetchall()
        assert sorted(got) == sorted(expected)  # each once: no duplicates, none lost
        assert report.spans_added == len(expected)
        problems = [(p.line, p.reason) for p in report.problems]
        if written.damaged is None:
            assert problems == []
            return
        [(line, reason)] = problems
        assert line == written.damaged
        if written.rejected is not None:
            assert reason == f"span {written.rejected[1]}: span has no trace id"
        if written.offset is not None:
            assert f"message {written.damaged} at byte {written.offset}: " in reason
