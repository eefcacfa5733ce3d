"""Reading one run-directory companion or load-generator file into its tables.

Pool telemetry, client requests and ``run.json`` (:mod:`correlate.ingest.rundir`),
and k6 or Locust results (:mod:`correlate.ingest.loadgen`): each file in a
transaction of its own, its problems kept as for span files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest import loadgen, rundir
from correlate.ingest.bookkeeping import (
    add_file_row,
    file_digest,
    holds_file,
    record_problems,
    set_file_counts,
)
from correlate.ingest.report import LOAD_KINDS, FileReport

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["ingest_table_file"]


def ingest_table_file(store: Store, run_id: int, path: Path, kind: str, strict: bool) -> FileReport:
    """Load companion or load-generator file ``path`` of ``kind`` into run ``run_id``."""
    sha = file_digest(path)
    report = FileReport(path, kind)
    if holds_file(store, run_id, sha):
        report.already_ingested = True
        return report
    with store.atomic() as con:
        file_id = add_file_row(store, run_id, path, sha, kind)
        if kind == "run_info":
            # run.json is rewritten as a run goes on: the newest one stands.
            con.execute("DELETE FROM run_info WHERE run_id = ?", [run_id])
        if kind in LOAD_KINDS:
            added, problems = loadgen.load_results(store, run_id, file_id, kind, path)
        else:
            added, problems = rundir.load_companion(store, run_id, file_id, kind, path)
        if problems and strict:
            line, reason = problems[0]
            raise InputError(reason + " (--strict: nothing from this file was kept)", path, line)
        record_problems(store, file_id, path, problems, report)
        report.rows_added = added
        set_file_counts(store, file_id, added + len(problems), added, len(problems))
    return report
