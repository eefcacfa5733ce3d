"""Damage seen in the bytes of a file of JSON lines before DuckDB parses it.

:func:`broken_line` must find the first line that cannot be a JSON object
wherever it is (a block's edge, among many short lines, after carriage returns
and blank lines), and never call a well-formed file damaged; a damaged file it
finds skips the bulk read that would fail and is salvaged straight away.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.ingest import linescan, spanfile
from correlate.ingest.linescan import broken_line
from correlate.store import open_store

from .test_ingest_bulk import _line, _rows

_OBJECT = b'{"resourceSpans": []}'


def _reference(data: bytes) -> int | None:
    """What :func:`broken_line` answers, the slow and obvious way."""
    lines = data.split(b"\n")[:-1]  # the last piece is the unterminated last line, or empty
    for number, line in enumerate(lines, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        line = line.strip(b" \t\r")
        if line and not (line.startswith(b"{") and line.endswith(b"}")):
            return number
    return None


def _scan(tmp_path: Path, data: bytes) -> int | None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(data)
    return broken_line(path)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"", None),
        (_OBJECT + b"\n" + _OBJECT + b"\n", None),
        (b"\xef\xbb\xbf" + _OBJECT + b"\n", None),  # a BOM before the first line
        (b"  " + _OBJECT + b" \r\n\r\n\n \t\n" + _OBJECT + b"\r\n", None),  # blanks, CRLF
        (_OBJECT + b"\n" + _OBJECT[:9], None),  # a cut last line: last_line_is_bad's part
        (b"garbage\n" + _OBJECT + b"\n", 1),
        (_OBJECT + b"\n" + _OBJECT[:9] + b"\n" + _OBJECT + b"\n", 2),  # cut in half
        (_OBJECT + b"\n\n" + b"2026-12-07 12:00:00 INFO started\n", 3),
        (_OBJECT + b"\n" + _OBJECT + b"x\r\n", 2),
        (_OBJECT + b"\n" + b"[" + _OBJECT + b"]\n", 2),
    ],
)
def test_the_first_line_that_cannot_be_an_object_is_named(
    tmp_path: Path, data: bytes, line: int | None
) -> None:
    assert _reference(data) == line
    assert _scan(tmp_path, data) == line


@pytest.mark.parametrize("short_line", [0, 64])
def test_many_short_lines_and_block_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_line: int
) -> None:
    """Blocks small enough that newlines fall on their edges, and more lines in a
    block than are found one by one (numpy finds them), or than are looked at one
    by one (numpy judges every byte), or so short that numpy does from the start."""
    monkeypatch.setattr(linescan, "BLOCK_BYTES", 64)
    monkeypatch.setattr(linescan, "_FIND_AT_MOST", 3)
    monkeypatch.setattr(linescan, "_SHORT_LINE", short_line)
    lines = [b"{}", b"{ }", b" {}", b"", b"{}\r"] * 40
    assert _scan(tmp_path, b"\n".join(lines) + b"\n") is None
    for bad in (1, 37, 100, 200):
        damaged = list(lines)
        damaged[bad - 1] = b"{"
        assert _scan(tmp_path, b"\n".join(damaged) + b"\n") == bad


_PIECES = st.sampled_from(
    [
        b"{}",
        b'{"a": 1}',
        b" {} ",
        b"{}\r",
        b"",
        b"\r",
        b" ",
        b"{",
        b"}",
        b"x",
        b"[]",
        b"\xef\xbb\xbf{}",
        b"\xef\xbb\xbf",
        b"\t\t",
        b"\r\r",
        b" \r{}\t\r",
        b"x}",
        b"{x",
        b"  }",
        b"{  ",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_PIECES, max_size=40),
    final_newline=st.booleans(),
    block=st.integers(1, 40),
    find_at_most=st.integers(0, 5),
    short_line=st.sampled_from([0, 2, 64]),
)
def test_the_scan_agrees_with_reading_line_by_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[bytes],
    final_newline: bool,
    block: int,
    find_at_most: int,
    short_line: int,
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    with monkeypatch.context() as patch:
        patch.setattr(linescan, "BLOCK_BYTES", block)
        patch.setattr(linescan, "_FIND_AT_MOST", find_at_most)
        patch.setattr(linescan, "_SHORT_LINE", short_line)
        assert _scan(tmp_path, data) == _reference(data)


def test_a_broken_line_skips_the_bulk_read_and_the_file_is_salvaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk read is not tried on a file with a line cut in half, and the salvage
    keeps every other span and reports the line, as the careful path does."""
    from correlate.ingest import salvage

    lines = [_line(f"l{i}", i, spans=3) for i in range(1, 21)]
    lines[8] = lines[8][:120]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(salvage, "PIECE_BYTES", 4000)
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", 600)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    tried: list[Any] = []
    clean = spanfile._ingest_clean

    def recorded(*args: Any, **kwargs: Any) -> bool:
        tried.append(args[2])
        return clean(*args, **kwargs)

    monkeypatch.setattr(spanfile, "_ingest_clean", recorded)
    with open_store(tmp_path / "s.duckdb") as store:
        report = store.ingest([path], run="r", format="otlp-json")
        assert tried == []
        assert [p.line for p in report.problems] == [9]
        assert len(_rows(store)) == 19 * 3
    # a well-formed file still takes the bulk read
    (tmp_path / "whole.jsonl").write_text("\n".join(lines[:8]) + "\n")
    with open_store(tmp_path / "t.duckdb") as store:
        store.ingest([tmp_path / "whole.jsonl"], run="r", format="otlp-json")
        assert tried == [tmp_path / "whole.jsonl"]
        assert len(_rows(store)) == 8 * 3


def test_an_object_line_is_not_vouched_for(tmp_path: Path) -> None:
    """Braces at both ends are all the scan looks at: JSON broken inside is left to the reader."""
    inside = b'{"resourceSpans": [}'
    assert json.loads(_OBJECT) and _scan(tmp_path, inside + b"\n" + _OBJECT + b"\n") is None


def test_blank_lines_cost_no_more_than_short_ones(tmp_path: Path) -> None:
    """A file of mostly blank lines (or of lines of blanks) is scanned in memory of
    the order of a block, whatever its number of lines, and its broken line found."""
    import tracemalloc

    import numpy  # noqa: F401  (its import's memory is not the scan's)

    data = _OBJECT + b"\n" + b"\n" * (3 << 20) + b" \t\r\n" * (1 << 18) + b"oops\n"
    tracemalloc.start()
    try:
        found = _scan(tmp_path, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == 2 + (3 << 20) + (1 << 18)
    assert peak < 16 * linescan.BLOCK_BYTES


def test_a_file_cut_shorter_while_it_is_scanned_ends_the_scan(tmp_path: Path) -> None:
    """A file truncated under the scan (a log rotated by copying and truncating it)
    ends the scan with what was read; the process goes on (a mapped file's pages
    past its new end would kill it with SIGBUS). In a child process, so that such
    a death fails this test and not the run."""
    import subprocess
    import sys

    path = tmp_path / "rotated.jsonl"
    path.write_bytes(_OBJECT + b"\n" + _OBJECT * 40_000 + b"\n")
    child = f"""
import os
from pathlib import Path
from correlate.ingest import linescan
linescan.BLOCK_BYTES = 4096
path = Path({str(path)!r})
read = linescan._Scan.block
def block(self, *args):
    os.truncate(path, 10)  # after the first block is read
    return read(self, *args)
linescan._Scan.block = block
print(linescan.broken_line(path))
"""
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


@pytest.mark.parametrize("one_by_one", [True, False])
def test_a_piece_with_a_line_without_the_envelope_key_is_a_suspect(
    one_by_one: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines looked at one by one, or the key counted against the lines that are not
    blank: blank lines are no suspects, a line of another signal is."""
    monkeypatch.setattr(linescan, "LINES_ONE_BY_ONE", 1000 if one_by_one else 0)
    span = b'{"resourceSpans": []}'
    key = b'"resourceSpans"'
    path = tmp_path / "p.jsonl"

    def lacks(data: bytes) -> bool:
        path.write_bytes(data)
        return linescan.line_without(path, key)

    assert not lacks(span + b"\n" + span + b"\n")
    assert not lacks(b"\n" + span + b"\n\n\n" + span + b"\n")
    assert lacks(span + b'\n{"resourceMetrics": []}\n' + span + b"\n")
    assert lacks(b'{"resourceMetrics": []}\n')
    assert not lacks(b"")


def _line_without_reference(data: bytes, key: bytes) -> bool:
    """A line that is not blank lacks ``key``, the slow and obvious way."""
    return any(line.strip(b" \t\r") and key not in line for line in data.split(b"\n"))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.sampled_from([b'{"resourceSpans": []}', b"", b'{"resourceMetrics": []}', b"{}"]),
        max_size=40,
    ),
    one_by_one=st.integers(min_value=0, max_value=5),
    block=st.integers(min_value=1, max_value=64),
    final_newline=st.booleans(),
)
def test_line_without_finds_a_line_lacking_the_key_looked_at_or_counted(
    lines: list[bytes],
    one_by_one: int,
    block: int,
    final_newline: bool,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether lines are looked at one by one or the key is counted a block at a time
    (over block edges), the answer is the obvious one for lines with the key at most
    once (the count is fooled only by a line with it twice beside one without)."""
    monkeypatch.setattr(linescan, "LINES_ONE_BY_ONE", one_by_one)
    monkeypatch.setattr(linescan, "BLOCK_BYTES", block)
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("keys") / "f.jsonl"
    path.write_bytes(data)
    key = b'"resourceSpans"'
    assert linescan.line_without(path, key) == _line_without_reference(data, key)
