"""A temporary uncompressed copy of a compressed file, for salvaging it in pieces.

Only an uncompressed file can be cut into pieces at its line ends, so a big
compressed file with a few bad lines is expanded once and the copy salvaged
(:mod:`correlate.ingest.salvage`) instead of reading all of it line by line.
A clean compressed file is not copied: DuckDB reads it as fast as it reads
the copy (1M spans, a 74 MB ``.gz`` of 864 MB of OTLP/JSON lines, two cores:
8.3–9.3 s as it is, 12.5–14.8 s expanded first, on a machine at load 2).

The copy is made through :func:`~correlate.fileio.streams.open_bytes`, so the
bound on decompressed bytes holds: a file that goes past it raises
:class:`~correlate.fileio.streams.ExpansionLimitError` at once, as reading it
any other way would, only after all of it. A damaged stream, a temporary folder
that cannot be made, or a disk without room give no copy, and the caller reads
the file as before.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.fileio.streams import ExpansionLimitError, open_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["expanded_copy"]


@contextmanager
def expanded_copy(path: Path) -> Iterator[Path | None]:
    """Within the block, a temporary uncompressed copy of ``path``, or None when there is
    none to be had (see the module's text); the copy is removed after the block.
    :class:`~correlate.fileio.streams.ExpansionLimitError` past the bound."""
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
        except (InputError, OSError):
            copy.unlink(missing_ok=True)  # its room back before the file is read another way
            yield None
            return
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
