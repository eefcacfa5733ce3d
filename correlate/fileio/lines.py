"""Reading input files as numbered lines, and small checks on text.

Python only splits and decodes here, a large block at a time; the JSON
itself is parsed by DuckDB. Lines are counted exactly so every problem can be
reported as ``FILE:LINE``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from correlate.errors import InputError
from correlate.fileio.streams import DamagedStreamError, open_bytes

BLOCK_BYTES = 16 * 1024 * 1024

#: The byte order mark some Windows tools write before UTF-8 text.
UTF8_BOM = b"\xef\xbb\xbf"

#: The byte order marks of UTF-16 text, little and big endian.
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass
class LineBatch:
    """Consecutive non-blank lines of a file, with their 1-based numbers."""

    numbers: list[int]
    lines: list[str]
    #: (line, reason) for lines that could not be decoded as text
    bad: list[tuple[int, str]] = field(default_factory=list)
    #: (line, note) on lines that are read, but not whole or not as written (a reader's
    #: remark, listed beside the problems and not counted as skipped)
    notes: list[tuple[int, str]] = field(default_factory=list)
    #: bytes of the (decompressed) stream consumed so far
    position: int = 0
    #: the number of the file's last line when it had no final newline
    unterminated_line: int | None = None


def iter_line_batches(
    path: Path, block_bytes: int = BLOCK_BYTES, *, text_start: bool = True
) -> Iterator[LineBatch]:
    """Yield the file's lines in batches of about ``block_bytes``.

    Blank lines are skipped silently (they carry no record). A line that is
    not UTF-8 is reported in ``bad`` rather than raising, so the caller can
    count it and go on. A UTF-8 byte order mark before the first line is no
    part of it, unless ``text_start`` is False (a piece cut from the middle of
    a file, where those bytes are the line's own).
    """
    try:
        stream = open_bytes(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None
    with stream:
        yield from _batches(stream, path, block_bytes, text_start)


def _batches(
    stream: BinaryIO, path: Path, block_bytes: int, text_start: bool
) -> Iterator[LineBatch]:
    line_no = 0
    position = 0
    tail = b""
    while True:
        try:
            block = stream.read(block_bytes)
        except DamagedStreamError as exc:
            if exc.position == 0:  # nothing decompresses: not a file to read at all
                raise InputError(exc.reason, path, 1) from None
            # A compressed file cut short: its complete lines are kept, and the cut
            # is a problem of the line it falls in.
            yield LineBatch([], [], bad=[(line_no + 1, break_reason(exc, tail))])
            return
        position += len(block)
        if not block:
            break
        data = tail + block
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data  # one line longer than a block: keep reading
            continue
        tail = data[cut + 1 :]
        if line_no == 0 and text_start and data.startswith(UTF8_BOM):  # a mark, not text
            data, cut = data[len(UTF8_BOM) :], cut - len(UTF8_BOM)
        batch = _decode(data[:cut], line_no)
        line_no += data.count(b"\n", 0, cut + 1)
        batch.position = position - len(tail)
        yield batch
    if line_no == 0 and text_start and tail.startswith(UTF8_BOM):
        tail = tail[len(UTF8_BOM) :]
    if tail.strip():
        batch = _decode(tail, line_no)
        line_no += 1
        batch.position = position
        batch.unterminated_line = line_no
        yield batch


def break_reason(damage: DamagedStreamError, tail: bytes) -> str:
    """The problem of the line a damaged stream breaks in; ``tail`` is what it gave
    after its last complete line."""
    where = "inside this line" if tail.strip() else "after the line before"
    return f"{damage.reason}; the file breaks {where}"


def _decode(data: bytes, line_before: int) -> LineBatch:
    raw_lines = data.split(b"\n")
    try:
        text_lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return _decode_each(raw_lines, line_before)
    numbers: list[int] = []
    lines: list[str] = []
    for i, line in enumerate(text_lines, start=line_before + 1):
        if line.strip():
            numbers.append(i)
            lines.append(line)
    return LineBatch(numbers, lines)


def _decode_each(raw_lines: list[bytes], line_before: int) -> LineBatch:
    batch = LineBatch([], [])
    for i, raw in enumerate(raw_lines, start=line_before + 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            batch.bad.append(
                (i, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
            )
            continue
        if line.strip():
            batch.numbers.append(i)
            batch.lines.append(line)
    return batch


def json_error(text: str) -> tuple[int, str] | None:
    """None when ``text`` is valid JSON, else (line within the text, reason)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        return exc.lineno, f"not valid JSON ({exc.msg} at {where})"
    except ValueError as exc:  # e.g. an integer too long to convert
        return 1, f"not valid JSON ({exc})"
    except RecursionError:
        return _deep_line(text), "not readable JSON: nested too deeply"
    return None


_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|\n')


def _deep_line(text: str, limit: int = 500) -> int:
    """The line where ``text``'s JSON nesting first passes ``limit`` levels (1 if never).

    >>> _deep_line('{"a": [[]],\\n"b": "[[[",\\n"c":' + "[" * 600, limit=500)
    3
    """
    line, depth = 1, 0
    for match in _JSON_NESTING.finditer(text):
        token = match.group(0)
        if token == "\n":
            line += 1
        elif token in "[{":
            depth += 1
            if depth > limit:
                return line
        elif token in "]}":
            depth -= 1
        else:
            line += token.count("\n")  # a string holds no raw newline in JSON; be safe
    return 1


def line_of_offset(text: str, offset: int) -> int:
    """1-based line number of character ``offset`` in ``text``."""
    return text.count("\n", 0, max(0, offset)) + 1


def looks_utf16(head: bytes) -> bool:
    """True when the bytes are UTF-16 text: a UTF-16 byte order mark, or ASCII every other byte.

    >>> looks_utf16("{}".encode("utf-16")), looks_utf16(b'{"a": 1}')
    (True, False)
    """
    if head.startswith(UTF16_BOMS):
        return True
    sample = head[:512]
    if len(sample) < 8:
        return False
    evens, odds = sample[0::2], sample[1::2]
    return evens.count(0) > len(evens) * 0.9 or odds.count(0) > len(odds) * 0.9


def looks_binary(head: bytes) -> bool:
    """True when the bytes are not text: NULs, or mostly control bytes."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    sample = head[:4096]
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control > len(sample) // 10


__all__ = [
    "LineBatch",
    "break_reason",
    "iter_line_batches",
    "json_error",
    "line_of_offset",
    "looks_binary",
    "looks_utf16",
]
