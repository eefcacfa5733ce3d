"""Ingest keeps to what a file says, part two: wrong JSON types, every OTLP protobuf
framing, csvlog as PostgreSQL writes it, a file that gives nothing, lines inside
documents, and plans read through their Gather nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from correlate.store import Store

from .conftest import DATA

FAITHFUL = DATA / "faithful"


def names(store: Store) -> list[str]:
    return [r[0] for r in store.con.execute("SELECT name FROM spans ORDER BY name").fetchall()]


# -- a Gather's own time is waiting on its workers: name the work under it ------------------


def test_dominant_node_looks_through_gather_merge_to_the_work_under_it() -> None:
    from correlate.plans import find_insights, parse_plan

    plan = parse_plan(json.loads((FAITHFUL / "plans" / "pg-gather-merge.json").read_text()))
    [insight] = [i for i in find_insights(plan) if i.rule == "dominant_node"]
    assert insight.relation == "orders"
    assert plan.node(insight.node_id).node_type == "Seq Scan"
    assert insight.message == (
        "measured: Seq Scan on orders, run in parallel under Gather Merge, takes 100% "
        "(13.10 ms of 13.12 ms: 3.96 ms in Seq Scan per process, "
        "9.09 ms in Gather Merge waiting and merging)"
    )
    assert insight.severity.name == "CRITICAL"
    assert "Gather Merge takes" not in insight.message


def test_dominant_node_outside_a_gather_is_unchanged() -> None:
    from correlate.plans import find_insights, parse_plan

    raw = json.loads((FAITHFUL / "plans" / "pg-gather-merge.json").read_text())
    gather = raw[0]["Plan"]["Plans"][0]
    sort = gather["Plans"][0]  # the same work, run by one process
    sort["Actual Loops"] = sort["Plans"][0]["Actual Loops"] = 1
    sort["Actual Total Time"], sort["Plans"][0]["Actual Total Time"] = 13.09, 13.0
    raw[0]["Plan"]["Plans"] = [sort]
    [insight] = [i for i in find_insights(parse_plan(raw)) if i.rule == "dominant_node"]
    assert insight.message == "measured: Seq Scan on orders takes 99% (13.00 ms of 13.12 ms)"


# -- parts of an OTLP record with the wrong JSON type: reported, never silently gone --------


def test_wrongly_typed_parts_are_problems_with_their_lines(store: Store) -> None:
    report = store.ingest([FAITHFUL / "wrong_types.jsonl"], run="r")
    file = report.files[0]
    assert (report.spans_added, report.skipped, report.lenient) == (4, 3, 5)
    skipped = {(p.line, p.reason) for p in file.problems if "read" in p.reason.split(": ")[-1]}
    assert (
        2,
        "resourceSpans[0].scopeSpans[0].spans is a string, not a list: nothing under it was read",
    ) in skipped
    assert (4, "resourceSpans is a string, not a list: nothing under it was read") in skipped
    assert (
        6,
        "resourceSpans[0].scopeSpans[1] is a number, not an object: nothing in it was read",
    ) in skipped
    stored = store.con.execute("SELECT line, reason FROM problems ORDER BY line").fetchall()
    assert [line for line, _ in stored] == [2, 3, 4, 5, 6, 6, 6, 6]
    assert names(store) == [
        "GET /good",
        "GET /nested-object",
        "GET /object-attributes",
        "GET /string-resource",
    ]


def test_attributes_given_as_an_object_are_read_leniently_and_said_so(store: Store) -> None:
    report = store.ingest([FAITHFUL / "wrong_types.jsonl"], run="r")
    notes = {p.line: p.reason for p in report.files[0].problems if "leniently" in p.reason}
    assert notes[3] == (
        "span 2000000000000002: attributes given as an object, not a list of key/value pairs; "
        "read leniently as 4 attribute(s)"
    )
    row = store.con.execute(
        "SELECT attributes, http_route, http_status_code, db_system FROM spans "
        "WHERE name = 'GET /object-attributes'"
    ).fetchone()
    assert row is not None
    assert json.loads(row[0]) == {
        "http.route": "/object-attributes",
        "http.response.status_code": 200,
        "tags": ["a", "b"],
        "db.system": "postgresql",
    }
    assert row[1:] == ("/object-attributes", 200, "postgresql")
    events = store.con.execute(
        "SELECT events[1].attributes FROM spans WHERE name = 'GET /string-resource'"
    ).fetchone()
    assert events is not None and json.loads(events[0]) == {"k": "v"}
    summary = report.summary()
    assert "3 record(s) skipped, 5 part(s) read leniently" in summary
    assert "skipped, or read leniently:" in summary


def test_an_object_of_nested_values_is_not_guessed_at(store: Store) -> None:
    report = store.ingest([FAITHFUL / "wrong_types.jsonl"], run="r")
    [note] = [p for p in report.files[0].problems if p.line == 5]
    assert note.reason.endswith("not all plain values; the span is kept without them")
    row = store.con.execute("SELECT attributes FROM spans WHERE name = 'GET /nested-object'")
    assert row.fetchone() == ("{}",)


def test_wrong_types_fail_a_strict_ingest_but_lenient_reading_alone_does_not(
    store: Store, tmp_path: Path
) -> None:
    from correlate.errors import InputError

    lines = (FAITHFUL / "wrong_types.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "lenient.jsonl").write_text(lines[2])
    assert store.ingest([tmp_path / "lenient.jsonl"], run="r", strict=True).spans_added == 1
    (tmp_path / "lost.jsonl").write_text(lines[0] + lines[1])
    with pytest.raises(InputError, match=r"lost.jsonl:2: .*spans is a string"):
        store.ingest([tmp_path / "lost.jsonl"], run="r2", strict=True)
