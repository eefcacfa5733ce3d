"""Damage a big file of JSON lines shows in its bytes, seen before DuckDB parses it.

DuckDB's bulk read of a file stops at its first bad line, after doing the
whole statement's work up to there; a damaged file is then read again in
pieces (:mod:`correlate.ingest.salvage`). Two kinds of damage can be seen
without parsing, at memory speed, and so spare the failed attempt: a last
line cut while the file was written (:func:`last_line_is_bad`), and a line
whose first or last byte cannot be those of a JSON object (:func:`broken_line`:
a line cut in half, garbage, a line of another log). Damage only a parser sees
(a missing key, a span without a trace id) still fails the bulk read.
"""

from __future__ import annotations

import json
import mmap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["broken_line", "last_line_is_bad"]

#: Bytes looked at a time by :func:`broken_line`.
BLOCK_BYTES = 32 << 20
#: Newlines of a block found one by one before numpy finds them all at once.
_FIND_AT_MOST = 4096
#: Where the platform has it (not on Windows).
_DONT_NEED: int | None = getattr(mmap, "MADV_DONTNEED", None)

_NEWLINE, _CR, _OPEN, _CLOSE = ord("\n"), ord("\r"), ord("{"), ord("}")
_BLANK = b" \t\r"
_BOM = b"\xef\xbb\xbf"


def last_line_is_bad(path: Path) -> bool:
    """True when ``path`` (uncompressed) ends in a line without a final newline that is
    not JSON: a file cut while it was written. Checked before the bulk read, which would
    otherwise parse the whole file only to fail at its end."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(size - 1, 0))
        if size == 0 or f.read(1) == b"\n":
            return False
        back = min(size, 64 << 20)
        f.seek(size - back)
        tail = f.read(back)
    cut = tail.rfind(b"\n")
    if cut < 0 and back < size:
        return False  # a last line longer than we look at: let the reader judge
    try:
        json.loads(tail[cut + 1 :])
    except ValueError:
        return True
    return False


def broken_line(path: Path) -> int | None:
    """The number of the first line of ``path`` that cannot be one JSON object, or None.

    Such a line's first byte other than blanks is not ``{`` or its last is not
    ``}``; blank lines are no damage. A last line without a final newline is
    left to :func:`last_line_is_bad`. Newlines are found with ``find`` (memchr
    on the mapped file), or with numpy where a block holds many short lines,
    and the bytes on both sides of all of them compared at once; only a
    newline with something else beside it (a blank, a carriage return, damage)
    is looked at byte by byte. A line that passes may still be bad JSON: this
    finds damage, it never vouches for a line.
    """
    size = path.stat().st_size
    if size == 0:
        return None
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _first_broken(data)


def _first_broken(data: mmap.mmap) -> int | None:
    import numpy as np

    size = len(data)
    first = len(_BOM) if data[: len(_BOM)] == _BOM else 0
    if _edge(data, first, 1) not in (None, _OPEN) and data.find(b"\n", first) >= 0:
        return 1
    whole = np.frombuffer(data, dtype=np.uint8)
    try:
        newlines_before = 0
        for low in range(0, size, BLOCK_BYTES):
            at = _newlines(data, whole, low, min(low + BLOCK_BYTES, size))
            before = whole[np.maximum(at - 1, 0)]
            before_cr = whole[np.maximum(at - 2, 0)]
            after = whole[np.minimum(at + 1, size - 1)]
            ok = (
                (at >= 2)
                & (at + 1 < size)
                & ((before == _CLOSE) | ((before == _CR) & (before_cr == _CLOSE)))
                & (after == _OPEN)
            )
            for i in np.flatnonzero(~ok).tolist():
                line = _check_newline(data, int(at[i]), first)
                if line is not None:
                    return newlines_before + i + line
            newlines_before += len(at)
            del at, before, before_cr, after, ok
            if _DONT_NEED is not None:  # its pages would stay in the process's RSS
                page = low - low % mmap.PAGESIZE
                data.madvise(_DONT_NEED, page, min(low + BLOCK_BYTES, size) - page)
    finally:
        del whole  # the map cannot close while an array holds it
    return None


def _newlines(data: mmap.mmap, whole: Any, low: int, high: int) -> Any:
    """The offsets of the newlines in ``data[low:high]``, as a numpy array."""
    import numpy as np

    found: list[int] = []
    at = data.find(b"\n", low, high)
    while at >= 0 and len(found) < _FIND_AT_MOST:
        found.append(at)
        at = data.find(b"\n", at + 1, high)
    if at < 0:
        return np.array(found, dtype=np.int64)
    return low + np.flatnonzero(whole[low:high] == _NEWLINE)


def _check_newline(data: mmap.mmap, at: int, first: int) -> int | None:
    """1 when the line ending at newline ``at`` is broken, 2 when the one after it is
    (a line ended by a newline only), else None. The file's text starts at ``first``
    (after a BOM)."""
    end = _edge(data, at - 1, -1, first)
    if end is not None and end != _CLOSE:
        return 1
    start = _edge(data, at + 1, 1)
    if start not in (None, _OPEN) and data.find(b"\n", at + 1) >= 0:
        return 2
    return None


def _edge(data: mmap.mmap, at: int, step: int, first: int = 0) -> int | None:
    """The first byte other than blanks from ``at`` going ``step`` (±1) within its line,
    or None when the line holds nothing else (a blank line, or the file's edges:
    ``first`` and its end)."""
    while first <= at < len(data):
        byte = data[at]
        if byte == _NEWLINE:
            return None
        if byte not in _BLANK:
            return byte
        at += step
    return None
