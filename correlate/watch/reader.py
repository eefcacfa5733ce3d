"""Reading a watch file back: every good line as a record, every bad one as a problem.

The reader never raises on content. A line that is not JSON, not an object, of
an unknown kind, or with a field of the wrong type is a :class:`Problem` with
its 1-based line number; a last line without its newline (a watcher killed
mid-write) is one too, saying so; a last line that is whole JSON without
its newline is read as any other. Fields a record lacks read as null (newer
files may add fields; older readers ignore them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlate.fileio import read_all
from correlate.watch.records import FIELDS, FORMAT_VERSION

CUT_SHORT = "last line is cut short (no final newline: was the watcher stopped mid-write?)"


@dataclass(frozen=True)
class Record:
    """One good line: its kind, the watcher session it belongs to, and its fields in order."""

    line: int
    kind: str
    #: 1 for the first ``watch`` header in the file, 2 after the second, ...
    watch: int
    fields: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """A line that could not be read, and why."""

    line: int
    reason: str


def read_activity(path: str | os.PathLike[str]) -> Iterator[Record | Problem]:
    """The records and problems of a watch file (``db/activity.jsonl``, compressed or not).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "activity.jsonl"
    >>> _ = p.write_text('{"record": "bogus"}\\nnot json\\n')
    >>> [type(r).__name__ + f":{r.line}" for r in read_activity(p)]
    ['Problem:1', 'Problem:2']
    """
    # any codec correlate reads (gzip, bzip2, xz, zstd), within the expansion bound
    yield from parse_lines(read_all(Path(path)))


def parse_lines(raw: bytes) -> Iterator[Record | Problem]:
    """What :func:`read_activity` yields, for a file's bytes."""
    lines = raw.split(b"\n")
    last = len(lines)
    watch = 0
    for number, line in enumerate(lines, start=1):
        if number == last:
            if line.strip():
                # Bytes after the final newline: whole if they parse (a JSON object
                # cannot be cut and stay one), else a line the writer did not finish.
                try:
                    json.loads(line)
                except (ValueError, RecursionError):
                    yield Problem(number, CUT_SHORT)
                    return
                yield _parse(line, number, watch)
            return
        if not line.strip():
            continue
        item = _parse(line, number, watch)
        if isinstance(item, Record) and item.kind == "watch":
            watch += 1
            item = Record(item.line, item.kind, watch, item.fields)
        yield item


def _parse(line: bytes, number: int, watch: int) -> Record | Problem:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return Problem(number, f"not JSON ({_short(exc)})")
    if not isinstance(obj, dict):
        return Problem(number, f"not a JSON object but {type(obj).__name__}")
    kind = obj.get("record")
    if not isinstance(kind, str) or kind not in FIELDS:
        known = ", ".join(FIELDS)
        return Problem(number, f"record {kind!r} is not one of {known}")
    if kind != "watch" and watch == 0:
        return Problem(number, f"a {kind} record before any watch header line")
    fields: dict[str, Any] = {}
    for spec in FIELDS[kind]:
        value = obj.get(spec.name)
        if value is None:
            if spec.required:
                return Problem(number, f"{kind} record without {spec.name}")
        elif not _is(value, spec.type):
            return Problem(
                number, f"{kind} field {spec.name} should be {spec.type}, not {value!r:.40}"
            )
        elif spec.type == "float":
            value = float(value)
        fields[spec.name] = value
    if kind == "watch" and fields["format_version"] > FORMAT_VERSION:
        return Problem(
            number,
            f"watch format {fields['format_version']} is newer than this correlate reads "
            f"({FORMAT_VERSION}): upgrade correlate",
        )
    return Record(number, kind, watch, fields)


_INT64 = 2**63


def _is(value: Any, type_: str) -> bool:
    if type_ == "int":
        return type(value) is int and -_INT64 <= value < _INT64
    if type_ == "float":
        return type(value) in (int, float) and value == value and abs(value) != float("inf")
    if type_ == "str":
        # JSON may escape a lone surrogate, which no UTF-8 column can hold.
        return isinstance(value, str) and _utf8(value)
    return type(value) is bool


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(exc: Exception) -> str:
    return str(exc).split(":")[0][:60]
