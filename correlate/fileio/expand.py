"""A temporary uncompressed copy of a compressed file, for salvaging it in pieces.

Only an uncompressed file can be cut into pieces at its line ends, so a big
compressed file with a few bad lines is expanded once and the copy salvaged
(:mod:`correlate.ingest.salvage`) instead of reading all of it line by line.
A clean compressed file is not copied: DuckDB reads it as fast as it reads
the copy (1M spans, a 74 MB ``.gz`` of 864 MB of OTLP/JSON lines, two cores:
8.3–9.3 s as it is, 12.5–14.8 s expanded first, on a machine at load 2).

A stream that breaks after some bytes (a file cut while it was written) gives,
when the caller asks for it, a copy of its complete lines and the problem the
careful path reports where it breaks.

The copy is made through :func:`~correlate.fileio.streams.open_bytes`, so the
bound on decompressed bytes holds: a file that goes past it raises
:class:`~correlate.fileio.streams.ExpansionLimitError` at once, as reading it
any other way would, only after all of it. A damaged stream (but for the
complete lines above, when asked for), a temporary folder that cannot be made,
or a disk without room give no copy, and the caller reads the file as before.
"""

from __future__ import annotations

import mmap
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.fileio.lines import break_reason
from correlate.fileio.streams import DamagedStreamError, ExpansionLimitError, open_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["expanded_copy"]


@contextmanager
def expanded_copy(path: Path, breaks: list[tuple[int, str]] | None = None) -> Iterator[Path | None]:
    """Within the block, a temporary uncompressed copy of ``path``, or None when there is
    none to be had (see the module's text); the copy is removed after the block.
    :class:`~correlate.fileio.streams.ExpansionLimitError` past the bound.

    ``breaks``: a damaged stream gives the copy of its complete lines, and (line,
    reason) of where it breaks is appended to ``breaks``; without it, no copy.
    """
    try:
        folder = Path(tempfile.mkdtemp(prefix="correlate-expanded-"))
    except OSError:  # no temporary folder to be had (missing, not writable, full)
        yield None
        return
    try:
        copy = folder / "expanded"
        try:
            with open_bytes(path) as source, copy.open("wb") as target:
                shutil.copyfileobj(source, target, 8 << 20)
        except ExpansionLimitError:
            raise
        except DamagedStreamError as damage:
            if breaks is None or damage.position == 0 or not _keep_lines(copy, damage, breaks):
                copy.unlink(missing_ok=True)
                yield None
                return
        except (InputError, OSError):
            copy.unlink(missing_ok=True)  # its room back before the file is read another way
            yield None
            return
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _keep_lines(copy: Path, damage: DamagedStreamError, breaks: list[tuple[int, str]]) -> bool:
    """Cut ``copy`` (all that decompressed) after its last complete line, and append where
    the stream breaks to ``breaks``, numbered as the careful path numbers it. False
    when the copy cannot be read again."""
    try:
        with copy.open("r+b") as f:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                end = data.rfind(b"\n") + 1
                tail = data[end:]
            lines = 0
            f.seek(0)
            left = end
            while left > 0 and (block := f.read(min(left, 8 << 20))):
                lines += block.count(b"\n")
                left -= len(block)
            f.truncate(end)
    except (OSError, ValueError):
        return False
    breaks.append((lines + 1, break_reason(damage, tail)))
    return True
