"""Append-only JSON Lines files that several processes may share.

Lines are buffered in memory and written with one ``os.write`` per flush on an
``O_APPEND`` descriptor, so two worker processes recording into the same run
directory never interleave half lines (a buffered text file may split a long
line across two ``write`` calls; a single append write of whole lines is not
split on a local file system).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class JsonlWriter:
    """A thread-safe writer of one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._lines.append(line)
            self.count += 1

    def flush(self) -> None:
        with self._lock:
            if not self._lines or self._fd is None:
                return
            data = "".join(self._lines).encode("utf-8")
            self._lines.clear()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
