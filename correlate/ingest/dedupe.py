"""Spans seen twice in a run (the same file under two names, overlapping exports) are kept once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.ingest.report import IngestReport

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["dedupe_spans"]


def dedupe_spans(store: Store, run_id: int, report: IngestReport) -> None:
    """Keep each (trace id, span id) of the run once: the earliest file's copy wins.

    The files' ``duplicates`` and ``records_added`` counts, in the store and in
    ``report``, say how many of their spans went.
    """
    with store.atomic() as con:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _dups AS
            SELECT rid, file_id FROM (
                SELECT rowid AS rid, file_id,
                       row_number() OVER (PARTITION BY trace_id, span_id ORDER BY file_id, rowid) AS n
                FROM spans WHERE run_id = ?
            ) WHERE n > 1
            """,
            [run_id],
        )
        by_file = dict(
            con.execute("SELECT file_id, count(*) FROM _dups GROUP BY file_id").fetchall()
        )
        if by_file:
            con.execute("DELETE FROM spans WHERE rowid IN (SELECT rid FROM _dups)")
            con.execute(
                """
                UPDATE files SET duplicates = duplicates + d.n, records_added = records_added - d.n
                FROM (SELECT file_id, count(*) AS n FROM _dups GROUP BY file_id) d
                WHERE files.file_id = d.file_id
                """
            )
        con.execute("DROP TABLE _dups")
    if not by_file:
        return
    paths = dict(
        store.con.execute("SELECT file_id, path FROM files WHERE run_id = ?", [run_id]).fetchall()
    )
    removed = {paths[file_id]: int(n) for file_id, n in by_file.items()}
    for f in report.files:
        n = removed.get(str(f.path.resolve()), 0)
        f.duplicates += n
        f.spans_added -= n
