"""Spans the checks reject in a bulk read, kept out of the run without failing the read.

A bulk ``INSERT`` cannot send rows to two tables, and raising on a bad span
throws away the whole statement's work. So a span that fails the checks of
:mod:`correlate.ingest.canonical` is written too, under the negated run and file
ids with its problem as its name (:data:`REJECTED_TOO`, by :func:`insert_spans`,
which ends the statement at one past the few that can be placed); the read then
asks for those rows (:func:`rejected_problems`), places each at its line from its
id in the bytes (:mod:`correlate.ingest.spanlines`), and after the commit deletes them
(:func:`sweep_rejected`: deleting inside the transaction makes DuckDB rewrite what
the insert wrote, seconds for a big file). No run ever holds them; a process killed
in between leaves them under ids no run has, and the next ingest sweeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest.spanlines import MAX_IDS
from correlate.schema import SPAN_COLUMN_NAMES

if TYPE_CHECKING:
    import duckdb

    from correlate.store import Store

__all__ = ["REJECTED_TOO", "Unplaced", "insert_spans", "rejected_problems", "sweep_rejected"]

#: The spans columns for ``INSERT INTO spans SELECT … FROM (canonical_select)``, the run
#: and file ids as parameters ``$1`` and ``$2``: a rejected span's row under the negated
#: ids, holding its problem as its name and something in each NOT NULL column.
REJECTED_TOO = ", ".join(
    {
        "run_id": "CASE WHEN problem IS NULL THEN $1 ELSE -$1 END",
        "file_id": "CASE WHEN problem IS NULL THEN $2 ELSE -$2 END",
        "name": "coalesce(problem, name)",
        "trace_id": "coalesce(trace_id, '')",
        "span_id": "coalesce(span_id, '')",
        "start_ns": "coalesce(start_ns, 0)",
        "end_ns": "coalesce(end_ns, 0)",
        "duration_ns": "coalesce(duration_ns, 0)",
    }.get(column, column)
    for column in SPAN_COLUMN_NAMES
)


def insert_spans(
    con: duckdb.DuckDBPyConnection, spans_sql: str, run_id: int, file_id: int, *, strict: bool
) -> int:
    """Insert ``spans_sql``'s rows (a ``canonical_select``) as :data:`REJECTED_TOO` has them;
    the number of rows. One rejected span past the :data:`MAX_IDS` that can be placed
    (any, with ``strict``) raises inside the statement, which then stops there rather
    than read on to its end only to be rolled back; a temporary sequence counts them."""
    con.execute("CREATE OR REPLACE TEMP SEQUENCE _rejected_seq")
    [(count,)] = con.execute(
        f"INSERT INTO spans SELECT {REJECTED_TOO} FROM ({spans_sql}) "
        "WHERE CASE WHEN problem IS NULL THEN true "
        "WHEN nextval('_rejected_seq') <= $3 THEN true "
        "ELSE error('correlate: bad record') END",
        [run_id, file_id, 0 if strict else MAX_IDS],
    ).fetchall()
    return int(count)


class Unplaced(Exception):
    """Rejected spans a bulk read cannot report at their lines: an id not found once, or
    bytes that cannot be read again to their end (too many, or any with ``--strict``,
    end the statement itself). Raised inside the read's transaction to roll it back;
    the file is then read a way that sees each line."""


def rejected_problems(
    store: Store,
    file_id: int,
    place: Callable[[set[str]], dict[str, int]],
) -> list[tuple[int | None, str]]:
    """The spans the checks rejected in a bulk read of file ``file_id`` (by
    :func:`insert_spans`, so at most :data:`MAX_IDS`, none with ``strict``), as problems
    ``(line, reason)``; ``place`` gives the lines of span ids. Raises :class:`Unplaced`."""
    rows = store.con.execute(
        "SELECT span_id, name FROM spans WHERE file_id = ?", [-file_id]
    ).fetchall()
    if not rows:
        return []
    ids = {span_id for span_id, _ in rows}
    try:
        lines = place(ids)
    except InputError:  # a stream DuckDB read without its checks (a gzip CRC) or over the bound
        raise Unplaced from None
    if len(lines) < len(rows):  # an id not found, found twice, or shared by two of them
        raise Unplaced
    if _named_elsewhere(store, file_id, ids):
        raise Unplaced
    return [(lines[span_id], f"span {span_id}: {problem}") for span_id, problem in rows]


def _named_elsewhere(store: Store, file_id: int, ids: set[str]) -> bool:
    """Whether a span or a link of file ``file_id`` other than the rejected spans names one
    of their ``ids``, as the store keeps ids.

    The bytes may write a span's id otherwise (in upper case, between blanks, as a
    number, with escapes), so the one ``spanId`` found there can be such a link's (or
    a duplicate's), not the span's: the line would be another span's. Not seen here: a
    ``spanId`` key in an object the reader ignores (a key OTLP does not have), found
    when the span's own id is written otherwise; its line is then reported, the spans
    kept and the counts are unaffected.
    """
    [(named,)] = store.con.execute(
        """
        SELECT count(*) FROM (
            SELECT span_id AS id FROM spans WHERE file_id IN ($file, -$file)
            UNION ALL
            SELECT unnest(links).span_id FROM spans
            WHERE file_id IN ($file, -$file) AND len(links) > 0
        ) WHERE list_contains($ids, id)
        """,
        {"file": file_id, "ids": sorted(ids)},
    ).fetchall()
    return int(named) > len(ids)


def sweep_rejected(store: Store, file_id: int | None = None) -> None:
    """Delete the rejected spans written for ``file_id``, or for any file (those a
    process killed before it deleted them left behind)."""
    if file_id is None:
        store.con.execute("DELETE FROM spans WHERE file_id < 0")
    else:
        store.con.execute("DELETE FROM spans WHERE file_id = ?", [-file_id])
