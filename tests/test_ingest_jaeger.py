"""Jaeger JSON ingest: the UI download / query API v1 shape, tag types, and bad input."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import CorrelateError
from correlate.ingest.detect import detect_format
from correlate.store import Store

from .conftest import DATA
from .strategies import MICROS, any_json, hostile_text, id_like

CHECKOUT = DATA / "jaeger" / "checkout.json"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


def span(span_id: str = "b7ad6b7169203331", trace: str = TRACE, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "traceID": trace,
        "spanID": span_id,
        "operationName": "op",
        "references": [],
        "startTime": 1_000,
        "duration": 2,
        "tags": [],
        "logs": [],
        "processID": "p1",
    }
    body.update(fields)
    return body


def response(*spans: dict[str, Any], service: str = "svc") -> str:
    trace = {
        "traceID": TRACE,
        "spans": list(spans),
        "processes": {"p1": {"serviceName": service, "tags": []}},
    }
    return json.dumps({"data": [trace], "total": 0, "limit": 0, "offset": 0, "errors": None})


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# -- good input ---------------------------------------------------------------------------


def test_fixture_is_detected_as_jaeger() -> None:
    assert detect_format(CHECKOUT) == "jaeger"


def test_checkout_fixture_columns(store: Store) -> None:
    report = store.ingest([CHECKOUT], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (3, 3, 0)
    got = rows(
        store,
        "SELECT trace_id, span_id, parent_id, name, kind, service, scope_name, start_ns, end_ns, "
        "duration_ns, status_code, status_message, http_method, http_route, http_status_code, "
        "db_system, db_statement, server_address, server_port FROM spans ORDER BY start_ns",
    )
    assert got == [
        (TRACE, "00f067aa0ba902b7", None, "GET /orders/{id}", "SERVER", "shop-api",
         "opentelemetry.instrumentation.flask", 1764060000000000000, 1764060000025000000,
         25_000_000, "ERROR", "payment declined", "GET", "/orders/{id}", 500,
         None, None, None, None),
        (TRACE, "a1b2c3d4e5f60718", "00f067aa0ba902b7", "SELECT shop", "CLIENT", "shop-api",
         None, 1764060000002000000, 1764060000003500000, 1_500_000, "OK", None,
         None, None, None, "postgresql", "SELECT * FROM orders WHERE id = %(id)s",
         "db.internal", 5432),
        # A 64-bit trace id is padded to 32 digits; a FOLLOWS_FROM reference in
        # the span's own trace is its parent when it has no CHILD_OF.
        ("00000000000000000af7651916cd43dd", "b7ad6b7169203331", "53995c3f42cd8ad8",
         "process order", "CONSUMER", "worker", None, 1764060000100000000,
         1764060000100000000, 0, "UNSET", None, None, None, None, None, None, None, None),
    ]  # fmt: skip


def test_tags_keep_their_types_and_transport_tags_are_gone(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    (server,), (db,) = rows(
        store,
        "SELECT attributes::VARCHAR FROM spans WHERE service = 'shop-api' ORDER BY start_ns",
    )
    # span.kind, otel.status_*, otel.scope.* carried OTLP fields: they are columns now.
    # ``error`` is OpenTracing's own tag and stays.
    assert server == (
        '{"http.request.method":"GET","http.route":"/orders/{id}",'
        '"http.response.status_code":500,"error":true}'
    )
    # int64 given as a string (too big for a JS number) is still a number; binary stays base64.
    assert db == (
        '{"db.system":"postgresql","db.statement":"SELECT * FROM orders WHERE id = %(id)s",'
        '"server.address":"db.internal","server.port":5432,"rows":9223372036854775807,'
        '"ratio":0.25,"cached":false,"payload":"AAH/"}'
    )


def test_process_tags_are_the_resource_with_service_name(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    got = rows(store, "SELECT DISTINCT service, resource::VARCHAR FROM spans ORDER BY service")
    assert got == [
        ("shop-api", '{"service.name":"shop-api","host.name":"web-1","process.pid":4242}'),
        ("worker", '{"service.name":"worker"}'),
    ]


def test_logs_become_events(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    (events,) = rows(store, "SELECT events FROM spans WHERE span_id = '00f067aa0ba902b7'")[0]
    assert events == [
        {
            "time_ns": 1764060000020000000,
            "name": "exception",
            "attributes": '{"exception.type":"ValueError","exception.escaped":false}',
        },
        # No ``event`` field: the event is named "log".
        {"time_ns": 1764060000021000000, "name": "log", "attributes": '{"message":"retrying"}'},
    ]


def test_references_other_than_the_parent_are_links(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    (links,) = rows(store, "SELECT links FROM spans WHERE service = 'worker'")[0]
    assert links == [
        {
            "trace_id": TRACE,
            "span_id": "00f067aa0ba902b7",
            "attributes": '{"opentracing.ref_type":"follows_from"}',
        }
    ]


def test_gzip_gives_the_same_rows(store: Store, tmp_path: Path) -> None:
    packed = tmp_path / "checkout.json.gz"
    with gzip.open(packed, "wb") as f:
        f.write(CHECKOUT.read_bytes())
    assert detect_format(packed) == "jaeger"
    store.ingest([packed], run="gz")
    store.ingest([CHECKOUT], run="plain")
    by_run = rows(
        store,
        "SELECT list(span_id || start_ns || attributes::VARCHAR ORDER BY span_id) "
        "FROM spans GROUP BY run_id ORDER BY run_id",
    )
    assert len(by_run) == 2 and by_run[0] == by_run[1]


def test_one_response_per_line(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "search.jsonl",
        response(span("00000000000000a1"), service="a"),
        response(span("00000000000000b2"), service="b"),
    )
    report = store.ingest([path], run="r")
    assert report.spans_added == 2
    assert rows(store, "SELECT span_id, service FROM spans ORDER BY span_id") == [
        ("00000000000000a1", "a"),
        ("00000000000000b2", "b"),
    ]


@pytest.mark.parametrize(
    ("fields", "parent"),
    [
        ({"parentSpanID": "00f067aa0ba902b7"}, "00f067aa0ba902b7"),
        ({"parentSpanID": "0000000000000000"}, None),  # all zeros: a root
        ({"parentSpanID": "f067aa0ba902b7"}, "00f067aa0ba902b7"),  # leading zeros dropped
        (
            {
                "references": [
                    {"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": "1111111111111111"},
                    {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "2222222222222222"},
                ],
                "parentSpanID": "3333333333333333",
            },
            "2222222222222222",
        ),
        (
            # A CHILD_OF into another trace is a link, not the parent.
            {
                "references": [
                    {"refType": "CHILD_OF", "traceID": "a" * 32, "spanID": "1111111111111111"}
                ]
            },
            None,
        ),
    ],
)
def test_parent_choice(
    store: Store, tmp_path: Path, fields: dict[str, Any], parent: str | None
) -> None:
    store.ingest([write(tmp_path / "t.json", response(span(**fields)))], run="r")
    assert rows(store, "SELECT parent_id FROM spans") == [(parent,)]


@pytest.mark.parametrize(
    ("tag", "string_form", "json_text"),
    [
        ({"type": "string", "value": "a\"b</script>\u0001é"}, 'a"b</script>\u0001é',
         '"a\\"b</script>\\u0001é"'),
        ({"type": "string", "value": 5}, "5", '"5"'),
        ({"type": "bool", "value": True}, "true", "true"),
        ({"type": "bool", "value": "false"}, "false", "false"),
        ({"type": "int64", "value": -42}, "-42", "-42"),
        ({"type": "int64", "value": "12345678901234567890123"}, "12345678901234567890123",
         "12345678901234567890123"),
        ({"type": "int64", "value": "not a number"}, "not a number", '"not a number"'),
        ({"type": "float64", "value": 1.5}, "1.5", "1.5"),
        ({"type": "float64", "value": 3}, "3.0", "3.0"),
        ({"type": "float64", "value": "NaN"}, "nan", '"nan"'),
        ({"type": "binary", "value": "AAH/"}, "AAH/", '"AAH/"'),
        ({"value": {"nested": [1, None]}}, '{"nested":[1,null]}', '{"nested":[1,null]}'),
        ({"type": "string", "value": None}, None, "null"),
    ],
)  # fmt: skip
def test_tag_value_forms(
    store: Store, tmp_path: Path, tag: dict[str, Any], string_form: str | None, json_text: str
) -> None:
    tags = [{"key": "db.statement", **tag}]
    store.ingest([write(tmp_path / "t.json", response(span(tags=tags)))], run="r")
    # db_statement shows the plain string form, the attributes object the JSON text.
    assert rows(store, "SELECT db_statement, attributes::VARCHAR FROM spans") == [
        (string_form, '{"db.statement":' + json_text + "}")
    ]


@pytest.mark.parametrize(
    ("tags", "status"),
    [
        ([{"key": "error", "type": "bool", "value": True}], ("ERROR", None)),
        ([{"key": "error", "type": "bool", "value": False}], ("UNSET", None)),
        (
            [
                {"key": "otel.status_code", "type": "string", "value": "OK"},
                {"key": "error", "type": "bool", "value": True},
            ],
            ("OK", None),
        ),
        (
            [
                {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                {"key": "otel.status_description", "type": "string", "value": "boom"},
            ],
            ("ERROR", "boom"),
        ),
    ],
)
def test_status(
    store: Store, tmp_path: Path, tags: list[dict[str, Any]], status: tuple[str, str | None]
) -> None:
    store.ingest([write(tmp_path / "t.json", response(span(tags=tags)))], run="r")
    assert rows(store, "SELECT status_code, status_message FROM spans") == [status]


def test_unknown_status_code_stays_an_attribute(store: Store, tmp_path: Path) -> None:
    tags = [{"key": "otel.status_code", "type": "string", "value": "MAYBE"}]
    store.ingest([write(tmp_path / "t.json", response(span(tags=tags)))], run="r")
    assert rows(store, "SELECT status_code, attributes::VARCHAR FROM spans") == [
        ("UNSET", '{"otel.status_code":"MAYBE"}')
    ]


def test_empty_search_result(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "empty.json", '{"data":[],"total":0,"limit":0,"offset":0,"errors":null}'
    )
    assert detect_format(path) == "jaeger"
    report = store.ingest([path], run="r")
    assert (report.spans_read, report.skipped) == (0, 0)


# -- bad input ----------------------------------------------------------------------------


def test_bad_records_are_skipped_counted_and_located(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.jsonl",
        response(span("00000000000000a1")),
        '{"data": [ {"traceID": ',
        '{"result": []}',
        response(
            span("00000000000000b2"),
            span("not-hex"),
            span("00000000000000c3", startTime="soon"),
            span("00000000000000d4", duration=-5),
            span("00000000000000e5", duration=None),
        ),
        '{"data": [null, {"traceID": "x"}]}',
    )
    report = store.ingest([path], run="r")
    # "not-hex" is kept, as a stable hex id
    assert (report.spans_read, report.spans_added, report.skipped) == (6, 3, 7)
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "not valid JSON (Expecting value at column 24)"),
        (3, 'not Jaeger JSON (no "data" array of traces); pass --format if this is another format'),
        (4, "span 00000000000000c3: start time is missing or not an integer"),
        (4, "span 00000000000000d4: span ends before it starts"),
        (4, "span 00000000000000e5: end time is missing or not an integer"),
        (5, 'trace 1 of "data" has no "spans" array; skipped'),
        (5, 'trace 2 of "data" has no "spans" array; skipped'),
    ]
    assert rows(
        store,
        "SELECT span_id, attributes->>'correlate.original_span_id' FROM spans ORDER BY span_id",
    ) == [
        ("00000000000000a1", None),
        ("00000000000000b2", None),
        ("64da3e678252b431", "not-hex"),
    ]


# -- property: hostile input never escapes as anything but a CorrelateError ----------------

_HOSTILE_TEXT = hostile_text()
_JSON = any_json()
_HEX_ID = id_like(["00f067aa0ba902b7", "4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32])
_MICROS = MICROS
_TAG = st.one_of(
    st.fixed_dictionaries(
        {
            "key": st.one_of(
                st.sampled_from(["span.kind", "otel.status_code", "error", "event", "http.route"]),
                _HOSTILE_TEXT,
                _JSON,
            ),
            "type": st.one_of(
                st.sampled_from(["string", "bool", "int64", "float64", "binary"]), _JSON
            ),
            "value": _JSON,
        }
    ),
    _JSON,
)
_SPAN = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "traceID": _HEX_ID,
            "spanID": _HEX_ID,
            "parentSpanID": _HEX_ID,
            "operationName": _JSON,
            "references": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "refType": st.sampled_from(["CHILD_OF", "FOLLOWS_FROM", "x"]),
                        "traceID": _HEX_ID,
                        "spanID": _HEX_ID,
                    },
                ),
                max_size=2,
            ),
            "startTime": _MICROS,
            "duration": _MICROS,
            "tags": st.one_of(st.lists(_TAG, max_size=3), _JSON),
            "logs": st.lists(
                st.fixed_dictionaries(
                    {}, optional={"timestamp": _MICROS, "fields": st.lists(_TAG, max_size=2)}
                ),
                max_size=2,
            ),
            "processID": st.one_of(st.just("p1"), _JSON),
        },
    ),
    _JSON,
)
_TRACE = st.one_of(
    st.fixed_dictionaries(
        {"spans": st.lists(_SPAN, max_size=3)},
        optional={
            "traceID": _HEX_ID,
            "processes": st.one_of(
                st.dictionaries(
                    st.sampled_from(["p1", "p2"]),
                    st.fixed_dictionaries(
                        {}, optional={"serviceName": _JSON, "tags": st.lists(_TAG, max_size=2)}
                    ),
                ),
                _JSON,
            ),
        },
    ),
    _JSON,
)
_RECORD = st.one_of(st.fixed_dictionaries({"data": st.lists(_TRACE, max_size=3)}), _JSON)

#: Problems about a whole record (line), and about a trace, rather than one span.
_LINE_PROBLEMS = ("not valid JSON", "JSON of an unexpected shape", "not Jaeger JSON")
_TRACE_PROBLEM = 'has no "spans" array'


def _span_count(record: Any) -> int:
    """How many span rows the record holds, whatever each span looks like."""
    if not isinstance(record, dict) or not isinstance(record.get("data"), list):
        return 0
    return sum(
        len(t["spans"])
        for t in record["data"]
        if isinstance(t, dict) and isinstance(t.get("spans"), list)
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RECORD, min_size=1, max_size=4))
def test_hostile_records_are_added_or_counted(records: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / "hostile.json"
        # Each record on its own line, and a first line that is JSON, so it is read as JSON lines.
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        try:
            report = store.ingest([path], run="r", format="jaeger")
        except CorrelateError:
            return
        problems = store.con.execute("SELECT line, reason FROM problems").fetchall()
        bad_lines = {line for line, reason in problems if reason.startswith(_LINE_PROBLEMS)}
        span_problems = sum(
            not reason.startswith(_LINE_PROBLEMS) and _TRACE_PROBLEM not in reason
            for _, reason in problems
        )
        spans_skipped = sum(f.spans_skipped for f in report.files)
        assert (report.skipped, spans_skipped) == (len(problems), span_problems)
        assert report.spans_read == report.spans_added + report.duplicates + spans_skipped
        expected = sum(_span_count(r) for n, r in enumerate(records, start=1) if n not in bad_lines)
        assert report.spans_read == expected
