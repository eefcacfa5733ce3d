"""The line of a file of OTLP/JSON lines that a span is on, found from its id in the bytes.

DuckDB's bulk read numbers no lines. When it finds a few spans the checks of
:mod:`correlate.ingest.canonical` reject (a span without a trace id, one that
ends before it starts), each is reported at its line by looking for
``"spanId": "<its id>"`` in the file's bytes, rather than by reading the whole
file again line by line. An id that is not there exactly once as a ``spanId``
(rewritten by the reader, or repeated) has no line here, and the caller reads
the file the careful way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from correlate.fileio import open_bytes

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MAX_IDS", "span_id_lines", "span_id_lines_in"]

#: Ids looked for at most: each costs a pass of ``find`` over the file.
MAX_IDS = 8
BLOCK_BYTES = 8 << 20
#: How far before an id its key may start (``"spanId"``, blanks, ``:``, blanks, ``"``).
_KEY_ROOM = 64
#: The key of a span's own id, ending where the id begins.
_KEY = re.compile(rb'"spanId"[ \t\r\n]*:[ \t\r\n]*"\Z')


def span_id_lines(path: Path, ids: set[str]) -> dict[str, int]:
    """For each id of ``ids`` found exactly once as a span's ``spanId`` in ``path``
    (read decompressed), the number of its line; ids found never or more than once
    are left out.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = f.write_bytes(b'{"spanId":"aa","parentSpanId":"bb"}\\n{"spanId": "bb"}\\n')
    >>> sorted(span_id_lines(f, {"aa", "bb", "cc"}).items())
    [('aa', 1), ('bb', 2)]
    """
    return span_id_lines_in([(path, 1)], ids)


def span_id_lines_in(parts: list[tuple[Path, int]], ids: set[str]) -> dict[str, int]:
    """:func:`span_id_lines` over the pieces of one file: ``parts`` are each piece and
    the file's number of its first line; an id must be once in all of them."""
    targets = {i.encode("utf-8"): i for i in ids if i}
    if not targets:
        return {}
    lines: dict[str, int] = {}
    repeated: set[str] = set()
    for path, first_line in parts:
        found = _streamed(path, targets)
        for name, line in found:
            if name in lines:
                repeated.add(name)
            else:
                lines[name] = first_line - 1 + line
    return {name: line for name, line in lines.items() if name not in repeated}


def _streamed(path: Path, targets: dict[bytes, str]) -> list[tuple[str, int]]:
    """(id, line) of each hit in ``path``, read (decompressed) a block at a time: not
    mapped, as a user's file cut short meanwhile would kill the process (SIGBUS), and
    its pages would count in the process's RSS."""
    found = []
    keep = _KEY_ROOM + max(len(t) for t in targets) + 1
    carry = b""
    newlines = 0  # newlines before ``data``
    with open_bytes(path) as f:
        while block := f.read(BLOCK_BYTES):
            data = carry + block
            for target, name in targets.items():
                for at in _hits(data, target, len(carry)):
                    found.append((name, newlines + data.count(b"\n", 0, at) + 1))
            carry = data[-keep:]
            newlines += data.count(b"\n", 0, len(data) - len(carry))
    return found


def _hits(data: bytes, target: bytes, seen: int) -> list[int]:
    """Where ``target`` is a whole ``spanId`` value in ``data``, its closing quote
    included, leaving out those already ending within the first ``seen`` bytes."""
    found = []
    at = data.find(target)
    while at >= 0:
        end = at + len(target)
        if (
            seen <= end < len(data)
            and data[end : end + 1] == b'"'
            and _KEY.search(data, max(at - _KEY_ROOM, 0), at)
        ):
            found.append(at)
        at = data.find(target, at + 1)
    return found
