"""``--source URL [--window START..END] [--service NAME]…``: a command run on a ClickHouse source.

``analyze``, ``report`` and ``diff`` take these options to analyse spans where
they already are (:func:`correlate.clickhouse.source.open_source`) instead of a
run of the local store. ``--db`` and ``--run`` then name the local run whose
plans and load results go with the spans; for ``diff``, BASELINE is a local run
(or run directory) compared against the source's window as the candidate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from correlate.clickhouse.source import ClickHouseStore


def source_options(command: Any) -> Any:
    """``--source``, ``--window`` and ``--service`` (see the module docstring)."""
    command = click.option(
        "--service",
        "services",
        multiple=True,
        metavar="NAME",
        help="With --source: keep this service's spans only (repeatable).",
    )(command)
    command = click.option(
        "--window",
        metavar="START..END",
        help="With --source: the traces that started in this window, with all their spans: "
        "ISO-8601 times (UTC unless an offset is given) or epoch seconds; either end may "
        "be left out.",
    )(command)
    return click.option(
        "--source",
        metavar="URL",
        help="Analyse spans in ClickHouse, where the OpenTelemetry Collector's exporter "
        "wrote them: clickhouse://host:8123/DATABASE?table=otel_traces or chdb://PATH. "
        "--db and --run then name a local run for plans and load results.",
    )(command)


def check_source_options(source: str | None, window: str | None, services: tuple[str, ...]) -> None:
    """A usage error for ``--window``/``--service`` without ``--source``."""
    if source is None and (window is not None or services):
        option = "--window" if window is not None else "--service"
        raise click.UsageError(f"{option} applies to a ClickHouse source: add --source URL")


RUN_HELP = (
    "Run name for a directory being ingested (default: its name); with --source, "
    "the local run of --db whose plans and load results go with the spans."
)


def source_target(
    target: str | None, source: str | None, window: str | None, services: tuple[str, ...]
) -> str:
    """TARGET, or "" with --source (which takes its place)."""
    check_source_options(source, window, services)
    if source is not None:
        if target is not None:
            raise click.UsageError(
                f"give TARGET ({target!r}) or --source, not both; name the local run "
                "for plans and load results with --run"
            )
        return ""
    if target is None:
        raise click.UsageError(
            "missing TARGET (a run directory, trace file or run name) or --source URL"
        )
    return target


@contextmanager
def source_store(
    source: str,
    window: str | None,
    services: tuple[str, ...],
    db: Path,
    *,
    run: str | None = None,
    baseline: str | None = None,
) -> Iterator[tuple[ClickHouseStore, str | None]]:
    """The source opened for analysis, and the baseline's run name when one is given;
    on leaving, a line on stderr says what came back from ClickHouse."""
    from correlate.analysis.verdict import resolve_run
    from correlate.cli_options import open_db, safe_text, terminal_progress
    from correlate.clickhouse.source import open_source

    base_window = _window_of(baseline)
    if base_window is not None:
        baseline = None
    with ExitStack() as stack:
        local = None
        base_name = None
        if run is not None or baseline is not None:
            ingesting = baseline is not None and Path(baseline).exists()
            local = stack.enter_context(open_db(db, read_only=not ingesting))
            if baseline is not None:
                base_name, _ = resolve_run(local, baseline, progress=terminal_progress())
        if sys.stderr.isatty():  # deriving a long window's spans takes a while: say so
            click.echo(f"reading the spans of {_shown(source)} in ClickHouse…", err=True)
        store = stack.enter_context(
            open_source(
                source,
                window=window,
                services=services,
                local=local,
                run=run,
                baseline=base_name,
                baseline_window=base_window,
            )
        )
        if base_window is not None:
            base_name = store.run_names()[-1]
        click.echo(
            safe_text(f"{store.path}: {store.spans:,} spans in {store.name}"),
            err=True,
        )
        yield store, base_name
        click.echo(
            f"ClickHouse: {store.engine.statements} statements, "
            f"{store.bytes_fetched:,} bytes brought back",
            err=True,
        )


def _window_of(baseline: str | None) -> str | None:
    """``baseline`` when it reads as a window (``START..END``) and names no file."""
    from correlate.clickhouse.window import WindowError, parse_window

    if baseline is None or ".." not in baseline or Path(baseline).exists():
        return None
    try:
        parse_window(baseline)
    except WindowError:
        return None
    return baseline


def _shown(url: str) -> str:
    """``url`` for a message: its password, if any, left out."""
    from correlate.clickhouse.connection import ClickHouseError, parse_url

    try:
        return parse_url(url).display
    except ClickHouseError:
        return "the source"


__all__ = ["RUN_HELP", "check_source_options", "source_options", "source_store", "source_target"]
