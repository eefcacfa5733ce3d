"""Many small span files in one statement: the per-file cost of a folder of tiny files.

Each file read on its own costs a transaction and the planning of the whole
flattening statement, tens of milliseconds, which for 10,000 one-span files is
minutes. Small files that DuckDB can read straight (``SpanFormat.fast_compression``)
are therefore read a group at a time: their ``files`` rows in one insert, their
spans in one ``INSERT … SELECT`` over the list of files, their counts in one
update. The rules of :mod:`correlate.ingest.spanfile` hold unchanged: a group is
one transaction, and when any record of it has a problem nothing of the group is
kept and each half is tried again, down to single files, which take the careful
path that reports each problem with its line. File names reach DuckDB only as
plain names (never glob patterns): ``fast_compression`` refuses names that
DuckDB would expand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.ingest.bookkeeping import file_digest
from correlate.ingest.canonical import canonical_select
from correlate.ingest.report import FileReport
from correlate.ingest.spanfile import typed_raw
from correlate.schema import SPAN_COLUMN_NAMES

if TYPE_CHECKING:
    from correlate.ingest.progress import Progress
    from correlate.ingest.spanformat import SpanFormat
    from correlate.store import Store

__all__ = ["ReadOne", "ingest_span_files"]

#: How one file is read on its own, on the careful path: (path, format, named on the
#: command line, progress) to its report, or None when the caller recorded it as
#: passed over (a directory's file that could not be read).
ReadOne = Callable[[Path, "SpanFormat", bool, "Progress | None"], "FileReport | None"]

#: Files up to this size are read in groups; bigger ones on their own.
SMALL_FILE_BYTES = 1 << 20
#: At most this many files, and this many bytes, in one group.
GROUP_FILES = 2000
GROUP_BYTES = 256 << 20


def ingest_span_files(
    store: Store,
    run_id: int,
    files: list[tuple[Path, SpanFormat, bool]],
    progress: Progress | None,
    read_one: ReadOne,
) -> list[FileReport]:
    """Read span files into run ``run_id`` in order, small ones in groups; one report each
    (none for a file ``read_one`` passed over)."""
    reports: list[FileReport | None] = []
    group: list[tuple[Path, SpanFormat, bool, int]] = []
    group_key: tuple[str, str] | None = None

    def flush() -> None:
        if group:
            reports.extend(_ingest_group(store, run_id, list(group), progress, read_one))
            group.clear()

    for path, fmt, explicit in files:
        try:
            size = path.stat().st_size
        except OSError:  # gone since it was listed: read on its own, which reports it
            size = -1
        key = None if size < 0 else _group_key(path, fmt, size)
        if key is None:
            flush()
            if progress is not None:
                progress.file(path)
            reports.append(read_one(path, fmt, explicit, progress))
            continue
        if (
            key != group_key
            or len(group) >= GROUP_FILES
            or sum(g[3] for g in group) + size > GROUP_BYTES
        ):
            flush()
            group_key = key
        group.append((path, fmt, explicit, size))
    flush()
    return [r for r in reports if r is not None]


def _group_key(path: Path, fmt: SpanFormat, size: int) -> tuple[str, str] | None:
    if size > SMALL_FILE_BYTES or fmt.fast_compression is None or fmt.fast_files_docs is None:
        return None
    compression = fmt.fast_compression(path)
    return None if compression is None else (fmt.name, compression)


def _ingest_group(
    store: Store,
    run_id: int,
    group: list[tuple[Path, SpanFormat, bool, int]],
    progress: Progress | None,
    read_one: ReadOne,
) -> list[FileReport | None]:
    try:
        digests = [file_digest(g[0]) for g in group]
    except OSError:  # one went away since it was listed: each on its own, which reports it
        return [read_one(path, fmt, explicit, progress) for path, fmt, explicit, _ in group]
    reports: list[FileReport | None] = [FileReport(path, fmt.name) for path, fmt, _, _ in group]
    held = _held(store, run_id, digests)
    todo: list[int] = []
    for i, sha in enumerate(digests):
        report = reports[i]
        if sha in held and report is not None:
            report.already_ingested = True
        else:
            held.add(sha)  # the same content twice in the group: the first one counts
            todo.append(i)
    if len(todo) > 1 and not _read_together(store, run_id, group, digests, todo, reports):
        half = len(todo) // 2
        for part in (todo[:half], todo[half:]):
            again = _ingest_group(store, run_id, [group[i] for i in part], None, read_one)
            for i, report in zip(part, again, strict=True):
                reports[i] = report
    elif len(todo) == 1:
        path, fmt, explicit, _ = group[todo[0]]
        reports[todo[0]] = read_one(path, fmt, explicit, None)
    if progress is not None:
        progress.file(group[-1][0])
        progress.advance(sum(g[3] for g in group))
    return reports


def _held(store: Store, run_id: int, digests: list[str]) -> set[str]:
    rows = store.con.execute(
        "SELECT sha256 FROM files WHERE run_id = ? AND sha256 IN (SELECT unnest(?::VARCHAR[]))",
        [run_id, digests],
    ).fetchall()
    return {sha for (sha,) in rows}


def _read_together(
    store: Store,
    run_id: int,
    group: list[tuple[Path, SpanFormat, bool, int]],
    digests: list[str],
    todo: list[int],
    reports: list[FileReport | None],
) -> bool:
    """Read files ``todo`` of the group in one transaction; False (nothing kept) on any problem."""
    import duckdb
    import pyarrow as pa

    fmt = group[todo[0]][1]
    assert fmt.fast_files_docs is not None
    paths = [group[i][0] for i in todo]
    table = pa.table(
        {
            "pos": pa.array(range(len(todo)), pa.int64()),
            "name": [str(p) for p in paths],
            "path": [str(p.resolve()) for p in paths],
            "size": pa.array([group[i][3] for i in todo], pa.int64()),
            "sha256": [digests[i] for i in todo],
        }
    )
    con = store.con
    columns = ", ".join(SPAN_COLUMN_NAMES[2:])
    raw = fmt.raw_sql(f"({fmt.fast_files_docs(paths, '_group_files')})")
    con.register("_group_files", table)
    con.execute("SET preserve_insertion_order = false")
    try:
        with store.atomic():
            ids = dict(
                con.execute(
                    "INSERT INTO files (run_id, path, size, sha256, format, records_read, "
                    "records_added, duplicates, skipped) "
                    "SELECT ?, path, size, sha256, ?, 0, 0, 0, 0 FROM _group_files ORDER BY pos "
                    "RETURNING sha256, file_id",
                    [run_id, fmt.name],
                ).fetchall()
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _group_ids AS "
                "SELECT pos, file_id FROM _group_files JOIN files USING (sha256) "
                "WHERE files.run_id = ?",
                [run_id],
            )
            con.execute(
                f"INSERT INTO spans SELECT ?, g.file_id, {columns} "
                f"FROM ({canonical_select(f'({typed_raw(raw)})')}) c "
                "JOIN _group_ids g ON c.line_no = g.pos "
                "WHERE CASE WHEN problem IS NULL THEN true "
                "ELSE error('correlate: bad record') END",
                [run_id],
            )
            counts = dict(
                con.execute(
                    "SELECT file_id, count(*) FROM spans WHERE run_id = ? "
                    "AND file_id IN (SELECT file_id FROM _group_ids) GROUP BY file_id",
                    [run_id],
                ).fetchall()
            )
            con.execute(
                "UPDATE files SET records_read = n, records_added = n FROM ("
                "SELECT file_id AS id, count(*) AS n FROM spans WHERE run_id = ? "
                "AND file_id IN (SELECT file_id FROM _group_ids) GROUP BY file_id) c "
                "WHERE files.file_id = c.id",
                [run_id],
            )
            con.execute("DROP TABLE _group_ids")
    except (duckdb.Error, UnicodeDecodeError):
        return False
    finally:
        con.execute("RESET preserve_insertion_order")
        con.unregister("_group_files")
    for i in todo:
        n = int(counts.get(ids[digests[i]], 0))
        report = reports[i]
        assert report is not None  # a fresh report until the group is read
        report.spans_read = report.spans_added = n
    return True
