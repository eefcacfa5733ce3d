"""Reading one file whose records go to tables of their own.

Pool telemetry, client requests and ``run.json`` (:mod:`correlate.ingest.rundir`),
and every :class:`~correlate.inputs.TableFormat` of the registry (k6 or Locust
results, ``correlate watch``'s activity): each file in a transaction of its own,
its problems kept as for span files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest import rundir
from correlate.ingest.bookkeeping import (
    add_file_row,
    file_digest,
    holds_file,
    record_problems,
    refuse_if_nothing_read,
    set_file_counts,
)
from correlate.ingest.registry import format_named
from correlate.ingest.report import COMPANION_KINDS, FileReport
from correlate.inputs import TableFormat

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["ingest_table_file"]


def ingest_table_file(
    store: Store, run_id: int, path: Path, kind: str, strict: bool, *, require_some: bool = False
) -> FileReport:
    """Load companion or load-generator file ``path`` of ``kind`` into run ``run_id``.

    ``require_some``: as for :func:`correlate.ingest.spanfile.ingest_span_file`.
    """
    sha = file_digest(path)
    report = FileReport(path, kind, family="companion")
    if holds_file(store, run_id, sha):
        report.already_ingested = True
        return report
    with store.atomic() as con:
        file_id = add_file_row(store, run_id, path, sha, kind)
        if kind == "run_info":
            # run.json is rewritten as a run goes on: the newest one stands.
            con.execute("DELETE FROM run_info WHERE run_id = ?", [run_id])
        if kind in COMPANION_KINDS:
            added, problems = rundir.load_companion(store, run_id, file_id, kind, path)
        else:
            fmt = format_named(kind)
            assert isinstance(fmt, TableFormat), fmt
            report.family = fmt.family
            added, problems = fmt.load(store, run_id, file_id, path)
        if problems and strict:
            line, reason = problems[0]
            raise InputError(reason + " (--strict: nothing from this file was kept)", path, line)
        record_problems(store, file_id, path, problems, report)
        report.rows_added = added
        set_file_counts(store, file_id, added + len(problems), added, len(problems))
        if require_some:
            refuse_if_nothing_read(report)
    return report
