"""Spans the checks reject, found by the bulk read of a whole file.

A few of them are placed at their lines from their ids in the file's bytes, so
the file is read once; whatever cannot be placed that way (too many, an id
repeated, an id the reader rewrote, ``--strict``) sends the file down the
careful path as before. Either way the outcome must be what the careful path
gives on its own: the same spans kept, the same problems at the same lines.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.ingest import salvage, spanfile, spanlines
from correlate.ingest.report import FileReport
from correlate.store import Store, open_store

from .test_ingest_bulk import _line, bulk_reads

#: What breaks a span, and the reason the checks give.
DAMAGE: dict[str, tuple[dict[str, Any], str]] = {
    "no trace id": ({"traceId": ""}, "span has no trace id"),
    "backwards": ({"endTimeUnixNano": "1"}, "span ends before it starts"),
    "zero trace": ({"traceId": "0" * 32}, "trace id is all zeros (invalid)"),
}


def _damaged(name: str, trace: int, spans: int, bad: dict[int, str]) -> str:
    """A line like :func:`_line` whose spans at the indexes of ``bad`` are damaged so."""
    doc = json.loads(_line(name, trace, spans))
    for index, kind in bad.items():
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][index].update(DAMAGE[kind][0])
    return json.dumps(doc)


def _span_id(trace: int, index: int) -> str:
    return f"{trace * 1000 + index + 1:016x}"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _outcome(store: Store) -> tuple[list[Any], list[Any], list[Any]]:
    """Spans kept, problems, and the files' and runs' counts (not file ids: a bulk read
    given up has taken one from the sequence)."""
    spans = store.con.execute(
        "SELECT run_id, trace_id, span_id, name, attributes FROM spans ORDER BY ALL"
    ).fetchall()
    problems = store.con.execute("SELECT line, reason FROM problems ORDER BY ALL").fetchall()
    counts = (
        store.con.execute(
            "SELECT records_read, records_added, skipped FROM files ORDER BY file_id"
        ).fetchall()
        + store.con.execute("SELECT span_count, skipped_count FROM runs").fetchall()
    )
    return spans, problems, counts


def _careful(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The reference: the same file read with the bulk read refusing it (None: refused)."""
    with monkeypatch.context() as patch:
        patch.setattr(spanfile, "_ingest_clean", lambda *a, **k: False)
        with open_store(tmp_path / "careful.duckdb") as store:
            try:
                store.ingest([path], run="r")
            except InputError:
                return None
            return _outcome(store)


def _bulk_and_careful(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[bool], Any, Any, FileReport]:
    """What each bulk read answered, the outcome and the careful path's, and the report."""
    expected = _careful(path, tmp_path, monkeypatch)
    answers = bulk_reads(monkeypatch)
    with open_store(tmp_path / "bulk.duckdb") as store:
        report = store.ingest([path], run="r")
        return answers, _outcome(store), expected, report.files[0]


def test_a_few_rejected_spans_are_placed_at_their_lines_from_one_bulk_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1, spans=3) for i in range(20)]
    lines[4] = _damaged("l4", 5, 3, {1: "no trace id"})
    lines[11] = _damaged("l11", 12, 3, {0: "backwards", 2: "zero trace"})
    path = _write(tmp_path / "spans.jsonl", lines)
    answers, outcome, expected, report = _bulk_and_careful(path, tmp_path, monkeypatch)
    assert answers == [True]  # read once, in bulk
    assert outcome == expected
    assert expected[1] == [
        (5, f"span {_span_id(5, 1)}: span has no trace id"),
        (12, f"span {_span_id(12, 0)}: span ends before it starts"),
        (12, f"span {_span_id(12, 2)}: trace id is all zeros (invalid)"),
    ]
    assert (report.spans_added, report.skipped) == (57, 3)  # no negative rows: the outcome


def test_a_compressed_file_has_its_rejected_spans_placed_in_its_expanded_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(30)]
    lines[27] = _damaged("l27", 28, 2, {1: "backwards"})
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    answers, outcome, expected, _report = _bulk_and_careful(path, tmp_path, monkeypatch)
    assert answers == [True]
    assert outcome == expected
    assert expected[1] == [(28, f"span {_span_id(28, 1)}: span ends before it starts")]


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ('"00000000000ABCDE"', "00000000000abcde"),  # hex is case-insensitive
        ('" 00000000000abcde "', "00000000000abcde"),  # the reader trims blanks
        ('"\\u00300000000000abcde"', "00000000000abcde"),  # a JSON escape
        ("1234567890123456", "1234567890123456"),  # a JSON number, read as its digits
    ],
)
def test_a_rejected_span_is_not_placed_at_another_span_s_link_to_it(
    written: str, kept: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bytes do not hold its id the way the store keeps it; a link on another line
    # names it that way, and is the only place the id is found.
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(10)]
    doc = json.loads(_damaged("l3", 4, 2, {1: "backwards"}))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "WRITTEN"
    lines[3] = json.dumps(doc).replace('"WRITTEN"', written)
    doc = json.loads(lines[7])
    link = {"traceId": f"{4:032x}", "spanId": kept}
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"] = [link]
    lines[7] = json.dumps(doc)
    path = _write(tmp_path / "spans.jsonl", lines)
    expected = _careful(path, tmp_path, monkeypatch)
    with open_store(tmp_path / "bulk.duckdb") as store:
        store.ingest([path], run="r")
        assert _outcome(store) == expected
        assert expected[1] == [(4, f"span {kept}: span ends before it starts")]


def test_a_gzip_file_whose_trailer_is_damaged_goes_the_careful_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB reads a gzip stream without checking its CRC; looking for the rejected
    # span's id reads it again with the check, which must not make the file fail.
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(10)]
    lines[3] = _damaged("l3", 4, 2, {1: "backwards"})
    packed = bytearray(gzip.compress("".join(line + "\n" for line in lines).encode()))
    packed[-8] ^= 0xFF  # the CRC
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(bytes(packed))
    answers, outcome, expected, _report = _bulk_and_careful(path, tmp_path, monkeypatch)
    assert answers == [False]
    assert outcome == expected
    assert expected[1][0] == (4, f"span {_span_id(4, 1)}: span ends before it starts")
    assert "CRC check failed" in expected[1][1][1]


@pytest.mark.parametrize(
    "case",
    ["too many", "an id repeated as a spanId", "an id the reader rewrote", "no span id"],
)
def test_rejected_spans_that_cannot_be_placed_send_the_file_the_careful_way(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(spanlines.MAX_IDS + 4)]
    if case == "too many":
        for i in range(spanlines.MAX_IDS + 1):
            lines[i] = _damaged(f"l{i}", i + 1, 2, {0: "no trace id"})
    elif case == "an id repeated as a spanId":
        lines[3] = _damaged("l3", 4, 2, {0: "no trace id"})
        lines[7] = _line("l3", 4, spans=2)  # the same span ids again, good this time
    else:
        doc = json.loads(_damaged("l2", 3, 2, {0: "backwards"}))
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        # an id that is not hex is kept as a digest of it, which the bytes do not hold
        span["spanId"] = "order-1" if case == "an id the reader rewrote" else ""
        lines[2] = json.dumps(doc)
    path = _write(tmp_path / "spans.jsonl", lines)
    answers, outcome, expected, _report = _bulk_and_careful(path, tmp_path, monkeypatch)
    assert answers == [False]
    assert outcome == expected
    assert expected[1]  # the careful path did report them


def test_strict_still_refuses_a_file_with_a_rejected_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1) for i in range(5)]
    lines[3] = _damaged("l3", 4, 1, {0: "no trace id"})
    path = _write(tmp_path / "spans.jsonl", lines)
    answers = bulk_reads(monkeypatch)
    with open_store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError) as raised:
            store.ingest([path], run="r", strict=True)
        assert answers == [False]
        assert raised.value.line == 4
        assert store.con.execute("SELECT count(*) FROM spans").fetchone() == (0,)


def test_as_many_rejected_spans_as_can_be_placed_are_placed_in_bulk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(spanlines.MAX_IDS + 2)]
    for i in range(spanlines.MAX_IDS):
        lines[i] = _damaged(f"l{i}", i + 1, 2, {1: "zero trace"})
    path = _write(tmp_path / "spans.jsonl", lines)
    answers, outcome, expected, report = _bulk_and_careful(path, tmp_path, monkeypatch)
    assert answers == [True]
    assert outcome == expected
    assert report.skipped == spanlines.MAX_IDS


@pytest.mark.parametrize("strict", [False, True])
def test_the_bulk_read_gives_up_inside_its_statement_past_the_spans_it_can_place(
    strict: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not after inserting the whole file: a big file with many bad spans (or one, with
    # --strict) would cost a full bulk read before the careful one.
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(12)]
    for i in range(1 if strict else spanlines.MAX_IDS + 1):
        lines[i] = _damaged(f"l{i}", i + 1, 2, {0: "no trace id"})
    path = _write(tmp_path / "spans.jsonl", lines)
    read_back: list[int] = []
    rejected = spanfile.rejected_problems
    monkeypatch.setattr(
        spanfile,
        "rejected_problems",
        lambda store, file_id, *a, **k: (
            read_back.append(file_id) or rejected(store, file_id, *a, **k)
        ),
    )
    answers = bulk_reads(monkeypatch)
    with open_store(tmp_path / "s.duckdb") as store:
        try:
            store.ingest([path], run="r", strict=strict)
        except InputError:
            assert strict
        assert answers == [False]
        assert read_back == []


def test_salvage_gives_up_inside_its_statement_past_the_spans_it_can_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    lines = [_line(f"l{i}", i + 1, spans=2) for i in range(spanlines.MAX_IDS + 6)]
    for i in range(spanlines.MAX_IDS + 1):
        lines[i] = _damaged(f"l{i}", i + 1, 2, {0: "no trace id"})
    lines[-2] = "this is not JSON"
    path = _write(tmp_path / "spans.jsonl", lines)
    expected = _careful(path, tmp_path, monkeypatch)
    # Pieces of a few lines: the bad one alone takes the careful path, the rest are
    # read in bulk, rejected spans and all.
    monkeypatch.setattr(salvage, "PIECE_BYTES", 3 * len(lines[0]))
    monkeypatch.setattr(salvage, "CAREFUL_BYTES", len(lines[0]))
    # Rejected spans read back: never more than can be placed (the statement stopped).
    read_back: list[int] = []
    rejected = salvage.rejected_problems

    def counted(store: Store, file_id: int, *args: Any, **kwargs: Any) -> Any:
        rows = store.con.execute("SELECT count(*) FROM spans WHERE file_id = ?", [-file_id])
        read_back.append(rows.fetchall()[0][0])
        return rejected(store, file_id, *args, **kwargs)

    monkeypatch.setattr(salvage, "rejected_problems", counted)
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([path], run="r")
        assert _outcome(store) == expected
        assert read_back and max(read_back) <= spanlines.MAX_IDS


def test_a_file_named_alone_whose_every_span_is_rejected_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path / "spans.jsonl", [_damaged("l", 1, 2, {0: "no trace id", 1: "backwards"})]
    )
    with open_store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="nothing could be read from this file"):
            store.ingest([path], run="r")
        assert store.con.execute("SELECT count(*) FROM spans").fetchone() == (0,)


def test_rejected_spans_a_killed_ingest_left_are_swept_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [_line(f"l{i}", i + 1) for i in range(5)]
    lines[1] = _damaged("l1", 2, 1, {0: "no trace id"})
    first = _write(tmp_path / "a.jsonl", lines)
    # The process dies after the commit, before its rejected spans are deleted.
    monkeypatch.setattr(spanfile, "sweep_rejected", lambda store, file_id=None: None)
    monkeypatch.setattr(salvage, "sweep_rejected", lambda store, file_id=None: None)
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([first], run="r")
        left = store.con.execute("SELECT run_id, file_id, name FROM spans WHERE file_id < 0")
        assert left.fetchall() == [(-1, -1, "span has no trace id")]
        # No run holds them meanwhile.
        assert store.con.execute("SELECT span_count FROM runs").fetchone() == (4,)
    monkeypatch.undo()
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([_write(tmp_path / "b.jsonl", [_line("b", 9)])], run="r")
        assert store.con.execute("SELECT count(*) FROM spans WHERE file_id < 0").fetchone() == (0,)
        assert store.con.execute("SELECT count(*) FROM spans").fetchone() == (5,)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=4),
            st.dictionaries(st.integers(0, 3), st.sampled_from(sorted(DAMAGE)), max_size=2),
        ),
        min_size=1,
        max_size=12,
    ),
    blank_every=st.integers(min_value=0, max_value=4),
)
def test_bulk_and_careful_reads_agree_on_any_few_rejected_spans(
    shape: list[tuple[int, dict[int, str]]],
    blank_every: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp_path = tmp_path_factory.mktemp("agree")
    lines = []
    for i, (spans, bad) in enumerate(shape):
        damage = {index: kind for index, kind in bad.items() if index < spans}
        lines.append(_damaged(f"l{i}", i + 1, spans, damage))
        if blank_every and i % blank_every == 0:
            lines.append("")  # blank lines shift the numbers the careful path gives
    path = _write(tmp_path / "spans.jsonl", lines)
    expected = _careful(path, tmp_path, monkeypatch)
    with open_store(tmp_path / "bulk.duckdb") as store:
        if expected is None:  # nothing good at all: refused both ways
            with pytest.raises(InputError, match="nothing could be read"):
                store.ingest([path], run="r")
            return
        store.ingest([path], run="r")
        assert _outcome(store) == expected
