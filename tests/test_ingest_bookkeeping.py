"""The files and problems rows of an ingest."""

from __future__ import annotations

from pathlib import Path

from correlate.ingest.bookkeeping import add_file_row, file_digest, holds_file, record_problems
from correlate.ingest.report import PROBLEM_LIST_CAP, FileReport
from correlate.store import Store


def test_every_problem_is_stored_in_line_order_and_the_report_is_capped(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text("x\n")
    run_id = store.ensure_run("r", source=str(tmp_path), labels=None)
    sha = file_digest(path)
    assert not holds_file(store, run_id, sha)
    with store.atomic():
        file_id = add_file_row(store, run_id, path, sha, "otlp-json")
        report = FileReport(path, "otlp-json")
        problems: list[tuple[int | None, str]] = [(None, "whole file"), (7, "b"), (3, "a")]
        problems += [(100 + i, f"p{i}") for i in range(30)] + [(7, "c")]
        record_problems(store, file_id, path, problems, report)
    assert holds_file(store, run_id, sha)
    stored = store.con.execute(
        "SELECT file_id, line, reason FROM problems ORDER BY rowid"
    ).fetchall()
    assert stored[:4] == [
        (file_id, 3, "a"),
        (file_id, 7, "b"),
        (file_id, 7, "c"),
        (file_id, 100, "p0"),
    ]
    assert stored[-1] == (file_id, None, "whole file")
    assert len(stored) == len(problems) == report.skipped
    assert len(report.problems) == PROBLEM_LIST_CAP
    assert [str(p) for p in report.problems[:2]] == [f"{path}:3: a", f"{path}:7: b"]
