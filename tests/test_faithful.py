"""Ingest keeps to what a file says: its own name, its own records, its own lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from correlate.store import Store

from .conftest import DATA

FAITHFUL = DATA / "faithful"


def names(store: Store) -> list[str]:
    return [r[0] for r in store.con.execute("SELECT name FROM spans ORDER BY name").fetchall()]


# -- 1. a file name is a name, never a glob pattern ---------------------------------------


@pytest.mark.parametrize("name", ["*.jsonl", "[ab]bc.jsonl", "?.jsonl", "{a,b}.jsonl"])
def test_file_name_with_glob_characters_reads_only_that_file(
    store: Store, tmp_path: Path, name: str
) -> None:
    shutil.copy(FAITHFUL / "one_span.jsonl", tmp_path / name)
    # Neighbours the pattern would match: abc.jsonl for [ab]bc, a.jsonl for ?, a.jsonl for {a,b}.
    for neighbour in ("abc.jsonl", "a.jsonl", "other.jsonl"):
        shutil.copy(FAITHFUL / "neighbour.jsonl", tmp_path / neighbour)
    report = store.ingest([tmp_path / name], run="r")
    assert (report.spans_read, report.spans_added) == (1, 1)
    assert names(store) == ["GET /one"]


def test_folder_with_glob_characters_reads_its_own_files(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "run[1]"
    folder.mkdir()
    (tmp_path / "run1").mkdir()
    shutil.copy(FAITHFUL / "one_span.jsonl", folder / "spans.jsonl")
    shutil.copy(FAITHFUL / "neighbour.jsonl", tmp_path / "run1" / "spans.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 1
    assert names(store) == ["GET /one"]


# -- 2. extreme int64 times: rejected per record, or windowed safely -----------------------


def test_impossible_times_are_problems_of_their_own_lines(store: Store) -> None:
    report = store.ingest([FAITHFUL / "extreme_times.jsonl"], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (4, 2, 2)
    reasons = {p.line: p.reason for p in report.files[0].problems}
    assert reasons[2].endswith("span ends before it starts")
    assert reasons[3].endswith("span lasts 104166 days (more than a year)")
    assert names(store) == ["GET /max", "GET /ok"]
    durations = store.con.execute("SELECT duration_ns FROM spans ORDER BY name").fetchall()
    assert durations == [(1,), (250_000_000,)]


def test_negative_start_is_a_problem(store: Store, tmp_path: Path) -> None:
    text = (FAITHFUL / "one_span.jsonl").read_text()
    text = text.replace('"1795594408000000000"', '"-5"').replace('"1795594408250000000"', '"5"')
    (tmp_path / "negative.jsonl").write_text(text)
    from correlate.errors import InputError

    # its only span: nothing could be read from the file
    with pytest.raises(InputError, match=r"start time -5 is before 1970 \(negative\)$"):
        store.ingest([tmp_path / "negative.jsonl"], run="r")


def test_a_run_spanning_centuries_lists_and_reports_in_bounded_size(store: Store) -> None:
    import correlate

    store.ingest([FAITHFUL / "far_apart.jsonl"], run="r")
    runs = store.runs()
    assert int(runs["spans"][0]) == 2
    assert float(runs["duration_s"][0]) == pytest.approx(9e9, rel=1e-6)
    analysis = correlate.analyze("r", store=store)
    assert len(analysis.timeline) <= 61
    html = correlate.report("r", store=store, format="html")
    assert len(html) < 2_000_000


# -- 6. a store with a strange schema version is a clear StoreError ----------------------


def _store_with_version(path: Path, version: str) -> Path:
    import duckdb

    import correlate

    correlate.open_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    return path


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("three", "records store schema 'three', which is not a number"),
        ("", "records store schema '', which is not a number"),
        ("1", "records store schema 1, but its tables are not that schema's"),
        ("-4", "has store schema -4, which this correlate cannot migrate"),
    ],
)
def test_strange_schema_version_is_a_store_error(
    tmp_path: Path, version: str, message: str
) -> None:
    import correlate
    from correlate.errors import StoreError

    path = _store_with_version(tmp_path / "s.duckdb", version)
    with pytest.raises(StoreError, match=message):
        correlate.open_store(path)


def test_strange_schema_version_is_exit_1_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from correlate.cli import cli

    path = _store_with_version(tmp_path / "s.duckdb", "x")
    result = CliRunner().invoke(cli, ["runs", "--db", str(path)])
    assert result.exit_code == 1
    assert "Error:" in result.output and "not a number" in result.output
    assert "Traceback" not in result.output


# -- 5. a statement's fingerprint does not depend on what arrived first -------------------


def _fingerprints(store: Store) -> dict[str, tuple[str, str]]:
    rows = store.con.execute("SELECT span_id, fingerprint, normalized FROM db_spans").fetchall()
    return {span: (fp, normalized) for span, fp, normalized in rows}


def test_fingerprints_do_not_depend_on_arrival_order() -> None:
    import correlate

    found = []
    for name in ("placeholder_first.jsonl", "literal_first.jsonl"):
        with correlate.open_store(":memory:") as store:
            store.ingest([FAITHFUL / name], run="r")
            found.append(_fingerprints(store))
    assert found[0] == found[1]
    placeholder, literal = found[0]["5555555555555551"], found[0]["5555555555555552"]
    # on PostgreSQL a `?` statement is read as its `$n` form: one shape for both
    assert placeholder == literal
    assert literal[1] == "SELECT * FROM t WHERE id = $1"


def test_store_of_schema_4_migrates_its_statement_keys(tmp_path: Path) -> None:
    import duckdb

    import correlate

    path = tmp_path / "s.duckdb"
    with correlate.open_store(path) as store:
        store.ingest([FAITHFUL / "placeholder_first.jsonl"], run="r")
        before = _fingerprints(store)
    con = duckdb.connect(str(path))  # as schema 4 keyed it: no placeholder prefix
    con.execute("UPDATE statements SET key = replace(key, 'placeholders: ', '')")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    with correlate.open_store(path) as store:
        assert _fingerprints(store) == before


def test_store_of_schema_6_keys_the_dialects_lists_once(tmp_path: Path) -> None:
    import duckdb

    import correlate
    from correlate.schema import DB_SPANS_VIEW

    from .builders import RunBuilder

    b = RunBuilder()
    r = b.request("t1", 0, 10, "/orders")
    for n, listed in enumerate((":2", ":2, :3", ":2, :3, :4")):
        sql = f"SELECT id FROM orders WHERE shop = :1 AND id IN ({listed})"
        b.span("t1", n, n + 1, parent=r, kind="CLIENT", db="oracle", sql=sql)
    path = tmp_path / "s.duckdb"
    with correlate.open_store(path) as store:
        b.build(store)
        before = _fingerprints(store)
    assert len(set(before.values())) == 1
    # as schema 6 keyed it: one row per list length (here the text itself), a macro
    # of the text alone
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO statements SELECT st.* REPLACE (s.db_statement AS key, s.db_statement AS text) "
        "FROM statements st, (SELECT DISTINCT db_statement FROM spans "
        "WHERE db_statement IS NOT NULL) s"
    )
    con.execute("DELETE FROM statements WHERE key LIKE 'placeholders: %'")
    assert con.execute("SELECT count(*) FROM statements").fetchone() == (3,)
    con.execute("CREATE OR REPLACE MACRO statement_key(sql) AS sql")
    con.execute(
        DB_SPANS_VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW").replace(
            "statement_key(s.db_system, s.db_statement)", "statement_key(s.db_statement)"
        )
    )
    con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    con.close()
    with correlate.open_store(path) as store:
        assert store.con.execute("SELECT count(*) FROM statements").fetchone() == (1,)
        assert _fingerprints(store) == before


# -- 4. run totals cannot go stale; a failed first file leaves no empty run ----------------


def test_runs_counts_what_the_run_holds_even_when_stored_totals_are_stale(store: Store) -> None:
    store.ingest([FAITHFUL / "neighbour.jsonl"], run="r")
    # What a kill between the file's commit and the totals' update leaves behind.
    store.con.execute("UPDATE runs SET span_count = 0, trace_count = 0, services = NULL")
    runs = store.runs()
    assert (int(runs["spans"][0]), int(runs["traces"][0]), int(runs["files"][0])) == (3, 3, 1)
    assert runs["services"][0] == "svc"


def test_strict_failure_of_a_later_file_keeps_the_totals_of_what_landed(
    store: Store, tmp_path: Path
) -> None:
    from correlate.errors import InputError

    store.ingest([FAITHFUL / "neighbour.jsonl"], run="r")
    with pytest.raises(InputError):
        store.ingest(
            [FAITHFUL / "one_span.jsonl", FAITHFUL / "extreme_times.jsonl"], run="r", strict=True
        )
    stored = store.con.execute("SELECT span_count FROM runs WHERE name = 'r'").fetchone()
    assert stored == (4,)
    assert int(store.runs()["spans"][0]) == 4


def test_strict_failure_of_the_first_file_leaves_no_run(store: Store) -> None:
    from correlate.errors import InputError

    with pytest.raises(InputError):
        store.ingest([FAITHFUL / "extreme_times.jsonl"], run="new", strict=True)
    assert store.run_names() == []
    assert len(store.runs()) == 0


# -- 3. text as users' tools write it: cut streams, byte order marks, UTF-16 -------------


def test_gzip_cut_short_keeps_its_complete_lines_and_reports_the_cut(store: Store) -> None:
    report = store.ingest([FAITHFUL / "cut_short.jsonl.gz"], run="r")
    assert report.spans_added == 22
    (problem,) = report.files[0].problems
    assert problem.line == 23
    assert "gzip stream is damaged or cut short" in problem.reason
    assert problem.reason.endswith("the file breaks inside this line")


def test_gzip_cut_short_under_strict_keeps_nothing(store: Store) -> None:
    from correlate.errors import InputError

    with pytest.raises(InputError, match="cut short"):
        store.ingest([FAITHFUL / "cut_short.jsonl.gz"], run="r", strict=True)


@pytest.mark.parametrize("codec", ["bz2", "lzma"])
def test_other_codecs_cut_short_keep_their_complete_lines(
    store: Store, tmp_path: Path, codec: str
) -> None:
    import importlib

    module = importlib.import_module(codec)
    # Duplicate spans are kept once; bzip2 at level 1 has 100 kB blocks, so most survive.
    text = (FAITHFUL / "neighbour.jsonl").read_bytes() * 400
    whole = module.compress(text, 1) if codec == "bz2" else module.compress(text)
    path = tmp_path / ("cut.jsonl.bz2" if codec == "bz2" else "cut.jsonl.xz")
    path.write_bytes(whole[: len(whole) * 3 // 4])
    report = store.ingest([path], run="r")
    decompressor = module.BZ2Decompressor() if codec == "bz2" else module.LZMADecompressor()
    complete_lines = decompressor.decompress(whole[: len(whole) * 3 // 4]).count(b"\n")
    assert complete_lines > 0
    assert report.spans_added == 3
    assert report.files[0].spans_read == complete_lines
    assert "cut short" in report.files[0].problems[-1].reason


def test_a_stream_cut_before_its_first_line_is_an_error_not_an_empty_file(
    store: Store, tmp_path: Path
) -> None:
    import bz2

    from correlate.errors import InputError

    whole = bz2.compress((FAITHFUL / "neighbour.jsonl").read_bytes())
    (tmp_path / "cut.jsonl.bz2").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="bzip2 stream is damaged or cut short after 0"):
        store.ingest([tmp_path / "cut.jsonl.bz2"], run="r")


def test_utf8_byte_order_mark_keeps_the_first_record(store: Store) -> None:
    report = store.ingest([FAITHFUL / "bom.jsonl"], run="r")
    assert (report.spans_added, report.skipped) == (2, 0)


def test_a_byte_order_mark_keeps_no_file_from_duckdbs_reader(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB skips the mark as the line reader does: a big file starting with one is read
    in bulk, and a folder of small ones in a group, with what the line reader reads."""
    from correlate.ingest import spanbatch, spanfile

    from .test_ingest_bulk import bulk_reads

    clean = bulk_reads(monkeypatch)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    monkeypatch.setattr(spanbatch, "SMALL_FILE_BYTES", 0)  # each file on its own
    report = store.ingest([FAITHFUL / "bom.jsonl"], run="big")
    assert clean == [True] and (report.spans_added, report.skipped) == (2, 0)
    monkeypatch.undo()
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("bom.jsonl", "neighbour.jsonl"):
        (folder / name).write_bytes((FAITHFUL / name).read_bytes())
    together = store.ingest([folder], run="small")
    alone = [
        store.ingest([folder / name], run=f"alone-{name}")
        for name in ("bom.jsonl", "neighbour.jsonl")
    ]
    assert together.spans_added == sum(r.spans_added for r in alone) > 2
    assert together.skipped == 0


def test_utf16_is_named_as_such(store: Store) -> None:
    from correlate.errors import InputError

    with pytest.raises(InputError, match="UTF-16 text.*convert it to UTF-8"):
        store.ingest([FAITHFUL / "utf16.jsonl"], run="r")


# -- 3. what a directory holds that cannot be read is passed over, with the reason ---------


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(FAITHFUL / "one_span.jsonl", folder / "a.jsonl")
    shutil.copy(FAITHFUL / "neighbour.jsonl", folder / "sub" / "b.jsonl")
    shutil.copy(FAITHFUL / "far_apart.jsonl", folder / "locked.jsonl")
    return folder


def test_named_pipe_in_a_directory_is_passed_over_with_the_reason(
    store: Store, tmp_path: Path
) -> None:
    import os

    folder = _folder(tmp_path)
    os.mkfifo(folder / "pipe.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 6
    assert [(p.path.name, p.reason) for p in report.passed_over] == [
        ("pipe.jsonl", "not a regular file (a named pipe)")
    ]


def test_unreadable_folder_and_file_are_passed_over_and_the_rest_is_read(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    folder = _folder(tmp_path)
    scandir, path_open = os.scandir, Path.open

    def refusing_scandir(where):  # type: ignore[no-untyped-def]
        if Path(where) == folder / "sub":
            raise PermissionError(13, "Permission denied", str(where))
        return scandir(where)

    def refusing_open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self == folder / "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return path_open(self, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    monkeypatch.setattr(Path, "open", refusing_open)
    report = store.ingest([folder], run="r")
    assert report.spans_added == 1
    passed = sorted((p.path.name, p.reason) for p in report.passed_over)
    assert passed[0][0] == "locked.jsonl" and "Permission denied" in passed[0][1]
    assert passed[1] == ("sub", "cannot list this folder (Permission denied)")


# -- 9. a full index scan is a full scan, in every engine ------------------------------------


def test_mysql_full_index_scan_of_a_large_table_is_flagged() -> None:
    import json

    from correlate.plans import find_insights, parse_plan

    raw = json.loads((FAITHFUL / "plans" / "mysql-full-index-scan.json").read_text())
    plan = parse_plan(raw)
    (node,) = [n for n in plan.nodes if n.relation == "orders"]
    assert node.operation == "full_index_scan"
    found = {i.rule: i for i in find_insights(plan)}
    scan = found["seq_scan_selective_filter"]
    assert scan.severity.name == "CRITICAL"
    assert "read 1,980,000 rows of orders to keep 24,354" in scan.message
    assert scan.evidence["columns"] == ["status"]


def test_sqlite_scan_using_covering_index_is_a_full_scan() -> None:
    from correlate.plans import find_insights, parse_plan

    plan = parse_plan(
        [[2, 0, 0, "SCAN orders USING COVERING INDEX idx_orders_status"]],
        source="sqlite",
    )
    rules = {i.rule: i for i in find_insights(plan)}
    assert "index idx_orders_status on orders" in rules["full_table_scan"].message


# -- 14. any --format forced on the wrong file is a clear error, never a traceback ----------


def _format_names() -> list[str]:
    from correlate.ingest.registry import format_names

    return list(format_names())


@pytest.mark.parametrize("format_name", _format_names())
@pytest.mark.parametrize(
    "wrong", ["other_columns.csv", "one_span.jsonl", "plans/mysql-full-index-scan.json"]
)
def test_forced_format_on_the_wrong_file_is_a_correlate_error(
    store: Store, format_name: str, wrong: str
) -> None:
    from correlate.errors import CorrelateError

    try:
        store.ingest([FAITHFUL / wrong], run="r", format=format_name)
    except CorrelateError as error:
        assert str(error).startswith(str(FAITHFUL / wrong))


def test_locust_stats_forced_on_other_columns_names_what_it_needs(store: Store) -> None:
    from correlate.errors import InputError

    with pytest.raises(InputError, match=r"not Locust's PREFIX_stats.csv \(columns: region"):
        store.ingest([FAITHFUL / "other_columns.csv"], run="r", format="locust-stats")


# -- 12. ids that are not hex are kept, as stable hex ids, the original an attribute ---------


def test_string_ids_become_stable_hex_ids_with_the_original_kept(store: Store) -> None:
    import hashlib

    report = store.ingest([FAITHFUL / "string_ids.jsonl"], run="r")
    assert (report.spans_added, report.skipped) == (2, 0)
    got = store.con.execute(
        "SELECT name, trace_id, span_id, parent_id, attributes->>'correlate.original_trace_id', "
        "attributes->>'correlate.original_span_id', attributes->>'correlate.original_parent_id' "
        "FROM spans ORDER BY name"
    ).fetchall()

    def md5(text: str, digits: int) -> str:
        return hashlib.md5(text.encode()).hexdigest()[:digits]

    trace = md5("checkout-trace-1", 32)
    assert got == [
        ("POST /checkout", trace, md5("root", 16), None, "checkout-trace-1", "root", None),
        (
            "SELECT orders",
            trace,
            md5("db-1", 16),
            md5("root", 16),
            "checkout-trace-1",
            "db-1",
            "root",
        ),
    ]


def test_hex_ids_are_kept_as_they_are_without_an_original(store: Store) -> None:
    store.ingest([FAITHFUL / "one_span.jsonl"], run="r")
    got = store.con.execute("SELECT trace_id, span_id, attributes FROM spans").fetchall()
    assert got == [("1" * 32, "1" * 16, "{}")]


# -- 11. Jaeger without its envelope ----------------------------------------------------------


@pytest.mark.parametrize("name", ["jaeger_bare_trace.json", "jaeger_span_list.json"])
def test_jaeger_without_the_data_envelope_reads_like_the_api_response(
    store: Store, name: str
) -> None:
    columns = (
        "trace_id, span_id, parent_id, spans.name, service, spans.start_ns, spans.end_ns, kind"
    )
    store.ingest([DATA / "jaeger" / "checkout.json"], run="api")
    report = store.ingest([FAITHFUL / name], run="bare")
    assert report.files[0].format == "jaeger"
    assert (report.spans_added, report.skipped) == (2, 0)

    def spans(run: str) -> list[tuple]:
        return store.con.execute(
            f"SELECT {columns} FROM spans JOIN runs USING (run_id) WHERE runs.name = ? "
            "AND trace_id = (SELECT min(trace_id) FROM spans s2 JOIN runs r2 USING (run_id) "
            "WHERE r2.name = 'bare') ORDER BY span_id",
            [run],
        ).fetchall()

    assert spans("bare") == spans("api") and len(spans("bare")) == 2


# -- 7, 9. plans as psql and the mysql client print them -------------------------------------


@pytest.mark.parametrize(
    "name", ["psql-plain.txt", "psql-unicode.txt", "psql-border2.txt", "psql-unicode-border2.txt"]
)
def test_psql_output_in_every_line_style_is_a_plan(store: Store, name: str) -> None:
    from correlate.plans import parse_plan
    from correlate.plans.files import detect_plan_input, read_plan_file

    path = FAITHFUL / "plans" / name
    assert detect_plan_input(path) == "pg-explain"
    (raw,), _ = read_plan_file(path)
    plan = parse_plan(raw)
    assert (plan.nodes[0].node_type, plan.nodes[0].relation) == ("Index Only Scan", "pg_class")
    report = store.ingest([path], run="r", format="pg-explain")
    counts = report.files[0].plans
    assert counts is not None and (counts.added, counts.problems) == (1, [])


def test_mysql_client_output_with_end_markers_is_a_plan() -> None:
    from correlate.plans import find_insights, parse_plan
    from correlate.plans.files import detect_plan_input, read_plan_file

    path = FAITHFUL / "plans" / "mysql-end-markers.txt"
    assert detect_plan_input(path) == "mysql-explain"
    (raw,), _ = read_plan_file(path)
    plan = parse_plan(raw)
    assert "seq_scan_selective_filter" in {i.rule for i in find_insights(plan)}


# -- 8. parallel plans: under a Gather, loops are processes running at once -------------------


def test_parallel_nodes_take_wall_clock_time_not_time_times_workers() -> None:
    import json

    from correlate.plans import parse_plan

    plan = parse_plan(json.loads((FAITHFUL / "plans" / "pg-parallel.json").read_text()))
    scan = next(n for n in plan.nodes if n.node_type == "Seq Scan")
    assert (scan.actual_loops, scan.actual_total_time) == (3, 21.857)
    assert scan.total_time == pytest.approx(21.857)
    assert plan.execution_time is not None
    assert all((n.total_time or 0) <= plan.execution_time for n in plan.nodes)
    assert scan.total_rows == scan.actual_rows * 3  # rows do add up over the processes


def test_a_database_call_without_statement_text_shows_its_span_name_not_nan(
    store: Store, tmp_path: Path
) -> None:
    import json

    import correlate

    def attr(key: str, value: str) -> dict[str, object]:
        return {"key": key, "value": {"stringValue": value}}

    spans = [
        {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "GET /x", "kind": 2,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000050000000",
         "attributes": [attr("http.route", "/x"), attr("http.request.method", "GET")]},
        {"traceId": "ab" * 16, "spanId": "02" * 8, "parentSpanId": "01" * 8,
         "name": "FindOrders", "kind": 3,
         "startTimeUnixNano": "1700000000001000000", "endTimeUnixNano": "1700000000020000000",
         "attributes": [attr("db.system", "postgresql")]},
    ]  # fmt: skip
    doc = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "svc")]},
                              "scopeSpans": [{"spans": spans}]}]}  # fmt: skip
    path = tmp_path / "nostatement.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    analysis = correlate.analyze(path, store=store, run="r")
    assert analysis.queries["normalized"].tolist() == ["postgresql FindOrders"]
    text = analysis.to_text()
    assert "FindOrders" in text and "nan" not in text.split("Queries", 1)[1]
