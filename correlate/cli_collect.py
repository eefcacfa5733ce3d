"""``correlate collect`` and ``correlate record``: the receiver's commands.

Registered on the ``correlate`` group by :mod:`correlate.cli`; like every
command, each parses its arguments, makes one library call and renders.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click

from correlate.cli_options import (
    Size,
    db_option,
    open_db,
    parse_seconds,
    set_option,
    settings_from,
    status_line,
)


def _listen_options(command: Any) -> Any:
    """The receiver's options, shared by ``collect`` and ``record``."""
    options = [
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to listen on; one that is not loopback needs --allow-remote.",
        ),
        click.option(
            "--http-port", default=4318, show_default=True, help="OTLP/HTTP port (0: any free)."
        ),
        click.option(
            "--grpc-port",
            default=4317,
            show_default=True,
            help="OTLP/gRPC port (0: any free); needs grpcio (correlate[grpc]).",
        ),
        click.option("--no-grpc", is_flag=True, help="Listen for OTLP/HTTP only."),
        click.option(
            "--allow-remote",
            is_flag=True,
            help="Let --host be an address other machines reach (there is no authentication).",
        ),
        click.option(
            "--max-body",
            "max_body",
            type=Size(),
            default="20M",
            show_default=True,
            metavar="SIZE",
            help="Refuse (413) a request body larger than SIZE, compressed or not.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory: spans/, metrics/ and logs/ are written in it.",
)
@_listen_options
@click.option(
    "--duration",
    default=None,
    metavar="DURATION",
    help="Stop after this long (90s, 2m); default: until Ctrl-C or SIGTERM.",
)
@click.option(
    "--rotate",
    type=Size(),
    default="64M",
    show_default=True,
    metavar="SIZE",
    help="Start a new file (and gzip the full one) once a file reaches SIZE.",
)
def collect(
    out: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    no_grpc: bool,
    allow_remote: bool,
    max_body: int,
    duration: str | None,
    rotate: int,
) -> None:
    """Be the OTLP endpoint of a run: receive spans, metrics and logs into RUN_DIR.

    Listens for OTLP/HTTP (/v1/traces, /v1/metrics, /v1/logs; protobuf or
    JSON, gzip or not) and OTLP/gRPC on 127.0.0.1. Point the service at it
    with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318. A request is
    answered once it is written; Ctrl-C or SIGTERM stops listening, finishes
    what is in hand and closes the files. Then: correlate analyze RUN_DIR.
    """
    from correlate.collect import collect as run_collect

    limit = parse_seconds(duration) if duration is not None else None
    status = status_line() if sys.stderr.isatty() else None

    def ready(receiver: Any) -> None:
        where = [f"OTLP/HTTP {receiver.http_endpoint}"]
        if receiver.grpc_endpoint:
            where.append(f"OTLP/gRPC {receiver.grpc_endpoint}")
        click.echo(f"listening: {', '.join(where)}; Ctrl-C to stop", err=True)
        if receiver.grpc_skipped:
            click.echo(receiver.grpc_skipped, err=True)

    try:
        result = run_collect(
            out,
            host=host,
            http_port=http_port,
            grpc_port=None if no_grpc else grpc_port,
            allow_remote=allow_remote,
            duration=limit,
            max_body_bytes=max_body,
            rotate_bytes=rotate,
            status=status,
            ready=ready,
        )
    finally:
        if status is not None:
            click.echo("\r\033[K", err=True, nl=False)
    click.echo(result.summary(), nl=False)
    click.echo(f"next: correlate analyze {out}")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory to write: spans, metrics, logs, load/ and (with --dsn) db/.",
)
@click.option(
    "--dsn",
    envvar="CORRELATE_WATCH_DSN",
    help="Also run correlate watch on this database (SQLAlchemy URL) beside the command.",
)
@_listen_options
@click.option(
    "--linger",
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="After the command exits, wait this long for exports still on their way.",
)
@click.option(
    "--color/--no-color", default=None, help="Colour the verdict (default: on a terminal)."
)
@set_option
@db_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def record(
    out: Path,
    dsn: str | None,
    host: str,
    http_port: int,
    grpc_port: int,
    no_grpc: bool,
    allow_remote: bool,
    max_body: int,
    linger: str,
    color: bool | None,
    assignments: tuple[str, ...],
    db: Path,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with correlate as its OTLP endpoint, then analyse the run.

    Starts the receiver (and correlate watch with --dsn), runs COMMAND (after
    --) with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 and
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, stops everything when it
    exits, copies the k6 or Locust results it named into RUN_DIR/load/
    (CORRELATE_LOAD_DIR tells it where that is) and prints the verdict.
    Exits with COMMAND's exit code when that is not 0.
    """
    from correlate.collect.recorder import record as run_record

    settings = settings_from(assignments)
    with open_db(db) as store:
        result = run_record(
            out,
            command,
            store=store,
            dsn=dsn,
            host=host,
            http_port=http_port,
            grpc_port=None if no_grpc else grpc_port,
            allow_remote=allow_remote,
            max_body_bytes=max_body,
            linger=parse_seconds(linger),
            settings=settings,
        )
    click.echo(result.summary(), err=True, nl=False)
    if result.analysis is not None:
        use_color = sys.stdout.isatty() if color is None else color
        width = shutil.get_terminal_size((120, 40)).columns if sys.stdout.isatty() else 120
        click.echo(result.analysis.to_text(color=use_color, width=width), nl=False)
    if result.returncode:
        sys.exit(result.returncode)
