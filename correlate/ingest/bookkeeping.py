"""The ``files`` and ``problems`` rows of an ingest: which files a run holds, and what was skipped.

A file is known by its content (SHA-256), so the same file under another name,
or ingested twice, adds nothing the second time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest.report import PROBLEM_LIST_CAP, FileReport, Problem

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = [
    "add_file_row",
    "background_digest",
    "file_digest",
    "gave_something",
    "holds_file",
    "holds_size",
    "new_file_id",
    "nothing_read",
    "record_problems",
    "refuse_if_nothing_read",
    "set_file_counts",
]


def file_digest(path: Path, size: int | None = None) -> str:
    """The SHA-256 of the file's bytes as stored (compressed or not); of its first
    ``size`` bytes when given."""
    digest = hashlib.sha256()
    left = -1 if size is None else size
    with path.open("rb") as f:
        while left != 0 and (block := f.read(8 << 20 if left < 0 else min(left, 8 << 20))):
            digest.update(block)
            left = max(left - len(block), 0) if left > 0 else left
    return digest.hexdigest()


def background_digest(path: Path, size: int) -> Callable[[], str]:
    """Start :func:`file_digest` of the first ``size`` bytes of ``path`` in a thread;
    the returned call waits for it.

    ``hashlib`` and file reads release the GIL, so the digest runs while DuckDB
    reads the same (cached) bytes: hashing while reading, not before. ``size`` is
    the file's size when its read began: lines appended while it is read (a file
    still being written) must not be claimed by the hash, or the finished file
    would count as already ingested. An error reading the file is raised by the call.
    """
    result: list[str] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(file_digest(path, size))
        except BaseException as exc:  # handed to the caller of the returned function
            failure.append(exc)

    thread = threading.Thread(target=work, name="correlate-digest", daemon=True)
    thread.start()

    def wait() -> str:
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    return wait


def holds_size(store: Store, run_id: int, size: int) -> bool:
    """True when run ``run_id`` holds a file of ``size`` bytes: only then can it hold
    one with the same content, so a file of a new size need not be hashed first."""
    row = store.con.execute(
        "SELECT 1 FROM files WHERE run_id = ? AND size = ?", [run_id, size]
    ).fetchone()
    return row is not None


def holds_file(store: Store, run_id: int, sha: str) -> bool:
    """True when run ``run_id`` already holds a file with this content."""
    row = store.con.execute(
        "SELECT 1 FROM files WHERE run_id = ? AND sha256 = ?", [run_id, sha]
    ).fetchone()
    return row is not None


def new_file_id(store: Store) -> int:
    """A ``file_id`` for a ``files`` row added later (by :func:`add_file_row`)."""
    row = store.con.execute("SELECT nextval('file_id_seq')").fetchone()
    assert row is not None
    return int(row[0])


def add_file_row(
    store: Store,
    run_id: int,
    path: Path,
    sha: str,
    format_name: str,
    *,
    file_id: int | None = None,
    size: int | None = None,
) -> int:
    """Insert the ``files`` row of ``path`` with zero counts; its ``file_id``
    (``file_id`` when given, one from :func:`new_file_id`). ``size`` is the size
    the digest ``sha`` covers (the file's size now when not given)."""
    new_id = "nextval('file_id_seq')" if file_id is None else str(int(file_id))
    row = store.con.execute(
        "INSERT INTO files (file_id, run_id, path, size, sha256, format, records_read, "
        f"records_added, duplicates, skipped) VALUES ({new_id}, ?, ?, ?, ?, ?, 0, 0, 0, 0) "
        "RETURNING file_id",
        [
            run_id,
            str(path.resolve()),
            path.stat().st_size if size is None else size,
            sha,
            format_name,
        ],
    ).fetchone()
    assert row is not None
    return int(row[0])


def set_file_counts(store: Store, file_id: int, read: int, added: int, skipped: int) -> None:
    store.con.execute(
        "UPDATE files SET records_read = ?, records_added = ?, skipped = ? WHERE file_id = ?",
        [read, added, skipped, file_id],
    )


def record_problems(
    store: Store,
    file_id: int,
    path: Path,
    problems: list[tuple[int | None, str]],
    report: FileReport,
    *,
    skipped: bool = True,
) -> None:
    """Keep every problem in the store; the report lists the first few.

    ``skipped=False`` marks notes on records that were kept (read leniently):
    listed and stored like problems, not counted as skipped.
    """
    if not problems:
        return
    import pyarrow as pa

    problems = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
    # One insert from an Arrow table: executemany costs about half a millisecond a
    # row, which a file of 20,000 bad spans turns into ten seconds. As a relation, not
    # a registered view: one registered inside the file's transaction is kept, with
    # its table, until the transaction ends.
    table = pa.table(
        {
            "file_id": pa.array([file_id] * len(problems), pa.int32()),
            "line": pa.array([line for line, _ in problems], pa.int64()),
            "reason": pa.array([reason for _, reason in problems], pa.string()),
        }
    )
    store.con.from_arrow(table).insert_into("problems")
    if skipped:
        report.skipped += len(problems)
    else:
        report.lenient += len(problems)
    room = PROBLEM_LIST_CAP - len(report.problems)
    report.problems.extend(Problem(path, line, reason) for line, reason in problems[: max(room, 0)])


def gave_something(report: FileReport) -> bool:
    """True when a record of the file was read now (not: the run already held it)."""
    return bool(
        report.spans_added
        or report.duplicates
        or report.rows_added
        or (report.plans is not None and report.plans.added)
    )


def nothing_read(report: FileReport) -> bool:
    """True when the file had records but not one of them could be read.

    A file with no records and no problems (an empty export) is not such a file.
    """
    return not report.already_ingested and not gave_something(report) and report.skipped > 0


def refuse_if_nothing_read(report: FileReport) -> None:
    """Raise :class:`InputError` (inside the file's transaction, so nothing is kept)
    when nothing could be read from a file named on its own, with the first reason."""
    if not nothing_read(report):
        return
    first = report.problems[0] if report.problems else Problem(report.path, None, "unreadable")
    also = [
        f"line {p.line}: {p.reason}" if p.line is not None else p.reason
        for p in report.problems[1:3]
    ]
    more = report.skipped - 1 - len(also)
    if more > 0:
        also.append(f"{more:,} more")
    tail = f" (also {'; '.join(also)})" if also else ""
    raise InputError(
        f"nothing could be read from this file: {first.reason}{tail}", report.path, first.line
    )
