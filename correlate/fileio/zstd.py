"""Reading Zstandard (``.zst``) files through the ``zstandard`` package.

``zstandard``'s own stream reader ends quietly when a file stops in the middle
of a frame, so a file cut short would read as a shorter, complete one. This
reader feeds the decompressor itself and raises :class:`EOFError` when the
input ends inside a frame. Frames written one after another (as ``zstd``
appends, or a recorder flushing in pieces) are read as one stream.
"""

from __future__ import annotations

import io
from typing import BinaryIO

__all__ = ["ZstdReader", "errors"]

#: Compressed bytes fed at a time. A frame can expand a few thousand times, so
#: a small feed keeps one step's output small before the expansion bound sees it.
_FEED_BYTES = 4096


class ZstdReader(io.RawIOBase):
    """The decompressed bytes of the Zstandard frames in ``raw``."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._error = zstandard.ZstdError
        self._frame = self._dctx.decompressobj()
        self._in_frame = False
        self._pending = memoryview(b"")
        self._ended = False
        # an error met after some output of the same feed: raised once that output is read
        self._failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            if self._failure is not None:
                raise self._failure
            self._feed(self._raw.read(_FEED_BYTES))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, data: bytes) -> None:
        if not data:
            self._ended = True
            if self._in_frame:
                raise EOFError("the input ended inside a Zstandard frame")
            return
        out = []
        try:
            while data:
                out.append(self._frame.decompress(data))
                self._in_frame = True
                if not self._frame.eof:
                    break
                # A frame ended; what follows it is the next frame.
                data = self._frame.unused_data
                self._frame = self._dctx.decompressobj()
                self._in_frame = False
        except self._error as exc:
            if not any(out):
                raise
            # Whole frames before bytes that are not one (junk after the last frame, a
            # damaged next one) are kept: the error waits until they are read.
            self._failure = exc
        self._pending = memoryview(b"".join(out))


def errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged or cut-short file raises."""
    import zstandard

    return (zstandard.ZstdError, EOFError, OSError)
