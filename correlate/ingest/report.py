"""What an ingest did, per file and in total, and how it reads to a person."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.ingest import loadgen, rundir

if TYPE_CHECKING:
    from correlate.plans.load import PlanCounts

COMPANION_KINDS = frozenset(rundir.KINDS)
#: Load-generator results (k6, Locust), read like companion files wherever they are.
LOAD_KINDS = frozenset(f.name for f in loadgen.LOAD_FORMATS)

#: How many problems a report lists before "… and N more".
PROBLEM_LIST_CAP = 20


@dataclass(frozen=True)
class Problem:
    """A record that was skipped, or a file that was passed over, and why."""

    path: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


@dataclass
class FileReport:
    path: Path
    format: str
    spans_read: int = 0
    spans_added: int = 0
    duplicates: int = 0
    #: records skipped: whole lines that could not be read, and single spans
    skipped: int = 0
    #: of those, single spans (so spans_read == spans_added + spans_skipped + duplicates)
    spans_skipped: int = 0
    #: notes on records kept but read leniently (listed with the problems, not skipped)
    lenient: int = 0
    already_ingested: bool = False
    problems: list[Problem] = field(default_factory=list)
    #: rows added to the companion table, for a run directory's non-span file
    rows_added: int = 0
    #: for a plan file or PostgreSQL log: the plans read and how they were linked
    plans: PlanCounts | None = None
    #: the format's family (``spans``, ``plans``, ``load``, ``database``), or
    #: ``companion`` for a run directory's own files
    family: str = "spans"


@dataclass
class IngestReport:
    """What an ingest did: per file, and in total."""

    run: str
    files: list[FileReport] = field(default_factory=list)
    #: files in the given directories that are not trace files, and why
    passed_over: list[Problem] = field(default_factory=list)
    #: distinct statement texts newly fingerprinted (see correlate.statements)
    statements_fingerprinted: int = 0
    #: plans whose sqlcommenter traceparent names a span this run does not hold
    plans_without_span: int = 0

    @property
    def plans_added(self) -> int:
        return sum(f.plans.added for f in self.files if f.plans is not None)

    @property
    def spans_read(self) -> int:
        return sum(f.spans_read for f in self.files)

    @property
    def spans_added(self) -> int:
        return sum(f.spans_added for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    @property
    def lenient(self) -> int:
        return sum(f.lenient for f in self.files)

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    @property
    def companion_rows(self) -> dict[str, int]:
        """Rows added per companion table (pool telemetry, client requests, run info)."""
        return self._rows_by_format(COMPANION_KINDS)

    @property
    def load_rows(self) -> dict[str, int]:
        """Rows added per load-generator format (``k6-json``, ``locust-history``, …)."""
        return self._rows_by_format(LOAD_KINDS)

    @property
    def metric_rows(self) -> dict[str, int]:
        """Pool samples added per metrics format (``otlp-metrics``)."""
        return self._rows_by_format(family="metrics")

    @property
    def database_rows(self) -> dict[str, int]:
        """Rows added per format of the database's own view (``watch-activity``)."""
        return self._rows_by_format(family="database")

    def _rows_by_format(
        self, kinds: frozenset[str] = frozenset(), *, family: str | None = None
    ) -> dict[str, int]:
        rows: dict[str, int] = {}
        for f in self.files:
            if (f.format in kinds or f.family == family) and not f.already_ingested:
                rows[f.format] = rows.get(f.format, 0) + f.rows_added
        return rows

    def summary(self) -> str:
        """A few lines for a person: totals, then the capped list of problems."""
        new = [f for f in self.files if not f.already_ingested and f.family == "spans"]
        plan_files = [f for f in self.files if f.plans is not None]
        new_plans = [f for f in plan_files if not f.already_ingested]
        lines = []
        if new or not new_plans:
            # plan problems are counted on the plans' own line
            skipped = self.skipped - sum(f.skipped for f in plan_files)
            lines.append(
                f"run {self.run!r}: {self.spans_added:,} spans added from {len(new)} file(s)"
                + (f", {self.duplicates:,} duplicate span(s) kept once" if self.duplicates else "")
                + (f", {skipped:,} record(s) skipped" if skipped else "")
                + (f", {self.lenient:,} part(s) read leniently" if self.lenient else "")
            )
        if new_plans or self.plans_without_span:
            lines.extend(_plans_lines(self.run, plan_files, self.plans_without_span))
        if self.companion_rows:
            parts = ", ".join(f"{table} {n:,}" for table, n in self.companion_rows.items())
            lines.append(f"run directory: {parts}")
        if self.load_rows:
            parts = ", ".join(f"{kind} {n:,}" for kind, n in self.load_rows.items())
            lines.append(f"load generator (rows): {parts}")
        if self.metric_rows:
            parts = ", ".join(f"{kind} {n:,}" for kind, n in self.metric_rows.items())
            lines.append(f"metrics (pool samples): {parts}")
        if self.database_rows:
            parts = ", ".join(f"{kind} {n:,}" for kind, n in self.database_rows.items())
            lines.append(f"database's own view (rows): {parts}")
        already = [f for f in self.files if f.already_ingested]
        if len(already) > 3:
            lines.append(
                f"{len(already)} file(s) already in run {self.run!r}, nothing added from them"
            )
        else:
            lines.extend(f"{f.path}: already in run {self.run!r}, nothing added" for f in already)
        problems = self.problems
        if problems:
            lines.append("skipped, or read leniently:" if self.lenient else "skipped:")
            lines.extend(f"  {p}" for p in problems[:PROBLEM_LIST_CAP])
            shown = min(len(problems), PROBLEM_LIST_CAP)
            if self.skipped + self.lenient > shown:
                more = self.skipped + self.lenient - shown
                lines.append(f"  … and {more:,} more (SELECT * FROM problems)")
        if self.passed_over:
            lines.append(_passed_over_line(self.passed_over))
        return "\n".join(lines)


def _plans_lines(run: str, files: list[FileReport], without_span: int) -> list[str]:
    """What the plan files and logs of an ingest gave, and what is not linked."""
    counts = [f.plans for f in files if f.plans is not None and not f.already_ingested]
    added = sum(c.added for c in counts)
    tied = sum(c.traceparent for c in counts)
    shape = sum(c.fingerprint for c in counts)
    lines = [
        f"run {run!r}: {added:,} plan(s) added from {len(counts)} file(s): "
        f"{tied:,} tied to their span by traceparent, {shape:,} by fingerprint"
        + (f", {skipped:,} skipped" if (skipped := sum(len(c.problems) for c in counts)) else "")
    ]
    if without_span:
        lines.append(
            f"{without_span:,} plan(s) name a span (traceparent) that run {run!r} does not hold; "
            "ingest the spans of the same run"
        )
    unlinked = [f for f in files if f.plans is not None and f.plans.unlinked]
    if unlinked:
        names = ", ".join(str(f.path) for f in unlinked[:4])
        more = f", … {len(unlinked) - 4} more" if len(unlinked) > 4 else ""
        lines.append(
            f"unlinked: {sum(f.plans.unlinked for f in unlinked if f.plans):,} plan(s) without "
            f"a statement ({names}{more}); put the statement in a .sql file of the same name"
        )
    return lines


def _passed_over_line(files: list[Problem]) -> str:
    """One line: the files that hold no spans, grouped by what they are instead."""
    root = Path(os.path.commonpath([p.path.parent for p in files]))
    groups: dict[str, list[str]] = {}
    for p in files:
        kind = (
            p.reason.split(" ", 1)[0] if p.reason.startswith(("CSV", "JSON", "text")) else p.reason
        )
        groups.setdefault(kind, []).append(str(p.path.relative_to(root)))
    parts = []
    for kind, names in groups.items():
        shown = ", ".join(names[:4]) + (f", … {len(names) - 4} more" if len(names) > 4 else "")
        parts.append(f"{kind}: {shown}")
    return f"passed over {len(files)} file(s) in {root} that hold no spans ({'; '.join(parts)})"
