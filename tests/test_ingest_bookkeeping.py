"""The files and problems rows of an ingest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def test_a_file_hashed_while_it_is_read_is_still_known_by_its_content(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big file new to its run is hashed in the background: its files row still
    carries its SHA-256, and the same bytes again (under another name) add nothing."""
    import hashlib

    from correlate.ingest import bookkeeping, spanbatch, spanfile

    # Every file counts as big: read on its own, and hashed while it is read.
    monkeypatch.setattr(spanbatch, "SMALL_FILE_BYTES", -1)
    monkeypatch.setattr(spanfile, "BACKGROUND_DIGEST_BYTES", 0)
    started = []
    real = bookkeeping.background_digest
    monkeypatch.setattr(
        spanfile, "background_digest", lambda p, size: started.append(p) or real(p, size)
    )
    source = Path(__file__).parent / "data" / "otlp" / "checkout.jsonl"
    first, copy = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(source.read_bytes())
    copy.write_bytes(source.read_bytes())
    store.ingest([first], run="r")
    store.ingest([copy], run="r")
    rows = store.con.execute("SELECT path, sha256, records_added FROM files").fetchall()
    assert rows == [(str(first), hashlib.sha256(source.read_bytes()).hexdigest(), rows[0][2])]
    spans = store.con.execute("SELECT count(*) FROM spans").fetchone()
    assert spans is not None and spans[0] == rows[0][2] > 0
    assert started == [first]  # the copy, of a size the run holds, was hashed first


def test_a_background_digest_raises_what_reading_the_file_raised(tmp_path: Path) -> None:
    from correlate.ingest.bookkeeping import background_digest

    wait = background_digest(tmp_path / "gone.jsonl", 1)
    with pytest.raises(FileNotFoundError):
        wait()


def test_a_file_that_grows_while_it_is_read_is_not_taken_as_read_whole(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background digest covers only the bytes the file had when its read began:
    lines appended later (a file still being written) are not claimed by its hash, so
    ingesting the finished file again adds them instead of 'already in run'."""
    from correlate.ingest import bookkeeping, spanbatch, spanfile

    monkeypatch.setattr(spanbatch, "SMALL_FILE_BYTES", -1)
    monkeypatch.setattr(spanfile, "BACKGROUND_DIGEST_BYTES", 0)
    first_line, second_line = (
        (Path(__file__).parent / "data" / "otlp" / "checkout.jsonl").read_bytes().splitlines(True)
    )
    path = tmp_path / "live.jsonl"
    path.write_bytes(first_line)
    real = bookkeeping.background_digest

    def slow_digest(*args: Any, **kwargs: Any) -> Callable[[], str]:
        def appended_then_wait() -> str:
            # The writer appends after DuckDB's read, before the digest thread gets there.
            with path.open("ab") as f:
                f.write(second_line)
            return real(*args, **kwargs)()

        return appended_then_wait

    monkeypatch.setattr(spanfile, "background_digest", slow_digest)
    store.ingest([path], run="r")
    read_first = store.con.execute("SELECT count(*) FROM spans").fetchone()
    monkeypatch.setattr(spanfile, "background_digest", real)
    store.ingest([path], run="r")
    read_whole = store.con.execute("SELECT count(*) FROM spans").fetchone()
    assert read_first is not None and read_whole is not None
    assert read_whole[0] > read_first[0] > 0
