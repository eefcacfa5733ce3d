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


# -- csvlog as a CSV writer that quotes every field leaves it --------------------------------


def test_csvlog_with_quoted_timestamps_is_csvlog(store: Store, tmp_path: Path) -> None:
    import csv

    from correlate.ingest.detect import detect

    quoted = FAITHFUL / "csvlog_quoted.csv"
    assert quoted.read_text().startswith('"2026-11-25 12:29:07.186 UTC",""')
    assert detect(quoted).name == "pg-csvlog"
    # The same records as PostgreSQL writes them (quotes only where needed).
    bare = tmp_path / "postgresql.csv"
    with quoted.open(newline="") as src, bare.open("w", newline="") as dst:
        csv.writer(dst, lineterminator="\n").writerows(csv.reader(src))
    assert bare.read_text().startswith("2026-11-25 12:29:07.186 UTC,,")

    query = "SELECT link, trace_id, span_id, execution_ms FROM plans WHERE run_id = ? ORDER BY ALL"
    got = {}
    for run, path in (("quoted", quoted), ("bare", bare)):
        report = store.ingest([path], run=run)
        assert (report.plans_added, report.skipped) == (3, 0)
        run_id = store.con.execute("SELECT run_id FROM runs WHERE name = ?", [run]).fetchone()
        assert run_id is not None
        got[run] = store.con.execute(query, [run_id[0]]).fetchall()
    assert got["quoted"] == got["bare"]


# -- a file from which nothing could be read is an error; a directory only when all are -----


def _unreadable(tmp_path: Path, name: str = "bad.jsonl") -> Path:
    bad = tmp_path / name
    bad.write_text(
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "' + name + '"}]}]}]}\nnot json\n'
    )
    return bad


def test_a_file_from_which_nothing_could_be_read_is_an_error_and_leaves_nothing(
    store: Store, tmp_path: Path
) -> None:
    from correlate.errors import InputError

    bad = _unreadable(tmp_path)
    with pytest.raises(InputError) as caught:
        store.ingest([bad], run="r")
    assert str(caught.value) == (
        f"{bad}:1: nothing could be read from this file: span has no trace id "
        "(also line 2: not valid JSON (Expecting value at column 1))"
    )
    assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    assert store.con.execute("SELECT count(*) FROM files").fetchone() == (0,)


def test_a_file_of_no_records_is_not_an_error(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty-export.jsonl").write_text('{"resourceSpans": []}\n')
    report = store.ingest([tmp_path / "empty-export.jsonl"], run="r")
    assert (report.spans_added, report.skipped) == (0, 0)


def test_a_directory_of_unreadable_files_is_an_error(store: Store, tmp_path: Path) -> None:
    from correlate.errors import InputError

    folder = tmp_path / "run"
    folder.mkdir()
    _unreadable(folder, "a.jsonl")
    _unreadable(folder, "b.jsonl")
    with pytest.raises(InputError, match=r"nothing could be read from any of the 2 file\(s\)"):
        store.ingest([folder], run="r")
    assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_directory_with_one_good_file_keeps_it_and_reports_the_rest(
    store: Store, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "run"
    folder.mkdir()
    _unreadable(folder, "a.jsonl")
    (folder / "b.bin").write_bytes(b"\x00\x00\x00\x05\x0a\x03abc")  # a cut proto frame
    shutil.copy(FAITHFUL / "one_span.jsonl", folder / "c.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 1
    assert {p.line for p in report.problems if p.path.name == "a.jsonl"} == {1, 2}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("k6.json", '{"type":"Point","metric":"http_req_duration","data":{"value":"x"}}\n'),
        ("locust_stats.csv", "Type,Name,Request Count\nGET,/a,many\n"),
        ("plan.json", '[{"Plan": {"Node Type": 7}}]\n'),
    ],
)
def test_every_family_refuses_a_file_it_could_read_nothing_from(
    store: Store, tmp_path: Path, name: str, content: str
) -> None:
    from correlate.errors import CorrelateError

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CorrelateError) as caught:
        store.ingest([path], run="r")
    assert str(caught.value).startswith(str(path))
    assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_cli_exit_codes_for_unreadable_and_partly_readable_input(tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from correlate.cli import cli

    db = str(tmp_path / "store.duckdb")
    bad = _unreadable(tmp_path)
    result = CliRunner().invoke(cli, ["ingest", "--db", db, str(bad), "--run", "r"])
    assert result.exit_code == 1
    assert "nothing could be read from this file: span has no trace id" in result.output
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(bad, folder / "a.jsonl")
    shutil.copy(FAITHFUL / "one_span.jsonl", folder / "b.jsonl")
    result = CliRunner().invoke(cli, ["ingest", "--db", db, str(folder), "--run", "r"])
    assert result.exit_code == 0, result.output
    assert "a.jsonl:1: span has no trace id" in result.output


# -- any --format forced on another format's file: a clear error, never a traceback ---------


def _fixtures_by_format() -> dict[str, Path]:
    from correlate.errors import CorrelateError
    from correlate.ingest.detect import detect

    found: dict[str, Path] = {}
    for path in sorted(DATA.rglob("*")):
        if path.is_file() and path.stat().st_size < 200_000:
            try:
                found.setdefault(detect(path).name, path)
            except CorrelateError:  # not a fixture of any format
                continue
    return found


FIXTURES = _fixtures_by_format()


def test_every_registered_format_has_a_fixture_for_the_sweep() -> None:
    from correlate.ingest.registry import format_names

    assert sorted(FIXTURES) == sorted(format_names())


def _sweep() -> list[tuple[str, str]]:
    from correlate.ingest.registry import format_names

    return [
        (forced, actual) for forced in format_names() for actual in FIXTURES if forced != actual
    ]


@pytest.mark.parametrize(("forced", "actual"), _sweep())
def test_a_format_forced_on_another_formats_file_is_a_clear_error(
    store: Store, forced: str, actual: str
) -> None:
    from correlate.errors import CorrelateError
    from correlate.plans.files import PLAN_FILE_FORMATS

    path = FIXTURES[actual]
    plan_files = {f.name for f in PLAN_FILE_FORMATS}
    if {forced, actual} <= plan_files:
        # A plan file is read by its own keys whatever engine --format names: it is a plan.
        assert store.ingest([path], run="r", format=forced).plans_added >= 1
        return
    with pytest.raises(CorrelateError) as caught:
        store.ingest([path], run="r", format=forced)
    assert str(caught.value).startswith(f"{path}")
    assert "Traceback (most recent call last)" not in str(caught.value)
    assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


_LOAD_CSV = ["locust-history", "locust-stats", "locust-failures", "locust-exceptions", "k6-csv"]


@pytest.mark.parametrize("actual", _LOAD_CSV)
@pytest.mark.parametrize("forced", _LOAD_CSV)
def test_a_load_csv_of_only_its_header_is_told_from_another(
    store: Store, tmp_path: Path, forced: str, actual: str
) -> None:
    """A CSV of no records (Locust writes its failures file so when nothing failed) is
    judged by its header alone: forced as another tool's or another of Locust's CSVs
    that shares a column (Name, Type), it is an error naming the file and line 1, not a
    file of no rows; as its own format it is a file of no rows."""
    from correlate.errors import InputError

    source = FIXTURES[actual]
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes().split(b"\n", 1)[0] + b"\n")
    if forced == actual:
        report = store.ingest([path], run="r", format=forced)
        assert report.problems == []
        return
    with pytest.raises(InputError) as caught:
        store.ingest([path], run="r", format=forced)
    assert (caught.value.path, caught.value.line) == (path, 1)
    assert "--format" in str(caught.value)


# -- OTLP protobuf in every framing: Collector, varint-delimited, one raw request ------------

OTLP = DATA / "otlp"
SPAN_ROWS = (
    "SELECT service, trace_id, span_id, parent_id, name, kind, start_ns, end_ns, attributes "
    "FROM spans WHERE run_id = (SELECT run_id FROM runs WHERE name = ?) ORDER BY span_id"
)


def _varint_messages(data: bytes) -> list[bytes]:
    """Split varint-delimited messages, independently of correlate's reader."""
    messages, pos = [], 0
    while pos < len(data):
        length, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        messages.append(data[pos : pos + length])
        pos += length
    return messages


def _as_json_lines(tmp_path: Path, messages: list[bytes]) -> Path:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from correlate.ingest.otlp_proto import to_otlp_json

    path = tmp_path / "same.jsonl"
    path.write_text(
        "".join(to_otlp_json(ExportTraceServiceRequest.FromString(m)) + "\n" for m in messages)
    )
    return path


@pytest.mark.parametrize(
    ("name", "spans"), [("varint-delimited.binpb", 5), ("raw-request.binpb", 3)]
)
def test_proto_framings_are_detected_and_read_like_their_json(
    store: Store, tmp_path: Path, name: str, spans: int
) -> None:
    from correlate.ingest.detect import detect_format

    path = OTLP / name
    assert detect_format(path) == "otlp-proto"
    report = store.ingest([path], run="proto")
    assert (report.spans_added, report.skipped) == (spans, 0)
    data = path.read_bytes()
    messages = _varint_messages(data) if name.startswith("varint") else [data]
    store.ingest([_as_json_lines(tmp_path, messages)], run="json")
    proto_rows = store.con.execute(SPAN_ROWS, ["proto"]).fetchall()
    assert proto_rows == store.con.execute(SPAN_ROWS, ["json"]).fetchall()
    assert {r[0] for r in proto_rows} == ({"shop"} if spans == 5 else {"shop", "pricing"})


def test_varint_delimited_file_cut_short_keeps_its_whole_messages(
    store: Store, tmp_path: Path
) -> None:
    data = (OTLP / "varint-delimited.binpb").read_bytes()
    first, second, _ = _varint_messages(data)
    third_at = len(data) - len(_varint_messages(data)[2]) - 2  # a 2-byte varint before it
    cut = tmp_path / "cut.binpb"
    cut.write_bytes(data[:-40])
    report = store.ingest([cut], run="r")
    assert report.spans_added == 3  # messages 1 and 2
    [problem] = report.problems
    assert problem.line == 3
    assert problem.reason.startswith(f"message 3 at byte {third_at}: frame says ")
    assert problem.reason.endswith("(file cut short?)")
    assert len(first) + len(second) + 4 == third_at


def test_raw_request_cut_short_keeps_its_whole_resource_spans(store: Store, tmp_path: Path) -> None:
    data = (OTLP / "raw-request.binpb").read_bytes()
    cut = tmp_path / "cut.binpb"
    cut.write_bytes(data[:-10])
    report = store.ingest([cut], run="r")
    assert report.spans_added == 2  # the whole first ResourceSpans
    [problem] = report.problems
    assert problem.line == 2
    assert "message 2 at byte 320: frame says" in problem.reason


@pytest.mark.parametrize(
    ("data", "framing"),
    [
        (b"\n\n" + b"{}" * 10, None),  # text: its first "entry" does not parse
        (b"\x00" * 64, None),  # zero bytes frame nothing
        (bytes(range(256)), None),  # no framing tiles it
        (b"\x00\x00\x00\x02\x0a\x00", "collector"),  # one empty ResourceSpans
        (b"\x02\x0a\x00\x02\x0a\x00", "varint"),
        (b"\x0a\x05abc", "raw"),  # cut inside its first entry: detected, then reported as cut
        (b"\x03\x0b\x01\x00", None),  # a varint frame whose message is not resource_spans
    ],
)
def test_proto_sniffing_takes_only_bytes_that_frame(data: bytes, framing: str | None) -> None:
    from correlate.ingest.otlp_framing import framing_of
    from correlate.ingest.otlp_proto import sniff
    from correlate.inputs import Head

    assert framing_of(data) == framing
    assert sniff(Head(data)) == (framing is not None)


# -- a problem inside a pretty-printed document points to its record's own line ------------


def _opening_line(path: Path, marker: str) -> int:
    """The line of the ``{`` that opens the object holding ``marker`` (1-based)."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if marker in line)
    return next(i for i in range(at, -1, -1) if lines[i].strip() == "{") + 1


@pytest.mark.parametrize(
    ("name", "fmt", "marker", "reason"),
    [
        ("pretty_otlp.json", "otlp-json", "/ends-before-it-starts", "span ends before it starts"),
        ("pretty_jaeger.json", "jaeger", "/no-duration", "end time is missing or not an integer"),
    ],
)
def test_problems_in_a_pretty_printed_document_point_to_their_records_line(
    store: Store, name: str, fmt: str, marker: str, reason: str
) -> None:
    path = FAITHFUL / name
    report = store.ingest([path], run="r")
    assert report.files[0].format == fmt
    assert (report.spans_added, report.skipped) == (2, 1)
    [problem] = report.problems
    assert problem.line == _opening_line(path, marker) > 1
    assert problem.reason == f"span 3000000000000002: {reason}"


def test_a_zipkin_document_stays_one_record_for_its_shared_spans(store: Store) -> None:
    # A shared (B3) server half is re-parented within its record, so a Zipkin
    # document is not cut per span: its problems point to where it starts.
    report = store.ingest([FAITHFUL / "pretty_zipkin.json"], run="r")
    assert (report.spans_added, report.skipped) == (2, 1)
    assert [(p.line, p.reason) for p in report.problems] == [
        (1, "span 3000000000000002: span has no trace id")
    ]


def test_a_cut_document_keeps_every_span_and_its_resource(store: Store) -> None:
    store.ingest([FAITHFUL / "pretty_otlp.json"], run="r")
    got = store.con.execute("SELECT name, service, resource FROM spans ORDER BY name").fetchall()
    assert [(n, s) for n, s, _ in got] == [("GET /first", "shop"), ("GET /third", "pricing")]
    assert json.loads(got[1][2]) == {"service.name": "pricing"}


def test_a_document_off_the_record_path_stays_one_record(store: Store, tmp_path: Path) -> None:
    doc = json.loads((FAITHFUL / "pretty_otlp.json").read_text())
    del doc["resourceSpans"][1]["scopeSpans"]  # one entry without spans: cutting could lose it
    doc["resourceSpans"][1]["instrumentationLibrarySpans"] = [
        {"instrumentationLibrary": {"name": "old"}, "spans": [doc["resourceSpans"][0]
                                                              ["scopeSpans"][0]["spans"][0]
                                                              | {"spanId": "3000000000000009"}]}
    ]  # fmt: skip
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(doc, indent=2))
    report = store.ingest([path], run="r")
    assert report.spans_added == 2  # /first twice (two ids), not /ends-before-it-starts
    assert [p.line for p in report.problems] == [1]
