"""Output options are the same in every command: -o is a file, --format a format (md = markdown)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.cli_options import emit as _emit
from correlate.render.registry import find_renderer

from .builders import RunBuilder

#: command -> the renderer subject its output options choose from
OUTPUT_COMMANDS = {
    "report": "report",
    "diff": "diff",
    "sql": "table",
    "runs": "table",
    "plans coverage": "coverage",
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.duckdb"
    b = RunBuilder()
    for i in range(5):
        r = b.request(f"t{i}", i * 100, i * 100 + 50, "/a")
        b.query(f"t{i}", r, i * 100 + 5, i * 100 + 20, "SELECT * FROM orders WHERE id = 1")
    with correlate.open_store(path) as store:
        b.build(store)
    return path


def _command(name: str) -> click.Command:
    command: click.Command = cli
    for word in name.split():
        assert isinstance(command, click.Group)
        command = command.commands[word]
    return command


@pytest.mark.parametrize(("name", "subject"), OUTPUT_COMMANDS.items())
def test_every_output_command_has_the_same_two_options(name: str, subject: str) -> None:
    params = {p.name: p for p in _command(name).params}
    output, format_ = params["output"], params["format_"]
    assert isinstance(output, click.Option) and isinstance(format_, click.Option)
    assert output.opts == ["-o", "--output"]
    assert isinstance(output.type, click.Path)  # a file, never a format
    assert format_.opts == ["--format"]
    assert isinstance(format_.type, click.Choice)
    choices = list(format_.type.choices)
    assert "text" in choices
    if "markdown" in choices:
        assert "md" in choices  # one spelling, one alias, everywhere


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["report", "r", "--format", "md"], lambda t: t.startswith("### correlate: r\n")),
        (["report", "r", "--format", "markdown"], lambda t: t.startswith("### correlate: r\n")),
        (["diff", "r", "r", "--format", "md"], lambda t: t.startswith("### 🟢 correlate:")),
        (["sql", "SELECT 1 AS n", "--format", "md"], lambda t: t.startswith("| n |\n| --- |")),
        (["runs", "--format", "csv"], lambda t: t.startswith("name,spans,")),
        (["plans", "coverage", "--run", "r", "--format", "json"], lambda t: json.loads(t)),
    ],
)
def test_format_names_a_format(db: Path, args: list[str], check: object) -> None:
    result = CliRunner().invoke(cli, [*args, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert callable(check) and check(result.output)


@pytest.mark.parametrize(
    ("args", "suffix", "check"),
    [
        (["sql", "SELECT 1 AS n"], ".csv", lambda t: t == "n\n1\n"),
        (["sql", "SELECT 1 AS n"], ".json", lambda t: t == '{"n": 1}\n'),
        (["sql", "SELECT 1 AS n"], ".txt", lambda t: t.endswith("(1 row)\n")),
        (["runs"], ".md", lambda t: t.startswith("| name | spans |")),
        (["diff", "r", "r"], ".md", lambda t: "no change" in t),
        (["diff", "r", "r"], ".json", lambda t: json.loads(t)["schema"] == "correlate.diff/1"),
        (["report", "r"], ".txt", lambda t: t.startswith("correlate analyze r\n")),
        (["plans", "coverage", "--run", "r"], ".json", lambda t: "rows" in json.loads(t)),
    ],
)
def test_the_format_follows_the_suffix_of_o(
    db: Path, tmp_path: Path, args: list[str], suffix: str, check: object
) -> None:
    out = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert re.search(rf"wrote {re.escape(str(out))} \(\w+, \d+ KB\)\n$", result.output)
    assert callable(check) and check(out.read_text())


def test_format_wins_over_the_suffix(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.txt"
    result = CliRunner().invoke(
        cli, ["sql", "SELECT 1 AS n", "--format", "csv", "-o", str(out), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == "n\n1\n"


def test_o_is_a_file_not_a_format(db: Path, tmp_path: Path) -> None:
    """``-o csv`` (how sql once took a format) is a usage error that says what to do."""
    result = CliRunner().invoke(cli, ["sql", "SELECT 1", "-o", "csv", "--db", str(db)])
    assert result.exit_code == 2
    assert "csv: cannot tell the table format from 'no suffix'" in result.output
    assert "or pass --format" in result.output
    assert not Path("csv").exists()


def test_an_unknown_format_is_a_usage_error(db: Path) -> None:
    result = CliRunner().invoke(cli, ["diff", "r", "r", "--format", "html", "--db", str(db)])
    assert result.exit_code == 2
    assert "'html' is not one of 'text', 'markdown', 'md', 'json'" in result.output


def test_data_printed_to_a_terminal_has_control_characters_escaped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = find_renderer("table", "csv")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    _emit("a\n\x1b]52;c;ZXZpbA==\x07\n", None, csv)
    assert capsys.readouterr().out == "a\n\\x1b]52;c;ZXZpbA==\\x07\n"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    _emit("a\n\x1b[2J\n", None, csv)  # to a pipe: exact
    assert capsys.readouterr().out == "a\n\x1b[2J\n"


def test_the_registry_names_what_it_knows() -> None:
    from correlate.errors import CorrelateError
    from correlate.render.registry import RENDERERS, format_names, renderers

    assert format_names("diff") == ["text", "markdown", "md", "json"]
    assert find_renderer("table", "TABLE").name == "text"
    assert find_renderer("report", path="r.markdown").name == "markdown"
    with pytest.raises(CorrelateError, match="unknown report format 'pdf': use one of text, "):
        find_renderer("report", "pdf")
    with pytest.raises(CorrelateError, match="nothing renders 'chart'"):
        renderers("chart")
    # a name or alias means one renderer per subject, and so does a suffix
    for subject in {r.subject for r in RENDERERS}:
        names = [n for r in renderers(subject) for n in r.names]
        suffixes = [s for r in renderers(subject) for s in r.suffixes]
        assert len(names) == len(set(names)) and len(suffixes) == len(set(suffixes))
        assert renderers(subject)[0].name == "text" and renderers(subject)[0].terminal
