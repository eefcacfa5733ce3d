"""The scale benchmark's generator is honest: what it plants, the analysis finds.

benchmarks/gen_clickhouse.py writes spans with ClickHouse SQL straight into the
exporter's ``otel_traces`` (in chDB here). At 20k spans the analysis, run in
ClickHouse through ``open_source`` and on a local store loaded with the same spans,
must find the N+1 route and the slow statement the generator planted, by the
fingerprints of the very templates it planted, and nothing of those kinds elsewhere.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import correlate
from correlate.clickhouse.connection import connect
from correlate.clickhouse.otel_schema import OtelTables
from correlate.fingerprint import fingerprint_many
from correlate.kinds import FindingKind
from tests.conftest import require_chdb

pytestmark = pytest.mark.clickhouse

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SPANS = 20_000


def _load(name: str) -> ModuleType:
    # benchmarks/ is not a package: load the scripts by path, once, under their own names
    if name not in sys.modules:
        sys.path.insert(0, str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A chDB directory holding the generator's 20k spans; its URL and request count."""
    require_chdb()
    gen = _load("gen_clickhouse")
    url = f"chdb://{tmp_path_factory.mktemp('gen') / 'chdb'}"
    with connect(url) as conn:
        requests = gen.generate(conn, SPANS, chunk=400)
    return url, requests


def _planted(template: int, **literals: int) -> str:
    """The fingerprint id of one of the generator's statement templates."""
    gen = _load("gen_clickhouse")
    text = gen.TEMPLATES[template][0].format(tok="ab12", **{"n": 7, "m": 3, **literals})
    return str(fingerprint_many([(text, "postgresql")])[(text, "postgresql")].id)


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    with connect(url) as conn:
        return list(conn.query_arrow(sql).to_pylist())


def test_the_spans_have_the_load_s_shape(generated: tuple[str, int]) -> None:
    url, requests = generated
    gen = _load("gen_clickhouse")
    [totals] = _rows(
        url,
        "SELECT count() AS spans, uniqExact(TraceId) AS traces, "
        "countIf(SpanKind = 'Server') AS servers, countIf(ParentSpanId = '') AS roots, "
        "uniqExact(SpanAttributes['http.route']) - 1 AS routes, "
        "uniqExact(SpanAttributes['db.statement']) AS statements, "
        "countIf(SpanAttributes['http.response.status_code'] = '500') AS errors, "
        "countIf(SpanAttributes['http.response.status_code'] = '500' "
        "        AND SpanAttributes['http.route'] != '/checkout') AS errors_elsewhere "
        "FROM otel_traces",
    )
    assert totals["traces"] == totals["servers"] == totals["roots"] == requests
    assert abs(totals["spans"] - SPANS) < SPANS * 0.05
    assert abs(totals["spans"] / requests - gen.mean_spans_per_request()) < 1.0
    assert totals["routes"] == len(gen.ROUTES)
    # literals vary per call: far more texts than the 21 shapes
    assert totals["statements"] > 50 * len(gen.TEMPLATES)
    assert totals["errors"] > 0 and totals["errors_elsewhere"] == 0
    # every child is a child of its request's SERVER span, inside it in time
    [orphans] = _rows(
        url,
        "SELECT count() AS n FROM otel_traces c LEFT JOIN "
        "(SELECT SpanId, Timestamp, Duration FROM otel_traces WHERE SpanKind = 'Server') s "
        "ON c.ParentSpanId = s.SpanId WHERE c.ParentSpanId != '' AND (s.SpanId = '' "
        "OR c.Timestamp < s.Timestamp "
        "OR toUnixTimestamp64Nano(c.Timestamp) + c.Duration "
        "   > toUnixTimestamp64Nano(s.Timestamp) + s.Duration)",
    )
    assert orphans["n"] == 0


def test_the_same_seed_gives_the_same_spans_however_chunked(generated: tuple[str, int]) -> None:
    url, _ = generated
    gen = _load("gen_clickhouse")
    digest = (
        "SELECT count() AS n, groupBitXor(cityHash64(TraceId, SpanId, Timestamp, Duration, "
        "SpanAttributes)) AS h FROM {}"
    )
    other = OtelTables(traces="otel_traces_again")
    with connect(url) as conn:
        gen.generate(conn, SPANS, chunk=5_000, tables=other)
        same = conn.query_arrow(digest.format(other.traces_table)).to_pylist()
        first = conn.query_arrow(digest.format("otel_traces")).to_pylist()
        gen.generate(conn, SPANS, seed=2, tables=OtelTables(traces="otel_traces_seed2"))
        seeded = conn.query_arrow(digest.format("otel_traces_seed2")).to_pylist()
        for table in ("otel_traces_again", "otel_traces_seed2"):
            conn.command(f"DROP TABLE {table}")
    assert same == first
    assert seeded[0]["h"] != first[0]["h"]


def _found(result: Any) -> dict[Any, set[tuple[str | None, str | None]]]:
    out: dict[Any, set[tuple[str | None, str | None]]] = {}
    for f in result.findings:
        out.setdefault(f.kind, set()).add((f.route, f.fingerprint))
    return out


@pytest.fixture(scope="module")
def remote(generated: tuple[str, int]) -> Any:
    """The generated spans analysed in ClickHouse, once for the tests that read it."""
    from correlate.clickhouse.source import open_source

    url, _ = generated
    with open_source(url, name="generated") as store:
        return correlate.analyze("generated", store=store)


def test_the_analysis_in_clickhouse_finds_what_was_planted(
    generated: tuple[str, int], remote: Any
) -> None:
    _, requests = generated
    gen = _load("gen_clickhouse")
    result = remote
    assert result.summary["requests"] == requests
    found = _found(result)
    assert found[FindingKind.N_PLUS_ONE] == {
        (gen.N_PLUS_ONE_ROUTE, _planted(gen.N_PLUS_ONE_TEMPLATE))
    }
    assert found[FindingKind.SLOW_QUERY] == {(gen.SLOW_ROUTE, _planted(gen.SLOW_TEMPLATE))}


def test_a_local_store_loaded_with_the_same_spans_finds_the_same(
    generated: tuple[str, int], remote: Any, tmp_path: Path
) -> None:
    url, _ = generated
    bench = _load("bench_clickhouse")

    parquet, db = tmp_path / "spans.parquet", tmp_path / "store.duckdb"
    spans = bench.export_parquet(url, parquet)
    assert bench.load_duckdb(parquet, db) == spans
    with correlate.open_store(db, read_only=True) as store:
        local = correlate.analyze(bench.RUN, store=store)

    def facts(result: Any) -> list[tuple[str, str | None, str | None, str]]:
        return sorted(
            (str(f.kind), f.route, f.fingerprint, str(f.severity)) for f in result.findings
        )

    assert facts(local) == facts(remote)
    gen = _load("gen_clickhouse")
    assert _found(local)[FindingKind.N_PLUS_ONE] == {
        (gen.N_PLUS_ONE_ROUTE, _planted(gen.N_PLUS_ONE_TEMPLATE))
    }
