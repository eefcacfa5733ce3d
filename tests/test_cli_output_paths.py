"""`correlate analyze --format/-o` on hostile output paths: clear errors, never tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli

from .builders import RunBuilder


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


def _analyze(db: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["analyze", "r", *args, "--db", str(db)])


def test_text_to_a_file_is_the_terminals_text_without_colour(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "verdict.txt"
    result = _analyze(db, "--format", "text", "-o", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    text = out.read_text()
    assert text.startswith("correlate analyze r\n")
    assert "\x1b[" not in text


def test_a_directory_is_a_usage_error(db: Path, tmp_path: Path) -> None:
    result = _analyze(db, "-o", str(tmp_path))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "is a directory" in result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", ["missing/verdict.md", "a-file/verdict.md"])
def test_an_unwritable_path_is_an_error_not_a_traceback(
    db: Path, tmp_path: Path, where: str
) -> None:
    # a parent that does not exist, a parent that is a file (root writes anywhere else)
    (tmp_path / "a-file").write_text("")
    out = tmp_path / where
    result = _analyze(db, "-o", str(out))
    assert isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert result.output.startswith("Error: ")  # type: ignore[attr-defined]
    assert str(out) in result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args",
    [["analyze", "r"], ["report", "r"], ["runs"], ["diff", "r", "r"], ["sql", "SELECT 1"],
     ["plans", "coverage", "--run", "r"]],
)  # fmt: skip
def test_the_store_itself_is_never_the_output(db: Path, args: list[str]) -> None:
    before = db.read_bytes()
    result = CliRunner().invoke(cli, [*args, "--format", "json", "-o", str(db), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "the run store" in result.output
    assert db.read_bytes() == before


def test_a_dash_is_the_terminal_not_a_file_named_dash(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _analyze(db, "--format", "json", "-o", "-")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert result.output.startswith("{")  # type: ignore[attr-defined]
    assert not (tmp_path / "-").exists()
