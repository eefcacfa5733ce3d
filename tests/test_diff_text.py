"""A comparison in a terminal: it fits the terminal's width as `correlate analyze` does.

Long routes fold inside their column, whole columns leave (least important first) rather
than figures being cut, and the table says which columns a wider terminal would show.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

import correlate
import correlate.cli
from correlate.cli import cli
from correlate.cli_options import terminal_width
from correlate.diff import QueryChange, RouteChange, RunDiff
from correlate.diff.rules import parse_rules
from correlate.render.diff import render_text
from correlate.render.units import ms

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"
FIXED, BF = SAMPLES / "checkout-fixed", SAMPLES / "checkout-blackfriday"
LONG = "/customers/<int:customer_id>/orders/<int:order_id>/items/<int:item_id>/history"


def _route(name: str, *, note: str | None = None) -> RouteChange:
    return RouteChange(
        route=name,
        baseline_requests=1200,
        candidate_requests=1210,
        baseline_ms={"p50": 10.0, "p95": 20.0},
        candidate_ms={"p50": 30.0, "p95": 60.0},
        ratios={} if note else {"p95": (3.0, 2.5, 3.5)},
        baseline_error_rate=0.01,
        candidate_error_rate=0.1,
        baseline_errors=12,
        candidate_errors=121,
        note=note,
    )


def _diff() -> RunDiff:
    return RunDiff(
        baseline="main/run",
        candidate="pr/run",
        routes=[_route(LONG), _route("/a"), _route("/b", note="too few requests")],
        queries=[QueryChange(LONG, "abc123", "SELECT 1", 1.0, 20.0, 5.0, 9.0, 100.0, 900.0)],
        new_findings=[],
        resolved_findings=[],
        rules=parse_rules(["p95:+10%"]),
        failures=[f"p95:+10%: {LONG} p95 20.0 ms → 60.0 ms"],
        notes=[f"run {'x' * 150!r} had no load results"],
        load={"matched": "whole run"},
    )


def _table(text: str) -> str:
    return text.split("\nRoutes")[1].split("\nchange:")[0]


@pytest.mark.parametrize("width", [50, 60, 80, 100, 120])
def test_the_table_leaves_columns_out_rather_than_cut_figures(width: int) -> None:
    d = _diff()
    text = render_text(d, width=width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    table = _table(text)
    assert "…" not in table  # no figure shortened
    header = re.split(r"\s{2,}", table.splitlines()[1].strip())
    first_cells = "".join(re.split(r"\s{2,}", line.strip())[0] for line in table.splitlines())
    for r in d.routes:
        assert r.route in first_cells  # folded over lines, never cut
    shown = {
        "req": "1200 → 1210",
        "p50": f"{ms(10.0)} → {ms(30.0)}",
        "errors": "1% → 10%",
        "p95 change": "+200% [+150%, +250%]",
    }
    for name, figure in shown.items():
        if name in header:
            assert figure in table, (name, figure)
    assert "not compared" in table  # the p95 change column is never left out
    hidden = [n for n in ("req", "p50", "p95", "errors") if n not in header]
    if hidden:
        assert f"not shown at this width: {', '.join(hidden)}" in " ".join(text.split())
    else:
        assert "not shown at this width" not in text
    if width >= 120:
        assert not hidden
    # a long failure or note wraps; none of its words is lost
    assert f"p95:+10%: {LONG} p95 20.0 ms → 60.0 ms" in "".join(text.split("\n"))


def test_terminal_width_is_the_terminals_on_a_terminal_and_120_in_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert terminal_width() == 70
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert terminal_width() == 120


def test_the_diff_command_fits_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(correlate.cli, "terminal_width", lambda: 64)
    db = tmp_path / "s.duckdb"
    out = CliRunner().invoke(cli, ["diff", str(FIXED), str(BF), "--db", str(db), "--no-color"])
    assert out.exit_code == 1, out.output
    assert max(cell_len(line) for line in out.stdout.splitlines()) <= 64
    assert "not shown at this width" in out.stdout
    # written to a file, the text is as wide as in a pipe
    dest = tmp_path / "diff.txt"
    out = CliRunner().invoke(cli, ["diff", str(FIXED), str(BF), "--db", str(db), "-o", str(dest)])
    assert out.exit_code == 1, out.output
    assert "not shown at this width" not in dest.read_text()
