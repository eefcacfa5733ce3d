"""Zipkin v2 JSON ingest: list of spans, list of traces, B3 shared spans, and bad input."""

from __future__ import annotations

import gzip
import hashlib
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

CHECKOUT = DATA / "zipkin" / "checkout.json"
SHARED = DATA / "zipkin" / "shared_b3.json"
TRACE = "463ac35c9f6413ad48485a3953bb6124"


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


def span(span_id: str = "b7ad6b7169203331", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "traceId": TRACE,
        "id": span_id,
        "name": "op",
        "timestamp": 1_000,
        "duration": 2,
        "localEndpoint": {"serviceName": "svc"},
    }
    body.update(fields)
    return body


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def one(tmp_path: Path, *spans: dict[str, Any]) -> Path:
    return write(tmp_path / "spans.json", json.dumps(list(spans)))


# -- good input ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHECKOUT, SHARED])
def test_fixtures_are_detected_as_zipkin(path: Path) -> None:
    assert detect_format(path) == "zipkin"


def test_checkout_fixture_columns(store: Store) -> None:
    report = store.ingest([CHECKOUT], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (3, 3, 0)
    got = rows(
        store,
        "SELECT trace_id, span_id, parent_id, name, kind, service, scope_name, start_ns, end_ns, "
        "status_code, status_message, http_method, http_route, http_status_code, db_system, "
        "db_statement, server_address, server_port FROM spans ORDER BY start_ns",
    )
    trace = "00000000000000005af7183fb1d4cf5f"  # a 64-bit trace id, padded
    assert got == [
        (trace, "6b221d5bc9e6496c", None, "get /orders/{id}", "SERVER", "shop-api",
         "opentelemetry.instrumentation.flask", 1764060000000000000, 1764060000020000000,
         "ERROR", "payment declined", "GET", "/orders/{id}", 500, None, None, None, None),
        (trace, "352bff9a74ca9ad2", "6b221d5bc9e6496c", "select shop", "CLIENT", "shop-api",
         None, 1764060000002000000, 1764060000003500000, "UNSET", None, None, None, None,
         "postgresql", "SELECT * FROM orders WHERE id = $1", "10.0.0.7", 5432),
        # No kind: a local span. No duration: it ends when it starts.
        (trace, "0000000000000abc", "6b221d5bc9e6496c", "render", "INTERNAL", "shop-api",
         None, 1764060000005000000, 1764060000005000000, "UNSET", None, None, None, None,
         None, None, None, None),
    ]  # fmt: skip


def test_tags_are_strings_and_endpoints_become_attributes(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    got = rows(store, "SELECT attributes::VARCHAR, resource::VARCHAR FROM spans ORDER BY start_ns")
    assert got == [
        # otel.status_code / otel.scope.* are columns now; ``error`` is Zipkin's own tag.
        # The server's remote endpoint (the caller) does not become server.*.
        ('{"http.request.method":"GET","http.route":"/orders/{id}",'
         '"http.response.status_code":"500","error":"payment declined"}',
         '{"service.name":"shop-api"}'),
        ('{"db.system":"postgresql","db.statement":"SELECT * FROM orders WHERE id = $1",'
         '"peer.service":"postgres","server.address":"10.0.0.7","server.port":5432}',
         '{"service.name":"shop-api"}'),
        ("{}", '{"service.name":"shop-api"}'),
    ]  # fmt: skip


def test_annotations_become_events(store: Store) -> None:
    store.ingest([CHECKOUT], run="r")
    (events,) = rows(store, "SELECT events FROM spans WHERE span_id = '6b221d5bc9e6496c'")[0]
    assert events == [{"time_ns": 1764060000001000000, "name": "wr", "attributes": "{}"}]


def test_shared_server_half_gets_a_derived_id_under_the_client_half(store: Store) -> None:
    report = store.ingest([SHARED], run="r")
    assert (report.spans_added, report.duplicates, report.skipped) == (3, 0, 0)
    derived = hashlib.md5(b"a2fb4a1d1a96d312:shared").hexdigest()[:16]
    assert rows(
        store, "SELECT trace_id, span_id, parent_id, kind, service FROM spans ORDER BY start_ns"
    ) == [
        (TRACE, "a2fb4a1d1a96d312", None, "CLIENT", "shop-api"),
        (TRACE, derived, "a2fb4a1d1a96d312", "SERVER", "inventory"),
        # The server's own child moves under the server half.
        (TRACE, "1f2e3d4c5b6a7980", derived, "CLIENT", "inventory"),
    ]


def test_shared_span_without_its_client_half_still_links_to_it(
    store: Store, tmp_path: Path
) -> None:
    path = one(tmp_path, span("00000000000000aa", shared=True, kind="SERVER", parentId="1" * 16))
    store.ingest([path], run="r")
    derived = hashlib.md5(b"00000000000000aa:shared").hexdigest()[:16]
    assert rows(store, "SELECT span_id, parent_id FROM spans") == [(derived, "00000000000000aa")]


def test_list_of_spans_per_line_and_list_of_traces(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "traces.jsonl",
        json.dumps([span("00000000000000a1")]),
        json.dumps(
            [[span("00000000000000b2")], [span("00000000000000c3"), span("00000000000000d4")]]
        ),
        "[]",
        "[[]]",
    )
    report = store.ingest([path], run="r")
    assert (report.spans_added, report.skipped) == (4, 0)


def test_gzip_gives_the_same_rows(store: Store, tmp_path: Path) -> None:
    packed = tmp_path / "checkout.json.gz"
    with gzip.open(packed, "wb") as f:
        f.write(CHECKOUT.read_bytes())
    assert detect_format(packed) == "zipkin"
    store.ingest([packed], run="gz")
    store.ingest([CHECKOUT], run="plain")
    by_run = rows(
        store,
        "SELECT list(span_id || start_ns || attributes::VARCHAR ORDER BY span_id) "
        "FROM spans GROUP BY run_id ORDER BY run_id",
    )
    assert len(by_run) == 2 and by_run[0] == by_run[1]


@pytest.mark.parametrize(
    ("tags", "status"),
    [
        ({"error": ""}, ("ERROR", None)),
        ({"error": "true"}, ("ERROR", None)),
        ({"error": "false"}, ("UNSET", None)),
        ({"error": "timeout"}, ("ERROR", "timeout")),
        ({"otel.status_code": "ERROR", "otel.status_description": "boom", "error": "x"},
         ("ERROR", "boom")),
        ({"otel.status_code": "OK", "error": "x"}, ("OK", None)),
    ],
)  # fmt: skip
def test_status(
    store: Store, tmp_path: Path, tags: dict[str, str], status: tuple[str, str | None]
) -> None:
    store.ingest([one(tmp_path, span(tags=tags))], run="r")
    assert rows(store, "SELECT status_code, status_message FROM spans") == [status]


def test_odd_tag_keys_and_values_survive(store: Store, tmp_path: Path) -> None:
    tags = {"a/b~c": "1", "$x": "</script>", "": "\u0000é", "http.response.status_code": "404"}
    store.ingest([one(tmp_path, span(tags=tags))], run="r")
    (attributes, status) = rows(store, "SELECT attributes, http_status_code FROM spans")[0]
    assert json.loads(attributes) == tags
    assert status == 404


def test_a_tag_wins_over_the_remote_endpoint(store: Store, tmp_path: Path) -> None:
    path = one(
        tmp_path,
        span(
            kind="CLIENT",
            remoteEndpoint={"serviceName": "pg", "ipv6": "::1", "port": 5433},
            tags={"server.address": "db.internal"},
        ),
    )
    store.ingest([path], run="r")
    assert rows(store, "SELECT server_address, server_port, attributes::VARCHAR FROM spans") == [
        (
            "db.internal",
            5433,
            '{"server.address":"db.internal","peer.service":"pg","server.port":5433}',
        )
    ]


# -- bad input ----------------------------------------------------------------------------


def test_bad_records_are_skipped_counted_and_located(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.jsonl",
        json.dumps([span("00000000000000a1")]),
        '{"traceId": "x"}',
        "[{",
        json.dumps(
            [
                span("00000000000000b2"),
                span("00000000000000c3", timestamp=None),
                span("00000000000000d4", traceId="0" * 32),
                span("00000000000000e5", duration=-1),
                None,
            ]
        ),
    )
    report = store.ingest([path], run="r")
    assert (report.spans_read, report.spans_added, report.skipped) == (6, 2, 6)
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "not Zipkin v2 JSON (a JSON array of spans, or of traces, was expected); "
            "pass --format if this is another format"),
        (3, "not valid JSON (Expecting property name enclosed in double quotes at column 3)"),
        (4, "span 00000000000000c3: start time is missing or not an integer"),
        (4, "span 00000000000000d4: trace id is all zeros (invalid)"),
        (4, "span 00000000000000e5: span ends before it starts"),
        (4, "span has no trace id"),
    ]  # fmt: skip


# -- property: hostile input never escapes as anything but a CorrelateError ----------------

_HOSTILE_TEXT = hostile_text()
_JSON = any_json()
_HEX_ID = id_like(["a2fb4a1d1a96d312", TRACE, "0" * 16])
_MICROS = MICROS
_ENDPOINT = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={"serviceName": _JSON, "ipv4": _JSON, "ipv6": _JSON, "port": _JSON},
    ),
    _JSON,
)
_SPAN = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "traceId": _HEX_ID,
            "id": _HEX_ID,
            "parentId": _HEX_ID,
            "name": _JSON,
            "kind": st.one_of(st.sampled_from(["CLIENT", "SERVER", "PRODUCER", "x"]), _JSON),
            "timestamp": _MICROS,
            "duration": _MICROS,
            "shared": st.one_of(st.booleans(), _JSON),
            "localEndpoint": _ENDPOINT,
            "remoteEndpoint": _ENDPOINT,
            "annotations": st.one_of(
                st.lists(
                    st.fixed_dictionaries({}, optional={"timestamp": _MICROS, "value": _JSON}),
                    max_size=2,
                ),
                _JSON,
            ),
            "tags": st.one_of(
                st.dictionaries(
                    st.one_of(st.sampled_from(["error", "otel.status_code"]), _HOSTILE_TEXT),
                    st.one_of(_HOSTILE_TEXT, _JSON),
                    max_size=3,
                ),
                _JSON,
            ),
        },
    ),
    _JSON,
)
_RECORD = st.one_of(
    st.lists(_SPAN, max_size=4),
    st.lists(st.lists(_SPAN, max_size=3), max_size=3),
    _JSON,
)

_LINE_PROBLEMS = ("not valid JSON", "JSON of an unexpected shape", "not Zipkin v2 JSON")


def _span_count(record: Any) -> int:
    """How many span rows the record holds: each item, or each item of an item that is a list."""
    if not isinstance(record, list):
        return 0
    return sum(len(item) if isinstance(item, list) else 1 for item in record)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RECORD, min_size=1, max_size=4))
def test_hostile_records_are_added_or_counted(records: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / "hostile.json"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        try:
            report = store.ingest([path], run="r", format="zipkin")
        except CorrelateError:
            return
        problems = store.con.execute("SELECT line, reason FROM problems").fetchall()
        bad_lines = {line for line, reason in problems if reason.startswith(_LINE_PROBLEMS)}
        span_problems = sum(not reason.startswith(_LINE_PROBLEMS) for _, reason in problems)
        spans_skipped = sum(f.spans_skipped for f in report.files)
        assert (report.skipped, spans_skipped) == (len(problems), span_problems)
        assert report.spans_read == report.spans_added + report.duplicates + spans_skipped
        expected = sum(_span_count(r) for n, r in enumerate(records, start=1) if n not in bad_lines)
        assert report.spans_read == expected
