"""What the ``correlate`` commands share: options, parameter types, output and progress.

:mod:`correlate.cli` holds the commands; this module holds what several of them use —
``--db``, ``--set``, ``-o``/``--format`` and where output goes, the error line, size and
duration parameters, and the progress shown on a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from correlate.errors import CorrelateError, SettingsError

if TYPE_CHECKING:
    from correlate.store import Store


class Group(click.Group):
    """Turns the library's expected errors into ``Error: …`` and exit 1; a settings or
    configuration-file error is a usage error, exit 2, as a bad ``--set`` is."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            echo_error(exc)
            sys.exit(2)
        except CorrelateError as exc:
            echo_error(exc)
            sys.exit(1)


def safe_text(message: str) -> str:
    """A message of ours for the terminal: it may quote run names, routes or file contents
    (trace text), so control characters are shown as escapes; line breaks stay."""
    from correlate.render.escape import terminal_lines

    return terminal_lines(message)


def echo_error(exc: CorrelateError) -> None:
    click.echo(f"Error: {safe_text(str(exc))}", err=True)


def output_options(subject: str, what: str, default: str | None = None) -> Any:
    """``--format`` (a format of ``subject``, aliases allowed) and ``-o/--output`` (a file);
    ``default`` the format without either (the subject's first by default)."""
    from correlate.render.registry import renderers

    def names(r: Any) -> str:
        return r.name + (f" (or {', '.join(r.aliases)})" if r.aliases else "")

    listed = ", ".join(names(r) for r in renderers(subject))
    suffixes = ", ".join(f"{s} {r.name}" for r in renderers(subject) for s in r.suffixes)

    def decorate(command: Any) -> Any:
        command = click.option(
            "-o",
            "--output",
            "output",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Write {what} to this file (default: the terminal). Its suffix picks the "
            f"format when --format is not given: {suffixes}.",
        )(command)
        return click.option(
            "--format",
            "format_",
            type=click.Choice(
                [n for r in renderers(subject) for n in r.names], case_sensitive=False
            ),
            help=f"Output format: {listed} (default: from -o's suffix, else "
            f"{default or renderers(subject)[0].name}).",
        )(command)

    return decorate


def renderer_for(
    subject: str, format_: str | None, output: Path | None, db: Path | None = None
) -> Any:
    """The renderer of ``format_`` or ``output``'s suffix; ``output`` is never the store."""
    from correlate.render.registry import find_renderer

    if output is not None and db is not None and _same_file(output, db):
        raise click.BadParameter(
            f"{output} is the run store (--db): writing there would replace it",
            param_hint="-o/--output",
        )
    try:
        return find_renderer(subject, format_, path=output)
    except CorrelateError as exc:
        raise click.BadParameter(str(exc), param_hint="-o/--output") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one does not exist yet
        return a.resolve() == b.resolve()


def terminal_width() -> int:
    """The width text output is laid out for: the terminal's on a terminal (``COLUMNS``
    first, as ``shutil`` reads it), 120 columns in a pipe or a file."""
    import shutil

    return shutil.get_terminal_size((120, 40)).columns if sys.stdout.isatty() else 120


def emit(text: str, output: Path | None, renderer: Any, *, note: str = "") -> None:
    """Write ``text`` to ``output``, exactly; or print it, escaping control characters for a
    terminal unless a terminal renderer already did. ``-`` is the terminal, as in every
    command-line tool."""
    if output is not None and str(output) == "-":
        output = None
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
        size = len(text.encode()) / 1024
        click.echo(f"{note}wrote {output} ({renderer.name}, {size:,.0f} KB)")
        return
    if not renderer.terminal and sys.stdout.isatty():
        from correlate.render.escape import terminal_lines

        text = terminal_lines(text)
    # data (CSV, JSON, Markdown) goes to a pipe exactly: click would strip what looks like ANSI
    click.echo(text, nl=False, color=None if renderer.terminal else True)


db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CORRELATE_DB",
    default="correlate.duckdb",
    show_default=True,
    help="The run store (a DuckDB file). Also set by CORRELATE_DB.",
)


set_option = click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Tune a detector threshold, e.g. n_plus_one.min_calls=3 (repeatable; "
    "overrides correlate.toml / [tool.correlate]; keys in docs/rules.md).",
)


def settings_from(assignments: tuple[str, ...]) -> dict[str, Any] | None:
    """``--set`` values, typed; a bad key or value is a usage error (exit 2)."""
    if not assignments:
        return None
    from correlate.analysis.settings import parse_assignments

    try:
        return parse_assignments(assignments)
    except CorrelateError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None


def fail_on_help() -> str:
    from correlate.diff.rules import rules_help

    return rules_help()


def open_db(db: Path, *, read_only: bool = False) -> Store:
    from correlate.store import open_store

    return open_store(db, read_only=read_only)


class FormatChoice(click.Choice):
    """``--format``'s choices: the names in the input-format registry, read when first needed
    (so ``correlate --help`` does not import every reader)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from correlate.ingest.registry import format_names

        return tuple(format_names())

    @choices.setter
    def choices(self, value: object) -> None:
        pass  # always the registry's


class Size(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from correlate.fileio import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except CorrelateError as exc:
            self.fail(str(exc), param, ctx)


class IngestCommand(click.Command):
    """``ingest --help`` ends with every registered format and its line of help."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from correlate.fileio import CODECS
        from correlate.ingest.registry import INPUT_FORMATS
        from correlate.inputs import FAMILIES

        for family, title in FAMILIES.items():
            with formatter.section(f"Formats: {title}"):
                formatter.write_dl([(f.name, f.help) for f in INPUT_FORMATS if f.family == family])
        with formatter.section("Compression (any format, detected from content)"):
            formatter.write_text(", ".join(c.name for c in CODECS))
        super().format_epilog(ctx, formatter)


def parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        parsed[key] = value
    return parsed


def parse_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration such as 60, 90s or 2m") from None


def parse_interval(text: str) -> float:
    value = text.strip().lower()
    seconds = parse_seconds(value[:-2]) / 1000 if value.endswith("ms") else parse_seconds(value)
    if not seconds > 0:
        raise click.BadParameter(f"{text!r} is not a positive duration", param_hint="--interval")
    return seconds


def status_line() -> Any:
    def show(status: Any) -> None:
        click.echo("\r\033[K" + status.line(), err=True, nl=False)

    return show


class RichProgress:
    """A progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: Any = None

    def start(self, total_bytes: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task("ingest", total=total_bytes)

    def file(self, path: Path) -> None:
        self._bar.update(self._task, description=path.name[-40:])

    def advance(self, nbytes: int) -> None:
        self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        self._bar.stop()


def terminal_progress() -> RichProgress | None:
    return RichProgress() if sys.stderr.isatty() else None
