"""The bulk paths of span ingest: many small files read together, damaged files salvaged in bulk.

Both must give exactly what reading each file on its own, line by line, gives:
every good span once, every bad record reported with its file and line.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.ingest import linescan, salvage, spanbatch, spanfile
from correlate.ingest.report import PROBLEM_LIST_CAP
from correlate.store import Store, open_store

from .conftest import DATA


def _line(name: str, trace: int, spans: int = 1, *, service: str = "svc") -> str:
    """One OTLP/JSON line of ``spans`` spans named ``name#i``, in trace ``trace``."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [
                        {
                            "scope": {"name": "test"},
                            "spans": [
                                {
                                    "traceId": f"{trace:032x}",
                                    "spanId": f"{trace * 1000 + i + 1:016x}",
                                    "name": f"{name}#{i}",
                                    "kind": 2,
                                    "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                                    "endTimeUnixNano": str(1_700_000_000_000_100_000 + i),
                                    "attributes": [
                                        {"key": "http.route", "value": {"stringValue": "/x"}},
                                        {"key": "n", "value": {"intValue": str(i)}},
                                    ],
                                }
                                for i in range(spans)
                            ],
                        }
                    ],
                }
            ]
        }
    )


def _rows(store: Store) -> list[tuple[str, str, str]]:
    """(file name, span name, attributes) of every stored span, sorted."""
    return sorted(
        (Path(path).name, name, json.dumps(json.loads(attrs), sort_keys=True))
        for path, name, attrs in store.con.execute(
            "SELECT f.path, s.name, s.attributes FROM spans s JOIN files f USING (file_id)"
        ).fetchall()
    )


def _one_by_one(paths: list[Path], tmp_path: Path) -> Store:
    """The reference: each file ingested on its own (no grouping)."""
    store = open_store(tmp_path / "reference.duckdb")
    for path in paths:
        store.ingest([path], run="r")
    return store


def bulk_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each bulk read of a whole file (``spanfile._ingest_clean``) answered, in order:
    True when it kept the file, False when the file went another way."""
    answers: list[bool] = []
    ingest_clean = spanfile._ingest_clean

    def recorded(*args: Any, **kwargs: Any) -> bool:
        answers.append(ingest_clean(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(spanfile, "_ingest_clean", recorded)
    return answers


def _problems(store: Store) -> list[tuple[str, int | None, str]]:
    return sorted(
        (Path(path).name, line, reason)
        for path, line, reason in store.con.execute(
            "SELECT f.path, p.line, p.reason FROM problems p JOIN files f USING (file_id)"
        ).fetchall()
    )


def test_small_files_read_together_match_files_read_one_by_one(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:02d}.jsonl").write_text(_line(f"f{i}", i + 1, spans=1 + i % 3) + "\n")
    (folder / "same-as-00.jsonl").write_bytes((folder / "00.jsonl").read_bytes())
    with gzip.open(folder / "zipped.jsonl.gz", "wt") as f:
        f.write(_line("gz", 99, spans=2) + "\n")
    report = store.ingest([folder], run="r")
    reference = _one_by_one(sorted(folder.iterdir()), tmp_path)
    assert _rows(store) == _rows(reference)
    assert report.spans_added == sum(1 + i % 3 for i in range(40)) + 2
    assert [f.already_ingested for f in report.files].count(True) == 1
    counts = store.con.execute(
        "SELECT count(*), sum(records_read), sum(records_added) FROM files"
    ).fetchone()
    assert counts == (41, report.spans_added, report.spans_added)
    per_file = store.con.execute(
        "SELECT f.records_added, (SELECT count(*) FROM spans s WHERE s.file_id = f.file_id) "
        "FROM files f"
    ).fetchall()
    assert all(recorded == stored for recorded, stored in per_file)


def test_a_bad_file_in_a_group_is_read_on_its_own_and_the_rest_together(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:02d}.jsonl").write_text(_line(f"f{i}", i + 1, spans=2) + "\n")
    good = _line("bad-file-good-line", 50, spans=2)
    (folder / "05.jsonl").write_text(good + '\n{"resourceSpans": [\n' + _line("after", 51) + "\n")
    (folder / "09.jsonl").write_text(_line("f9-again", 90, spans=2) + '\n{"hello": "world"}\n')
    report = store.ingest([folder], run="r")
    reference = _one_by_one(sorted(folder.iterdir()), tmp_path)
    assert _rows(store) == _rows(reference)
    assert _problems(store) == _problems(reference)
    assert [(p.path.name, p.line) for p in report.problems] == [("05.jsonl", 2), ("09.jsonl", 2)]
    assert report.spans_added == 10 * 2 + 3 + 2


def _moved_after_listing(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Rename ``victim`` once every file was listed and detected, before any is read:
    what a collector rotating its files does while an ingest runs."""
    from correlate.ingest import pipeline

    detect = pipeline.detect

    def detect_then_move(path: Path) -> Any:
        found = detect(path)
        if path.name == "11.jsonl" and victim.exists():
            victim.rename(victim.with_name(".rotated"))
        return found

    monkeypatch.setattr(pipeline, "detect", detect_then_move)


def test_a_file_moved_during_ingest_is_passed_over_and_the_rest_read(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:02d}.jsonl").write_text(_line(f"f{i}", i + 1) + "\n")
    _moved_after_listing(monkeypatch, folder / "04.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 11
    assert [(p.path.name, p.line) for p in report.passed_over] == [("04.jsonl", None)]
    assert "cannot read this file" in report.passed_over[0].reason


def test_a_named_file_moved_during_ingest_is_an_error_naming_it(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [tmp_path / f"{i:02d}.jsonl" for i in range(12)]
    for i, path in enumerate(paths):
        path.write_text(_line(f"f{i}", i + 1) + "\n")
    _moved_after_listing(monkeypatch, paths[4])
    with pytest.raises(InputError, match="04.jsonl: cannot read this file"):
        store.ingest(paths, run="r")


def test_file_names_in_a_group_are_never_glob_patterns(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl", "[ab].jsonl", "*.jsonl"):
        (folder / name).write_text(_line(name, len(name) + ord(name[0])) + "\n")
    store.ingest([folder], run="r")
    assert [name for _, name, _ in _rows(store)] == sorted(
        f"{n}#0" for n in ("*.jsonl", "[ab].jsonl", "a.jsonl", "b.jsonl")
    )


def test_groups_are_bounded(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spanbatch, "GROUP_FILES", 3)
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(10):
        (folder / f"{i:02d}.jsonl").write_text(_line(f"f{i}", i + 1) + "\n")
    shutil.copy(DATA / "faithful" / "one_span.jsonl", folder / "zz.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 11
    file_ids = [
        r[0] for r in store.con.execute("SELECT file_id FROM files ORDER BY path").fetchall()
    ]
    assert file_ids == sorted(file_ids)  # files keep their order, so dedupe keeps the first


# -- a damaged big file: good pieces in bulk, bad lines on the careful path ---------------


def _damaged_file(path: Path, lines: int, damage: dict[int, str], *, final_newline: bool) -> None:
    text = [_line(f"l{i}", i, spans=3) for i in range(1, lines + 1)]
    for number, replacement in damage.items():
        text[number - 1] = replacement
    path.write_text("\n".join(text) + ("\n" if final_newline else ""))


def _salvage_vs_careful(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    damaged: bool | None = True,
    piece: int = 4000,
    careful: int = 600,
) -> tuple[Store, Store]:
    monkeypatch.setattr(salvage, "PIECE_BYTES", piece)
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", careful)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    salvaged: list[bool] = []

    def recorded(*args: Any, **kwargs: Any) -> bool:
        salvaged.append(salvage.salvage(*args, **kwargs))
        return salvaged[-1]

    monkeypatch.setattr(spanfile, "salvage", recorded)
    bulk = open_store(tmp_path / "bulk.duckdb")
    bulk.ingest([path], run="r", format="otlp-json")
    # the bulk path did it, not the careful path after it (None: either may)
    assert damaged is None or salvaged == [True]
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1 << 60)
    careful = open_store(tmp_path / "careful.duckdb")
    careful.ingest([path], run="r", format="otlp-json")
    return bulk, careful


@pytest.mark.parametrize("final_newline", [True, False])
def test_damaged_file_salvaged_in_bulk_matches_the_careful_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, final_newline: bool
) -> None:
    path = tmp_path / "damaged.jsonl"
    no_trace = _line("no-trace", 7, spans=3).replace('"traceId": "', '"traceIdX": "', 1)
    damage = {
        3: "this is not JSON",
        7: no_trace,
        12: '{"hello": "world"}',
        20: _line("cut", 20, spans=3)[:150],
    }
    _damaged_file(path, 20, damage, final_newline=final_newline)
    assert path.stat().st_size > 10 * 4000 / 4  # several pieces
    bulk, careful = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful)
    assert [line for _, line, _ in _problems(bulk)] == [3, 7, 12, 20]
    assert len(_rows(bulk)) == 16 * 3 + 2  # the span without a trace id is the only one lost
    last = _problems(bulk)[-1][2]
    assert ("cut short" in last) == (not final_newline)


@pytest.mark.parametrize("bulk", [False, True])
def test_a_file_cut_at_its_start_is_detected_and_its_first_line_reported(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    if bulk:  # big enough to be salvaged in pieces
        monkeypatch.setattr(salvage, "PIECE_BYTES", 4000)
        monkeypatch.setattr(salvage, "CAREFUL_BYTES", 600)
        monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    folder = tmp_path / "run"
    folder.mkdir()
    tail_of_a_record = _line("lost", 1, spans=3)[200:]
    _damaged_file(folder / "cut.jsonl", 20, {1: tail_of_a_record}, final_newline=True)
    # text that merely mentions OTLP in a later line is still not a trace file
    (folder / "notes.txt").write_text('see\nthe "resourceSpans" key\n{"a": 1}\nend\n')
    report = store.ingest([folder], run="r")
    assert report.spans_added == 19 * 3
    assert [(p.path.name, p.line) for p in report.problems] == [("cut.jsonl", 1)]
    assert [p.path.name for p in report.passed_over] == ["notes.txt"]


def test_clean_file_with_blank_lines_and_every_line_bad_salvages_correctly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blank.jsonl"
    lines = [_line(f"b{i}", i, spans=2) for i in range(1, 9)]
    lines[4] = ""
    lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n\n")
    bulk, careful = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful) == [("blank.jsonl", 3, _problems(careful)[0][2])]


def test_a_byte_order_mark_inside_a_file_is_a_bad_line_wherever_the_pieces_fall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files joined with ``cat``, each but the first with its byte order mark: the
    mark starts a line in the middle of the file, which the careful path reports.
    A piece cut there starts with it, and DuckDB, like the careful reader of a whole
    file, takes a mark at a file's start as no part of it: the salvage must still
    report it."""
    path = tmp_path / "joined.jsonl"
    bom = "\ufeff"
    lines = [_line(f"j{i}", i, spans=2) for i in range(1, 13)]
    path.write_text("\n".join(lines[:1] + [bom + line for line in lines[1:]]) + "\n")
    bulk, careful = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert len(_rows(careful)) == 2
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful)
    assert [line for _, line, _ in _problems(bulk)] == list(range(2, 13))


@pytest.mark.parametrize("bad_lines", [[3], list(range(3, 25))])
def test_a_salvaged_file_reports_its_problems_in_line_order_as_the_careful_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_lines: list[int]
) -> None:
    """Spans the checks reject in the bulk-read pieces are listed among the bad lines of the
    others at their lines, not before them: the report reads as the careful path's does
    (and, past its cap, keeps the same first ones)."""
    path = tmp_path / "order.jsonl"
    no_trace = _line("no-trace", 35, spans=3).replace('"traceId": "', '"traceIdX": "', 1)
    damage = {35: no_trace, **{line: "this is not JSON" for line in bad_lines}}
    _damaged_file(path, 40, damage, final_newline=True)
    reports = []
    for careful in (False, True):
        if careful:
            monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1 << 60)
        else:
            monkeypatch.setattr(salvage, "PIECE_BYTES", 4000)
            monkeypatch.setattr(salvage, "CAREFUL_BYTES", 600)
            monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
        with open_store(tmp_path / f"{careful}.duckdb") as store:
            report = store.ingest([path], run="r", format="otlp-json")
            reports.append([(p.line, p.reason) for p in report.problems])
    assert reports[0] == reports[1]
    assert [line for line, _ in reports[0]] == [*bad_lines, 35][:PROBLEM_LIST_CAP]


def test_a_salvage_that_fails_leaves_the_stores_settings_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value of the wrong type that only the strict bulk read of the pieces finds fails
    every salvage; the file is then read line by line, and the connection keeps its
    insertion order (the bulk read sets it aside only while it runs)."""
    path = tmp_path / "typed.jsonl"
    damage = {3: "this is not JSON", 12: '{"resourceSpans": [{"scopeSpans": "x"}]}'}
    _damaged_file(path, 20, damage, final_newline=True)
    bulk, careful = _salvage_vs_careful(path, tmp_path, monkeypatch, damaged=None)
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful)
    setting = "SELECT current_setting('preserve_insertion_order')"
    assert bulk.con.execute(setting).fetchall() == [(True,)]


_DAMAGE = st.sampled_from(
    [
        "this is not JSON",
        '{"hello": "world"}',
        "CUT",  # the line's own JSON cut in half
        "NO_TRACE",  # one span of the line without a trace id
        "",  # a blank line
        '{"resourceSpans": [}',  # braces and the envelope's key, but no JSON
        '{"resourceMetrics": []}',  # a line of another signal
        '{"note": "resourceSpans"}',  # the key, but as a string
        "TWICE",  # a good line with the key twice (a value), hiding a line without it
    ]
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lines=st.lists(st.one_of(st.integers(1, 4), _DAMAGE), min_size=1, max_size=24),
    piece=st.integers(300, 6000),
    final_newline=st.booleans(),
    count_keys=st.booleans(),
)
def test_salvage_keeps_every_good_span_once_and_reports_every_bad_line(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[int | str],
    piece: int,
    final_newline: bool,
    count_keys: bool,
) -> None:
    # a file named on its own from which nothing could be read is an error, not a salvage:
    # test_a_file_of_only_bad_lines_is_an_error_on_both_paths
    assume(any(isinstance(k, int) for k in lines))
    tmp_path = tmp_path_factory.mktemp("salvage")
    text = []
    for i, kind in enumerate(lines, start=1):
        good = _line(f"l{i}", i, spans=kind if isinstance(kind, int) else 2)
        if kind == "CUT":
            text.append(good[: len(good) // 2])
        elif kind == "NO_TRACE":
            text.append(good.replace('"traceId": "', '"traceIdX": "', 1))
        elif kind == "TWICE":
            text.append(good.replace('"stringValue": "/x"', '"stringValue": "resourceSpans"'))
        else:
            text.append(good if isinstance(kind, int) else kind)
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(text) + ("\n" if final_newline else ""))
    with monkeypatch.context() as patch:
        # count_keys: the keys of every piece counted against its lines (the way of a piece
        # of many lines), not each line looked at
        patch.setattr(linescan, "LINES_ONE_BY_ONE", 0 if count_keys else 4096)
        bulk, careful = _salvage_vs_careful(
            path, tmp_path, patch, damaged=None, piece=piece, careful=piece // 4
        )
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful)
    bad_lines = [
        i for i, k in enumerate(lines, start=1) if isinstance(k, str) and k not in ("", "TWICE")
    ]
    assert [line for _, line, _ in _problems(bulk)] == bad_lines


def test_a_file_of_only_bad_lines_is_an_error_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("this is not JSON\n" * 30 + '{"hello": "world"}')
    monkeypatch.setattr(salvage, "PIECE_BYTES", 300)
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", 75)
    for salvage_from in (1, 1 << 60):  # the bulk salvage, then the careful path alone
        monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", salvage_from)
        with open_store(tmp_path / f"s{salvage_from}.duckdb") as store:
            with pytest.raises(InputError, match="nothing could be read") as err:
                store.ingest([path], run="r", format="otlp-json")
            assert err.value.line == 1
            assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_pieces_cover_the_file_at_line_ends_with_their_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    """The cut gives back the file's bytes exactly, each piece ending at a line end
    (a line longer than a piece is a piece of its own), numbered from its first line;
    the same whether the kernel copies the bytes or Python does."""
    import os

    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    lines = [b"a" * 10, b"b" * 3, b"c" * 40, b"", b"d" * 7, b"e" * 12]
    source = tmp_path / "f.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\nlast-without-newline")
    folder = tmp_path / "pieces"
    folder.mkdir()
    pieces = salvage._cut(source, folder, 0, 16)
    assert b"".join(p.path.read_bytes() for p in pieces) == source.read_bytes()
    assert all(p.path.read_bytes().endswith(b"\n") for p in pieces[:-1])
    assert [p.first_line for p in pieces] == [1, 3, 4, 6, 7]
    assert [p.lines for p in pieces] == [2, 1, 2, 1, 1]
    assert pieces[-1].path.read_bytes() == b"last-without-newline"


def test_a_copy_of_ours_is_used_up_as_it_is_cut_never_taking_twice_its_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut with ``consume``, the pieces are the same and the copy ends empty; at every
    step the pieces made and what is left of the copy hold at most the file's bytes and
    one piece more."""
    lines = [bytes([ord("a") + i % 26]) * (5 + i * 7 % 23) for i in range(40)]
    data = b"\n".join(lines) + b"\n"
    source = tmp_path / "copy.jsonl"
    source.write_bytes(data)
    (tmp_path / "p1").mkdir()
    expected = salvage._cut(source, tmp_path / "p1", 0, 64)
    room: list[int] = []
    copy_range = salvage._copy_range

    def watched(src: Any, target: Any, offset: int, size: int) -> None:
        copy_range(src, target, offset, size)
        target.flush()
        made = sum(p.stat().st_size for p in (tmp_path / "p2").iterdir())
        room.append(source.stat().st_size + made)

    monkeypatch.setattr(salvage, "_copy_range", watched)
    (tmp_path / "p2").mkdir()
    pieces = salvage._cut(source, tmp_path / "p2", 0, 64, consume=True)
    assert [(p.first_line, p.lines, p.size) for p in pieces] == [
        (p.first_line, p.lines, p.size) for p in expected
    ]
    assert b"".join(p.path.read_bytes() for p in pieces) == data
    assert source.stat().st_size == 0
    assert len(room) == len(pieces) > 3
    assert max(room) <= len(data) + max(p.size for p in pieces)


def test_a_damaged_compressed_file_lends_its_copy_to_the_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The salvage of a compressed file's copy uses the copy up; a plain file is never cut short."""
    consumed: list[bool] = []
    cut = salvage._cut

    def recorded(*args: Any, consume: bool = False) -> Any:
        if args[3] == salvage.PIECE_BYTES:
            consumed.append(consume)
        return cut(*args, consume=consume)

    monkeypatch.setattr(salvage, "_cut", recorded)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    plain = tmp_path / "plain.jsonl"
    _damaged_file(plain, 20, {3: "this is not JSON"}, final_newline=True)
    before = plain.read_bytes()
    packed = tmp_path / "spans.jsonl.gz"
    packed.write_bytes(gzip.compress(before))
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([packed, plain], run="r")
    assert consumed == [True, False]
    assert plain.read_bytes() == before


@pytest.mark.parametrize(
    "hidden",
    [
        '{"resourceSpans": [}',  # braces at both ends, the key, but no JSON
        '{"resourceSpans": [], "x": }',
        '{"note": "resourceSpans"}',  # the key in a string, no envelope
    ],
)
def test_damage_only_a_parser_sees_falls_back_to_reading_every_piece(
    hidden: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line whose bytes look whole fails the bulk read of the pieces judged by their
    bytes; the pieces are then read (leniently) to find it, and the outcome is the
    careful path's, with the other damage (garbage, a span without a trace id) too."""
    lines = _even_lines(12)
    lines[1] = "garbage"
    lines[5] = lines[5].replace('"traceId": "', '"traceIdX": "', 1)
    lines[8] = hidden
    path = tmp_path / "hidden.jsonl"
    path.write_text("\n".join(lines) + "\n")
    routes: list[bool] = []
    sort_pieces = salvage._sort_pieces

    def recorded(*args: Any, by_bytes: bool = False) -> Any:
        routes.append(by_bytes)
        return sort_pieces(*args, by_bytes=by_bytes)

    monkeypatch.setattr(salvage, "_sort_pieces", recorded)
    bulk, reference = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert routes[0] is True and routes[-1] is False  # by the bytes first, then read
    assert _rows(bulk) == _rows(reference)
    assert _problems(bulk) == _problems(reference)
    assert [line for _, line, _ in _problems(bulk)] == [2, 6, 9]


def test_bytes_that_show_nothing_do_not_repeat_the_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage only a parser sees, alone: the whole file's read failed on it, the pieces'
    bytes show nothing, so the pieces are read leniently at once, not first read in
    bulk again only to fail in the same place."""
    lines = _even_lines(12)
    lines[9] = '{"resourceSpans": [1 2]}'
    path = tmp_path / "hidden.jsonl"
    path.write_text("\n".join(lines) + "\n")
    commits: list[int] = []
    commit = salvage._commit

    def recorded(*args: Any, **kwargs: Any) -> bool:
        commits.append(len(args[-2]))  # the good pieces read in bulk
        return commit(*args, **kwargs)

    monkeypatch.setattr(salvage, "_commit", recorded)
    bulk, reference = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert len(commits) == 1
    assert _rows(bulk) == _rows(reference)
    assert [line for _, line, _ in _problems(bulk)] == [10]


def _even_lines(count: int) -> list[str]:
    """``count`` OTLP/JSON lines of three spans, all of the same length."""
    lines = [_line(f"e{i:03d}", i, spans=3) for i in range(1, count + 1)]
    assert len({len(line) for line in lines}) == 1
    return lines


def test_each_piece_fails_alone_and_bad_lines_at_piece_ends_keep_their_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pieces of exactly three lines: bad lines first and last in the file, and on both
    sides of a cut between pieces, all but the last JSON that DuckDB reads, two of
    them refused only by the span checks.
    Only the pieces whose bytes show a bad line are cut finer, and only those lines take
    the careful path, each with its own number; the spans the checks refuse are read in
    bulk with the rest and placed at their lines by their ids."""
    lines = _even_lines(12)
    width = len(lines[0]) + 1
    lines[0] = '{"hello": "world"}'  # (a first line that is not JSON at all: the careful path)
    lines[2] = lines[2].replace('"traceId": "', '"traceIdX": "', 1)  # last of piece 1
    start, end = '"startTimeUnixNano": "', '"endTimeUnixNano": "'
    lines[3] = lines[3].replace(start, "SWAP").replace(end, start).replace("SWAP", end)
    lines[11] = lines[11][:100]  # the file cut while written: no final newline
    path = tmp_path / "edges.jsonl"
    path.write_text("\n".join(lines))
    careful: list[tuple[int, int]] = []
    commit = salvage._commit

    def recorded(*args: Any, **kwargs: Any) -> bool:
        careful[:] = [(piece.first_line, piece.lines) for piece in args[-1]]
        return commit(*args, **kwargs)

    monkeypatch.setattr(salvage, "_commit", recorded)
    monkeypatch.setattr(salvage, "FAN_OUT", 3)
    bulk, reference = _salvage_vs_careful(path, tmp_path, monkeypatch)
    monkeypatch.setattr(salvage, "PIECE_BYTES", 3 * width)
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", width)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    careful.clear()
    bulk = open_store(tmp_path / "pieces.duckdb")
    bulk.ingest([path], run="r", format="otlp-json")
    assert careful == [(1, 1), (12, 1)]
    assert _rows(bulk) == _rows(reference)
    # every column arrives as the careful path writes it (the staged copy keeps the types)
    every_column = "SELECT * EXCLUDE (file_id) FROM spans ORDER BY span_id"
    assert (
        bulk.con.execute(every_column).fetchall() == reference.con.execute(every_column).fetchall()
    )
    assert len(_rows(bulk)) == 8 * 3 + 2  # a span without a trace id is the only one of its line
    assert _problems(bulk) == _problems(reference)
    assert [line for _, line, _ in _problems(bulk)] == [1, 3, 4, 4, 4, 12]
    counts = bulk.con.execute("SELECT records_read, records_added FROM files").fetchone()
    assert counts == (10 * 3, 8 * 3 + 2)  # spans read: those of the lines DuckDB parses


def test_a_salvage_stopped_midway_leaves_nothing_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pieces already read in bulk belong to the file's one transaction: stopped before
    it commits (here at the careful path, after the good pieces), nothing of the file
    is kept, and no piece is left behind in the temporary folder."""
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    lines = _even_lines(12)
    lines[7] = "this is not JSON"
    path = tmp_path / "stopped.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(salvage, "PIECE_BYTES", 2 * len(lines[0]))
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", 100)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)

    def stop(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(salvage, "iter_line_batches", stop)
    with open_store(tmp_path / "s.duckdb") as store:
        with pytest.raises(KeyboardInterrupt):
            store.ingest([path], run="r", format="otlp-json")
        assert store.con.execute("SELECT count(*) FROM spans").fetchone() == (0,)
        assert store.con.execute("SELECT count(*) FROM files").fetchone() == (0,)
    assert list(temp.iterdir()) == []


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": zstandard.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("codec", ["zstd", "bzip2", "xz"])
def test_a_file_in_a_codec_duckdb_lacks_is_read_in_bulk_from_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """DuckDB cannot decompress these: a big enough file is expanded and read in one bulk
    statement, with what reading it line by line gives."""
    monkeypatch.setattr(spanfile, "EXPAND_MIN_BYTES", 1)
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(_line(f"c{i}", i, spans=2) + "\n" for i in range(1, 30)))
    path = tmp_path / "spans.jsonl.z"
    path.write_bytes(_COMPRESS[codec](plain.read_bytes()))
    clean = bulk_reads(monkeypatch)
    with open_store(tmp_path / "bulk.duckdb") as bulk:
        bulk.ingest([path], run="r")
        assert clean == [True]
        monkeypatch.setattr(spanfile, "EXPAND_MIN_BYTES", 1 << 60)
        with open_store(tmp_path / "careful.duckdb") as careful:
            careful.ingest([path], run="r")
            assert clean == [True]  # not tried: read line by line
            assert _rows(bulk) == _rows(careful) and len(_rows(bulk)) == 29 * 2


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_damaged_compressed_file_is_salvaged_from_an_uncompressed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """A compressed file with bad lines is expanded once and salvaged in pieces, not read
    line by line: the same spans and problems as the careful path, named with the
    compressed file's path, and the copy gone afterwards."""
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(spanfile, "EXPAND_MIN_BYTES", 1)
    plain = tmp_path / "plain.jsonl"
    no_trace = _line("no-trace", 7, spans=3).replace('"traceId": "', '"traceIdX": "', 1)
    _damaged_file(plain, 20, {3: "this is not JSON", 7: no_trace}, final_newline=True)
    path = tmp_path / ("spans.jsonl.gz" if codec == "gzip" else "spans.jsonl.zst")
    path.write_bytes(_COMPRESS[codec](plain.read_bytes()))
    bulk, careful = _salvage_vs_careful(path, tmp_path, monkeypatch)
    assert _rows(bulk) == _rows(careful)
    assert _problems(bulk) == _problems(careful)
    assert [(name, line) for name, line, _ in _problems(bulk)] == [
        (path.name, 3),
        (path.name, 7),
    ]
    assert len(_rows(bulk)) == 18 * 3 + 2
    assert list(temp.iterdir()) == []


def test_a_compressed_file_past_the_expansion_bound_gets_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is bounded like every decompression: past the bound there is none, the
    salvage is not tried, and the careful path refuses the file as before."""
    plain = tmp_path / "plain.jsonl"
    _damaged_file(plain, 20, {3: "this is not JSON"}, final_newline=True)
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    tried: list[Any] = []
    monkeypatch.setattr(spanfile, "salvage", lambda *a, **k: tried.append(a) or False)
    with (
        open_store(tmp_path / "s.duckdb") as store,
        pytest.raises(InputError, match="expands past"),
    ):
        store.ingest([path], run="r", format="otlp-json", max_expanded_bytes=1000)
    assert tried == []
