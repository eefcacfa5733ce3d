"""One multi-line JSON document as one record per span, each at the span's own line.

A pretty-printed OTLP or Jaeger file is a single JSON document; read
as one record, every problem in it would point to line 1. Here the document
is cut along a *record path* (``("resourceSpans", "*", "scopeSpans", "*",
"spans", "*")``: keys, and ``"*"`` for every item of a list) into one record
per span: the same document with each list on the path holding only the
items that lead to that span, everything beside the path kept (the resource,
the scope, Jaeger's ``processes``). Each record is numbered with the line its
span starts on, so a reader sees the same shape and a problem says where.

Values off the path are skipped by the C JSON parser (``raw_decode``), so the
walk costs about one parse of the document. When the document does not
follow the path everywhere (a key missing, a list that is not one, an item
that is not an object), it is not cut at all: nothing may get lost by cutting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["RecordPath", "split_document"]

RecordPath = tuple[str, ...]

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class _OffPath(Exception):
    """The document does not follow the record path here."""


def split_document(text: str, paths: tuple[RecordPath, ...]) -> list[tuple[int, str]] | None:
    """``(line, record text)`` per span along the first of ``paths`` the document follows.

    None when it follows none of them, or holds no span (then it stays one record).
    """
    start = _skip(text, 0)
    for path in paths:
        try:
            leaves = list(_walk(text, start, path))
        except (_OffPath, ValueError, RecursionError):
            continue
        if not leaves:
            return None
        records = []
        line, counted = 1, 0
        for pos, record in leaves:  # in document order
            line += text.count("\n", counted, pos)
            counted = pos
            records.append((line, json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
        return records
    return None


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _walk(text: str, pos: int, path: RecordPath) -> Iterator[tuple[int, Any]]:
    """(start of the span, its pruned document) for each span under the value at ``pos``."""
    if not path:
        value, _ = _DECODER.raw_decode(text, pos)
        if not isinstance(value, dict):
            raise _OffPath
        yield pos, value
        return
    step, rest = path[0], path[1:]
    if step == "*":
        if text[pos : pos + 1] != "[":
            raise _OffPath
        for item in _items(text, pos):
            for at, pruned in _walk(text, item, rest):
                yield at, [pruned]
        return
    if text[pos : pos + 1] != "{":
        raise _OffPath
    others: dict[str, Any] = {}
    found = None
    for key, value_at in _members(text, pos):
        if key == step:
            found = value_at
            others[key] = None  # keeps the key's place
        else:
            others[key], _ = _DECODER.raw_decode(text, value_at)
    if found is None:
        raise _OffPath
    for at, pruned in _walk(text, found, rest):
        yield at, {**others, step: pruned}


def _items(text: str, pos: int) -> Iterator[int]:
    """The start of each item of the list at ``pos``."""
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "]":
        return
    while True:
        yield pos
        _, end = _DECODER.raw_decode(text, pos)
        pos = _skip(text, end)
        if text[pos : pos + 1] == "]":
            return
        if text[pos : pos + 1] != ",":
            raise _OffPath
        pos = _skip(text, pos + 1)


def _members(text: str, pos: int) -> Iterator[tuple[str, int]]:
    """(key, start of its value) for each member of the object at ``pos``."""
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return
    while True:
        key, end = _DECODER.raw_decode(text, pos)
        if not isinstance(key, str):
            raise _OffPath
        pos = _skip(text, end)
        if text[pos : pos + 1] != ":":
            raise _OffPath
        value_at = _skip(text, pos + 1)
        yield key, value_at
        _, end = _DECODER.raw_decode(text, value_at)
        pos = _skip(text, end)
        if text[pos : pos + 1] == "}":
            return
        if text[pos : pos + 1] != ",":
            raise _OffPath
        pos = _skip(text, pos + 1)
