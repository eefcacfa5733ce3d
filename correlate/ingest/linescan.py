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
import re
from typing import TYPE_CHECKING, Any

from correlate.fileio.lines import UTF8_BOM

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["broken_line", "last_line_is_bad", "line_without"]

#: Bytes read at a time by :func:`broken_line` (numpy's arrays over a block of
#: many short lines take a few times its size).
BLOCK_BYTES = 1 << 20
#: Newlines of a block found one by one with ``find`` (more: with numpy), and at most
#: as many looked at one by one (more: numpy judges the block's every byte).
_FIND_AT_MOST = 4096
#: Bytes a line has on average in a block below which numpy judges its every byte.
_SHORT_LINE = 64

_NEWLINE, _CR, _OPEN, _CLOSE = ord("\n"), ord("\r"), ord("{"), ord("}")
_ENDS = (_NEWLINE, _CLOSE)
_BLANK = b" \t\r"


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


#: Lines looked at one by one by :func:`line_without` before it counts instead.
LINES_ONE_BY_ONE = 4096


def line_without(path: Path, key: bytes) -> bool:
    """True when a line of ``path`` that is not blank may lack ``key`` (a format's
    envelope key: a line of another signal, JSON without the envelope).

    The first lines are looked at one by one (``find`` from each line's start: the key
    opens an OTLP line, so a line of a batch of spans costs next to nothing); past
    :data:`LINES_ONE_BY_ONE`, the key is counted against the lines that are not blank,
    a block at a time. The count is fooled by a line with the key twice and one
    without, and a whitespace-only line counts as one that lacks it: this points to
    damage cheaply; the reader still judges every line. The file is mapped: for files
    of ours (a salvage's pieces), not a user's that may be cut short meanwhile.
    """
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = 0
        for _ in range(LINES_ONE_BY_ONE):
            if start >= size:
                return False
            stop = data.find(b"\n", start)
            stop = size if stop < 0 else stop
            if data.find(key, start, stop) < 0 and data[start:stop].strip(_BLANK):
                return True
            start = stop + 1
        if start >= size:
            return False
        keys = newlines = blank = 0
        after_newline = True  # the byte before ``start`` ends a line
        for at in range(start, size, BLOCK_BYTES):
            block = data[at : min(at + BLOCK_BYTES, size)]
            # Occurrences starting in this block, those crossing its end included.
            keys += data[at : min(at + BLOCK_BYTES + len(key) - 1, size)].count(key)
            newlines += block.count(b"\n")
            blank += _blank_lines(block, after_newline)
            after_newline = block[-1] == _NEWLINE
        lines = newlines + (data[size - 1] != _NEWLINE)
        return keys < lines - blank


def _blank_lines(block: bytes, after_newline: bool) -> int:
    """The newlines of ``block`` that end a blank line: those right after a newline
    (``after_newline``: the byte before the block is one)."""
    found = int(after_newline and block[:1] == b"\n")
    if b"\n\n" in block:
        squeezed = block
        while b"\n\n" in squeezed:
            squeezed = squeezed.replace(b"\n\n", b"\n")
        found += block.count(b"\n") - squeezed.count(b"\n")
    return found


def broken_line(path: Path) -> int | None:
    """The number of the first line of ``path`` that cannot be one JSON object, or None.

    Such a line's first byte other than blanks is not ``{`` or its last is not
    ``}``; blank lines are no damage. A last line without a final newline is
    left to :func:`last_line_is_bad`. The file is read a block at a time (a
    file cut shorter while it is scanned ends the scan; a mapped one would kill
    the process). A block of a few long lines has its newlines found with
    ``find`` (memchr), the bytes on both sides of all of them compared at once,
    and only a newline with something else beside it looked at one by one; a
    block of many short lines, blank ones included, is judged by numpy alone.
    A line that passes may still be bad JSON: this finds damage, it never
    vouches for a line.
    """
    import numpy as np

    scan = _Scan()
    buffer = bytearray(max(BLOCK_BYTES, 1))
    whole = np.frombuffer(buffer, dtype=np.uint8)
    with path.open("rb") as f:
        if f.read(len(UTF8_BOM)) != UTF8_BOM:
            f.seek(0)
        while size := f.readinto(buffer):
            found = scan.block(buffer, whole, size)
            if found is not None:
                return found
    return None


#: A byte other than a blank inside a line: a newline, or anything else.
_SOLID = re.compile(rb"[^ \t\r]")


class _Scan:
    """Where the scan is: what it knows of the line it is in, blocks read so far."""

    def __init__(self) -> None:
        self.line = 1  # the number of the line the next byte is in
        self.last = _NEWLINE  # the last byte other than a blank (a newline: none in this line)
        self.bad_start = False  # the line began with a byte other than ``{``

    def block(self, buffer: bytearray, whole: Any, size: int) -> int | None:
        """The first broken line a newline in ``buffer[:size]`` ends, or None."""
        import numpy as np

        if self.last == _NEWLINE:  # nothing but blanks in this line yet: it may start here
            start = _forward(buffer, 0, size)
            self.bad_start = start not in (None, _NEWLINE, _OPEN)
        # Newlines found one by one (memchr) while few: a block of long lines, the usual
        # case, is never counted whole (bytearray.count is several times slower).
        ends: list[int] = []
        at = buffer.find(b"\n", 0, size)
        while at >= 0 and len(ends) < _FIND_AT_MOST:
            ends.append(at)
            at = buffer.find(b"\n", at + 1, size)
        count = len(ends) if at < 0 else int(np.count_nonzero(whole[:size] == _NEWLINE))
        if not count:
            found = None
        elif count * _SHORT_LINE > size:
            found = self._many(buffer, size)
        else:
            found = self._few(buffer, whole, size, count, ends if at < 0 else None)
        end = _backward(buffer, size - 1)
        if end is not None:
            self.last = end
        return found

    def _few(
        self, buffer: bytearray, whole: Any, size: int, count: int, ends: list[int] | None
    ) -> int | None:
        """For a block of longer lines (its ``count`` newlines at ``ends``, if found
        already): the bytes beside all newlines compared at once, and those with
        something else beside them (a blank, damage) one by one."""
        import numpy as np

        if self.bad_start:
            return self.line
        if ends is not None:
            at_ends = np.array(ends, dtype=np.int64)
        else:
            at_ends = np.flatnonzero(whole[:size] == _NEWLINE)
        odd = np.flatnonzero(~_beside(whole, at_ends, size))
        if len(odd) > _FIND_AT_MOST:
            return self._many(buffer, size)
        for k in odd.tolist():
            at = int(at_ends[k])
            end = _backward(buffer, at - 1)
            if (self.last if end is None else end) not in _ENDS:
                return self.line + k
            if _forward(buffer, at + 1, size) not in (None, _NEWLINE, _OPEN):
                if k + 1 < count:
                    return self.line + k + 1
                self.bad_start = True  # its end is in a later block
        self.line += count
        return None

    def _many(self, buffer: bytearray, size: int) -> int | None:
        """For a block of many newlines: its bytes other than blanks, and those on
        both sides of each newline among them, compared all at once."""
        import numpy as np

        kept = buffer[:size]
        if any(blank in kept for blank in (b" ", b"\t", b"\r")):  # memchr: cheaper to ask
            kept = kept.translate(None, _BLANK)
        solid = np.frombuffer(kept, dtype=np.uint8)
        newline = solid == _NEWLINE
        can_end = newline | (solid == _CLOSE)  # the last byte of a line, or no line
        can_start = newline | (solid == _OPEN)
        bad_end = newline[1:] & ~can_end[:-1]  # of the newline after each byte
        bad_start = newline[:-1] & ~can_start[1:]  # of the byte after each newline
        lines = int(np.count_nonzero(newline))
        found = [0] if self.bad_start or (newline[0] and self.last not in _ENDS) else []
        if bad_end.any():
            found.append(int(np.count_nonzero(newline[: int(bad_end.argmax()) + 1])))
        self.bad_start = False
        if bad_start.any():
            next_line = int(np.count_nonzero(newline[: int(bad_start.argmax())])) + 1
            if next_line < lines:
                found.append(next_line)
            self.bad_start = True  # the line after the block's last newline
        if found:
            return self.line + min(found)
        self.line += lines
        return None


def _beside(data: Any, ends: Any, size: int) -> Any:
    """For each newline at ``ends``: True when a ``}`` (or ``}\\r``) is just before
    it and a ``{`` just after it, both in ``data[:size]``."""
    import numpy as np

    before = data[np.maximum(ends - 1, 0)]
    before_cr = data[np.maximum(ends - 2, 0)]
    after = data[np.minimum(ends + 1, size - 1)]
    return (
        (ends >= 2)
        & (ends + 1 < size)
        & ((before == _CLOSE) | ((before == _CR) & (before_cr == _CLOSE)))
        & (after == _OPEN)
    )


def _forward(buffer: bytearray, at: int, size: int) -> int | None:
    """The first byte other than a blank in ``buffer[at:size]`` (a newline, maybe), or None."""
    found = _SOLID.search(buffer, at, size)
    return None if found is None else buffer[found.start()]


def _backward(buffer: bytearray, at: int) -> int | None:
    """The last byte other than a blank in ``buffer[:at + 1]`` (a newline, maybe), or None."""
    while at >= 0:
        low = max(at - 4095, 0)
        rest = buffer[low : at + 1].rstrip(_BLANK)
        if rest:
            return rest[-1]
        at = low - 1
    return None
