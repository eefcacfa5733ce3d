"""Files a receiver writes: one growing file per stream, rotated and gzipped as it grows.

A stream is a folder and an encoding of the run directory: ``spans/collect-NNNNNN.binpb``
(the Collector ``file`` exporter's ``proto`` framing: a 4-byte big-endian
length, then one serialized ``ExportTraceServiceRequest``),
``spans/collect-NNNNNN.jsonl`` (OTLP/JSON, one request per line), and
``metrics/`` and ``logs/`` as OTLP/JSON lines. ``correlate ingest`` reads the
span files as they are; each reader finds the codec from the content, so a
rotated ``….binpb.gz`` reads like the plain file.

A file that reaches the rotation size is closed and gzipped on a thread of
its own (to ``….gz.tmp``, then renamed, then the plain file removed), so
writing goes on meanwhile. Numbering continues after the highest number
already in the folder: a second ``collect`` into the same run directory adds
files and never overwrites one.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

#: folder of the run directory for each signal
FOLDERS = {"traces": "spans", "metrics": "metrics", "logs": "logs"}
PREFIX = "collect"
_NUMBER = re.compile(rf"{PREFIX}-(\d+)\.")


def frame(payload: bytes, encoding: str) -> bytes:
    """One record as it goes in the file: length-prefixed protobuf, or a JSON line.

    >>> frame(b"\\x0a\\x00", "binpb")
    b'\\x00\\x00\\x00\\x02\\n\\x00'
    >>> frame(b"{}", "jsonl")
    b'{}\\n'
    """
    if encoding == "binpb":
        return len(payload).to_bytes(4, "big") + payload
    return payload + b"\n"


class RotatingFile:
    """Appends records to ``FOLDER/collect-NNNNNN.SUFFIX``; rotates past ``rotate_bytes``."""

    def __init__(self, folder: Path, suffix: str, rotate_bytes: int, compress: bool) -> None:
        self.folder = folder
        self.suffix = suffix
        self.rotate_bytes = rotate_bytes
        self.compress = compress
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.size = 0
        self.bytes_written = 0
        self.files: list[Path] = []
        self._compressors: list[threading.Thread] = []
        self.errors: list[str] = []

    def _next_path(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.folder.iterdir() if (m := _NUMBER.match(p.name))]
        return self.folder / f"{PREFIX}-{max(numbers, default=0) + 1:06d}.{self.suffix}"

    def write(self, data: bytes) -> None:
        if self.file is None:
            self.path = self._next_path()
            # "x": never append to (or clobber) a file another process is writing
            self.file = open(self.path, "xb")  # noqa: SIM115 - closed in rotate()/close()
            self.size = 0
            self.files.append(self.path)
        self.file.write(data)
        self.size += len(data)
        self.bytes_written += len(data)

    def flush(self) -> None:
        """Hand what was written to the operating system (it survives this process)."""
        if self.file is not None:
            self.file.flush()
            if self.size >= self.rotate_bytes:
                self._rotate()

    def _rotate(self) -> None:
        assert self.file is not None and self.path is not None
        self.file.close()
        self.file = None
        if self.compress:
            path = self.path
            thread = threading.Thread(
                target=self._gzip, args=(path,), name=f"gzip {path.name}", daemon=False
            )
            thread.start()
            self._compressors.append(thread)

    def _gzip(self, path: Path) -> None:
        target = path.with_name(path.name + ".gz")
        temporary = path.with_name(path.name + ".gz.tmp")
        try:
            with open(path, "rb") as src, gzip.open(temporary, "wb", compresslevel=1) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
            os.replace(temporary, target)
            path.unlink()
        except OSError as exc:  # the plain file is still there and complete
            self.errors.append(f"{path}: could not gzip: {exc}")
            temporary.unlink(missing_ok=True)
            return
        index = self.files.index(path)
        self.files[index] = target

    def close(self) -> None:
        """Flush and close the current file (it stays plain) and wait for every gzip."""
        if self.file is not None:
            self.file.flush()
            self.file.close()
            self.file = None
        for thread in self._compressors:
            thread.join()
        self._compressors.clear()
