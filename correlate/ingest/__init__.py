"""Ingest: trace files and directories into a run of the store.

>>> from correlate import open_store
>>> store = open_store(":memory:")
>>> report = store.ingest(["tests/data/otlp/two_traces.jsonl"], run="demo")  # doctest: +SKIP
>>> report.spans_added  # doctest: +SKIP
7

Rules: each file is read in one transaction; a malformed record is skipped,
counted and kept in the ``problems`` table as ``FILE:LINE: reason`` (or, with
``strict=True``, fails the file and commits nothing from it); a file already
in the run adds nothing; a span id seen twice in a run is kept once and
counted. Parsing and flattening run inside DuckDB, a batch of lines at a time.

Load-generator results (k6, Locust; :mod:`correlate.ingest.loadgen`) found
among the paths are read the same way into their own tables.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from correlate.errors import InputError
from correlate.fileio import LineBatch, json_error
from correlate.ingest import loadgen, rundir
from correlate.ingest.canonical import RAW_COLUMNS, canonical_select
from correlate.ingest.detect import FORMATS as FORMAT_HELP
from correlate.ingest.detect import NotTraceFile, detect_format
from correlate.ingest.jsonschema import sql_string
from correlate.schema import SPAN_COLUMN_NAMES
from correlate.statements import fingerprint_run

if TYPE_CHECKING:
    from correlate.ingest.formats import SpanFormat
    from correlate.store import Store

from correlate.ingest.report import (
    LOAD_KINDS,
    PROBLEM_LIST_CAP,
    FileReport,
    IngestReport,
    Problem,
)

__all__ = ["FileReport", "IngestReport", "Problem", "Progress", "ingest"]


class Progress(Protocol):
    """What ingest tells a progress display. The CLI passes a rich one on a terminal."""

    def start(self, total_bytes: int) -> None: ...

    def file(self, path: Path) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...


def ingest(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    run: str,
    *,
    format: str | None = None,
    strict: bool = False,
    labels: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Read trace files, or directories of them (recursively), into run ``run``.

    ``format`` forces one of :data:`correlate.ingest.detect.FORMATS` (or, for
    query plans, :data:`correlate.plans.files.PLAN_FILE_FORMATS` or
    :data:`correlate.plans.pglog.LOG_FORMATS`) instead of detecting it from
    each file's first bytes. A file that is no trace format but a load
    generator's results (:data:`correlate.ingest.loadgen.LOAD_FORMATS`, which
    ``format`` may also force) is read into the load tables.
    """
    from correlate.ingest.formats import FORMATS
    from correlate.plans.files import PLAN_FILE_FORMATS, detect_plan_input, statement_file
    from correlate.plans.pglog import LOG_FORMATS

    store.require_writable()
    plan_formats = [*PLAN_FILE_FORMATS, *LOG_FORMATS]
    known = [*FORMAT_HELP, *plan_formats, *loadgen.LOAD_FORMATS]
    if format is not None and format not in known:
        raise InputError(f"unknown format {format!r}; choose one of: {', '.join(known)}")

    report = IngestReport(run)
    chosen: list[tuple[Path, SpanFormat]] = []
    companions: list[tuple[Path, str]] = []
    plan_inputs: list[tuple[Path, str]] = []
    not_traces: list[tuple[Path, bool, NotTraceFile]] = []
    for path, explicit, kind in _expand(paths):
        if kind is not None:
            companions.append((path, kind))
            continue
        if format in loadgen.LOAD_FORMATS:
            companions.append((path, format))
            continue
        if format in plan_formats:
            plan_kind: str | None = format
        else:
            plan_kind = None if format is not None else detect_plan_input(path)
        if plan_kind is not None:
            plan_inputs.append((path, plan_kind))
            continue
        try:
            name = format or detect_format(path)
        except NotTraceFile as not_trace:
            load_kind = loadgen.detect_load_format(path)
            if load_kind is not None:
                companions.append((path, load_kind))
                continue
            not_traces.append((path, explicit, not_trace))
            continue
        chosen.append((path, FORMATS[name]))
    # A plan file's statement (q1.sql next to q1.json) is part of the plan.
    statements = {statement_file(path) for path, _ in plan_inputs}
    for path, explicit, refused in not_traces:
        if path in statements:
            continue
        if explicit:
            raise refused
        report.passed_over.append(Problem(path, None, refused.brief))
    if not chosen and not companions and not plan_inputs:
        given = ", ".join(str(p) for p in paths)
        raise InputError(
            f"no trace files found in {given}"
            + (
                f" ({len(report.passed_over)} file(s) looked at, none a trace format)"
                if report.passed_over
                else ""
            )
            + f"; correlate reads: {', '.join(FORMAT_HELP)}; load-generator results from k6 "
            f"and Locust; plans: {', '.join(plan_formats)}"
        )
    run_id = store.ensure_run(run, source=str(Path(next(iter(paths))).resolve()), labels=labels)
    if progress is not None:
        progress.start(sum(p.stat().st_size for p, _ in chosen))
    try:
        for path, fmt in chosen:
            if progress is not None:
                progress.file(path)
            report.files.append(_ingest_file(store, run_id, path, fmt, strict, progress))
        for path, kind in companions:
            report.files.append(_ingest_companion(store, run_id, path, kind, strict))
        for path, kind in plan_inputs:
            report.files.append(_ingest_plans(store, run_id, path, kind, strict))
        _dedupe(store, run_id, report)
        report.statements_fingerprinted = fingerprint_run(store, run_id)
        report.plans_without_span = _plans_without_span(store, run_id, report)
        store.refresh_run_stats(run_id)
    finally:
        if progress is not None:
            progress.finish()
    return report


def _expand(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, bool, str | None]]:
    """(file, named explicitly, companion kind) for each path; directories recursively, sorted.

    In a run directory (docs/run-directory.md) the pool telemetry, client
    requests and run.json come with the kind of companion table they fill.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            kinds: dict[Path, str] = {}
            if rundir.is_run_directory(path):
                for kind, files in rundir.companion_files(path).items():
                    kinds.update((f, kind) for f in files)
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden:
                    yield child, False, kinds.get(child)
        elif path.is_file():
            yield path, True, None
        elif path.exists():
            raise InputError("not a regular file or directory", path)
        else:
            raise InputError("no such file or directory", path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _ingest_file(
    store: Store, run_id: int, path: Path, fmt: SpanFormat, strict: bool, progress: Progress | None
) -> FileReport:
    con = store.con
    size = path.stat().st_size
    sha = _sha256(path)
    report = FileReport(path, fmt.name)
    seen = con.execute(
        "SELECT path FROM files WHERE run_id = ? AND sha256 = ?", [run_id, sha]
    ).fetchone()
    if seen is not None:
        report.already_ingested = True
        if progress is not None:
            progress.advance(size)
        return report
    fast = fmt.fast_docs(path) if fmt.fast_docs is not None else None
    if fast is not None and _ingest_clean(store, run_id, path, sha, fmt, fast, report, progress):
        return report
    con.execute("BEGIN")
    done = 0
    try:
        file_id = _add_file_row(store, run_id, path, sha, fmt.name)
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
        con.execute(
            "UPDATE files SET records_read = ?, records_added = ?, skipped = ? WHERE file_id = ?",
            [report.spans_read, report.spans_added, report.skipped, file_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if progress is not None and size > done:
        progress.advance(size - done)
    return report


def _ingest_companion(store: Store, run_id: int, path: Path, kind: str, strict: bool) -> FileReport:
    """Load one companion file of a run directory, or a load generator's, in its own transaction."""
    con = store.con
    sha = _sha256(path)
    report = FileReport(path, kind)
    if con.execute("SELECT 1 FROM files WHERE run_id = ? AND sha256 = ?", [run_id, sha]).fetchone():
        report.already_ingested = True
        return report
    con.execute("BEGIN")
    try:
        file_id = _add_file_row(store, run_id, path, sha, kind)
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
        _record_problems(store, file_id, path, problems, report)
        report.rows_added = added
        con.execute(
            "UPDATE files SET records_read = ?, records_added = ?, skipped = ? WHERE file_id = ?",
            [added + len(problems), added, len(problems), file_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _ingest_plans(store: Store, run_id: int, path: Path, kind: str, strict: bool) -> FileReport:
    """Load one plan file or PostgreSQL log's plans in its own transaction."""
    from correlate.plans.files import PLAN_FILE_FORMATS, read_plan_file
    from correlate.plans.load import PlanCounts, PlanItem, load_plans
    from correlate.plans.pglog import read_log

    con = store.con
    sha = _sha256(path)
    report = FileReport(path, kind, plans=PlanCounts())
    if con.execute("SELECT 1 FROM files WHERE run_id = ? AND sha256 = ?", [run_id, sha]).fetchone():
        report.already_ingested = True
        return report
    items: Iterable[PlanItem]
    if kind in PLAN_FILE_FORMATS:
        try:
            plans, statement = read_plan_file(path)
            items = [PlanItem(1, plan, statement) for plan in plans]
        except InputError as exc:
            # a broken plan file is a skipped record, like a broken span line
            items = [PlanItem(exc.line, None, problem=exc.reason)]
        method = "file"
    else:
        items = (
            PlanItem(p.line, p.text, None, p.duration_ms, p.logged_at, p.problem)
            for p in read_log(path, kind)
        )
        method = "auto_explain"
    con.execute("BEGIN")
    try:
        file_id = _add_file_row(store, run_id, path, sha, kind)
        try:
            counts = load_plans(store, run_id, str(path.resolve()), method, items, strict=strict)
        except InputError as exc:
            raise InputError(exc.reason, path, exc.line) from None
        _record_problems(store, file_id, path, counts.problems, report)
        con.execute(
            "UPDATE files SET records_read = ?, records_added = ?, skipped = ? WHERE file_id = ?",
            [counts.read, counts.added, len(counts.problems), file_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    report.plans = counts
    return report


def _plans_without_span(store: Store, run_id: int, report: IngestReport) -> int:
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


def _add_file_row(store: Store, run_id: int, path: Path, sha: str, format_name: str) -> int:
    row = store.con.execute(
        "INSERT INTO files (run_id, path, size, sha256, format, records_read, records_added, "
        "duplicates, skipped) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING file_id",
        [run_id, str(path.resolve()), path.stat().st_size, sha, format_name],
    ).fetchone()
    assert row is not None
    return int(row[0])


class _CleanFileFailed(Exception):
    """The fast path met a record it cannot take; the careful path will say which."""


def _ingest_clean(
    store: Store,
    run_id: int,
    path: Path,
    sha: str,
    fmt: SpanFormat,
    docs_sql: str,
    report: FileReport,
    progress: Progress | None,
) -> bool:
    """Read a whole file in one streaming INSERT, DuckDB parsing it in parallel.

    Any record with a problem raises inside the statement (``error()``), the
    transaction is rolled back, and False sends the file down the careful
    line-by-line path, which reports exactly where each problem is. Clean
    files, the common case, are read once at DuckDB's own speed.
    """
    import duckdb

    con = store.con
    columns = ", ".join(SPAN_COLUMN_NAMES[2:])
    raw = fmt.raw_sql(f"({docs_sql})")
    con.execute("BEGIN")
    try:
        file_id = _add_file_row(store, run_id, path, sha, fmt.name)
        # Order within the file does not matter here; not keeping it lets
        # DuckDB stream the insert in bounded memory.
        con.execute("SET preserve_insertion_order = false")
        with _polled_progress(con, path.stat().st_size, progress):
            row = con.execute(
                f"INSERT INTO spans SELECT ?, ?, {columns} FROM ({canonical_select(f'({_typed_raw(raw)})')}) "
                "WHERE CASE WHEN problem IS NULL THEN true ELSE error('correlate: bad record') END",
                [run_id, file_id],
            ).fetchone()
        added = int(row[0]) if row else 0
        con.execute(
            "UPDATE files SET records_read = ?, records_added = ? WHERE file_id = ?",
            [added, added, file_id],
        )
        con.execute("COMMIT")
    except (duckdb.Error, UnicodeDecodeError):
        # DuckDB's message may quote the bad record cut inside a UTF-8 character,
        # and the binding then fails to decode the message itself.
        con.execute("ROLLBACK")
        return False
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("RESET preserve_insertion_order")
    report.spans_read = report.spans_added = added
    return True


class _polled_progress:
    """Forward DuckDB's progress on the running statement to ``progress``, from a thread."""

    def __init__(self, con: object, nbytes: int, progress: Progress | None) -> None:
        import threading

        self._con = con
        self._nbytes = nbytes
        self._progress = progress
        self._done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> None:
        if self._progress is not None:
            self._thread.start()

    def __exit__(self, *exc: object) -> None:
        if self._progress is None:
            return
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._progress.advance(self._nbytes - self._done)
        else:
            self._progress.advance(-self._done)

    def _poll(self) -> None:
        assert self._progress is not None
        while not self._stop.wait(0.25):
            try:
                share = float(self._con.query_progress())  # type: ignore[attr-defined]
            except Exception:  # the statement finished between checks
                continue
            reached = int(self._nbytes * max(0.0, min(share, 100.0)) / 100)
            if reached > self._done:
                self._progress.advance(reached - self._done)
                self._done = reached


def _load_batch(
    store: Store,
    run_id: int,
    file_id: int,
    path: Path,
    fmt: SpanFormat,
    batch: LineBatch,
    report: FileReport,
) -> None:
    import pyarrow as pa

    con = store.con
    problems: list[tuple[int | None, str]] = list(batch.bad)
    if batch.lines:
        table = pa.table(
            {
                "line_no": pa.array(batch.numbers, pa.int64()),
                "text": pa.array(batch.lines, pa.large_string()),
            }
        )
        # Registering replaces any earlier view of this name, so a failed batch
        # leaves nothing behind that matters; unregistering inside an aborted
        # transaction would itself fail and hide the real error.
        con.register("_batch_lines", table)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _batch_docs AS "
            f"SELECT line_no, try(from_json(text, {sql_string(fmt.structure)})) AS doc "
            "FROM _batch_lines"
        )
        bad_docs = con.execute("SELECT line_no FROM _batch_docs WHERE doc IS NULL").fetchall()
        problems.extend(_malformed(line, batch) for (line,) in bad_docs)
        problems.extend(con.execute(fmt.envelope_problems_sql("_batch_docs")).fetchall())
        raw = fmt.raw_sql("(SELECT * FROM _batch_docs WHERE doc IS NOT NULL)")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _batch_spans AS "
            + canonical_select(f"({_typed_raw(raw)})")
        )
        con.unregister("_batch_lines")
        span_problems = con.execute(
            "SELECT line_no, coalesce('span ' || span_id || ': ', '') || problem "
            "FROM _batch_spans WHERE problem IS NOT NULL ORDER BY line_no"
        ).fetchall()
        problems.extend(span_problems)
        report.spans_skipped += len(span_problems)
        counts = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE problem IS NULL) FROM _batch_spans"
        ).fetchone()
        assert counts is not None
        report.spans_read += int(counts[0])
        columns = ", ".join(SPAN_COLUMN_NAMES[2:])
        con.execute(
            f"INSERT INTO spans SELECT ?, ?, {columns} FROM _batch_spans WHERE problem IS NULL",
            [run_id, file_id],
        )
        report.spans_added += int(counts[1])
    _record_problems(store, file_id, path, problems, report)


def _record_problems(
    store: Store,
    file_id: int,
    path: Path,
    problems: list[tuple[int | None, str]],
    report: FileReport,
) -> None:
    """Keep every problem in the store; the report lists the first few."""
    if not problems:
        return
    problems = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
    store.con.executemany(
        "INSERT INTO problems VALUES (?, ?, ?)",
        [(file_id, line, reason) for line, reason in problems],
    )
    report.skipped += len(problems)
    room = PROBLEM_LIST_CAP - len(report.problems)
    report.problems.extend(Problem(path, line, reason) for line, reason in problems[: max(room, 0)])


def _typed_raw(raw_sql: str) -> str:
    """Cast a reader's output to the exact raw column types, so readers stay honest."""
    casts = ", ".join(f"CAST({name} AS {type_}) AS {name}" for name, type_ in RAW_COLUMNS)
    return f"SELECT {casts} FROM ({raw_sql})"


def _malformed(line: int, batch: LineBatch) -> tuple[int, str]:
    if line == batch.unterminated_line:
        return line, "last line is cut short (no final newline; was the file still being written?)"
    error = json_error(batch.lines[batch.numbers.index(line)])
    return line, error[1] if error else "JSON of an unexpected shape for this format"


def _dedupe(store: Store, run_id: int, report: IngestReport) -> None:
    """Keep each (trace id, span id) of the run once: the earliest file's copy wins."""
    con = store.con
    con.execute("BEGIN")
    try:
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
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if not by_file:
        return
    paths = dict(
        con.execute("SELECT file_id, path FROM files WHERE run_id = ?", [run_id]).fetchall()
    )
    removed = {paths[file_id]: int(n) for file_id, n in by_file.items()}
    for f in report.files:
        n = removed.get(str(f.path.resolve()), 0)
        f.duplicates += n
        f.spans_added -= n


__all__ = ["FileReport", "IngestReport", "Problem", "Progress", "ingest"]
