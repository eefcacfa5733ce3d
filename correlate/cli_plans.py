"""``correlate plans capture`` and ``correlate plans coverage``: a run's query plans.

Registered on the ``correlate`` group by :mod:`correlate.cli`; like every command, each
parses its arguments, makes one library call and renders.
"""

from __future__ import annotations

from pathlib import Path

import click

from correlate.cli_options import db_option, emit, open_db, output_options, renderer_for, safe_text
from correlate.cli_source import check_source_options, source_options


@click.group()
def plans() -> None:
    """Query plans of a run's statements: capture them, and see how much time they cover.

    Plan files and PostgreSQL auto_explain logs are read by correlate ingest.
    """


@plans.command("capture")
@click.option(
    "--run",
    "run",
    required=True,
    help="The run whose statements to explain; with --source, the local run of --db that "
    "keeps the plans (created when new).",
)
@click.option(
    "--dsn",
    required=True,
    envvar="CORRELATE_PLANS_DSN",
    help="SQLAlchemy URL of the database the service used (password from the URL, "
    "PGPASSWORD or ~/.pgpass). Also CORRELATE_PLANS_DSN.",
)
@click.option(
    "--analyze",
    is_flag=True,
    help="EXPLAIN ANALYZE: EXECUTES each SELECT (never anything else) to measure it.",
)
@click.option(
    "--timeout",
    "timeout_ms",
    default=5000,
    show_default=True,
    metavar="MS",
    help="Statement timeout per EXPLAIN, in milliseconds.",
)
@source_options
@db_option
def plans_capture(
    run: str,
    dsn: str,
    analyze: bool,
    timeout_ms: int,
    source: str | None,
    window: str | None,
    services: tuple[str, ...],
    db: Path,
) -> None:
    """Explain each distinct statement shape of a run on a live database.

    Plain EXPLAIN never executes a statement: each runs in a read-only
    transaction that is rolled back, under a statement and a lock timeout.
    Span statements are untrusted: one that is not exactly one statement, or
    that --analyze could not run harmlessly, is refused with its reason
    (docs/security.md).
    Plans, their nodes and insights (e.g. a sequential scan that wants an
    index) are kept in the store.

    With --source, the statements are those of a ClickHouse source's spans (in
    --window, of --service): the plans go into the local run --run of --db, for
    `correlate analyze --source URL --db FILE --run RUN`.
    """
    check_source_options(source, window, services)
    with open_db(db) as store:
        if source is None:
            report = store.capture_plans(run, dsn, analyze=analyze, statement_timeout_ms=timeout_ms)
        else:
            from correlate.clickhouse.source import open_source

            with open_source(source, window=window, services=services) as spans:
                report = store.capture_plans(
                    run, dsn, analyze=analyze, statement_timeout_ms=timeout_ms, source=spans
                )
    click.echo(safe_text(report.summary()))


@plans.command("coverage")
@click.option("--run", "run", required=True, help="The run whose DB span time to measure.")
@click.option("--top", default=10, show_default=True, help="How many uncovered statements to list.")
@output_options("coverage", "the coverage")
@db_option
def plans_coverage(run: str, top: int, format_: str | None, output: Path | None, db: Path) -> None:
    """Share of a run's DB span time that has a plan, per database and overall.

    A span is covered exactly when a logged plan names it by its sqlcommenter
    traceparent, by fingerprint when a plan of its statement shape exists, or
    not at all; the statements with the most uncovered time are listed.
    """
    renderer = renderer_for("coverage", format_, output, db)
    with open_db(db, read_only=True) as store:
        coverage = store.plans_coverage(run, top=top)
    emit(renderer(coverage), output, renderer)
