"""Reading one span file into the ``spans`` table: DuckDB's fast path, else batch by batch.

Rules: the file is read in one transaction; a malformed record is skipped,
counted and kept in the ``problems`` table as ``FILE:LINE: reason`` (or, with
``strict``, fails the file and commits nothing from it); a file the run
already holds adds nothing. Parsing and flattening run inside DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.fileio import LineBatch, codec_of, format_size, json_error
from correlate.fileio.expand import expanded_copy
from correlate.ingest.bookkeeping import (
    add_file_row,
    background_digest,
    file_digest,
    holds_file,
    holds_size,
    new_file_id,
    record_problems,
    refuse_if_nothing_read,
    set_file_counts,
)
from correlate.ingest.canonical import canonical_select, typed_raw
from correlate.ingest.jsonschema import sql_string
from correlate.ingest.linescan import broken_line, last_line_is_bad
from correlate.ingest.progress import Progress, polled_progress
from correlate.ingest.rejected import Unplaced, insert_spans, rejected_problems, sweep_rejected
from correlate.ingest.report import FileReport
from correlate.ingest.salvage import SALVAGE_MIN_BYTES, salvage
from correlate.ingest.spanlines import span_id_lines
from correlate.schema import SPAN_COLUMN_NAMES

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from correlate.ingest.spanformat import SpanFormat
    from correlate.store import Store

__all__ = ["ingest_span_file"]

_typed_raw = typed_raw


def ingest_span_file(
    store: Store,
    run_id: int,
    path: Path,
    fmt: SpanFormat,
    strict: bool,
    progress: Progress | None,
    *,
    require_some: bool = False,
) -> FileReport:
    """Read span file ``path`` in format ``fmt`` into run ``run_id``.

    ``require_some``: a file from which no record at all could be read is an
    :class:`InputError` and keeps nothing (for a file named on its own).
    """
    size = path.stat().st_size
    report = FileReport(path, fmt.name)
    digest: Callable[[], str]
    if size >= BACKGROUND_DIGEST_BYTES and not holds_size(store, run_id, size):
        # No file of this size in the run, so none with this content: the digest
        # is only needed for the files row, and is computed while DuckDB reads.
        digest = background_digest(path, size)
    else:
        sha = file_digest(path, size)
        if holds_file(store, run_id, sha):
            report.already_ingested = True
            if progress is not None:
                progress.advance(size)
            return report
        digest = lambda: sha  # noqa: E731
    bulk = partial(
        _bulk, store, run_id, path, size=size, digest=digest, fmt=fmt, strict=strict,
        report=report, progress=progress, require_some=require_some,
    )  # fmt: skip
    codec = codec_of(path) if fmt.fast_docs is not None else None
    if codec is not None and codec.duckdb is None and size >= EXPAND_MIN_BYTES:
        # A codec DuckDB cannot read: an uncompressed copy is read in bulk rather than
        # the file line by line (correlate.fileio.expand).
        breaks: list[tuple[int, str]] = []
        with expanded_copy(path, breaks) as copy:
            if copy is not None and bulk(copy, breaks=breaks):
                return report
    elif bulk(path):
        return report
    sha = digest()
    done = 0
    with store.atomic():
        file_id = add_file_row(store, run_id, path, sha, fmt.name)
        for batch in fmt.batches(path):
            _load_batch(store, run_id, file_id, path, fmt, batch, report)
            if strict and report.skipped:
                first = report.problems[0]
                raise InputError(
                    first.reason + " (--strict: nothing from this file was kept)", path, first.line
                )
            if progress is not None and batch.position > done:
                progress.advance(min(batch.position, size) - done)
                done = min(batch.position, size)
        set_file_counts(store, file_id, report.spans_read, report.spans_added, report.skipped)
        if require_some:
            refuse_if_nothing_read(report)
    if progress is not None and size > done:
        progress.advance(size - done)
    return report


#: From this compressed size on, a file DuckDB cannot decompress is read from an
#: uncompressed copy (smaller ones are read line by line about as fast).
EXPAND_MIN_BYTES = 1 << 20


def _bulk(
    store: Store,
    run_id: int,
    path: Path,
    source: Path,
    size: int,
    digest: Callable[[], str],
    fmt: SpanFormat,
    strict: bool,
    report: FileReport,
    progress: Progress | None,
    require_some: bool,
    breaks: list[tuple[int, str]] | None = None,
) -> bool:
    """Read ``path`` in bulk from ``source`` (itself, or an uncompressed copy of it): in one
    statement when clean, in pieces around its bad lines when not. False (nothing kept)
    when it must be read line by line; problems name ``path``, whatever ``source`` is.
    ``breaks``: where the stream ``source`` was copied from breaks (line, reason), after
    the lines ``source`` holds."""
    breaks = [] if breaks is None else breaks
    fast = fmt.fast_docs(source) if fmt.fast_docs is not None else None
    if fast is None:
        return False
    salvage_it = not strict and source.stat().st_size >= SALVAGE_MIN_BYTES
    if breaks and not salvage_it:
        return False
    compression = fmt.fast_compression(source) if fmt.fast_compression else None
    if source != path and compression != "none":
        # A copy compressed again inside (a .gz in a .zst): DuckDB would open that layer
        # too, where the careful path reads its bytes as they are.
        return False
    # Damage seen in the bytes spares a bulk read that would fail: a file cut while
    # it was written fails it only at its very end, a broken line wherever it is. (A
    # line of another signal is not looked for here: the file is the user's, which is
    # read, not mapped, and counting a key as it is read costs a second per GB.)
    bad_last_line = broken = False
    if salvage_it and compression == "none":
        broken = broken_line(source) is not None
        bad_last_line = not broken and last_line_is_bad(source)
    if not (bad_last_line or broken) and _ingest_clean(
        store, run_id, path, size, digest, fmt, fast, report, progress, breaks, require_some,
        source=source, strict=strict,
    ):  # fmt: skip
        return True
    if not salvage_it:
        return False
    sha = digest()
    # A damaged gzip file (which DuckDB reads as it is) is salvaged from an uncompressed
    # copy: only that can be cut into pieces.
    expand = compression not in (None, "none")
    with expanded_copy(source, breaks) if expand else nullcontext(source) as plain:
        if plain is None:
            return False
        done = salvage(
            store,
            run_id,
            path,
            sha,
            fmt,
            report,
            _load_batch,
            bad_last_line=bad_last_line or (expand and last_line_is_bad(plain)),
            source=plain,
            require_some=require_some,
            breaks=breaks,
            consume_source=plain != path,  # a copy of ours: its room goes to the pieces
        )
    if done and progress is not None:
        progress.advance(size)
    return done


#: From this size on, a file new to its run is hashed while it is read (see
#: :func:`~correlate.ingest.bookkeeping.background_digest`); a thread is not worth
#: starting for less.
BACKGROUND_DIGEST_BYTES = 16 * 1024 * 1024


def _ingest_clean(
    store: Store,
    run_id: int,
    path: Path,
    size: int,
    digest: Callable[[], str],
    fmt: SpanFormat,
    docs_sql: str,
    report: FileReport,
    progress: Progress | None,
    breaks: list[tuple[int, str]],
    require_some: bool,
    *,
    source: Path,
    strict: bool,
) -> bool:
    """Read a whole file in one streaming INSERT, DuckDB parsing it in parallel.

    A few spans the checks reject are kept out of the run and reported at their
    lines without a second parse of the file (:mod:`correlate.ingest.rejected`; a
    pass over its bytes, decompressed again if need be).

    A record DuckDB cannot read, more than a few rejected spans or any with ``strict``
    (both end the statement there), or one whose line is not found that way roll the
    transaction back, and False sends the file down the careful line-by-line path,
    which reports exactly where each problem is. Clean files, the common case, are
    read once at DuckDB's own speed. ``digest`` gives the SHA-256 of the file's first
    ``size`` bytes, its size when the read began. ``breaks``: problems after the
    file's lines (where the stream it was copied from breaks), kept with its spans;
    then a file named on its own (``require_some``) with no span is left to the
    careful path, which refuses it.
    """
    import duckdb

    con = store.con
    raw = fmt.raw_sql(f"({docs_sql})")
    # Order within the file does not matter here; not keeping it lets DuckDB
    # stream the insert in bounded memory. (A setting, not part of the transaction.)
    con.execute("SET preserve_insertion_order = false")
    try:
        with store.atomic():
            file_id = new_file_id(store)
            with polled_progress(con, size, progress):
                spans = canonical_select(f"({_typed_raw(raw)})")
                read = insert_spans(con, spans, run_id, file_id, strict=strict)
            rejected = rejected_problems(store, file_id, partial(span_id_lines, source))
            added = read - len(rejected)
            if require_some and not added and (breaks or rejected):
                raise _NothingAdded  # the transaction rolls back
            add_file_row(store, run_id, path, digest(), fmt.name, file_id=file_id, size=size)
            record_problems(store, file_id, path, [*breaks, *rejected], report)
            set_file_counts(store, file_id, read, added, len(breaks) + len(rejected))
    except (duckdb.Error, UnicodeDecodeError, _NothingAdded, Unplaced):
        report.skipped = 0
        report.problems.clear()
        # DuckDB's message may quote the bad record cut inside a UTF-8 character,
        # and the binding then fails to decode the message itself.
        return False
    finally:
        con.execute("RESET preserve_insertion_order")
    if rejected:
        sweep_rejected(store, file_id)
    report.spans_read = read
    report.spans_added = added
    report.spans_skipped = len(rejected)
    return True


class _NothingAdded(Exception):
    """Raised in :func:`_ingest_clean`'s transaction to roll it back (and read the file
    the careful way)."""


def _load_batch(
    store: Store,
    run_id: int,
    file_id: int,
    path: Path,
    fmt: SpanFormat,
    batch: LineBatch,
    report: FileReport,
) -> None:
    con = store.con
    problems: list[tuple[int | None, str]] = list(batch.bad)
    notes: list[tuple[int | None, str]] = list(batch.notes)
    if fmt.repair is not None:
        for k, text in enumerate(batch.lines):
            repaired = fmt.repair(text)
            if repaired is not None:
                batch.lines[k] = repaired.text
                problems.extend((batch.numbers[k], p) for p in repaired.problems)
                notes.extend((batch.numbers[k], n) for n in repaired.notes)
    for parsed in _parsed(store, run_id, file_id, fmt, batch, batch.numbers, batch.lines):
        problems.extend(parsed.problems)
        report.spans_read += parsed.read
        report.spans_added += parsed.added
        report.spans_skipped += parsed.skipped_spans
        if parsed.good is not None:
            # Inserted as a relation, not through a registered view: one registered in
            # the file's transaction is kept, with its table, until the transaction ends.
            con.from_arrow(parsed.good).insert_into("spans")
    record_problems(store, file_id, path, problems, report)
    record_problems(store, file_id, path, notes, report, skipped=False)


@dataclass
class _Parsed:
    """What parsing some of a batch's lines gave."""

    good: pa.Table | None  # the good spans as ``spans`` rows
    problems: list[tuple[int | None, str]]
    read: int = 0
    added: int = 0
    skipped_spans: int = 0


def _parsed(
    store: Store,
    run_id: int,
    file_id: int,
    fmt: SpanFormat,
    batch: LineBatch,
    numbers: list[int],
    lines: list[str],
) -> Iterator[_Parsed]:
    """The batch's ``lines`` parsed, on a connection of their own outside the file's one
    transaction (a temporary table or view replaced inside it is kept until it ends, and
    with it the memory of every batch of the file). Lines DuckDB cannot parse within its
    memory limit are parsed half at a time; a single such line is a problem."""
    import duckdb
    import pyarrow as pa

    if not lines:
        return
    table = pa.table(
        {"line_no": pa.array(numbers, pa.int64()), "text": pa.array(lines, pa.large_string())}
    )
    try:
        with store.con.cursor() as work:
            parsed = _parse_batch(work, table, run_id, file_id, fmt, batch)
    except duckdb.OutOfMemoryException:
        del table
        if len(lines) == 1:
            limit = store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
            yield _Parsed(
                None,
                [
                    (
                        numbers[0],
                        f"a record of {format_size(len(lines[0]))}, more than DuckDB can parse "
                        f"within its memory limit ({limit}); raise it with {store.memory_limit_var}",
                    )
                ],
            )
            return
        half = len(lines) // 2
        yield from _parsed(store, run_id, file_id, fmt, batch, numbers[:half], lines[:half])
        yield from _parsed(store, run_id, file_id, fmt, batch, numbers[half:], lines[half:])
        return
    yield parsed


def _parse_batch(
    work: duckdb.DuckDBPyConnection,
    table: pa.Table,
    run_id: int,
    file_id: int,
    fmt: SpanFormat,
    batch: LineBatch,
) -> _Parsed:
    """The good spans of ``table`` (its lines, numbered), the problems of the others,
    and the counts."""
    problems: list[tuple[int | None, str]] = []
    work.register("_batch_lines", table)
    work.execute(
        "CREATE TEMP TABLE _batch_docs AS "
        f"SELECT line_no, try(from_json(text, {sql_string(fmt.structure)})) AS doc "
        "FROM _batch_lines"
    )
    work.unregister("_batch_lines")
    bad_docs = work.execute("SELECT line_no FROM _batch_docs WHERE doc IS NULL").fetchall()
    problems.extend(_malformed(line, batch) for (line,) in bad_docs)
    problems.extend(work.execute(fmt.envelope_problems_sql("_batch_docs")).fetchall())
    raw = fmt.raw_sql("(SELECT * FROM _batch_docs WHERE doc IS NOT NULL)")
    work.execute("CREATE TEMP TABLE _batch_spans AS " + canonical_select(f"({_typed_raw(raw)})"))
    span_problems = work.execute(
        "SELECT line_no, coalesce('span ' || span_id || ': ', '') || problem "
        "FROM _batch_spans WHERE problem IS NOT NULL ORDER BY line_no"
    ).fetchall()
    problems.extend(span_problems)
    [(read, added)] = work.execute(
        "SELECT count(*), count(*) FILTER (WHERE problem IS NULL) FROM _batch_spans"
    ).fetchall()
    columns = ", ".join(SPAN_COLUMN_NAMES[2:])
    good = work.sql(
        f"SELECT {int(run_id)} AS run_id, {int(file_id)} AS file_id, {columns} "
        "FROM _batch_spans WHERE problem IS NULL"
    ).to_arrow_table()
    return _Parsed(good, problems, int(read), int(added), len(span_problems))


def _malformed(line: int, batch: LineBatch) -> tuple[int, str]:
    if line == batch.unterminated_line:
        return line, "last line is cut short (no final newline; was the file still being written?)"
    error = json_error(batch.lines[batch.numbers.index(line)])
    return line, error[1] if error else "JSON of an unexpected shape for this format"
