"""The ``correlate`` command: a thin skin over the Python API.

Each command parses its arguments, makes one library call and renders the
result. ``CorrelateError`` becomes ``Error: …`` and exit 1; usage errors (bad options,
settings and configuration files) exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from correlate.cli_collect import collect, record
from correlate.cli_options import (
    FormatChoice,
    Group,
    IngestCommand,
    Size,
    db_option,
    echo_error,
    emit,
    fail_on_help,
    open_db,
    output_options,
    parse_interval,
    parse_labels,
    parse_seconds,
    renderer_for,
    safe_text,
    set_option,
    settings_from,
    status_line,
    terminal_progress,
    terminal_width,
)
from correlate.cli_plans import plans
from correlate.cli_source import (
    RUN_HELP,
    check_source_options,
    source_options,
    source_store,
    source_target,
)
from correlate.errors import CorrelateError
from correlate.version import __version__

# correlate.demo imports SQLAlchemy: its names are repeated here (and tested to match)
# so that --help stays fast.
DEMO_FAULTS = ("missing_index", "n_plus_one", "pool_leak", "hot_row")
DEMO_SHAPES = ("stages", "constant", "surge")

if TYPE_CHECKING:
    pass


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="correlate")
def cli() -> None:
    """Tell why a service got slow under load.

    Ingest the spans of a load-test run into a store, then ask it questions.
    """


@cli.command(cls=IngestCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run", required=True, help="Name of the run to add the spans to.")
@click.option(
    "--format",
    "format_",
    type=FormatChoice(),
    help="Read every file as this format instead of detecting it (see Formats below).",
)
@click.option(
    "--strict", is_flag=True, help="Fail on the first bad record; keep nothing from that file."
)
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label the run (repeatable)."
)
@click.option(
    "--max-expanded",
    "max_expanded",
    type=Size(),
    default=None,
    metavar="SIZE",
    help="Refuse a compressed file that expands past SIZE (e.g. 8G; default 2G).",
)
@db_option
def ingest(
    paths: tuple[Path, ...],
    run: str,
    format_: str | None,
    strict: bool,
    labels: tuple[str, ...],
    max_expanded: int | None,
    db: Path,
) -> None:
    """Read trace files or directories (recursively) into a run.

    Each file's format is detected from its content (listed below): spans,
    query plans (a .sql file next to a plan file gives its statement) and
    load-generator results. Any file may be compressed (codecs below). Bad
    records are skipped and listed as FILE:LINE: reason.
    """
    parsed = parse_labels(labels)
    with open_db(db) as store:
        progress = terminal_progress()
        report = store.ingest(
            paths,
            run,
            format=format_,
            strict=strict,
            labels=parsed,
            progress=progress,
            max_expanded_bytes=max_expanded,
        )
    click.echo(safe_text(report.summary()))


@cli.command()
@click.argument("target", required=False)
@output_options("report", "the verdict", default="text")
@click.option("--run", "run", help=RUN_HELP)
@click.option(
    "--color/--no-color", default=None, help="Colour the verdict (default: when on a terminal)."
)
@source_options
@set_option
@db_option
def analyze(
    target: str | None,
    format_: str | None,
    output: Path | None,
    run: str | None,
    color: bool | None,
    source: str | None,
    window: str | None,
    services: tuple[str, ...],
    assignments: tuple[str, ...],
    db: Path,
) -> None:
    """Explain where a run's time went: findings first, then per-route tables.

    TARGET is a run directory or trace file (ingested first; files already
    in the run are passed over) or the name of a run in the store; with
    --source, the spans of a ClickHouse source in --window instead. With
    --format or -o, the verdict is written as `correlate report` writes it.
    """
    from correlate.analysis.verdict import analyze as analyze_run
    from correlate.reporting import render

    settings = settings_from(assignments)
    target = source_target(target, source, window, services)
    # --format or -o: the verdict as `correlate report` writes it, to a file or the terminal
    want = format_ is not None or output is not None
    renderer = renderer_for("report", format_, output, db) if want else None
    # `--format text` to the terminal is analyze's own (coloured, fitted) text
    written = (
        renderer.name
        if renderer is not None and (renderer.name != "text" or output is not None)
        else None
    )
    text = None
    if source is not None:
        with source_store(source, window, services, db, run=run) as (ch, _):
            result = analyze_run(ch.name, store=ch, settings=settings)
            if written:
                text = render(result, store=ch, format=written)
    else:
        ingesting = Path(target).exists()
        with open_db(db, read_only=not ingesting) as store:
            result = analyze_run(
                target, store=store, run=run, settings=settings, progress=terminal_progress()
            )
            if written:
                text = render(result, store=store, format=written)
    if result.ingest is not None and result.ingest.spans_added:
        click.echo(safe_text(result.ingest.summary()), err=True)
    if text is not None:
        emit(text, output, renderer)
        return
    use_color = sys.stdout.isatty() if color is None else color
    click.echo(result.to_text(color=use_color, width=terminal_width()), nl=False)


@cli.command()
@click.argument("baseline")
@click.argument("candidate", required=False)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="RULE",
    help=fail_on_help(),
)
@output_options("diff", "the comparison")
@click.option("--color/--no-color", default=None, help="Colour the text (default: on a terminal).")
@source_options
@click.option(
    "--run",
    "run",
    help="With --source: the local run whose plans and load results go with the spans.",
)
@set_option
@db_option
def diff(
    baseline: str,
    candidate: str | None,
    fail_on: tuple[str, ...],
    format_: str | None,
    output: Path | None,
    color: bool | None,
    source: str | None,
    window: str | None,
    services: tuple[str, ...],
    run: str | None,
    assignments: tuple[str, ...],
    db: Path,
) -> None:
    """Compare CANDIDATE with BASELINE and fail on regressions (exit 1).

    Each is a run directory or trace file (ingested first) or a run name.
    Two paths with one base name are two runs named by their path tails
    (main/run, pr/run); a path whose run in --db holds other files goes into a
    fresh run, so a reused store gives a fresh store's verdict; a path the
    store already holds a run from is that run, under its first name. Latency per
    route is compared at matched load with bootstrap intervals; queries by
    calls per request, time and plan; findings by what is new.
    Exit codes: 0 no regression, 1 regression, 2 usage or input error.

    With --source, the candidate is the spans of a ClickHouse source in --window
    (leave CANDIDATE out) and BASELINE either another window of the same source
    (START..END) or a run of --db (or a run directory), sent to ClickHouse for
    the comparison.
    """
    from correlate.diff import diff as diff_runs
    from correlate.diff.rules import parse_rules

    renderer = renderer_for("diff", format_, output, db)
    try:
        parse_rules(list(fail_on))
    except CorrelateError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    settings = settings_from(assignments)
    check_source_options(source, window, services)
    if (source is None) == (candidate is None):
        raise click.UsageError(
            "give CANDIDATE, or --source URL (the source's window is then the candidate)"
        )
    try:
        if source is not None:
            with source_store(source, window, services, db, run=run, baseline=baseline) as (
                ch,
                base,
            ):
                result = diff_runs(
                    str(base), ch.name, store=ch, fail_on=fail_on or None, settings=settings
                )
        else:
            assert candidate is not None
            ingesting = Path(baseline).exists() or Path(candidate).exists()
            with open_db(db, read_only=not ingesting) as store:
                result = diff_runs(
                    baseline, candidate, store=store, fail_on=fail_on or None, settings=settings
                )
    except CorrelateError as exc:
        echo_error(exc)
        sys.exit(2)
    use_color = (sys.stdout.isatty() and output is None) if color is None else color
    text = renderer(result, color=use_color, width=terminal_width() if output is None else 120)
    emit(text, output, renderer, note="regression; " if result.regressed else "no regression; ")
    sys.exit(1 if result.regressed else 0)


@cli.command()
@click.argument("target", required=False)
@output_options("report", "the report")
@click.option("--run", "run", help=RUN_HELP)
@source_options
@set_option
@db_option
def report(
    target: str | None,
    format_: str | None,
    output: Path | None,
    run: str | None,
    source: str | None,
    window: str | None,
    services: tuple[str, ...],
    assignments: tuple[str, ...],
    db: Path,
) -> None:
    """Write the verdict on a run as a report: HTML, Markdown, JSON or text.

    TARGET is a run directory or trace file (ingested first) or the name of a
    run in the store, as for `correlate analyze`. The HTML page is one
    self-contained file that works offline; Markdown is sized for a
    pull-request comment; JSON follows the schema in docs/report-json.md.
    """
    from correlate.reporting import report as report_run

    renderer = renderer_for("report", format_, output, db)
    settings = settings_from(assignments)
    target = source_target(target, source, window, services)
    if source is not None:
        with source_store(source, window, services, db, run=run) as (ch, _):
            text = report_run(ch.name, store=ch, format=renderer.name, settings=settings)
        emit(text, output, renderer)
        return
    ingesting = Path(target).exists()
    with open_db(db, read_only=not ingesting) as store:
        text = report_run(
            target,
            store=store,
            run=run,
            format=renderer.name,
            settings=settings,
            progress=terminal_progress(),
        )
    emit(text, output, renderer)


@cli.command()
@output_options("table", "the list")
@db_option
def runs(format_: str | None, output: Path | None, db: Path) -> None:
    """List the runs in the store with their counts, time range and services."""
    renderer = renderer_for("table", format_, output, db)
    with open_db(db, read_only=True) as store:
        frame = store.runs()
    if frame.empty:
        click.echo(f"no runs in {db}")
        return
    frame = frame[
        ["name", "spans", "traces", "files", "skipped", "start", "duration_s", "services"]
    ]
    emit(renderer(frame), output, renderer)


@cli.command()
@click.argument("run")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="clickhouse://[user[:password]@]host[:port]/DATABASE[?table=otel_traces"
    "&metrics_prefix=otel_metrics&secure=1], or chdb://PATH (a chDB session directory).",
)
@db_option
def export(run: str, to: str, db: Path) -> None:
    """Write a run's spans and pool samples into ClickHouse, as the Collector would have.

    Rows go into the OpenTelemetry Collector clickhouseexporter's tables
    (otel_traces, otel_metrics_*), created with the exporter's DDL when missing,
    so `correlate analyze --source URL`, SigNoz, Grafana and HyperDX read them.
    """
    from correlate.clickhouse.export import export as export_run

    with open_db(db, read_only=True) as store:
        report = export_run(run, store=store, to=to, progress=terminal_progress())
    click.echo(safe_text(report.summary()))


@cli.command()
@click.argument("query")
@output_options("table", "the result")
@click.option(
    "--allow-files",
    is_flag=True,
    help="Let the query read files (read_csv, read_parquet, glob); it can never write them.",
)
@db_option
def sql(query: str, format_: str | None, output: Path | None, allow_files: bool, db: Path) -> None:
    """Run read-only SQL over the store, e.g. "SELECT count(*) FROM spans".

    The query runs in a sandbox: it may read the store and nothing else (no
    files, URLs, other databases or extensions; no COPY, EXPORT, ATTACH,
    INSTALL or SET, even inside EXPLAIN). One statement at a time.
    --allow-files lets it read files too.
    """
    from correlate.sandbox import sql as run_sql

    renderer = renderer_for("table", format_, output, db)
    frame = run_sql(query, db=db, allow_files=allow_files)
    emit(renderer(frame), output, renderer)


@cli.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory to write (spans, pool telemetry, load results, run.json).",
)
@click.option("--dsn", help="SQLAlchemy URL of the database; default: a SQLite file in --out.")
@click.option(
    "--duration",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Length of the load: seconds, or with a unit (90s, 2m).",
)
@click.option("--users", default=20, show_default=True, help="Peak number of Locust users.")
@click.option("--fixed", is_flag=True, help="Turn every planted fault off (the healthy variant).")
@click.option("--orders", default=200_000, show_default=True, help="Rows seeded into orders.")
@click.option("--sqlcommenter", is_flag=True, help="Append sqlcommenter comments to the SQL.")
@click.option(
    "--instrument",
    type=click.Choice(["correlate", "otel"]),
    default="correlate",
    show_default=True,
    help="Record with correlate.instrument, or with stock OpenTelemetry only (SDK, official "
    "SQLAlchemy, Flask and urllib instrumentations, OTLP JSON file exporter).",
)
@click.option(
    "--fault",
    "only_faults",
    multiple=True,
    type=click.Choice(DEMO_FAULTS),
    help="Plant only this fault (repeat for several); default: all of them (none with --fixed).",
)
@click.option(
    "--shape",
    type=click.Choice(DEMO_SHAPES),
    default="stages",
    show_default=True,
    help="Load over time: stages (ramp up, steady, ramp down), constant, or surge (a peak, "
    "then a quarter of the users, then none).",
)
@click.option(
    "--watch",
    "watch_db",
    is_flag=True,
    help="Run correlate watch beside the load (PostgreSQL or MariaDB/MySQL --dsn).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port of the service; default: a free one."
)
@click.option(
    "--pool-size", default=5, show_default=True, help="The service's SQLAlchemy pool_size."
)
@click.option(
    "--max-overflow", default=5, show_default=True, help="The service's pool max_overflow."
)
@click.option("--compress", is_flag=True, help="Gzip the JSON Lines files of the run.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
def demo(
    out: Path,
    dsn: str | None,
    duration: str,
    users: int,
    fixed: bool,
    orders: int,
    sqlcommenter: bool,
    instrument: str,
    only_faults: tuple[str, ...],
    shape: str,
    watch_db: bool,
    port: int | None,
    pool_size: int,
    max_overflow: int,
    compress: bool,
    overwrite: bool,
) -> None:
    """Record a load-test run of the demo checkout service.

    Seeds the shop, starts the service on 127.0.0.1 with correlate.instrument,
    drives it with Locust (ramp up, steady, ramp down) and stops everything,
    leaving a run directory. With its faults on (the default) it has a missing
    index, an N+1 listing, a connection-pool leak on declined payments and a
    hot row locked across a slow fraud-check call.
    """
    import logging

    from correlate.demo import run_demo
    from correlate.demo.faults import Faults

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run_demo(
        out,
        dsn=dsn,
        duration=parse_seconds(duration),
        users=users,
        fixed=fixed,
        orders=orders,
        sqlcommenter=sqlcommenter,
        instrument=instrument,
        faults=Faults.only(only_faults) if only_faults else None,
        shape=shape,
        watch=watch_db,
        port=port,
        pool_size=pool_size,
        max_overflow=max_overflow,
        compress=compress,
        overwrite=overwrite,
    )
    click.echo(result.summary())
    click.echo(f"next: correlate analyze {out}")


@cli.command()
@click.option(
    "--dsn",
    required=True,
    envvar="CORRELATE_WATCH_DSN",
    help="SQLAlchemy URL of the database to watch (PostgreSQL, MariaDB, MySQL); a "
    "monitoring role is enough. Also CORRELATE_WATCH_DSN.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory; samples are appended to db/activity.jsonl in it.",
)
@click.option(
    "--interval",
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="Time between samples: seconds, or with a unit (0.2s, 500ms).",
)
@click.option(
    "--duration",
    default=None,
    metavar="DURATION",
    help="Stop after this long (90s, 2m); default: until Ctrl-C or SIGTERM.",
)
def watch(dsn: str, out: Path, interval: str, duration: str | None) -> None:
    """Sample the database's sessions and lock waits beside a load test.

    Polls pg_stat_activity and pg_blocking_pids (PostgreSQL) or the process
    list with InnoDB transactions and lock waits (MariaDB, MySQL) over one
    connection, with a statement timeout, and appends each session's state
    to RUN_DIR/db/activity.jsonl. Stops at --duration or on Ctrl-C/SIGTERM.
    """
    from correlate.watch import watch as run_watch

    every = parse_interval(interval)
    limit = parse_seconds(duration) if duration is not None else None
    status = status_line() if sys.stderr.isatty() else None
    try:
        result = run_watch(dsn, out, interval=every, duration=limit, status=status)
    finally:
        if status is not None:
            click.echo("\r\033[K", err=True, nl=False)
    click.echo(result.summary(), nl=False)


# correlate collect, record and plans, kept in modules of their own
cli.add_command(collect)
cli.add_command(record)
cli.add_command(plans)


def main() -> None:
    cli(prog_name="correlate")
