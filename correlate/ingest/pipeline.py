"""Ingest: files and directories into a run of the store, each file by its format's reader.

>>> from correlate import open_store
>>> store = open_store(":memory:")
>>> report = store.ingest(["tests/data/otlp/two_traces.jsonl"], run="demo")  # doctest: +SKIP
>>> report.spans_added  # doctest: +SKIP
7

Each file's format comes from its content (:mod:`correlate.ingest.detect`,
asking :data:`correlate.ingest.registry.INPUT_FORMATS`) unless ``format``
names one; in a run directory (docs/run-directory.md) the companion files are
known by where they are. Then each file is read by its family's reader, in
its own transaction: spans (:mod:`correlate.ingest.spanfile`), companion and
load-generator files (:mod:`correlate.ingest.tablefile`), plans
(:mod:`correlate.ingest.planfile`). A span id seen twice in a run is kept
once and counted (:mod:`correlate.ingest.dedupe`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.fileio import expansion_limit
from correlate.ingest import rundir
from correlate.ingest.bookkeeping import gave_something, nothing_read
from correlate.ingest.callees import link_callee_routes
from correlate.ingest.dedupe import dedupe_spans
from correlate.ingest.detect import NotTraceFile, detect
from correlate.ingest.planfile import ingest_plan_file, plans_without_span
from correlate.ingest.progress import Progress
from correlate.ingest.registry import format_named, format_names
from correlate.ingest.rejected import sweep_rejected
from correlate.ingest.report import FileReport, IngestReport, Problem
from correlate.ingest.spanbatch import ingest_span_files
from correlate.ingest.spanfile import ingest_span_file
from correlate.ingest.spanformat import SpanFormat
from correlate.ingest.tablefile import ingest_table_file
from correlate.inputs import InputFormat, PlanFormat, TableFormat
from correlate.plans.files import statement_file
from correlate.statements import fingerprint_run

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["ingest"]


def ingest(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    run: str,
    *,
    format: str | None = None,
    strict: bool = False,
    labels: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    max_expanded_bytes: int | None = None,
) -> IngestReport:
    """Read trace files, or directories of them (recursively), into run ``run``.

    ``format`` forces one of the registered formats
    (:func:`correlate.ingest.registry.format_names`: spans, query plans, load
    results) instead of detecting it from each file's first bytes. A
    compressed file (:data:`correlate.fileio.CODECS`) that correlate
    decompresses itself may expand to ``max_expanded_bytes`` (default 2 GiB)
    before it is refused; a clean gzip file that DuckDB reads straight (OTLP/JSON
    lines, run-directory JSON Lines) streams in bounded memory and is not counted.

    Each file is its own transaction, so call this outside ``store.atomic()``.
    """
    store.require_writable()
    forced = format_named(format) if format is not None else None
    given = list(paths)
    with expansion_limit(max_expanded_bytes):
        return _ingest(store, given, run, forced, strict, labels, progress)


def _ingest(
    store: Store,
    paths: list[str | os.PathLike[str]],
    run: str,
    forced: InputFormat | None,
    strict: bool,
    labels: Mapping[str, str] | None,
    progress: Progress | None,
) -> IngestReport:
    report = IngestReport(run)
    spans: list[tuple[Path, SpanFormat, bool]] = []
    tables: list[tuple[Path, str, bool]] = []
    plans: list[tuple[Path, PlanFormat, bool]] = []
    refused: list[tuple[Path, bool, NotTraceFile]] = []
    for path, explicit, companion in _expand(paths, report.passed_over):
        if companion is not None:
            tables.append((path, companion, explicit))
            continue
        try:
            fmt = forced or detect(path)
        except NotTraceFile as not_trace:
            refused.append((path, explicit, not_trace))
            continue
        except InputError as unreadable:  # in a directory, one file it cannot read stops nothing
            if explicit:
                raise
            report.passed_over.append(Problem(path, None, unreadable.reason))
            continue
        if isinstance(fmt, SpanFormat):
            spans.append((path, fmt, explicit))
        elif isinstance(fmt, PlanFormat):
            plans.append((path, fmt, explicit))
        elif isinstance(fmt, TableFormat):
            tables.append((path, fmt.name, explicit))
        else:  # a registered format no reader below takes: a bug in the registry
            raise TypeError(f"no reader for format {fmt.name!r} of family {fmt.family!r}")
    # A plan file's statement (q1.sql next to q1.json) is part of the plan.
    statements = {statement_file(path) for path, _, _ in plans}
    for path, explicit, refusal in refused:
        if path in statements:
            continue
        if explicit:
            raise refusal
        report.passed_over.append(Problem(path, None, refusal.brief))
    if not spans and not tables and not plans:
        raise _nothing_found(paths, report)
    new_run = store.con.execute("SELECT 1 FROM runs WHERE name = ?", [run]).fetchone() is None
    run_id = store.ensure_run(run, source=str(Path(paths[0]).resolve()), labels=labels)
    if progress is not None:
        progress.start(sum(_size(p) for p, _, _ in spans))
    failed: list[Problem] = []  # files in directories that could not be read at all
    discard = False
    try:

        def read_span_file(
            path: Path, span_format: SpanFormat, explicit: bool, prog: Progress | None
        ) -> FileReport | None:
            read = partial(ingest_span_file, store, run_id, path, span_format, strict, prog)
            return _read_file(report, failed, path, explicit, strict, read)

        if spans:
            sweep_rejected(store)
        report.files.extend(ingest_span_files(store, run_id, spans, progress, read_span_file))
        for path, kind, explicit in tables:
            read = partial(ingest_table_file, store, run_id, path, kind, strict)
            _keep(report, _read_file(report, failed, path, explicit, strict, read))
        for path, plan_format, explicit in plans:
            read = partial(ingest_plan_file, store, run_id, path, plan_format, strict)
            _keep(report, _read_file(report, failed, path, explicit, strict, read))
        report.passed_over.extend(failed)
        unread = _nothing_read_anywhere(report, failed)
        if unread is not None:
            discard = new_run
            raise unread
        dedupe_spans(store, run_id, report)
        link_callee_routes(store, run_id)
        report.statements_fingerprinted = fingerprint_run(store, run_id)
        report.plans_without_span = plans_without_span(store, run_id, report)
    finally:
        _settle_run(store, run_id, new_run, discard)
        if progress is not None:
            progress.finish()
    return report


def _read_file(
    report: IngestReport,
    failed: list[Problem],
    path: Path,
    explicit: bool,
    strict: bool,
    read: Callable[..., FileReport],
) -> FileReport | None:
    """One file's reading; in a directory, a file that cannot be read stops nothing
    (None, and the file is in ``failed``).

    A file named on its own from which nothing could be read is an error.
    """
    try:
        try:
            return read(require_some=explicit)
        except OSError as gone:  # moved, removed or locked since it was listed
            reason = f"cannot read this file ({gone.strerror or gone})"
            raise InputError(reason, path) from gone
    except InputError as exc:
        if explicit or strict:
            raise
        failed.append(Problem(path, exc.line, exc.reason))
        return None


def _size(path: Path) -> int:
    """The file's size, 0 when it went away since it was listed (its reading says so)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _keep(report: IngestReport, file: FileReport | None) -> None:
    if file is not None:
        report.files.append(file)


def _nothing_read_anywhere(report: IngestReport, failed: list[Problem]) -> InputError | None:
    """The error when files had records but not one record of any could be read."""
    if any(gave_something(f) for f in report.files):
        return None
    unread = [p for f in report.files if nothing_read(f) for p in f.problems[:1]] + failed
    if not unread:
        return None  # only files with no records at all (an empty export): nothing wrong
    first = unread[0]
    return InputError(
        f"nothing could be read from any of the {len(unread)} file(s) with records: first {first}",
    )


def _settle_run(store: Store, run_id: int, new_run: bool, discard: bool = False) -> None:
    """After an ingest, even a failed one: its run's totals, or no run at all.

    A run this ingest created and into which no file landed (the first file
    failed under --strict) is removed rather than left as an empty row; so is
    one (``discard``) whose files gave nothing at all, with their file rows.
    """
    if discard:
        files = "SELECT file_id FROM files WHERE run_id = ?"
        store.con.execute(f"DELETE FROM problems WHERE file_id IN ({files})", [run_id])
        store.con.execute("DELETE FROM files WHERE run_id = ?", [run_id])
    holds = store.con.execute("SELECT 1 FROM files WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
    if new_run and holds is None:
        store.con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
    else:
        store.refresh_run_stats(run_id)


def _nothing_found(paths: list[str | os.PathLike[str]], report: IngestReport) -> InputError:
    given = ", ".join(str(p) for p in paths)
    looked = (
        f" ({len(report.passed_over)} file(s) looked at, none a trace format; "
        f"first: {report.passed_over[0]})"
        if report.passed_over
        else ""
    )
    return InputError(
        f"no trace files found in {given}{looked}; correlate reads: "
        f"{', '.join(format_names('spans'))}; load-generator results: "
        f"{', '.join(format_names('load'))}; plans: {', '.join(format_names('plans'))}"
    )


def _expand(
    paths: Iterable[str | os.PathLike[str]], passed_over: list[Problem]
) -> Iterator[tuple[Path, bool, str | None]]:
    """(file, named explicitly, companion kind) for each path; directories recursively, sorted.

    In a run directory (docs/run-directory.md) the pool telemetry, client
    requests and run.json come with the kind of companion table they fill.
    What a directory holds that cannot be read (a folder it may not list, a
    named pipe, a socket) is added to ``passed_over`` with the reason.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            kinds: dict[Path, str] = {}
            if rundir.is_run_directory(path):
                for kind, files in rundir.companion_files(path).items():
                    kinds.update((f, kind) for f in files)
            for child in files_under(path, passed_over):
                yield child, False, kinds.get(child)
        elif path.is_file():
            yield path, True, None
        elif path.exists():
            raise InputError("not a regular file or directory", path)
        else:
            raise InputError("no such file or directory", path)


def files_under(folder: Path, passed_over: list[Problem]) -> list[Path]:
    """The regular files under ``folder`` that ingest reads, sorted, hidden ones left out;
    what it cannot list or read is added to ``passed_over``."""

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        passed_over.append(Problem(where, None, f"cannot list this folder ({exc.strerror})"))

    found: list[Path] = []
    for top, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            child = Path(top) / name
            if child.is_file():
                found.append(child)
            else:
                passed_over.append(Problem(child, None, f"not a regular file ({_kind_of(child)})"))
    return sorted(found)


def _kind_of(path: Path) -> str:
    if path.is_fifo():
        return "a named pipe"
    if path.is_socket():
        return "a socket"
    if path.is_block_device() or path.is_char_device():
        return "a device"
    if path.is_symlink():
        return "a link to nothing"
    return "not a file"
