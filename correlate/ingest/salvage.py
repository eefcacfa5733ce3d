"""A big file of OTLP/JSON lines with a few bad lines: the good ranges in bulk, the bad lines
on the careful path.

DuckDB's reader stops at the first bad line, and the line-by-line reader that
reports each problem with its line is an order of magnitude slower. So a
damaged uncompressed file is cut, at line ends, into pieces (temporary files:
DuckDB reads files, not byte ranges; line ends are looked for only near each
cut, and the bytes copied by the kernel). A piece whose bytes show a bad line
(one that cannot be a JSON object, or lacks the envelope's key) is cut again,
down to pieces of a few lines, which go to the careful path with their own line
numbers; every other piece is read by one bulk ``INSERT`` over the list of
pieces, a few spans that fail the checks placed at their lines by their ids
(:mod:`correlate.ingest.rejected`). Damage only a parser sees fails that read;
then one lenient read of all pieces marks those that may hold a problem, and
the same is done with the marked ones. The file stays one transaction, and every
good span arrives exactly once: the pieces cover the file without overlap.

Reading each piece strictly on its own instead, staged outside the file's
transaction (DuckDB has no savepoints, and a failed statement aborts its
transaction), was measured and costs more: a statement per piece, and moving
the staged rows in, cost more than the lenient read (benchmarks/README.md).
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from correlate.errors import CorrelateError
from correlate.fileio import iter_line_batches, json_error
from correlate.fileio.lines import UTF8_BOM
from correlate.ingest.bookkeeping import (
    add_file_row,
    nothing_read,
    record_problems,
    refuse_if_nothing_read,
    set_file_counts,
)
from correlate.ingest.canonical import canonical_select, typed_raw
from correlate.ingest.linescan import broken_line, last_line_is_bad, line_without
from correlate.ingest.rejected import Unplaced, insert_spans, rejected_problems, sweep_rejected
from correlate.ingest.report import PROBLEM_LIST_CAP
from correlate.ingest.spanformat import DOCUMENT_LIMIT
from correlate.ingest.spanlines import span_id_lines_in

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from correlate.fileio import LineBatch
    from correlate.ingest.report import FileReport
    from correlate.ingest.spanformat import SpanFormat
    from correlate.store import Store

    #: the careful path's reader of one batch of numbered lines
    LoadBatch = Callable[[Store, int, int, Path, SpanFormat, LineBatch, FileReport], None]

__all__ = ["SALVAGE_MIN_BYTES", "salvage"]

#: Files smaller than this go straight to the careful path: it is fast enough there.
SALVAGE_MIN_BYTES = 8 << 20
#: The first cut: pieces of about this size.
PIECE_BYTES = 32 << 20
#: A piece with a problem is cut into this many.
FAN_OUT = 8
#: A piece with a problem this small (or of one line) goes to the careful path.
CAREFUL_BYTES = 256 << 10


@dataclass
class _Piece:
    path: Path
    first_line: int  # the file's number of the piece's first line
    lines: int
    size: int


def salvage(
    store: Store,
    run_id: int,
    path: Path,
    sha: str,
    fmt: SpanFormat,
    report: FileReport,
    load_batch: LoadBatch,
    *,
    bad_last_line: bool = False,
    source: Path | None = None,
    require_some: bool = False,
    breaks: list[tuple[int, str]] | None = None,
    consume_source: bool = False,
) -> bool:
    """Read damaged ``path`` into run ``run_id``: good pieces in bulk, bad ones carefully.

    With ``bad_last_line`` (see :func:`~correlate.ingest.linescan.last_line_is_bad`)
    the rest of the file is first tried in bulk as it is. ``source`` is where its
    bytes are read (an uncompressed copy of ``path``), if not from ``path`` itself;
    problems name ``path``. False (nothing kept) when the file does not suit this
    path; the caller then reads it line by line. ``load_batch`` is the careful
    path's reader of one batch of numbered lines. ``require_some``: as the careful
    path, a file from which nothing could be read is an :class:`InputError`.
    ``breaks``: problems (line, reason) after ``source``'s lines, where the compressed
    stream it was copied from breaks. ``consume_source``: ``source`` is a temporary
    copy, cut short as its pieces are made (it is empty afterwards).
    """
    source = path if source is None else source
    if fmt.fast_docs is None or fmt.fast_compression is None or fmt.pieces_docs is None:
        return False
    if fmt.fast_compression(source) != "none" or _may_be_one_document(path, source):
        return False
    try:
        folder = Path(tempfile.mkdtemp(prefix="correlate-salvage-"))
    except OSError:  # no temporary folder for the pieces: read line by line
        return False
    try:
        pieces = _cut(source, folder, 0, PIECE_BYTES, consume=consume_source)
        commit = partial(
            _commit, store, run_id, path, sha, fmt, report, load_batch,
            require_some=require_some, breaks=breaks,
        )  # fmt: skip
        rest, last = pieces[:-1], pieces[-1:]
        if bad_last_line and rest and commit(rest, last):
            return True
        if fmt.envelope_key is not None:
            # First on what the bytes show, which spares a lenient read of every piece;
            # damage only a parser sees fails the bulk read, and the pieces are then read.
            # Bytes that show nothing would only repeat the read that sent the file here.
            good, bad = _sort_pieces(store, fmt, pieces, folder, by_bytes=True)
            if bad and commit(good, bad):
                return True
            pieces = sorted(good + bad, key=lambda p: p.first_line)
        good, bad = _sort_pieces(store, fmt, pieces, folder)
        return commit(good, bad)
    except OSError:
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _may_be_one_document(path: Path, source: Path) -> bool:
    """True when the careful path may read the file as one pretty-printed JSON document
    rather than as lines, which the pieces cannot do.

    It does so when the file's first non-blank line is not JSON on its own and the
    whole file is (:func:`~correlate.ingest.spanformat.json_batches`). The whole file
    is not parsed here: the top-level value of such a document opens on its first line
    and closes on its last non-blank one, which (a JSON string never holds a raw
    newline) then has a closing bracket without its opening one, so is not JSON on its
    own either. A file whose first or last non-blank line is JSON is read as lines.
    """
    if path.stat().st_size > DOCUMENT_LIMIT or source.stat().st_size == 0:
        return False
    with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return not _json_line(data, first=True) and not _json_line(data, first=False)


def _json_line(data: mmap.mmap, *, first: bool) -> bool:
    """True when the first (or last) non-blank line of ``data`` is JSON on its own."""
    for start, stop in _lines_from_start(data) if first else _lines_from_end(data):
        raw = data[start:stop]
        if start == 0 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if text.strip():
            return json_error(text) is None
    return False


def _lines_from_start(data: mmap.mmap) -> Iterator[tuple[int, int]]:
    """(start, stop) of each line of ``data``, first to last, without its newline."""
    start, end = 0, len(data)
    while start < end:
        stop = data.find(b"\n", start)
        stop = end if stop < 0 else stop
        yield start, stop
        start = stop + 1


def _lines_from_end(data: mmap.mmap) -> Iterator[tuple[int, int]]:
    """(start, stop) of each line of ``data``, last to first, without its newline."""
    stop = len(data)
    while stop > 0:
        start = data.rfind(b"\n", 0, stop) + 1
        yield start, stop
        stop = start - 1


def _commit(
    store: Store,
    run_id: int,
    path: Path,
    sha: str,
    fmt: SpanFormat,
    report: FileReport,
    load_batch: LoadBatch,
    good: list[_Piece],
    bad: list[_Piece],
    *,
    require_some: bool = False,
    breaks: list[tuple[int, str]] | None = None,
) -> bool:
    """In one transaction: the file's row, ``good`` pieces in bulk, ``bad`` ones line by
    line, then ``breaks``."""
    import duckdb

    # Order within the file does not matter to the bulk insert; not keeping it lets DuckDB
    # stream it in bounded memory. Set aside outside the transaction: a statement that
    # fails aborts it, and one to restore the setting would fail there too.
    store.con.execute("SET preserve_insertion_order = false")
    try:
        with store.atomic():
            file_id = add_file_row(store, run_id, path, sha, fmt.name)
            read = _insert_good(store, run_id, file_id, fmt, good)
            places = [(p.path, p.first_line) for p in good]
            rejected = rejected_problems(store, file_id, partial(span_id_lines_in, places))
            report.spans_read, report.spans_added = read, read - len(rejected)
            report.spans_skipped = len(rejected)
            for piece in bad:
                shift = piece.first_line - 1
                for batch in iter_line_batches(piece.path, text_start=piece.first_line == 1):
                    batch.numbers = [n + shift for n in batch.numbers]
                    batch.bad = [(n + shift, reason) for n, reason in batch.bad]
                    batch.notes = [(n + shift, note) for n, note in batch.notes]
                    if batch.unterminated_line is not None:
                        batch.unterminated_line += shift
                    load_batch(store, run_id, file_id, path, fmt, batch, report)
            listed = report.problems
            if rejected:
                report.problems = []
            record_problems(store, file_id, path, [*rejected, *(breaks or ())], report)
            if rejected:  # listed at their lines among the others, as the careful path does
                merged = sorted(
                    [*listed, *report.problems], key=lambda p: (p.line is None, p.line or 0)
                )
                report.problems = merged[:PROBLEM_LIST_CAP]
            set_file_counts(store, file_id, report.spans_read, report.spans_added, report.skipped)
            if require_some and nothing_read(report):
                raise _NothingRead  # the transaction rolls back
    except _NothingRead:
        refuse_if_nothing_read(report)
        raise AssertionError("refuse_if_nothing_read did not refuse") from None
    except (duckdb.Error, UnicodeDecodeError, CorrelateError, Unplaced):
        report.spans_read = report.spans_added = report.skipped = report.spans_skipped = 0
        report.problems.clear()
        return False
    finally:
        store.con.execute("RESET preserve_insertion_order")
    if rejected:
        sweep_rejected(store, file_id)
    return True


class _NothingRead(Exception):
    """Raised in :func:`_commit`'s transaction to roll it back before refusing the file."""


def _cut(
    source: Path, folder: Path, first_line: int, piece_bytes: int, *, consume: bool = False
) -> list[_Piece]:
    """Copy ``source`` into pieces of about ``piece_bytes``, each ending at a line's end.

    A piece ends at the last line end within its size (only a line longer than
    the size makes a longer piece), so a piece of two lines or more is always cut
    into smaller ones. A last line without a final newline is a piece of its own.
    Only the bytes near each cut are looked at for a line end, and lines are
    counted newline by newline with ``find`` (memchr on the mapped file, no copy
    through Python); the copy itself is the kernel's (``copy_file_range``) where
    it has one. With ``consume`` (``source`` is a temporary copy of ours), pieces
    are copied from the end and ``source`` cut short behind each, so the pieces
    and what is left of it never take much more room than it did (a temporary
    folder in memory holds the file once, not twice); it ends empty.
    """
    if source.stat().st_size == 0:
        return []
    cuts: list[tuple[int, int, int]] = []  # offset, size and lines of each piece
    with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        offset = 0
        for size in _piece_sizes(data, piece_bytes):
            cuts.append((offset, size, _count_lines(data, offset, offset + size)))
            if _DONT_NEED is not None:  # the pages looked at count in the process's RSS
                page = offset - offset % mmap.PAGESIZE
                data.madvise(_DONT_NEED, page, offset + size - page)
            offset += size
    placed: list[tuple[_Piece, int]] = []  # each piece and its offset in ``source``
    line = first_line + 1
    for offset, size, lines in cuts:
        placed.append((_Piece(folder / f"p{line:012d}-{lines}.jsonl", line, lines, size), offset))
        line += lines
    with source.open("rb") as f:
        for piece, offset in reversed(placed) if consume else placed:
            with piece.path.open("wb") as out:
                _copy_range(f, out, offset, piece.size)
            if consume:
                os.truncate(source, offset)
    pieces = [piece for piece, _ in placed]
    return pieces


def _piece_sizes(data: mmap.mmap, piece_bytes: int) -> Iterator[int]:
    """The sizes of the consecutive pieces of ``data`` that :func:`_cut` makes."""
    start, end = 0, len(data)
    while start < end:
        stop = start + piece_bytes
        if stop >= end and data[end - 1] == _NEWLINE:
            stop = end
        else:
            cut = data.rfind(b"\n", start, min(stop, end))
            if cut < 0:  # one line longer than a piece, or the unterminated last one
                cut = data.find(b"\n", min(stop, end), end)
            stop = end if cut < 0 else cut + 1
        yield stop - start
        start = stop


_NEWLINE = ord("\n")
#: Where the platform has it (not on Windows).
_DONT_NEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


def _count_lines(data: mmap.mmap, start: int, stop: int) -> int:
    """The lines of ``data[start:stop]``, a last one without a newline included.

    Newline by newline: a line of OTLP/JSON holds a whole batch of spans, so there
    are few, and ``find`` skips the bytes between them at memory speed, where
    ``bytes.count`` over copied blocks took most of the cut's time.
    """
    count = 0
    at = data.find(b"\n", start, stop)
    while at >= 0:
        count += 1
        at = data.find(b"\n", at + 1, stop)
    return count + (stop > start and data[stop - 1] != _NEWLINE)


def _copy_range(source: BinaryIO, target: BinaryIO, offset: int, size: int) -> None:
    """Append ``size`` bytes of ``source`` from ``offset`` to ``target``: in the kernel
    where it can (no copy through Python), else read and written in blocks."""
    copy = getattr(os, "copy_file_range", None)
    while size > 0 and copy is not None:
        try:
            n = copy(source.fileno(), target.fileno(), size, offset)
        except OSError:  # not between these file systems, or not on this kernel
            break
        if n <= 0:
            break
        offset += n
        size -= n
    while size > 0:
        block = os.pread(source.fileno(), min(size, 8 << 20), offset)
        if not block:
            raise OSError(f"{source.name} is shorter than when it was cut")
        target.write(block)
        offset += len(block)
        size -= len(block)


def _sort_pieces(
    store: Store, fmt: SpanFormat, pieces: list[_Piece], folder: Path, *, by_bytes: bool = False
) -> tuple[list[_Piece], list[_Piece]]:
    """(pieces DuckDB reads without a problem, small pieces with one), each in file order;
    ``by_bytes``: judged by their bytes alone (:func:`_byte_suspects`), not by a read."""
    good: list[_Piece] = []
    bad: list[_Piece] = []
    suspects = _byte_suspects(fmt, pieces) if by_bytes else _suspects(store, fmt, pieces)
    for i, piece in enumerate(pieces):
        if i not in suspects and not _bom_inside(piece) and (suspects or _clean(store, fmt, piece)):
            good.append(piece)
        elif piece.lines <= 1 or piece.size <= CAREFUL_BYTES:
            bad.append(piece)
        else:
            smaller = _cut(
                piece.path, folder, piece.first_line - 1, -(-piece.size // FAN_OUT), consume=True
            )
            piece.path.unlink()
            more_good, more_bad = _sort_pieces(store, fmt, smaller, folder, by_bytes=by_bytes)
            good.extend(more_good)
            bad.extend(more_bad)
    good.sort(key=lambda p: p.first_line)
    bad.sort(key=lambda p: p.first_line)
    return good, bad


def _bom_inside(piece: _Piece) -> bool:
    """True when ``piece`` starts with a UTF-8 byte order mark that is not its file's:
    DuckDB would skip it as a mark, where reading the whole file finds a bad line."""
    if piece.first_line == 1:
        return False
    with piece.path.open("rb") as f:
        return f.read(len(UTF8_BOM)) == UTF8_BOM


def _suspects(store: Store, fmt: SpanFormat, pieces: list[_Piece]) -> set[int]:
    """The positions of pieces that may hold a problem, found in one lenient read of them all.

    One pass over the parsed docs, nothing unnested: a doc DuckDB could not read,
    or one of whose spans fails a rough form of the span checks, marks its piece.
    A problem this misses (a value of the wrong type read as NULL) makes the
    strict bulk read fail, and the caller then reads the file line by line, so
    nothing is lost. An empty set means "no answer": each piece is checked alone.
    """
    import duckdb
    import pyarrow as pa

    if fmt.pieces_docs is None or fmt.suspect_doc_sql is None:
        return set()
    con = store.con.cursor()
    con.register(
        "_pieces",
        pa.table({"name": [str(p.path) for p in pieces], "pos": range(len(pieces))}),
    )
    docs = fmt.pieces_docs([p.path for p in pieces], "_pieces", lenient=True)
    try:
        found = con.execute(
            f"SELECT DISTINCT line_no FROM ({docs}) WHERE {fmt.suspect_doc_sql('doc')}"
        ).fetchall()
    except (duckdb.Error, UnicodeDecodeError):
        return set()
    finally:
        con.close()
    # -1: a marker that the answer is known (possibly "none of them")
    return {int(i) for (i,) in found} | {-1}


def _byte_suspects(fmt: SpanFormat, pieces: list[_Piece]) -> set[int]:
    """The positions of pieces whose bytes show a problem (as :func:`_suspects` answers):
    a line that cannot be a JSON object (:func:`~correlate.ingest.linescan.broken_line`),
    a last line cut short, or fewer of the format's envelope key (``"resourceSpans"``)
    than lines that are not blank (a line of another signal, JSON without the envelope).
    Damage only a parser sees (a key twice on one line and none on another, bad JSON
    between braces) is not seen here: the bulk read of the pieces then fails."""
    key = fmt.envelope_key
    assert key is not None
    return {-1} | {
        i
        for i, piece in enumerate(pieces)
        if broken_line(piece.path) is not None
        or last_line_is_bad(piece.path)
        or line_without(piece.path, key)
    }


def _clean(store: Store, fmt: SpanFormat, piece: _Piece) -> bool:
    """True when DuckDB reads every record of ``piece`` without a problem (nothing is written)."""
    import duckdb

    assert fmt.fast_docs is not None
    docs = fmt.fast_docs(piece.path)
    if docs is None:
        return False
    raw = fmt.raw_sql(f"({docs})")
    try:
        store.con.cursor().execute(
            f"SELECT count(*) FROM ({canonical_select(f'({typed_raw(raw)})')}) "
            "WHERE CASE WHEN problem IS NULL THEN true ELSE error('correlate: bad record') END"
        ).fetchone()
    except (duckdb.Error, UnicodeDecodeError):
        return False
    return True


def _insert_good(
    store: Store, run_id: int, file_id: int, fmt: SpanFormat, good: list[_Piece]
) -> int:
    if not good:
        return 0
    import pyarrow as pa

    assert fmt.pieces_docs is not None
    store.con.register(
        "_good_pieces",
        pa.table({"name": [str(p.path) for p in good], "pos": range(len(good))}),
    )
    raw = fmt.raw_sql(f"({fmt.pieces_docs([p.path for p in good], '_good_pieces', lenient=False)})")
    # Order does not matter here (see _commit, which sets preserve_insertion_order aside).
    spans = canonical_select(f"({typed_raw(raw)})")
    return insert_spans(store.con, spans, run_id, file_id, strict=False)
