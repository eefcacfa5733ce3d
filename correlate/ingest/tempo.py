"""Grafana Tempo's trace JSON: what its HTTP API answers, saved to a file.

Facts relied on (Grafana Tempo's API documentation, "Query" and "Query V2";
its "pushing spans with HTTP" guide shows a response):

- ``GET /api/traces/<traceid>`` answers ``{"batches": [ResourceSpans, ...]}``;
  ``GET /api/v2/traces/<traceid>`` answers ``{"trace": {"resourceSpans": [...]}}``.
  Each ``ResourceSpans`` is OTLP's (``resource``, ``scopeSpans`` or the older
  ``instrumentationLibrarySpans``, ``spans``).
- The JSON is protobuf's JSON mapping, not OTLP/JSON: ``traceId``, ``spanId``
  and ``parentSpanId`` are **base64** (a trace id is 24 characters ending in
  ``==``, a span id 12 ending in ``=``), and enums may be names
  (``"kind": "SPAN_KIND_SERVER"``, ``"code": "STATUS_CODE_ERROR"``).

- ``/api/v2/traces`` may answer ``"status": "PARTIAL"`` with a ``"message"``
  when the trace outgrew Tempo's size limit: its spans are read, with a note
  that spans are missing.

Each document (the whole file, pretty-printed or not, or one per line) is
rewritten as an OTLP/JSON request, its ids as lowercase hex, and read as
OTLP/JSON is; enum names are read there. A document without Tempo's envelope
is reported, not guessed at (a plain OTLP/JSON file is ``otlp-json``'s).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from correlate.fileio import LineBatch, json_error
from correlate.ingest import otlp_json
from correlate.ingest.spanformat import SpanFormat, json_batches
from correlate.inputs import Head

__all__ = ["FORMAT", "to_otlp"]

#: id key → its width in bytes
_ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_HEX = re.compile(r"[0-9a-fA-F]+")


def batches(path: Path) -> Iterator[LineBatch]:
    """The file's documents, each rewritten by :func:`to_otlp`; a document that is
    not Tempo's is a problem at its line. Answers saved one after another on a line
    (``curl … >> traces.json``: Tempo's answer ends without a newline) are each read."""
    for batch in json_batches(path):
        numbers, lines = [], []
        for number, text in zip(batch.numbers, batch.lines, strict=True):
            try:
                documents = _documents(text)
            except (ValueError, RecursionError):
                error = json_error(text)
                batch.bad.append((number, error[1] if error else "not valid JSON"))
                continue
            for document in documents:
                request = to_otlp(document)
                if request is None:
                    batch.bad.append((number, _not_a_trace(document)))
                    continue
                partial = _partial(document)
                if partial is not None:
                    batch.notes.append((number, partial))
                numbers.append(number)
                lines.append(json.dumps(request, separators=(",", ":"), ensure_ascii=False))
        batch.numbers, batch.lines = numbers, lines
        yield batch


def _documents(text: str) -> list[Any]:
    """The JSON values of ``text``, one or more written back to back; ValueError when any
    is broken (the whole line is then one problem)."""
    decoder = json.JSONDecoder()
    documents, end = [], 0
    while True:
        document, end = decoder.raw_decode(text, end)
        documents.append(document)
        end = len(text) - len(text[end:].lstrip())
        if end == len(text):
            return documents


def _not_a_trace(document: Any) -> str:
    if isinstance(document, dict) and isinstance(document.get("traces"), list):
        return (
            "a Tempo search answer (trace summaries, no spans): save each trace's "
            "/api/traces/<id> answer instead"
        )
    return 'not Tempo trace JSON (no "batches" list or "trace.resourceSpans")'


def to_otlp(document: Any) -> dict[str, Any] | None:
    """Tempo's answer as an OTLP/JSON request (ids hex), or None when it is not one."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("batches"), list):
        resource_spans = document["batches"]
    elif isinstance(document.get("trace"), dict) and isinstance(
        document["trace"].get("resourceSpans"), list
    ):
        resource_spans = document["trace"]["resourceSpans"]
    else:
        return None
    for entry in resource_spans:
        for scope in _scopes(entry):
            for span in _list(scope, "spans"):
                _hex_ids(span)
                for link in _list(span, "links"):
                    _hex_ids(link)
    return {"resourceSpans": resource_spans}


def _partial(document: dict[str, Any]) -> str | None:
    """A note when Tempo answered only part of the trace (``"status": "PARTIAL"``: it
    outgrew Tempo's limit and spans are missing), else None."""
    if document.get("status") not in ("PARTIAL", 1):
        return None
    message = document.get("message")
    said = f": {message}" if isinstance(message, str) and message else ""
    return f"Tempo answered part of this trace (status PARTIAL{said}): spans are missing from it"


def _scopes(entry: Any) -> list[Any]:
    if not isinstance(entry, dict):
        return []
    return _list(entry, "scopeSpans") + _list(entry, "instrumentationLibrarySpans")


def _list(node: Any, key: str) -> list[Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def _hex_ids(node: Any) -> None:
    """Base64 ids of the right width, in place, as hex; any other id is left as it is
    (hex already, or a tracer's own string, which the OTLP reader maps)."""
    if not isinstance(node, dict):
        return
    for key, width in _ID_BYTES.items():
        value = node.get(key)
        if not isinstance(value, str) or (len(value) == 2 * width and _HEX.fullmatch(value)):
            continue
        raw = _base64(value)
        if raw is not None and len(raw) == width:
            node[key] = raw.hex()


def _base64(value: str) -> bytes | None:
    """The bytes of ``value`` in padded base64, standard or URL-safe (protobuf's JSON
    parsers take both); None when it is not. Unpadded base64 is not taken: eleven hex
    digits (an id trimmed of its leading zeros) would read as eight bytes of it."""
    if "-" in value or "_" in value:
        value = value.translate(_URL_SAFE)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


_URL_SAFE = str.maketrans("-_", "+/")


def sniff(head: Head) -> bool:
    """A JSON object with Tempo's envelope around OTLP's resource spans."""
    text = head.stripped
    if head.binary or not text.startswith("{"):
        return False
    if re.match(r'\{\s*"batches"\s*:\s*\[', text):
        return (
            _FIRST_BATCH.match(text) is not None
            or '"scopeSpans"' in text
            or '"instrumentationLibrarySpans"' in text
        )
    return otlp_json.TEMPO_V2_TRACE.search(text) is not None


#: An /api/traces answer whose first batch starts as a ResourceSpans does (or is none).
_FIRST_BATCH = re.compile(
    r'\{\s*"batches"\s*:\s*\[\s*(\]|\{\s*"(resource|scopeSpans|instrumentationLibrarySpans)"\s*:)'
)


FORMAT = SpanFormat(
    name="tempo",
    help='Grafana Tempo trace JSON: /api/traces ({"batches": …}) or /api/v2/traces '
    '({"trace": {"resourceSpans": …}}), base64 ids',
    sniff=sniff,
    schema=otlp_json.DOCUMENT,
    raw_sql=otlp_json.raw_spans_sql,
    envelope_problems_sql=otlp_json.problem_docs_sql,
    batches=batches,
    repair=otlp_json.FORMAT.repair,
)
