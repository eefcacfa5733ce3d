"""What the load-generator readers share: CSV records with their line numbers, and times.

CSV is split into records by Python's :mod:`csv` (which knows quoted fields
that span lines, like a Locust traceback) and handed to DuckDB as text
columns a batch at a time; typing, checking and inserting is SQL. Every
record either becomes a row or comes back as a problem with the line it
starts on.
"""

from __future__ import annotations

import csv
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from correlate.errors import InputError
from correlate.fileio import open_bytes

if TYPE_CHECKING:
    import duckdb

#: Records per batch handed to DuckDB.
BATCH_ROWS = 50_000

CUT_SHORT = "last line is cut short (no final newline; was the file still being written?)"


@dataclass
class CsvBatch:
    """Consecutive records of a CSV file: a text column per header name, plus ``line_no``."""

    columns: dict[str, list[str | None]]
    #: (line, reason) for records that could not be split into the header's fields
    bad: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.columns["line_no"])


def csv_batches(
    path: Path,
    names: tuple[str, ...] | None = None,
    *,
    required: tuple[str, ...] = (),
    what: str = "this format",
) -> Iterator[CsvBatch]:
    """The records of ``path``, whose header is read from its first line.

    ``names`` are the header names the caller uses (None: all of them); one
    the file lacks gives a column of nulls (an older tool version, say). A
    header without all of ``required`` is another file than ``what``: an
    error, even with no record below it. Records with more or
    fewer fields than the header, bytes that are not UTF-8, and a last
    record without its final newline are problems, never rows.
    """
    try:
        stream = open_bytes(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", path) from None
    with stream:
        tail = _Tail()
        reader = csv.reader(tail.lines(stream, path), strict=False)
        header = _next_record(reader, path)
        if header is None:
            return
        if _SURROGATE.search("".join(header)):
            raise InputError("not CSV text: its header line is not UTF-8 (a binary file?)", path, 1)
        index = {name.strip(): i for i, name in enumerate(header)}
        missing = [name for name in required if name not in index]
        if missing:
            # Another tool's CSV (or another of the same tool's) that shares a column or two.
            has = ", ".join(name for name in index if name)
            raise InputError(
                f"not {what}: its header line has no {', '.join(missing)} column "
                f"(it has: {has[:120]}{'…' if len(has) > 120 else ''}); "
                "pass another --format, or leave --format out to detect it",
                path,
                1,
            )
        if names and not index.keys() & set(names):
            # A header line of none of the columns read: another format's file
            # (every record would be a row of nulls, and a file of one line none).
            shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
            raise InputError(f"no column this format reads in its header line ({shown})", path, 1)
        width = len(header)
        yield from _records(
            reader, index, width, names or tuple(n for n in index if n and n != "line_no"), tail
        )


#: what a byte that is not UTF-8 becomes when decoded with errors="surrogateescape"
_SURROGATE = re.compile("[\udc80-\udcff]")


class _Tail:
    """Remembers the last physical line read, to tell a cut-short file."""

    def __init__(self) -> None:
        self.last = ""
        self.line_no = 0

    def lines(self, stream: BinaryIO, path: Path) -> Iterator[str]:
        # Lines end at \n only, as in every other reader here, so line numbers agree;
        # a stray \r inside an unquoted field is then the csv module's error, a problem.
        try:
            for raw in stream:
                line = raw.decode("utf-8", errors="surrogateescape")
                if self.line_no == 0:
                    line = line.removeprefix("\ufeff")
                self.last = line
                self.line_no += 1
                yield line
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(
                f"compressed stream is damaged or cut short ({exc})", path, self.line_no + 1
            ) from None


def _next_record(reader: Iterator[list[str]], path: Path) -> list[str] | None:
    for record in reader:
        if record:
            return record
    return None


def _records(
    reader: Iterator[list[str]],
    index: dict[str, int],
    width: int,
    names: tuple[str, ...],
    tail: _Tail,
) -> Iterator[CsvBatch]:
    batch = _empty(names)
    before = tail.line_no  # lines read before the next record starts
    # Each record is held until the next is read: only then is it known to be the last.
    pending: tuple[int, list[str]] | None = None
    while True:
        try:
            record = next(reader, None)
        except csv.Error as exc:
            batch.bad.append((before + 1, f"not a CSV record ({exc})"))
            if tail.line_no == before:
                break  # the reader consumed nothing: it cannot go on
            before = tail.line_no
            continue
        if pending is not None:
            if record is None and not tail.last.endswith("\n"):
                batch.bad.append((pending[0], CUT_SHORT))
            else:
                _add(batch, *pending, index, width, names)
            pending = None
            if batch.size + len(batch.bad) >= BATCH_ROWS:
                yield batch
                batch = _empty(names)
        if record is None:
            break
        start = before + 1
        before = tail.line_no
        if record and record != [""]:
            pending = (start, record)
    yield batch


def _empty(names: tuple[str, ...]) -> CsvBatch:
    return CsvBatch({"line_no": [], **{name: [] for name in names}})


def _add(
    batch: CsvBatch,
    line: int,
    record: list[str],
    index: dict[str, int],
    width: int,
    names: tuple[str, ...],
) -> None:
    if len(record) != width:
        batch.bad.append((line, f"{len(record)} fields where the header has {width}"))
        return
    for value in record:
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            bad = next(ch for ch in value if "\udc80" <= ch <= "\udcff")
            batch.bad.append((line, f"not UTF-8 text (byte 0x{ord(bad) - 0xDC00:02x})"))
            return
        if "\x00" in value:
            batch.bad.append((line, "a NUL byte in a field"))
            return
    batch.columns["line_no"].append(str(line))
    for name in names:
        i = index.get(name)
        batch.columns[name].append(record[i] if i is not None else None)


def register_batch(con: duckdb.DuckDBPyConnection, view: str, batch: CsvBatch) -> None:
    """Register ``batch`` as ``view``: ``line_no BIGINT`` and a VARCHAR column per name."""
    import pyarrow as pa

    columns = {
        name: pa.array(
            [int(v) for v in values if v is not None] if name == "line_no" else values,
            pa.int64() if name == "line_no" else pa.large_string(),
        )
        for name, values in batch.columns.items()
    }
    con.register(view, pa.table(columns))


def define_time_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Temp macros the readers' SQL uses: RFC 3339 text and epoch numbers to Unix nanoseconds.

    ``correlate_rfc3339_ns(text)``: ``2026-11-25T08:17:50.320335411Z`` (any
    offset, up to nanoseconds) to BIGINT nanoseconds; NULL when it is not
    such a time. ``correlate_epoch_ns(text)``: an integer in seconds,
    milliseconds, microseconds or nanoseconds (told apart by size: a time
    after 1973 in each unit) or an RFC 3339 time, to nanoseconds.
    """
    con.execute(
        r"""
        CREATE OR REPLACE TEMP MACRO correlate_rfc3339_ns(ts) AS (
            WITH p AS (
                SELECT regexp_extract(
                    ts,
                    '^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$',
                    ['d', 't', 'f', 'z']) AS m
            )
            SELECT CASE WHEN m.d <> '' THEN try(
                epoch_ns(TRY_CAST(m.d || ' ' || m.t AS TIMESTAMP))
                + CAST(rpad(coalesce(nullif(substr(m.f, 2), ''), '0'), 9, '0') AS BIGINT)
                - CASE WHEN upper(m.z) = 'Z' THEN 0
                       ELSE (CASE WHEN m.z[1] = '-' THEN -1 ELSE 1 END)
                            * (CAST(m.z[2:3] AS BIGINT) * 3600 + CAST(m.z[5:6] AS BIGINT) * 60)
                            * 1000000000 END
            ) END FROM p
        )
        """
    )
    con.execute(
        r"""
        CREATE OR REPLACE TEMP MACRO correlate_epoch_ns(ts) AS (
            CASE WHEN regexp_full_match(ts, '[0-9]{1,19}') THEN (
                WITH n AS (SELECT TRY_CAST(ts AS BIGINT) AS v)
                SELECT CASE WHEN v < 100000000000 THEN try(v * 1000000000)
                            WHEN v < 100000000000000 THEN try(v * 1000000)
                            WHEN v < 100000000000000000 THEN try(v * 1000)
                            ELSE v END FROM n)
            ELSE correlate_rfc3339_ns(ts) END
        )
        """
    )


__all__ = ["CUT_SHORT", "CsvBatch", "csv_batches", "define_time_macros", "register_batch"]
