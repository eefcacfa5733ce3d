"""Tag mappings: Brave, Zipkin, Jaeger and OpenTracing tags fill the canonical span columns.

Each mapping is checked in each span format (OTLP JSON attributes, Jaeger tags, Zipkin
tags) on minimal spans, then on the peer fixtures in ``tests/data/peers`` whose
``EXPECTED.md`` says what was wrong before: HotROD's MySQL query, the books routes,
the legacy Zipkin roots without a kind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.ingest.callees import CALLEE_MAPPING
from correlate.routes import path_template
from correlate.schema import SCHEMA_VERSION, SPAN_COLUMN_NAMES, TAG_SPAN_COLUMNS
from correlate.store import Store

from .conftest import DATA

PEERS = DATA / "peers"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT = "00f067aa0ba902b7"
CHILD = "53995c3f42cd8ad8"
T0_US = 1_764_061_200_000_000

Tags = dict[str, Any]
#: One span to write: its tags, kind, parent id and span id.
SpanSpec = tuple[Tags, str | None, str | None, str]


# -- one span in each format ----------------------------------------------------------------


def _otlp(tags: Tags, kind: str | None, parent: str | None, span_id: str) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": str(v)}

    kinds = {None: 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3}
    span: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "op",
        "kind": kinds[kind],
        "startTimeUnixNano": str(T0_US * 1000),
        "endTimeUnixNano": str((T0_US + 5000) * 1000),
        "attributes": [{"key": k, "value": value(v)} for k, v in tags.items()],
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def otlp_file(path: Path, spans: Sequence[SpanSpec]) -> Path:
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": [_otlp(*s) for s in spans]}],
            }
        ]
    }
    path = path / "spans.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    return path


def jaeger_file(path: Path, spans: Sequence[SpanSpec]) -> Path:
    def tag(k: str, v: Any) -> dict[str, Any]:
        kind = "bool" if isinstance(v, bool) else "int64" if isinstance(v, int) else "string"
        return {"key": k, "type": kind, "value": v}

    out = []
    for tags, kind, parent, span_id in spans:
        all_tags = dict(tags)
        if kind:
            all_tags["span.kind"] = kind.lower()
        out.append(
            {
                "traceID": TRACE,
                "spanID": span_id,
                "operationName": "op",
                "references": (
                    [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": parent}] if parent else []
                ),
                "startTime": T0_US,
                "duration": 5000,
                "tags": [tag(k, v) for k, v in all_tags.items()],
                "logs": [],
                "processID": "p1",
            }
        )
    doc = {
        "data": [
            {
                "traceID": TRACE,
                "spans": out,
                "processes": {"p1": {"serviceName": "svc", "tags": []}},
            }
        ]
    }
    path = path / "trace.json"
    path.write_text(json.dumps(doc))
    return path


def zipkin_file(path: Path, spans: Sequence[SpanSpec]) -> Path:
    out = []
    for tags, kind, parent, span_id in spans:
        span: dict[str, Any] = {
            "traceId": TRACE,
            "id": span_id,
            "name": "op",
            "timestamp": T0_US,
            "duration": 5000,
            "localEndpoint": {"serviceName": "svc"},
            # Zipkin tags are strings
            "tags": {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in tags.items()},
        }
        if kind:
            span["kind"] = kind
        if parent:
            span["parentId"] = parent
        out.append(span)
    path = path / "zipkin.json"
    path.write_text(json.dumps(out))
    return path


Writer = Callable[[Path, Sequence[SpanSpec]], Path]
WRITERS: dict[str, Writer] = {"otlp-json": otlp_file, "jaeger": jaeger_file, "zipkin": zipkin_file}


def ingest_one(
    store: Store, tmp_path: Path, fmt: str, tags: Tags, kind: str | None = "CLIENT"
) -> dict[str, Any]:
    """Ingest one child span with ``tags`` (under a SERVER root) and return its row."""
    path = WRITERS[fmt](tmp_path, [({}, "SERVER", None, ROOT), (tags, kind, ROOT, CHILD)])
    report = store.ingest([path], run="r", format=fmt)
    assert [str(p) for p in report.problems] == []
    cursor = store.con.execute("SELECT * FROM spans WHERE span_id = ?", [CHILD])
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


FORMATS = pytest.mark.parametrize("fmt", sorted(WRITERS))


@FORMATS
def test_sql_query_is_the_statement_of_a_generic_sql_database(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    row = ingest_one(store, tmp_path, fmt, {"sql.query": "select * from book where id=7"})
    assert row["db_statement"] == "select * from book where id=7"
    assert row["db_system"] == "sql"
    assert row["mapped_from"] == ["db_statement<-sql.query", "db_system<-sql.query"]


@FORMATS
def test_peer_service_naming_a_database_is_its_system(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    tags = {"peer.service": "mysql", "sql.query": "SELECT * FROM customer WHERE customer_id=1"}
    row = ingest_one(store, tmp_path, fmt, tags)
    assert (row["db_system"], row["peer_service"]) == ("mysql", "mysql")
    assert "db_system<-peer.service" in row["mapped_from"]
    assert "peer_service<-peer.service" in row["mapped_from"]


@FORMATS
def test_peer_service_of_another_service_is_only_the_callee(
    store: Store, tmp_path: Path, fmt: str
) -> None:
    row = ingest_one(store, tmp_path, fmt, {"peer.service": "pricing"})
    assert (row["db_system"], row["peer_service"]) == (None, "pricing")


@FORMATS
def test_db_type_and_db_instance(store: Store, tmp_path: Path, fmt: str) -> None:
    tags = {"db.type": "redis", "db.instance": "0", "db.statement": "GET k"}
    row = ingest_one(store, tmp_path, fmt, tags)
    assert (row["db_system"], row["db_namespace"], row["db_statement"]) == ("redis", "0", "GET k")
    assert row["mapped_from"] == [
        "db_system<-db.type",
        "db_statement<-db.statement",
        "db_namespace<-db.instance",
    ]


@FORMATS
def test_generic_db_type_gives_way_to_a_named_peer(store: Store, tmp_path: Path, fmt: str) -> None:
    tags = {"db.type": "sql", "peer.service": "postgresql", "db.statement": "SELECT 1"}
    row = ingest_one(store, tmp_path, fmt, tags)
    assert row["db_system"] == "postgresql"
    assert "db_system<-peer.service" in row["mapped_from"]
    assert "db_system<-db.type" not in row["mapped_from"]


@FORMATS
def test_newest_name_wins(store: Store, tmp_path: Path, fmt: str) -> None:
    tags = {
        "db.system.name": "postgresql",
        "db.type": "sql",
        "db.query.text": "SELECT 2",
        "sql.query": "SELECT 1",
        "service.peer.name": "new",
        "peer.service": "old",
        "url.full": "http://a/new/1",
        "http.url": "http://a/old/1",
    }
    row = ingest_one(store, tmp_path, fmt, tags)
    assert (row["db_system"], row["db_statement"], row["peer_service"], row["url_path"]) == (
        "postgresql",
        "SELECT 2",
        "new",
        "/new/1",
    )
    # url.full is current too, but a URL, not the path: its path part is a derivation
    assert row["mapped_from"] == ["url_path<-url.full", "http_target_template<-url_path"]


@FORMATS
@pytest.mark.parametrize(
    ("tags", "path", "template"),
    [
        (
            {"http.url": "http://pricing:8080/prices/SKU-1196?x=1"},
            "/prices/SKU-1196",
            "/prices/{id}",
        ),
        ({"url.full": "https://h/api/account/101"}, "/api/account/101", "/api/account/{id}"),
        ({"http.url": "/dispatch?customer=123"}, "/dispatch", "/dispatch"),
        ({"http.path": "/authors/42/books"}, "/authors/42/books", "/authors/{id}/books"),
        ({"http.path": "/books/7", "http.route": "/books/:id"}, "/books/7", "/books/:id"),
        ({"http.url": "http://h/a/1", "url.template": "/a/{n}"}, "/a/1", "/a/{n}"),
    ],
)
def test_url_tags_give_the_path_and_its_template(
    store: Store, tmp_path: Path, fmt: str, tags: Tags, path: str, template: str
) -> None:
    row = ingest_one(store, tmp_path, fmt, tags)
    assert (row["url_path"], row["http_target_template"]) == (path, template)


@FORMATS
def test_string_status_code_is_an_integer(store: Store, tmp_path: Path, fmt: str) -> None:
    row = ingest_one(store, tmp_path, fmt, {"http.status_code": "503", "http.url": "http://h/x"})
    assert row["http_status_code"] == 503


@FORMATS
@pytest.mark.parametrize(
    ("value", "status"), [(True, "ERROR"), ("true", "ERROR"), (False, "UNSET"), ("false", "UNSET")]
)
def test_error_tag_is_the_error_status(
    store: Store, tmp_path: Path, fmt: str, value: Any, status: str
) -> None:
    row = ingest_one(store, tmp_path, fmt, {"error": value})
    assert row["status_code"] == status
    assert (row["mapped_from"] or []) == (["status_code<-error"] if status == "ERROR" else [])


def test_error_tag_does_not_override_an_explicit_status(store: Store, tmp_path: Path) -> None:
    path = otlp_file(tmp_path, [({"error": True}, "CLIENT", None, CHILD)])
    doc = json.loads(path.read_text())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] = {"code": 1}
    path.write_text(json.dumps(doc) + "\n")
    store.ingest([path], run="r")
    assert store.con.execute("SELECT status_code, mapped_from FROM spans").fetchone() == (
        "OK",
        None,
    )


@pytest.mark.parametrize("fmt", ["zipkin", "jaeger"])
def test_span_kind_tag_is_the_kind(store: Store, tmp_path: Path, fmt: str) -> None:
    """Jaeger has no other kind; Zipkin takes the tag when its own kind field is absent."""
    row = ingest_one(store, tmp_path, fmt, {"span.kind": "client"}, kind=None)
    assert row["kind"] == "CLIENT"


def test_zipkin_native_kind_wins_over_the_tag(store: Store, tmp_path: Path) -> None:
    row = ingest_one(store, tmp_path, "zipkin", {"span.kind": "server"}, kind="CLIENT")
    assert row["kind"] == "CLIENT"


def test_client_template_comes_from_the_callee_route(store: Store, tmp_path: Path) -> None:
    callee = "1111111111111111"
    spans = [
        ({}, "SERVER", None, ROOT),
        ({"http.url": "http://pricing/prices/SKU-1"}, "CLIENT", ROOT, CHILD),
        ({"http.route": "/prices/{sku}", "url.path": "/prices/SKU-1"}, "SERVER", CHILD, callee),
    ]
    store.ingest([otlp_file(tmp_path, spans)], run="r")
    row = store.con.execute(
        "SELECT http_target_template, mapped_from FROM spans WHERE span_id = ?", [CHILD]
    ).fetchone()
    assert row == ("/prices/{sku}", ["url_path<-http.url", CALLEE_MAPPING])


def test_callee_route_found_across_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    caller = zipkin_file(
        tmp_path / "a",
        [({}, "SERVER", None, ROOT), ({"http.url": "http://p/items/12"}, "CLIENT", ROOT, CHILD)],
    )
    callee = zipkin_file(
        tmp_path / "b", [({"http.route": "/items/<n>"}, "SERVER", CHILD, "2" * 16)]
    )
    store.ingest([caller], run="r")
    assert store.con.execute(
        "SELECT http_target_template FROM spans WHERE span_id = ?", [CHILD]
    ).fetchone() == ("/items/{id}",)
    store.ingest([callee], run="r")
    assert store.con.execute(
        "SELECT http_target_template FROM spans WHERE span_id = ?", [CHILD]
    ).fetchone() == ("/items/<n>",)


# -- requests without a kind --------------------------------------------------------------------


def _requests(store: Store, columns: str = "route, error") -> list[tuple[Any, ...]]:
    """The run's requests (``correlate.analysis.requests``), one row each."""
    from correlate.analysis.requests import build

    (run_id,) = store.con.execute("SELECT max(run_id) FROM runs").fetchone() or (1,)
    build(store.con, run_id, "t")
    return store.con.execute(f"SELECT {columns} FROM t_requests ORDER BY ALL").fetchall()


def _routes(store: Store) -> dict[str, int]:
    return dict(Counter(route for (route,) in _requests(store, "route")))


@pytest.mark.parametrize(
    ("kind", "tags", "is_request"),
    [
        (None, {}, True),  # a root without a kind
        ("INTERNAL", {"http.url": "http://h/cart/c-2000"}, True),
        ("INTERNAL", {}, False),  # a local root: a job, a script
    ],
)
def test_roots_without_a_kind_are_requests(
    store: Store, tmp_path: Path, kind: str | None, tags: Tags, is_request: bool
) -> None:
    store.ingest([otlp_file(tmp_path, [(tags, kind, None, ROOT)])], run="r")
    assert len(_requests(store)) == int(is_request)


def test_internal_child_with_http_attributes_is_not_a_request(store: Store, tmp_path: Path) -> None:
    spans: list[SpanSpec] = [
        ({"http.route": "/a"}, "SERVER", None, ROOT),
        ({"http.status_code": 200, "url.path": "/a"}, "INTERNAL", ROOT, CHILD),
    ]
    store.ingest([otlp_file(tmp_path, spans)], run="r")
    assert _requests(store) == [("/a", False)]


# -- the peer fixtures ---------------------------------------------------------------------------


def _analysis_store(path: Path) -> Store:
    store = correlate.open_store(":memory:")
    store.ingest([path], run="peer")
    return store


def test_hotrod_mysql_query_is_database_time() -> None:
    with _analysis_store(PEERS / "hotrod") as store:
        rows = store.con.execute(
            "SELECT DISTINCT kind, db_system, db_statement LIKE 'SELECT * FROM customer WHERE customer_id=%' "
            "FROM spans WHERE name = 'SQL SELECT'"
        ).fetchall()
        assert rows == [("CLIENT", "mysql", True)]
        parts = _requests(store, "route, db_ms, downstream_ms, duration_ms")
        analysis = correlate.analyze("peer", store=store)
    customer = [p for p in parts if p[0] == "customer /customer"]
    assert len(customer) == 8
    assert sum(p[1] for p in customer) / sum(p[3] for p in customer) > 0.95
    assert sum(p[2] for p in customer) == 0
    assert "slow_query" in {f.kind for f in analysis.findings}


def test_hotrod_redis_calls_are_database_calls_and_retries_errors() -> None:
    with _analysis_store(PEERS / "hotrod") as store:
        rows = store.con.execute(
            "SELECT db_system, count(*), count(*) FILTER (WHERE status_code = 'ERROR') "
            "FROM spans WHERE name = 'GetDriver' GROUP BY ALL"
        ).fetchall()
    # 10 drivers per request, and every 5th call a timeout retried (EXPECTED.md)
    assert rows == [("redis", 100, 20)]


def test_books_routes_are_templates() -> None:
    with _analysis_store(PEERS / "zipkin" / "books-n-plus-one.json") as store:
        routes = _routes(store)
        statements = store.con.execute(
            "SELECT count(*) FROM spans WHERE db_statement IS NOT NULL AND db_system = 'sql'"
        ).fetchone()
    assert routes == {"/authors/{id}/books": 10}
    assert statements == (103,)


def test_legacy_zipkin_roots_without_kind_are_requests() -> None:
    with _analysis_store(PEERS / "zipkin" / "legacy-no-kind.json") as store:
        routes = _routes(store)
        clients = store.con.execute(
            "SELECT DISTINCT http_target_template, peer_service FROM spans "
            "WHERE kind = 'CLIENT' AND db_system IS NULL"
        ).fetchall()
        errors = store.con.execute(
            "SELECT count(*) FROM spans WHERE status_code = 'ERROR' AND attributes->>'error' = 'true'"
        ).fetchone()
        statuses = store.con.execute(
            "SELECT DISTINCT typeof(http_status_code) FROM spans WHERE http_status_code IS NOT NULL"
        ).fetchall()
        db = store.con.execute(
            "SELECT DISTINCT db_system, db_namespace FROM spans WHERE db_statement IS NOT NULL"
        ).fetchall()
    assert routes == {
        "storefront /cart/{id}": 5,
        "storefront /products/{id}": 5,
        "pricing /prices/{sku}": 35,
    }
    assert clients == [("/prices/{sku}", "pricing")]
    assert errors is not None and errors[0] >= 1
    assert statuses == [("INTEGER",)]
    assert db == [("mysql", "storefront")]


def test_mapping_counts_say_which_vocabulary_a_run_spoke() -> None:
    with _analysis_store(PEERS / "zipkin" / "simple-db.json") as store:
        counts = dict(
            store.con.execute(
                "SELECT m, count(*) FROM (SELECT unnest(mapped_from) AS m FROM spans) GROUP BY m"
            ).fetchall()
        )
    assert counts["db_statement<-sql.query"] == 40
    assert counts["url_path<-http.url"] == 10


# -- the store ----------------------------------------------------------------------------------


def test_migration_from_schema_3_adds_the_span_columns(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    correlate.open_store(path).close()
    con = duckdb.connect(str(path))
    for name, _ in TAG_SPAN_COLUMNS:
        con.execute(f"ALTER TABLE spans DROP COLUMN {name}")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    old = [n for n in SPAN_COLUMN_NAMES if n not in dict(TAG_SPAN_COLUMNS)]
    con.execute(
        f"INSERT INTO spans ({', '.join(old)}) VALUES (1, 1, 't', 's', NULL, 'n', 'SERVER', "
        "'svc', NULL, 1, 2, 1, 'UNSET', NULL, NULL, NULL, NULL, NULL, 'postgresql', 'SELECT 1', "
        "NULL, NULL, NULL, NULL, '{}', '{}', [], [])"
    )
    con.close()
    with correlate.open_store(path) as store:
        version = store.con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        assert version == (str(SCHEMA_VERSION),)
        row = store.con.execute(
            "SELECT span_id, peer_service, http_target_template, mapped_from FROM spans"
        ).fetchone()
        assert row == ("s", None, None, None)
        layout = store.con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('spans', 'db_spans') ORDER BY table_name, ordinal_position"
        ).fetchall()
    with correlate.open_store(tmp_path / "new.duckdb") as fresh:
        created = fresh.con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('spans', 'db_spans') ORDER BY table_name, ordinal_position"
        ).fetchall()
    assert layout == created


# -- any tags at all ---------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "sql.query",
        "db.type",
        "db.instance",
        "db.statement",
        "http.url",
        "url.full",
        "http.path",
        "http.status_code",
        "peer.service",
        "span.kind",
        "error",
        "url.template",
        "http.route",
        "db.system",
    ]
) | st.text(max_size=12)
_VALUES = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(["", "true", "false", "mysql", "sql", "client", "http://h/a/1?b", "/x/42"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(sorted(WRITERS)),
    tags=st.dictionaries(_KEYS, _VALUES, max_size=8),
    kind=st.sampled_from([None, "CLIENT", "SERVER", "INTERNAL"]),
)
def test_any_tags_ingest_without_a_problem(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, tags: Tags, kind: str | None
) -> None:
    tmp = tmp_path_factory.mktemp("tags")
    with correlate.open_store(":memory:") as store:
        path = WRITERS[fmt](tmp, [(tags, kind, None, ROOT), (tags, kind, ROOT, CHILD)])
        report = store.ingest([path], run="r", format=fmt)
        assert [str(p) for p in report.problems] == []
        assert report.spans_added == 2
        rows = store.con.execute(
            "SELECT http_target_template, url_path, mapped_from FROM spans"
        ).fetchall()
        for template, url_path, mapped in rows:
            for entry in mapped or []:
                column, source = entry.split("<-", 1)
                assert column in SPAN_COLUMN_NAMES and source
            if "http_target_template<-url_path" in (mapped or []):
                assert template == path_template(url_path)
        _requests(store)
