"""ClickHouse URLs, the errors a user sees, and the network client against the real engine.

clickhouse-connect talks HTTP; here it talks to chDB through a small HTTP front
(tests/clickhouse_http.py) on 127.0.0.1, so the export and the views run over the
same client a server would get.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.cli import cli
from correlate.clickhouse.connection import (
    ClickHouseError,
    Connection,
    MissingTableError,
    connect,
    parse_url,
)
from correlate.clickhouse.otel_schema import OtelTables
from correlate.clickhouse.views import create_canonical_views
from tests.clickhouse_helpers import ROOT, ingested, key, local_spans, view_spans
from tests.clickhouse_http import http_server
from tests.conftest import require_chdb

SAMPLE = ROOT / "tests" / "data" / "jaeger" / "checkout.json"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "clickhouse://ch.example/otel",
            ("clickhouse", "ch.example", None, "", "otel", "otel_traces", "otel_metrics", False),
        ),
        (
            "clickhouse://u:p%40ss@10.0.0.1:8443/db?table=t2&metrics_prefix=m&secure=1",
            ("clickhouse", "10.0.0.1", 8443, "u", "db", "t2", "m", True),
        ),
        (
            "clickhouse://host:8123",
            ("clickhouse", "host", 8123, "", "default", "otel_traces", "otel_metrics", False),
        ),
        (
            "chdb:///var/lib/ch?database=otel&table=spans",
            ("chdb", "", None, "", "otel", "spans", "otel_metrics", False),
        ),
    ],
)
def test_urls_parse(url: str, expected: tuple[object, ...]) -> None:
    s = parse_url(url)
    t = s.tables
    assert (s.scheme, s.host, s.port, s.user, t.database, t.traces, t.metrics_prefix, s.secure) == (
        expected
    )


def test_the_password_is_decoded_and_never_shown() -> None:
    source = parse_url("clickhouse://u:p%40ss@h:8123/db")
    assert source.password == "p@ss"
    assert "p@ss" not in source.display and "p@ss" not in repr(source)
    assert source.display == "clickhouse://u@h:8123/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db", "not a ClickHouse URL"),
        ("clickhouse://u:secret@h:99999/db", "bad port"),
        ("clickhouse:///db", "no host"),
        ("clickhouse://h/db?tabel=x", "unknown parameter 'tabel'"),
        ("clickhouse://h/db?table=a;DROP", "not a plain ClickHouse name"),
        ("chdb://", "needs a path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ClickHouseError, match=message) as caught:
        parse_url(url)
    assert "secret" not in str(caught.value)


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(ClickHouseError, match="cannot reach ClickHouse at") as caught:
        connect("clickhouse://u:hunter2@127.0.0.1:18199/otel").query_arrow("SELECT 1")
    assert "hunter2" not in str(caught.value)
    assert "clickhouse://u@127.0.0.1:18199/otel" in str(caught.value)


def test_export_cli_reports_an_unknown_run_and_a_bad_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(SAMPLE), "--run", "r", "--db", str(db)]).exit_code == 0
    result = runner.invoke(cli, ["export", "nope", "--to", "chdb://:memory:", "--db", str(db)])
    assert result.exit_code == 1 and "nope" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["export", "r", "--to", "mysql://h/x", "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: not a ClickHouse URL")


@pytest.fixture(scope="module")
def chdb_conn() -> Iterator[Connection]:
    require_chdb()
    conn = connect("chdb://:memory:")
    yield conn
    conn.close()


@pytest.mark.clickhouse
def test_export_cli_writes_the_exporter_tables(chdb_conn: Connection, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    runner.invoke(cli, ["ingest", str(SAMPLE), "--run", "r", "--db", str(db)])
    with http_server(chdb_conn) as port:
        url = f"clickhouse://127.0.0.1:{port}/cli_db"
        result = runner.invoke(cli, ["export", "r", "--to", url, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == f"exported run 'r' to {url}: 3 spans, 0 pool metric points\n"
    count = chdb_conn.query_arrow("SELECT count() AS n FROM cli_db.otel_traces")
    assert count.column("n").to_pylist() == [3]


@pytest.mark.clickhouse
def test_clickhouse_connect_exports_and_reads_the_views(chdb_conn: Connection) -> None:
    store = ingested(ROOT / "sample_traces" / "checkout-blackfriday")
    with http_server(chdb_conn) as port:
        url = f"clickhouse://default:pw@127.0.0.1:{port}/over_http"
        report = correlate.export("r", store=store, to=url)
        assert report.spans == 6845 and "pw" not in report.url
        with connect(url) as http:
            create_canonical_views(http, None, "over_http_work")
            view = view_spans(http, "over_http_work")
            with pytest.raises(MissingTableError, match=r"no table over_http\.nope"):
                http.using(OtelTables("over_http", traces="nope")).require_traces()
    assert [key(r) for r in view] == [key(r) for r in local_spans(store)]
    assert view == local_spans(store)
    store.close()


_HEX = "0123456789abcdef"
_ids = st.one_of(
    st.text(_HEX, min_size=16, max_size=16),
    st.text(_HEX + "ABCDEF", min_size=16, max_size=16),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12),
)
_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_values = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.integers(-(2**62), 2**62),
    st.booleans(),
)


@pytest.mark.clickhouse
@settings(max_examples=15, deadline=None)
@given(
    span_id=_ids,
    parent_id=st.one_of(st.none(), _ids),
    attributes=st.dictionaries(_keys, _values, max_size=4),
)
def test_ids_and_attributes_map_as_local_ingest_does(
    chdb_conn: Connection,
    tmp_path_factory: pytest.TempPathFactory,
    span_id: str,
    parent_id: str | None,
    attributes: dict[str, object],
) -> None:
    import json

    def value(v: object) -> dict[str, object]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": v}

    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": span_id,
        "name": "op",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000001000",
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
    }
    if parent_id is not None:
        span["parentSpanId"] = parent_id
    path = tmp_path_factory.mktemp("ids") / "one.jsonl"
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    store = ingested(path)
    local = local_spans(store)
    if not local:  # a span local ingest refuses is not exported either
        store.close()
        return
    target = chdb_conn.using(OtelTables("prop"))
    chdb_conn.command("DROP DATABASE IF EXISTS prop")
    correlate.export("r", store=store, to=target)
    create_canonical_views(target, None, "prop_work")
    assert view_spans(chdb_conn, "prop_work") == local
    store.close()


@pytest.mark.parametrize(
    ("url", "module", "hint"),
    [
        ("chdb:///tmp/never", "chdb", "pip install 'correlate[chdb]'"),
        ("clickhouse://h/db", "clickhouse_connect", "pip install 'correlate[clickhouse]'"),
    ],
)
def test_a_missing_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, hint: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    if module == "chdb":
        monkeypatch.setitem(sys.modules, "chdb.session", None)
    with pytest.raises(ClickHouseError, match=re.escape(hint)):
        connect(url)


def test_an_unreachable_server_on_the_command_line_prints_only_the_explanation(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "correlate",
            "analyze",
            "--source",
            "clickhouse://127.0.0.1:18199/otel",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "cannot reach ClickHouse at" in done.stderr
    assert "Unexpected Http Driver Exception" not in done.stderr
    assert "Traceback" not in done.stderr
