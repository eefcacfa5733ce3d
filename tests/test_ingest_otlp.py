"""OTLP/JSON ingest: shapes, conventions, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from correlate.errors import InputError
from correlate.ingest.detect import NotTraceFile
from correlate.store import Store

from .conftest import DATA
from .helpers.produce import produce
from .sample_facts import line_count, locust_csv

CHECKOUT = DATA / "otlp" / "checkout.jsonl"
PRODUCER = Path(__file__).parent / "helpers" / "sdk_producer.py"


def span(trace="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", **fields):
    body = {
        "traceId": trace,
        "spanId": span_id,
        "name": "GET /x",
        "kind": 2,
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "2000",
    }
    body.update(fields)
    return body


def line(*spans, service="svc"):
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return json.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}
    )


def write(path: Path, *lines: str, final_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    return path


def rows(store: Store, sql: str) -> list[tuple]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


# -- good input ---------------------------------------------------------------------------


def test_checkout_fixture_columns(store: Store) -> None:
    report = store.ingest([CHECKOUT], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (5, 5, 0)
    got = rows(
        store,
        "SELECT span_id, parent_id, kind, service, duration_ns, status_code, status_message, "
        "http_method, http_route, http_status_code, url_path, db_system, db_namespace, "
        "db_statement, server_address, server_port FROM spans ORDER BY start_ns",
    )
    assert got == [
        ("b7ad6b7169203331", None, "SERVER", "checkout", 250_000_000, "ERROR", "pool exhausted",
         "POST", "/checkout", 500, "/checkout", None, None, None, None, None),
        ("00f067aa0ba902b7", "b7ad6b7169203331", "CLIENT", "checkout", 200_000_000, "UNSET", None,
         None, None, None, None, "postgresql", "shop", None, "127.0.0.1", 5432),
        ("1f2e3d4c5b6a7988", "b7ad6b7169203331", "CLIENT", "checkout", 28_000_000, "UNSET", None,
         None, None, None, None, "postgresql", "shop",
         "SELECT * FROM orders WHERE customer_id = %(cid)s", "127.0.0.1", 5432),
        ("53995c3f42cd8ad8", None, "SERVER", "checkout", 12_000_000, "UNSET", None,
         "GET", "/products/{id}", 200, "/products/42", None, None, None, None, None),
        ("a1b2c3d4e5f60718", "53995c3f42cd8ad8", "CLIENT", "checkout", 7_000_000, "UNSET", None,
         None, None, None, None, "postgresql", "shop",
         "SELECT * FROM products WHERE id = %(id)s", "db.internal", 5432),
    ]  # fmt: skip


def test_attributes_resource_and_events_stay_queryable(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    attrs = json.loads(
        store.con.execute(
            "SELECT attributes FROM spans WHERE span_id = '53995c3f42cd8ad8'"
        ).fetchone()[0]
    )
    assert attrs == {
        "http.method": "GET",
        "http.route": "/products/{id}",
        "http.target": "/products/42?ref=home",
        "http.status_code": 200,
        "tags": ["a", 2],
        "ratio": 0.25,
        "cached": True,
    }
    version = store.con.execute(
        "SELECT resource->>'service.version' FROM spans WHERE span_id = 'b7ad6b7169203331'"
    ).fetchone()[0]
    assert version == "1.4.2"
    event = store.con.execute(
        "SELECT e.name, e.time_ns, e.attributes->>'exception.type' "
        "FROM (SELECT unnest(events) AS e FROM spans WHERE span_id = 'b7ad6b7169203331')"
    ).fetchall()
    assert event == [("exception", 1795594408240000000, "sqlalchemy.exc.TimeoutError")]


def test_uppercase_hex_ids_and_numeric_int64_times(store: Store) -> None:
    # Both are legal OTLP/JSON: ids are case-insensitive hex, and int64 times
    # may be JSON numbers as well as strings.
    report = store.ingest([DATA / "otlp" / "uppercase-ids-numeric-times.json"], run="example")
    assert report.skipped == 0
    got = rows(
        store, "SELECT trace_id, span_id, parent_id, kind, service, start_ns, end_ns FROM spans"
    )
    assert got == [
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00f067aa0ba902b7", "SERVER",
         "inventory", 1700000000000000000, 1700000000250000000),
    ]  # fmt: skip


def test_numbers_where_strings_are_usual_and_enum_names(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        line(span(kind="SPAN_KIND_CLIENT", startTimeUnixNano=5, endTimeUnixNano=9,
                  status={"code": "STATUS_CODE_ERROR"}, parentSpanId="")),
    )  # fmt: skip
    store.ingest([path], run="r")
    assert rows(store, "SELECT kind, start_ns, end_ns, status_code, parent_id FROM spans") == [
        ("CLIENT", 5, 9, "ERROR", None)
    ]


def test_pretty_printed_document_and_jaeger_v3_result_wrapper(store: Store, tmp_path: Path) -> None:
    doc = json.loads(line(span()))
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(doc, indent=2))
    wrapped = write(
        tmp_path / "v3.json", json.dumps({"result": json.loads(line(span(span_id="c" * 16)))})
    )
    report = store.ingest([pretty, wrapped], run="r")
    assert report.spans_added == 2
    assert report.skipped == 0


def test_gzip_is_read_by_content(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(gzip.compress(CHECKOUT.read_bytes()))
    plain_named = tmp_path / "no-suffix"
    plain_named.write_bytes(gzip.compress(CHECKOUT.read_bytes()))
    assert store.ingest([path], run="a").spans_added == 5
    assert store.ingest([plain_named], run="b").spans_added == 5


def test_legacy_instrumentation_library_spans(store: Store, tmp_path: Path) -> None:
    legacy = {
        "resourceSpans": [
            {
                "instrumentationLibrarySpans": [
                    {"instrumentationLibrary": {"name": "old"}, "spans": [span()]}
                ]
            }
        ]
    }
    store.ingest([write(tmp_path / "old.json", json.dumps(legacy))], run="r")
    assert rows(store, "SELECT scope_name, span_id FROM spans") == [("old", "b7ad6b7169203331")]


def test_directory_is_read_recursively_and_other_files_are_listed(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "spans" / "deep").mkdir(parents=True)
    write(tmp_path / "spans" / "a.jsonl", line(span(span_id="a" * 16)))
    write(tmp_path / "spans" / "deep" / "b.jsonl", line(span(span_id="b" * 16)))
    write(tmp_path / "run.json", json.dumps({"service": "checkout"}))
    write(tmp_path / ".hidden.jsonl", line(span(span_id="c" * 16)))
    report = store.ingest([tmp_path], run="r")
    assert report.spans_added == 2
    assert [p.path.name for p in report.passed_over] == ["run.json"]
    assert report.passed_over[0].reason == "JSON object with keys service"


# -- the SDK's own output -------------------------------------------------------------------


def _produce(dsn: str, out: Path, mode: str) -> None:
    produce(PRODUCER, dsn, out, semconv=mode)


SEMCONV_MODES = {
    "old": ("", "db.statement"),
    "new": ("database,http", "db.query.text"),
    "both": ("database/dup,http/dup", "db.query.text"),
}


def _check_sdk_spans(store: Store, path: Path, statement_key: str, db_system: str) -> None:
    report = store.ingest([path], run="sdk")
    assert report.skipped == 0
    selects = rows(
        store,
        "SELECT s.db_system, s.db_statement, parent.http_route, parent.kind "
        "FROM spans s JOIN spans parent ON parent.span_id = s.parent_id "
        "WHERE s.db_statement LIKE 'SELECT id FROM ctest_orders%'",
    )
    assert len(selects) == 2
    for system, statement, route, parent_kind in selects:
        assert system == db_system
        assert statement.startswith("SELECT id FROM ctest_orders WHERE customer_id = ")
        assert (route, parent_kind) == ("/customers/{id}/orders", "SERVER")
    # The attribute names really are the mode's, and both land in the same column.
    keys = rows(
        store,
        "SELECT DISTINCT unnest(json_keys(attributes)) FROM spans WHERE db_statement IS NOT NULL",
    )
    assert (statement_key,) in keys
    boom = rows(
        store,
        "SELECT status_code, status_message, events[1].attributes->>'exception.type' "
        "FROM spans WHERE http_route = '/boom'",
    )
    assert boom == [("ERROR", "payment declined", "ValueError")]
    connects = rows(store, "SELECT count(*) FROM spans WHERE name = 'connect' AND kind = 'CLIENT'")
    assert connects[0][0] >= 3


@pytest.mark.parametrize("mode", SEMCONV_MODES)
def test_real_sdk_spans_sqlite(store: Store, tmp_path: Path, mode: str) -> None:
    env_value, key = SEMCONV_MODES[mode]
    out = tmp_path / "spans.jsonl"
    _produce(f"sqlite:///{tmp_path / 'shop.db'}", out, env_value)
    _check_sdk_spans(store, out, key, "sqlite")


@pytest.mark.postgres
@pytest.mark.parametrize("mode", SEMCONV_MODES)
def test_real_sdk_spans_postgres(store: Store, tmp_path: Path, mode: str, pg_dsn: str) -> None:
    env_value, key = SEMCONV_MODES[mode]
    out = tmp_path / "spans.jsonl"
    _produce(pg_dsn, out, env_value)
    _check_sdk_spans(store, out, key, "postgresql")
    addresses = rows(
        store, "SELECT DISTINCT server_address FROM spans WHERE db_statement IS NOT NULL"
    )
    assert addresses == [("127.0.0.1",)]


# -- bad input: a message each, and nothing else lost ---------------------------------------


def test_malformed_lines_are_skipped_counted_and_located(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "dirty.jsonl",
        line(span(span_id="a" * 16)),
        '{"resourceSpans": [',
        "",
        line(span(span_id="b" * 16)),
        '{"hello": "world"}',
        line(span(span_id="c" * 16, traceId="xyz"), span(span_id="d" * 16)),
    )
    report = store.ingest([path], run="r")
    assert report.spans_added == 4  # the trace id "xyz" is kept, as a stable hex id
    assert report.skipped == 2
    assert [str(p) for p in report.problems] == [
        f"{path}:2: not valid JSON (Expecting value at column 20)",
        f"{path}:5: not OTLP JSON (no resourceSpans array); pass --format if this is another format",
    ]
    stored = rows(store, "SELECT line, reason FROM problems ORDER BY line")
    assert [line_no for line_no, _ in stored] == [2, 5]
    assert rows(store, "SELECT skipped_count, span_count FROM runs") == [(2, 4)]


def test_metrics_and_logs_lines_among_spans_are_named_for_what_they_are(
    store: Store, tmp_path: Path
) -> None:
    # One Collector file exporter in both the traces and the metrics pipeline writes
    # resourceSpans and resourceMetrics lines into one file.
    metrics = (
        (Path(__file__).parent / "data" / "metrics" / "sqlalchemy-otlp.jsonl")
        .read_text()
        .splitlines()[0]
    )
    path = write(
        tmp_path / "collector.jsonl",
        line(span(span_id="a" * 16)),
        metrics,
        '{"resourceLogs": []}',
        line(span(span_id="b" * 16)),
    )
    report = store.ingest([path], run="r")
    assert report.spans_added == 2
    reasons = [(p.line, p.reason.split(":")[0]) for p in report.problems]
    assert reasons == [
        (2, "OTLP metrics (resourceMetrics), not spans"),
        (3, "OTLP logs (resourceLogs), not spans"),
    ]
    assert "a file of their own" in report.problems[0].reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"spanId": ""}, "span has no span id"),
        ({"traceId": "0" * 32}, "trace id is all zeros (invalid)"),
        ({"startTimeUnixNano": "soon"}, "start time is missing or not an integer"),
        ({"endTimeUnixNano": None}, "end time is missing or not an integer"),
        ({"startTimeUnixNano": "10", "endTimeUnixNano": "5"}, "span ends before it starts"),
    ],
)
def test_each_bad_span_field_has_its_reason(
    store: Store, tmp_path: Path, fields: dict, reason: str
) -> None:
    good = span(span_id="a" * 16)
    bad = span(span_id="b" * 16)
    bad.update(fields)
    path = write(tmp_path / "x.jsonl", line(good, bad))
    report = store.ingest([path], run="r")
    assert report.spans_added == 1
    assert report.skipped == 1
    assert report.problems[0].line == 1
    assert report.problems[0].reason.endswith(reason)


def test_truncated_last_line_is_named_as_such(store: Store, tmp_path: Path) -> None:
    full = line(span(span_id="a" * 16))
    path = write(tmp_path / "live.jsonl", full, full[: len(full) // 2], final_newline=False)
    report = store.ingest([path], run="r")
    assert report.spans_added == 1
    assert str(report.problems[0]) == (
        f"{path}:2: last line is cut short (no final newline; was the file still being written?)"
    )


def test_non_utf8_line_is_skipped_with_its_byte(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        line(span(span_id="a" * 16)).encode() + b"\n" + b'{"resourceSpans": "caf\xe9"}\n'
    )
    report = store.ingest([path], run="r")
    assert report.spans_added == 1
    assert str(report.problems[0]) == f"{path}:2: not UTF-8 text (byte 0xe9 at column 23)"


def test_empty_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "empty.jsonl", final_newline=False)
    with pytest.raises(NotTraceFile, match=r"empty\.jsonl: empty file: no spans to read"):
        store.ingest([path], run="r")
    assert rows(store, "SELECT count(*) FROM runs") == [(0,)]


def test_binary_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(
        NotTraceFile, match=r"a binary file that is not OTLP protobuf \(first bytes 89 50 4e 47"
    ):
        store.ingest([path], run="r")


def test_directory_without_trace_files(store: Store, tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(
        InputError,
        match=r"no trace files found in .* \(1 file\(s\) looked at, none a trace format; "
        r"first: .*notes\.txt: text starting 'hello'\)",
    ):
        store.ingest([tmp_path], run="r")


def test_missing_path(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file or directory"):
        store.ingest([tmp_path / "nope.jsonl"], run="r")


def test_console_exporter_output_is_refused_with_a_way_out(store: Store, tmp_path: Path) -> None:
    console = {
        "name": "GET /x",
        "context": {"trace_id": "0x7b41e5d0", "span_id": "0x8c16", "trace_state": "[]"},
        "kind": "SpanKind.SERVER",
        "parent_id": None,
        "start_time": "2026-11-25T08:10:03.933670Z",
    }
    path = write(tmp_path / "console.txt", json.dumps(console, indent=4))
    with pytest.raises(
        NotTraceFile, match="ConsoleSpanExporter output .*OTEL_TRACES_EXPORTER=otlp_json_file"
    ):
        store.ingest([path], run="r")


def test_reingesting_a_file_adds_nothing(store: Store) -> None:
    first = store.ingest([CHECKOUT], run="r")
    again = store.ingest([CHECKOUT], run="r")
    assert first.spans_added == 5
    assert again.spans_added == 0
    assert again.files[0].already_ingested
    assert "already in run 'r', nothing added" in again.summary()
    assert rows(store, "SELECT count(*) FROM spans") == [(5,)]
    # The same file may go into another run.
    assert store.ingest([CHECKOUT], run="other").spans_added == 5


def test_duplicate_span_ids_are_kept_once_and_counted(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", line(span(span_id="a" * 16), span(span_id="a" * 16)))
    b = write(
        tmp_path / "b.jsonl", line(span(span_id="a" * 16, name="copy"), span(span_id="b" * 16))
    )
    report = store.ingest([a, b], run="r")
    assert (report.spans_read, report.spans_added, report.duplicates) == (4, 2, 2)
    assert rows(store, "SELECT span_id, name FROM spans ORDER BY span_id") == [
        ("a" * 16, "GET /x"),
        ("b" * 16, "GET /x"),
    ]
    assert rows(store, "SELECT duplicate_count, span_count FROM runs") == [(2, 2)]
    assert "2 duplicate span(s) kept once" in report.summary()


def test_strict_fails_on_first_problem_and_keeps_nothing_from_that_file(
    store: Store, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.jsonl", line(span(span_id="a" * 16)))
    bad = write(tmp_path / "bad.jsonl", line(span(span_id="b" * 16)), "{oops")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not valid JSON .*--strict"):
        store.ingest([good, bad], run="r", strict=True)
    assert rows(store, "SELECT span_id FROM spans") == [("a" * 16,)]
    assert rows(store, "SELECT count(*) FROM files WHERE path LIKE '%bad.jsonl'") == [(0,)]
    assert rows(store, "SELECT count(*) FROM problems") == [(0,)]


def test_problem_list_is_capped_with_a_total(store: Store, tmp_path: Path) -> None:
    # one good line: a file from which nothing at all could be read is an error instead
    path = write(tmp_path / "many.jsonl", line(span()), *(["{bad"] * 30))
    report = store.ingest([path], run="r", format="otlp-json")
    assert (report.spans_added, report.skipped) == (1, 30)
    assert "… and 10 more (SELECT * FROM problems)" in report.summary()
    assert rows(store, "SELECT count(*) FROM problems") == [(30,)]


def test_run_labels_merge(store: Store) -> None:
    store.ingest([CHECKOUT], run="r", labels={"branch": "main"})
    store.ingest([CHECKOUT], run="r", labels={"commit": "abc"})
    labels = store.runs()["labels"][0]
    assert dict(labels) == {"branch": "main", "commit": "abc"}


def test_broken_pretty_printed_document_is_reported_once(store: Store, tmp_path: Path) -> None:
    text = json.dumps(json.loads(line(span())), indent=2)
    broken = text.replace('"kind": 2,', '"kind": 2,,')
    path = tmp_path / "doc.json"
    path.write_text(broken)
    bad_line = (
        broken.split("\n").index(next(x for x in broken.split("\n") if x.strip() == '"kind": 2,,'))
        + 1
    )
    # Nothing else in the file: it is an error, at the line where the JSON breaks.
    with pytest.raises(InputError) as caught:
        store.ingest([path], run="r", format="otlp-json")
    assert caught.value.line == bad_line
    assert caught.value.reason.startswith(
        "nothing could be read from this file: not valid JSON (Expecting property name"
    )


def test_clean_lines_take_the_fast_path_and_dirty_ones_fall_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import correlate.ingest.spanfile as ingest_module

    careful_calls: list[Path] = []
    real = ingest_module._load_batch

    def spy(store, run_id, file_id, path, fmt, batch, report):  # type: ignore[no-untyped-def]
        careful_calls.append(path)
        return real(store, run_id, file_id, path, fmt, batch, report)

    monkeypatch.setattr(ingest_module, "_load_batch", spy)
    gz = tmp_path / "clean.jsonl.gz"
    gz.write_bytes(gzip.compress(CHECKOUT.read_bytes()))
    assert store.ingest([CHECKOUT, gz], run="clean").spans_added == 5  # gz: same spans, kept once
    assert careful_calls == []
    dirty = write(tmp_path / "dirty.jsonl", line(span(span_id="a" * 16)), '{"not": "otlp"}')
    report = store.ingest([dirty], run="dirty")
    assert (report.spans_added, report.skipped) == (1, 1)
    assert careful_calls == [dirty]
    # The rolled-back fast attempt left nothing behind.
    assert rows(store, "SELECT count(*) FROM files WHERE path LIKE '%dirty.jsonl'") == [(1,)]
    assert rows(
        store, "SELECT count(*) FROM spans s JOIN runs r USING (run_id) WHERE r.name = 'dirty'"
    ) == [(1,)]


SAMPLE = Path(__file__).resolve().parents[1] / "sample_traces" / "checkout-blackfriday"


def test_run_directory_fills_the_companion_tables(store: Store) -> None:
    report = store.ingest([SAMPLE], run="bf")
    assert report.skipped == 0
    bf = "checkout-blackfriday"
    assert report.companion_rows == {
        "client_requests": line_count(bf, "load/requests.jsonl.gz"),
        "pool_checkouts": line_count(bf, "pool/checkouts.jsonl.gz"),
        "pool_leaks": line_count(bf, "pool/leaks.jsonl.gz"),
        "pool_samples": line_count(bf, "pool/samples.jsonl.gz"),
        "run_info": 1,
    }
    assert report.companion_rows["pool_leaks"] == 10  # one per declined checkout, until exhausted
    # Companion files and Locust's CSVs are read, not passed over; logs still are.
    assert report.load_rows == {
        "locust-exceptions": len(locust_csv(bf, "exceptions")),
        "locust-failures": len(locust_csv(bf, "failures")),
        # one row per statistic of each route and the aggregate
        "locust-stats": report.load_rows["locust-stats"],
        "locust-history": len(locust_csv(bf, "stats_history")),
    }
    assert report.load_rows["locust-stats"] % len(locust_csv(bf, "stats")) == 0
    assert {p.path.suffix for p in report.passed_over} == {".log"}
    assert rows(store, "SELECT DISTINCT route FROM pool_leaks") == [("/checkout",)]
    assert rows(store, "SELECT info->>'service' FROM run_info") == [("checkout",)]
    again = store.ingest([SAMPLE], run="bf")
    assert again.spans_added == 0 and again.companion_rows == {}
    assert again.load_rows == {}
    assert again.summary().startswith("run 'bf': 0 spans added from 0 file(s)\n")
    # six span and companion files, four Locust CSVs, six plan files
    assert "16 file(s) already in run 'bf', nothing added from them" in again.summary()
    assert rows(store, "SELECT count(*) FROM pool_leaks") == [(10,)]


def test_a_file_padded_with_nuls_by_a_crash_is_read_and_the_padding_reported(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    lines = "".join(line(span(span_id=f"{i + 1:016x}", name=f"s{i}")) + "\n" for i in range(3))
    (folder / "crashed.jsonl").write_bytes(lines.encode() + b"\x00" * 4096)
    # a protobuf file is still binary: NULs inside, not only after the text
    (folder / "junk.bin").write_bytes(b"{\x00\x01" * 50 + b"\x00" * 10)
    report = store.ingest([folder], run="r")
    assert report.spans_added == 3
    assert [(p.path.name, p.line) for p in report.problems] == [("crashed.jsonl", 4)]
    assert [p.path.name for p in report.passed_over] == ["junk.bin"]


def test_a_file_whose_first_line_is_cut_is_still_read_as_otlp_lines(
    store: Store, tmp_path: Path
) -> None:
    """A Collector file captured from the middle of a line (rotated, or tailed) is known
    by its next line: the rest arrives and line 1 is reported, instead of the whole
    file refused as 'CSV with columns …'."""
    first, second = (DATA / "otlp" / "checkout.jsonl").read_bytes().splitlines(True)
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(second)
    store.ingest([whole], run="whole")
    expected = sorted(r[0] for r in store.con.execute("SELECT span_id FROM spans").fetchall())
    cut = tmp_path / "cut.jsonl"
    # The tail of a long record (Collector lines of 256+ spans run to hundreds of kB).
    tail = b"a" * 100_000 + first[len(first) // 2 :]
    cut.write_bytes(tail + second)
    report = store.ingest([cut], run="cut")
    got = store.con.execute(
        "SELECT span_id FROM spans JOIN runs USING (run_id) WHERE runs.name = 'cut'"
    ).fetchall()
    assert sorted(r[0] for r in got) == expected != []
    assert [p.line for p in report.problems] == [1]
