"""Opening input files as bytes: decompressed by content, with a bound on how far they expand.

Every reader in correlate opens its files through :func:`open_bytes` (or
:func:`read_head` / :func:`read_all`), so every compression codec of
:mod:`correlate.fileio.codecs` works for every format, and a damaged,
cut-short or too-large compressed file is one :class:`InputError` that names
the file, whichever codec and reader met it.

The bound (:data:`DEFAULT_MAX_EXPANDED_BYTES` per file unless
:func:`expansion_limit` sets another) caps the decompressed bytes correlate
reads from one file itself. DuckDB's own readers, used on the fast path for
codecs it knows (:func:`duckdb_compression`), stream a file in bounded memory
and are not counted.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from correlate.errors import InputError
from correlate.fileio.codecs import CODECS, MAGIC_BYTES, Codec, codec_for

__all__ = [
    "DEFAULT_MAX_EXPANDED_BYTES",
    "DamagedStreamError",
    "ExpansionLimitError",
    "codec_of",
    "duckdb_compression",
    "expansion_limit",
    "format_size",
    "open_bytes",
    "parse_size",
    "past_the_bound",
    "read_all",
    "read_head",
    "without_codec_suffix",
]

#: Decompressed bytes one file may expand to before reading stops (2 GiB).
DEFAULT_MAX_EXPANDED_BYTES = 2 * 1024**3

_limit: ContextVar[int] = ContextVar("correlate_max_expanded_bytes")


class DamagedStreamError(InputError):
    """A compressed file whose stream is broken or ends early; ``position`` bytes were read."""

    def __init__(self, codec: str, path: Path, position: int, detail: object) -> None:
        super().__init__(
            f"{codec} stream is damaged or cut short after {position:,} decompressed bytes "
            f"({detail})",
            path,
        )
        self.codec = codec
        self.position = position
        self.detail = detail


class ExpansionLimitError(InputError):
    """A compressed file that expands past the bound on decompressed bytes."""

    def __init__(self, codec: str, path: Path, limit: int) -> None:
        super().__init__(f"{codec} content expands {past_the_bound(limit)}", path)
        self.codec = codec
        self.limit = limit


def past_the_bound(limit: int) -> str:
    """The words for content that grew past ``limit`` decompressed bytes, and what to do."""
    return (
        f"past {format_size(limit)} (the bound on decompressed bytes per file); if the "
        "file is meant to be that large, raise the bound (ingest --max-expanded, or "
        "max_expanded_bytes=)"
    )


@contextmanager
def expansion_limit(max_bytes: int | None) -> Iterator[None]:
    """Within the block, a compressed file may expand to ``max_bytes`` (None: the default).

    >>> with expansion_limit(1024):
    ...     pass
    """
    if max_bytes is not None and max_bytes <= 0:
        raise InputError(f"the bound on decompressed bytes must be positive, not {max_bytes}")
    token = _limit.set(DEFAULT_MAX_EXPANDED_BYTES if max_bytes is None else max_bytes)
    try:
        yield
    finally:
        _limit.reset(token)


def current_limit() -> int:
    """The bound on decompressed bytes per file in force here."""
    return _limit.get(DEFAULT_MAX_EXPANDED_BYTES)


def codec_of(path: Path) -> Codec | None:
    """The codec ``path`` is compressed with, from its first bytes; None when it is not."""
    try:
        with Path(path).open("rb") as f:
            return codec_for(f.read(MAGIC_BYTES))
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None


#: Characters DuckDB's file readers expand as a glob pattern in a file name; it has no
#: way to quote them, so such a file is never handed to DuckDB by name.
GLOB_CHARACTERS = frozenset("*?[]{}")


def duckdb_compression(path: Path) -> str | None:
    """What DuckDB's readers take as ``compression =`` for ``path``: 'none', a codec, or
    None when DuckDB cannot read it (correlate then reads it itself): a codec DuckDB
    lacks, or a name DuckDB would take as a glob pattern (``*.jsonl``, ``[ab]c.jsonl``),
    which would read other files of the folder instead of this one.

    >>> duckdb_compression(Path("[ab]c.jsonl")) is None
    True
    """
    if GLOB_CHARACTERS.intersection(str(path)):
        return None
    codec = codec_of(path)
    return "none" if codec is None else codec.duckdb


def without_codec_suffix(name: str) -> str:
    """``name`` less a compression suffix: ``q1.json.gz`` → ``q1.json``.

    >>> without_codec_suffix("q1.json.gz"), without_codec_suffix("q1.json")
    ('q1.json', 'q1.json')
    """
    for codec in CODECS:
        for suffix in codec.suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    return name


def open_bytes(path: Path) -> BinaryIO:
    """The file's content as a binary stream, decompressed when its first bytes say so.

    Reading it raises :class:`DamagedStreamError` or :class:`ExpansionLimitError`
    (both :class:`InputError`) rather than the codec's own exceptions.
    """
    path = Path(path)
    raw = path.open("rb")
    try:
        codec = codec_for(raw.read(MAGIC_BYTES))
        raw.seek(0)
        if codec is None:
            return raw
        inner = codec.open(raw)
    except BaseException:
        raw.close()
        raise
    return _Expanded(inner, raw, path, codec, current_limit())  # type: ignore[return-value]


class _Expanded(io.BufferedIOBase):
    """A codec's (buffered) stream that counts what it gives and speaks correlate's errors."""

    def __init__(self, inner: BinaryIO, raw: BinaryIO, path: Path, codec: Codec, limit: int):
        self._inner = inner
        self._raw = raw
        self._path = path
        self._codec = codec
        self._errors = codec.errors()
        self._limit = limit
        self.position = 0
        self._damage: DamagedStreamError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._damage is not None:
            raise self._damage
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(8 * 1024 * 1024):
                chunks.append(chunk)
            return b"".join(chunks)
        try:
            return self._take(self._inner.read, size)
        except DamagedStreamError as damage:
            return self._salvage(damage)

    def _salvage(self, damage: DamagedStreamError) -> bytes:
        """What still decompresses after ``position`` once the stream broke; the next read raises.

        A buffered read that fails loses the bytes it had already decompressed,
        so a file cut short is read again from its start in small steps, up to
        where it breaks: the complete lines before the cut are kept.
        """
        chunks: list[bytes] = []
        skip = self.position
        with self._path.open("rb") as raw:
            inner = self._codec.open(raw)
            read = getattr(inner, "read1", inner.read)
            try:
                while chunk := read(64 * 1024):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        chunks.append(chunk)
            except self._errors:
                pass
            finally:
                inner.close()
        data = b"".join(chunks)[: max(0, self._limit - self.position + 1)]
        self.position += len(data)
        self._damage = DamagedStreamError(
            self._codec.name, self._path, self.position, damage.detail
        )
        if not data:  # an empty read would say the file ended cleanly
            raise self._damage
        return data

    def read1(self, size: int = -1) -> bytes:
        return self._take(self._inner.read1, 64 * 1024 if size < 0 else size)  # type: ignore[attr-defined]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _take(self, read: Callable[[int], bytes], size: int) -> bytes:
        if size == 0:
            return b""
        # Never ask for more than one byte past the bound, so a bomb costs no more than that.
        room = self._limit - self.position + 1
        try:
            data = read(max(1, min(size, room)))
        except self._errors as exc:
            raise DamagedStreamError(self._codec.name, self._path, self.position, exc) from None
        self.position += len(data)
        if self.position > self._limit:
            raise ExpansionLimitError(self._codec.name, self._path, self._limit)
        return data

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                self._raw.close()
        super().close()


def read_head(path: Path, size: int = 64 * 1024) -> bytes:
    """Up to ``size`` bytes of the (decompressed) content; b'' for an empty file.

    A compressed file shorter than ``size`` that is cut short raises
    :class:`DamagedStreamError`: it has nothing more to give.
    """
    try:
        with open_bytes(path) as f:
            return f.read(size)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None


def read_all(path: Path) -> bytes:
    """The whole (decompressed) content of ``path``."""
    try:
        with open_bytes(path) as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.I)


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``2G``, ``512M``, ``1.5GiB``, ``4096`` (binary multiples).

    >>> parse_size("2G"), parse_size("512k"), parse_size("100")
    (2147483648, 524288, 100)
    """
    match = _SIZE.match(text)
    if match is None:
        raise InputError(f"not a size: {text!r} (write e.g. 2G, 512M or a number of bytes)")
    scale = 1024 ** "_KMGT".index(match[2].upper() or "_")
    return int(float(match[1]) * scale)


def format_size(n: int) -> str:
    """``n`` bytes for a person: ``2 GiB``, ``512 MiB``, ``100 bytes``.

    >>> format_size(2 * 1024**3), format_size(3 * 1024**2 // 2), format_size(100)
    ('2 GiB', '1.5 MiB', '100 bytes')
    """
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"
