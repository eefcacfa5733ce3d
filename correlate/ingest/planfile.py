"""Reading one plan file or PostgreSQL log into the ``plans`` tables, in its own transaction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest.bookkeeping import (
    add_file_row,
    file_digest,
    holds_file,
    record_problems,
    refuse_if_nothing_read,
    set_file_counts,
)
from correlate.ingest.report import FileReport, IngestReport
from correlate.plans.load import PlanCounts, load_plans

if TYPE_CHECKING:
    from correlate.inputs import PlanFormat
    from correlate.store import Store

__all__ = ["ingest_plan_file", "plans_without_span"]


def ingest_plan_file(
    store: Store,
    run_id: int,
    path: Path,
    fmt: PlanFormat,
    strict: bool,
    *,
    require_some: bool = False,
) -> FileReport:
    """Load the plans of ``path`` (format ``fmt``) into run ``run_id``.

    ``require_some``: as for :func:`correlate.ingest.spanfile.ingest_span_file`.
    """
    sha = file_digest(path)
    report = FileReport(path, fmt.name, plans=PlanCounts(), family="plans")
    if holds_file(store, run_id, sha):
        report.already_ingested = True
        return report
    with store.atomic():
        file_id = add_file_row(store, run_id, path, sha, fmt.name)
        try:
            counts = load_plans(
                store, run_id, str(path.resolve()), fmt.method, fmt.items(path), strict=strict
            )
        except InputError as exc:
            raise InputError(exc.reason, path, exc.line) from None
        record_problems(store, file_id, path, counts.problems, report)
        set_file_counts(store, file_id, counts.read, counts.added, len(counts.problems))
        report.plans = counts
        if require_some:
            refuse_if_nothing_read(report)
    return report


def plans_without_span(store: Store, run_id: int, report: IngestReport) -> int:
    """Plans read now whose sqlcommenter traceparent names a span the run does not hold."""
    ids = [i for f in report.files if f.plans is not None for i in f.plans.plan_ids]
    if not ids:
        return 0
    row = store.con.execute(
        """
        SELECT count(*) FROM plans p
        WHERE p.plan_id IN (SELECT unnest($ids)) AND p.link = 'traceparent'
          AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.run_id = $run
                          AND s.trace_id = p.trace_id AND s.span_id = p.span_id)
        """,
        {"ids": ids, "run": run_id},
    ).fetchone()
    return int(row[0]) if row else 0
