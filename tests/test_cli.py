"""The command line: exit codes, exact output, and parity with the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.cli_options import parse_seconds as _seconds
from correlate.demo import run_demo

from .conftest import DATA
from .sample_facts import span_count

CHECKOUT = DATA / "otlp" / "checkout.jsonl"
README = Path(__file__).resolve().parents[1] / "README.md"

#: CLI command -> the Python callable it is a skin over (named COMMAND or run_COMMAND).
API_TWINS = {
    "analyze": correlate.analyze,
    "diff": correlate.diff,
    "report": correlate.report,
    "ingest": correlate.Store.ingest,
    "runs": correlate.Store.runs,
    "sql": correlate.sql,
    "demo": run_demo,
    "plans capture": correlate.Store.capture_plans,
    "plans coverage": correlate.Store.plans_coverage,
    "watch": correlate.watch,
    "collect": correlate.collect,
    "record": correlate.record,
    "export": correlate.export,
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


def test_ingest_then_runs_then_sql(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(cli, ["ingest", str(CHECKOUT), "--run", "smoke", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == "run 'smoke': 5 spans added from 1 file(s)\n"

    result = runner.invoke(cli, ["runs", "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "name", "spans", "traces", "files", "skipped", "start", "duration_s", "services"
    ]  # fmt: skip
    assert lines[2].split()[:5] == ["smoke", "5", "2", "1", "0"]
    assert lines[2].split()[-2:] == ["1.012", "checkout"]
    assert lines[-1] == "(1 row)"

    query = "SELECT kind, count(*) AS n FROM spans GROUP BY kind ORDER BY kind"
    result = runner.invoke(cli, ["sql", query, "--db", str(db), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output == "kind,n\nCLIENT,3\nSERVER,2\n"
    result = runner.invoke(cli, ["sql", query, "--db", str(db), "--format", "json"])
    assert [json.loads(x) for x in result.output.splitlines()] == [
        {"kind": "CLIENT", "n": 3},
        {"kind": "SERVER", "n": 2},
    ]


def test_db_from_environment(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(
        cli, ["ingest", str(CHECKOUT), "--run", "r"], env={"CORRELATE_DB": str(db)}
    )
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_skipped_records_are_listed_and_the_command_succeeds(
    runner: CliRunner, db: Path, tmp_path: Path
) -> None:
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(CHECKOUT.read_text() + "{oops\n")
    result = runner.invoke(cli, ["ingest", str(dirty), "--run", "r", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "run 'r': 5 spans added from 1 file(s), 1 record(s) skipped\n"
        "skipped:\n"
        f"  {dirty}:3: not valid JSON (Expecting property name enclosed in double quotes at column 2)\n"
    )


def test_strict_exits_1_with_file_and_line(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(CHECKOUT.read_text() + "{oops\n")
    result = runner.invoke(cli, ["ingest", str(dirty), "--run", "r", "--strict", "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {dirty}:3: not valid JSON")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs"], "Error: no store at {db}: ingest a run first"),
        (["sql", "SELECT 1"], "Error: no store at {db}: ingest a run first"),
        (["ingest", "nope.jsonl", "--run", "r"], "Error: nope.jsonl: no such file or directory"),
    ],
)
def test_known_errors_exit_1(runner: CliRunner, db: Path, args: list[str], message: str) -> None:
    result = runner.invoke(cli, [*args, "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.startswith(message.format(db=db))


def test_bad_sql_exits_1(runner: CliRunner, db: Path) -> None:
    runner.invoke(cli, ["ingest", str(CHECKOUT), "--run", "r", "--db", str(db)])
    result = runner.invoke(cli, ["sql", "SELEC 1", "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Parser Error: syntax error")


def test_sql_is_read_only(runner: CliRunner, db: Path) -> None:
    runner.invoke(cli, ["ingest", str(CHECKOUT), "--run", "r", "--db", str(db)])
    result = runner.invoke(cli, ["sql", "DELETE FROM spans", "--db", str(db)])
    assert result.exit_code == 1
    assert "DELETE is not allowed in correlate sql" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", str(CHECKOUT)],  # no --run
        ["ingest", "--run", "r"],  # no path
        ["ingest", str(CHECKOUT), "--run", "r", "--format", "csv"],
        ["ingest", str(CHECKOUT), "--run", "r", "--label", "novalue"],
        ["sql"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, db: Path, args: list[str]) -> None:
    result = runner.invoke(cli, [*args, "--db", str(db)])
    assert result.exit_code == 2, result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.output == f"correlate, version {correlate.__version__}\n"


def _commands() -> dict[str, click.Command]:
    """Every runnable command, subcommands of groups as "group sub"."""
    found: dict[str, click.Command] = {}
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):
            found.update({f"{name} {sub}": c for sub, c in command.commands.items()})
        else:
            found[name] = command
    return found


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_help_an_api_twin_and_readme_mention(
    runner: CliRunner, name: str
) -> None:
    command = _commands()[name]
    assert command.help and len(command.help) > 20
    result = runner.invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert name in API_TWINS, f"correlate {name} has no Python twin listed in API_TWINS"
    twin = API_TWINS[name]
    words = name.replace("-", "_").split()
    # kebab ↔ snake, a group's verb first (plans capture ↔ capture_plans), or run_<verb>
    expected = {"_".join(words), "_".join(reversed(words)), "run_" + "_".join(words)}
    assert twin.__name__ in expected
    assert twin.__doc__
    assert f"correlate {name}" in README.read_text(), f"README does not show `correlate {name}`"


def test_console_script_and_module_entry_points(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    exe = Path(sys.executable).parent / "correlate"
    for command in ([str(exe)], [sys.executable, "-m", "correlate"]):
        result = subprocess.run(
            [*command, "ingest", str(CHECKOUT), "--run", "r", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        db.unlink()
        assert result.stderr == ""  # no progress bar when not on a terminal
        assert result.stdout == "run 'r': 5 spans added from 1 file(s)\n"


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    import os
    import pty

    main_fd, child_fd = pty.openpty()
    db = tmp_path / "s.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "correlate", "ingest", str(CHECKOUT), "--run", "r", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=child_fd,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(child_fd)
    stdout, _ = proc.communicate(timeout=60)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "checkout.jsonl" in terminal  # the bar names the file being read
    assert stdout.decode() == "run 'r': 5 spans added from 1 file(s)\n"  # the report stays clean


@pytest.mark.parametrize(
    ("text", "seconds"), [("60", 60.0), ("90s", 90.0), ("2m", 120.0), ("1.5m", 90.0)]
)
def test_demo_durations(text: str, seconds: float) -> None:
    assert _seconds(text) == seconds


def test_demo_rejects_a_bad_duration(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "run"), "--duration", "soon"])
    assert result.exit_code == 2
    assert "'soon' is not a duration such as 60, 90s or 2m" in result.output


def test_analyze_ingests_a_run_directory_once_and_prints_the_verdict(
    runner: CliRunner, db: Path
) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_traces" / "checkout-fixed"
    first = runner.invoke(cli, ["analyze", str(sample), "--db", str(db)])
    assert first.exit_code == 0, first.output
    spans = span_count("checkout-fixed")
    assert first.output.startswith(f"run 'checkout-fixed': {spans:,} spans added")
    assert "No findings" in first.output
    again = runner.invoke(cli, ["analyze", str(sample), "--db", str(db)])
    assert again.exit_code == 0
    assert again.output.startswith("correlate analyze checkout-fixed\n")  # nothing re-ingested
    by_name = runner.invoke(cli, ["analyze", "checkout-fixed", "--db", str(db)])
    assert by_name.output == again.output


def test_analyze_writes_the_formats_report_does(
    runner: CliRunner, db: Path, tmp_path: Path
) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_traces" / "checkout-fixed"
    assert runner.invoke(cli, ["analyze", str(sample), "--db", str(db)]).exit_code == 0
    md = runner.invoke(cli, ["analyze", "checkout-fixed", "--db", str(db), "--format", "md"])
    assert md.exit_code == 0, md.output
    assert md.output.startswith("### correlate: checkout-fixed")
    page = tmp_path / "verdict.html"
    wrote = runner.invoke(cli, ["analyze", "checkout-fixed", "--db", str(db), "-o", str(page)])
    assert wrote.exit_code == 0, wrote.output
    assert wrote.output.startswith(f"wrote {page} (html,")
    assert page.read_text().lstrip().lower().startswith("<!doctype html>")
    odd = runner.invoke(cli, ["analyze", "checkout-fixed", "--db", str(db), "-o", "x.weird"])
    assert odd.exit_code == 2 and "cannot tell the report format" in odd.output


def test_analyze_unknown_target_says_what_exists(runner: CliRunner, db: Path) -> None:
    runner.invoke(cli, ["ingest", str(CHECKOUT), "--run", "a", "--db", str(db)])
    result = runner.invoke(cli, ["analyze", "nope", "--db", str(db)])
    assert result.exit_code == 1
    assert "'nope' is neither a run directory or trace file nor a run in" in result.output
    assert "(runs there: a)" in result.output
