"""Writing the watch file: whole lines, one append write per sample.

A sample's lines go to the file in one ``os.write`` on an ``O_APPEND``
descriptor, so a reader (or a watcher killed with SIGKILL) sees whole samples;
at worst the very last line is cut. Appending to a file whose last line was
cut starts on a new line, so the cut line stays one bad line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from correlate.errors import InputError


class ActivityWriter:
    """Appends records to a watch file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write the watch file: {exc.strerror}", path) from None
        self.lines = 0
        self._needs_newline = _ends_without_newline(self._fd)

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records``, one JSON object per line, in one write."""
        if self._fd is None:
            raise ValueError("the watch file is closed")
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return
        data = "".join(lines)
        if self._needs_newline:
            data = "\n" + data
            self._needs_newline = False
        view = memoryview(data.encode("utf-8"))
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.lines += len(lines)

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ActivityWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
