"""The compression formats correlate reads through, one entry each, told by their first bytes.

A codec is found from a file's content, never its name: a ``.gz`` that is not
gzip is read as it is, and a gzip file named ``.jsonl`` is decompressed.
Adding one is a function that opens the stream and a :class:`Codec` entry in
:data:`CODECS`.

>>> codec_for(b"\\x1f\\x8b\\x08\\x00").name
'gzip'
>>> codec_for(b'{"resourceSpans": []}') is None
True
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from correlate.fileio import zstd

__all__ = ["CODECS", "MAGIC_BYTES", "Codec", "codec_for", "codec_named"]

#: How many leading bytes :func:`codec_for` needs to tell every codec.
MAGIC_BYTES = 16


@dataclass(frozen=True)
class Codec:
    """One compression format: how to recognise it and how to read through it."""

    name: str
    #: True when a file's first bytes (at least :data:`MAGIC_BYTES` of them, or all
    #: there are) start a stream of this codec
    sniff: Callable[[bytes], bool]
    #: the decompressed stream over the raw file (buffered: ``read(n)`` gives n bytes
    #: unless the stream ends)
    open: Callable[[BinaryIO], BinaryIO]
    #: the exceptions its reader raises on a damaged or cut-short stream
    errors: Callable[[], tuple[type[BaseException], ...]]
    #: file-name suffixes it is usually given (for "q1.json.gz" → "q1.json")
    suffixes: tuple[str, ...]
    #: the name DuckDB's file readers take in ``compression =``; None when
    #: correlate must decompress it itself (no DuckDB fast path)
    duckdb: str | None = None


def _open_gzip(raw: BinaryIO) -> BinaryIO:
    return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def _gzip_errors() -> tuple[type[BaseException], ...]:
    return (OSError, EOFError, zlib.error)


def _open_bz2(raw: BinaryIO) -> BinaryIO:
    return bz2.BZ2File(raw)  # type: ignore[return-value]


def _open_xz(raw: BinaryIO) -> BinaryIO:
    return lzma.LZMAFile(raw)  # type: ignore[return-value]


def _stdlib_errors() -> tuple[type[BaseException], ...]:
    return (OSError, EOFError, lzma.LZMAError)


def _open_zstd(raw: BinaryIO) -> BinaryIO:
    return io.BufferedReader(zstd.ZstdReader(raw))


#: The codecs, in the order they are tried (magics do not overlap).
CODECS: tuple[Codec, ...] = (
    Codec(
        "gzip",
        lambda head: head.startswith(b"\x1f\x8b"),
        _open_gzip,
        _gzip_errors,
        (".gz", ".gzip"),
        "gzip",
    ),
    # "BZh", a block size digit, then a block's magic (pi in BCD) or the end's (sqrt(pi))
    Codec(
        "bzip2",
        lambda h: h[:3] == b"BZh" and h[4:10] in (b"1AY&SY", b"\x17rE8P\x90"),
        _open_bz2,
        _stdlib_errors,
        (".bz2",),
    ),
    Codec("xz", lambda h: h.startswith(b"\xfd7zXZ\x00"), _open_xz, _stdlib_errors, (".xz",)),
    # No DuckDB fast path: DuckDB 2.0 reads a zstd file cut inside a frame as a
    # shorter one without a word (in about one cut in eight), where gzip's reader fails.
    Codec(
        "zstd",
        lambda h: h.startswith(b"\x28\xb5\x2f\xfd"),
        _open_zstd,
        zstd.errors,
        (".zst", ".zstd"),
    ),
)


def codec_for(head: bytes) -> Codec | None:
    """The codec whose stream ``head`` (a file's first bytes) starts, or None for plain bytes."""
    return next((c for c in CODECS if c.sniff(head)), None)


def codec_named(name: str) -> Codec:
    """The entry of :data:`CODECS` called ``name``; KeyError when there is none."""
    for codec in CODECS:
        if codec.name == name:
            return codec
    raise KeyError(name)


def expand_bytes(codec: Codec, data: bytes, limit: int) -> bytes:
    """``data`` (one whole compressed body) decompressed, at most ``limit + 1`` bytes of
    it, so that more than ``limit`` says it expands past the limit; raises the codec's
    :attr:`~Codec.errors` when it is damaged or cut short. The compressed bytes are fed a
    few at a time, so a body that expands a thousandfold never holds more than the
    bytes asked for."""
    with codec.open(_Trickle(io.BytesIO(data))) as stream:  # type: ignore[arg-type]
        return stream.read(limit + 1)  # one buffer, filled in place: no copies


#: Compressed bytes a decompressor is given at a time: a Zstandard block holds at most
#: 128 KiB and takes a few bytes at least, so this keeps one step's output to a few MiB.
_TRICKLE_BYTES = 256


class _Trickle:
    """A compressed body handed to the decompressor a little at a time."""

    def __init__(self, raw: io.BytesIO) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(_TRICKLE_BYTES if size < 0 else min(size, _TRICKLE_BYTES))
