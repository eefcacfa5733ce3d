"""OTLP metrics: the pool instruments of both semantic-convention generations become pool samples.

Fixtures: ``tests/data/metrics/sqlalchemy-*`` are real SDK output
(tests/helpers/make_pool_metrics_fixture.py: SQLAlchemy 2.0 + psycopg on
PostgreSQL, opentelemetry-instrumentation-sqlalchemy, the OTLP JSON file
exporter and the console exporter); ``hikaricp-new-semconv.jsonl`` is
hand-written with the current names, as HikariCP and node-postgres report them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.ingest.otlp_metrics import (
    Point,
    Problem,
    points_of,
    read_points,
    read_proto_points,
    sniff_proto,
)
from correlate.ingest.poolmetrics import pool_samples

DATA = Path(__file__).parent / "data" / "metrics"
SDK_FILES = ("sqlalchemy-otlp.jsonl", "sqlalchemy-console.json", "sqlalchemy-otlp-delta.jsonl")


def _samples(path: Path) -> list[tuple[Any, ...]]:
    items = list(read_points(path))
    assert not [i for i in items if isinstance(i, Problem)]
    rows, notes = pool_samples(i for i in items if isinstance(i, Point))
    assert notes == []
    return rows


@pytest.mark.parametrize("name", SDK_FILES)
def test_sqlalchemy_instrumentation_output_gives_used_and_idle_in_every_shape(name: str) -> None:
    rows = _samples(DATA / name)
    # three checkouts (used 1, 2, 3), then two returned; one connection stays out
    used_idle = [(r[7], r[8]) for r in rows]
    assert used_idle[:5] == [(1, 0), (2, 0), (3, 0), (2, 1), (1, 2)]
    assert {r[1] for r in rows} == {4242}  # process.pid of the resource
    assert {r[2] for r in rows} == {"postgresql+psycopg://127.0.0.1:5432/test_metrics"}
    assert {r[3] for r in rows} == {"otel db.client.connections"}
    # SQLAlchemy's instrumentation reports no max, pending requests, timeouts or waits
    assert {(r[6], r[10], r[11], r[12]) for r in rows} == {(None, None, None, None)}
    times = [r[0] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_new_generation_names_fill_capacity_waiters_timeouts_and_checkouts() -> None:
    rows = _samples(DATA / "hikaricp-new-semconv.jsonl")
    assert [(r[6], r[7], r[8], r[10], r[11], r[12]) for r in rows] == [
        # capacity, used, idle, waiters, timeouts (delta 0, 1, 2 summed), checkouts (wait count)
        (4, 1, 3, 0, 0, 5),
        (4, 4, 0, 2, 1, 9),
        (4, 4, 0, 3, 3, 9),
    ]
    assert {(r[1], r[2], r[3]) for r in rows} == {(7, "HikariPool-1", "otel db.client.connection")}


def test_node_postgres_double_valued_sums_that_fall_are_levels_of_its_pid_and_pool() -> None:
    # cut from a run of examples/node-shop: @opentelemetry/instrumentation-pg 0.76.0 sends its
    # pool counts as cumulative non-monotonic sums of doubles, one export a second
    rows = _samples(DATA / "node-postgres.jsonl")
    assert [(r[6], r[7], r[8], r[10]) for r in rows] == [
        # capacity, used, idle, waiters: the pending requests rise, fall back to 0, rise again
        (10, 10, 0, 0),
        (10, 10, 0, 0),
        (10, 10, 0, 2),
        (10, 10, 0, 0),
        (10, 10, 0, 2),
        (10, 10, 0, 6),
        (10, 10, 0, 7),
    ]
    # the Node SDK's resource has process.pid: one series, named by the pool's name
    assert {(r[1], r[2], r[3]) for r in rows} == {
        (1793, "unknown_host:unknown_port/unknown_database", "otel db.client.connection")
    }
    # node-postgres gives no timeouts or wait-time histogram; db.client.operation.duration is
    # not a pool instrument
    assert {(r[11], r[12]) for r in rows} == {(None, None)}
    assert all(isinstance(v, int) for r in rows for v in (r[6], r[7], r[8], r[10]))


def test_the_collector_proto_framing_gives_the_same_samples_as_its_json() -> None:
    json_rows = _samples(DATA / "hikaricp-new-semconv.jsonl")
    items = list(read_proto_points(DATA / "hikaricp-new-semconv.binpb"))
    assert not [i for i in items if isinstance(i, Problem)]
    rows, _ = pool_samples(i for i in items if isinstance(i, Point))
    assert rows == json_rows


def test_a_span_frame_or_a_cut_frame_in_a_metrics_proto_file_is_a_numbered_problem(
    tmp_path: Path,
) -> None:
    metrics = (DATA / "hikaricp-new-semconv.binpb").read_bytes()
    spans = (Path(__file__).parent / "data" / "otlp" / "one_span.binpb").read_bytes()
    path = tmp_path / "mixed.binpb"
    path.write_bytes(metrics + spans + metrics[:10])
    items = list(read_proto_points(path))
    problems = [(p.line, p.reason) for p in items if isinstance(p, Problem)]
    assert [line for line, _ in problems] == [4, 5]
    assert "not an OTLP ExportMetricsServiceRequest" in problems[0][1]
    assert "only" in problems[1][1] and "remain" in problems[1][1]
    assert len({p.time_unix_nano for p in items if isinstance(p, Point)}) == 3


def _doc(metrics: list[dict[str, Any]], resource: list[dict[str, Any]] | None = None) -> str:
    return json.dumps(
        {
            "resourceMetrics": [
                {"resource": {"attributes": resource or []}, "scopeMetrics": [{"metrics": metrics}]}
            ]
        }
    )


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _updown(name: str, t: int, value: int, attrs: list[dict[str, Any]], temporality: int = 2):
    point = {"timeUnixNano": str(t), "asInt": str(value), "attributes": attrs}
    return {"name": name, "sum": {"aggregationTemporality": temporality, "dataPoints": [point]}}


def test_old_generation_java_agent_names_and_a_gauge_max(tmp_path: Path) -> None:
    pool = _attr("pool.name", "HikariPool-1")
    lines = [
        _doc(
            [
                _updown("db.client.connections.usage", t, used, [pool, _attr("state", "used")]),
                _updown(
                    "db.client.connections.usage", t, 10 - used, [pool, _attr("state", "idle")]
                ),
                {
                    "name": "db.client.connections.max",
                    "gauge": {
                        "dataPoints": [
                            {"timeUnixNano": str(t), "asInt": "10", "attributes": [pool]}
                        ]
                    },
                },
                _updown("db.client.connections.pending_requests", t, waiting, [pool]),
            ],
            [{"key": "service.instance.id", "value": {"stringValue": "i-1"}}],
        )
        for t, used, waiting in ((1_000, 3, 0), (2_000, 10, 4))
    ]
    path = tmp_path / "java.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = _samples(path)
    # no process.pid: the instance keeps pools of different processes apart
    assert [(r[1], r[2], r[6], r[7], r[8], r[10]) for r in rows] == [
        (0, "HikariPool-1 (i-1)", 10, 3, 7, 0),
        (0, "HikariPool-1 (i-1)", 10, 10, 0, 4),
    ]


def test_a_pool_without_a_used_count_is_a_note_not_a_sample() -> None:
    doc = json.loads(
        _doc(
            [
                _updown(
                    "db.client.connection.max", 5, 8, [_attr("db.client.connection.pool.name", "p")]
                )
            ]
        )
    )
    rows, notes = pool_samples(points_of(doc))
    assert rows == []
    assert notes == [
        "pool 'p' (pid 0): no used-connection count among its metrics, so no pool samples"
    ]


def test_bad_documents_are_problems_with_their_line_and_the_rest_is_read(tmp_path: Path) -> None:
    good = (DATA / "hikaricp-new-semconv.jsonl").read_text().splitlines()
    path = tmp_path / "m.jsonl"
    path.write_text(
        "\n".join(
            [
                good[0],
                '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{}]}]}]}',
                "not json",
                "[1]",
                good[1],
            ]
        )
        + "\n"
    )
    items = list(read_points(path))
    problems = [(p.line, p.reason.split(":")[0]) for p in items if isinstance(p, Problem)]
    assert problems == [
        (2, "not an OTLP metrics document"),
        (3, "not JSON"),
        (4, "a JSON list, not a metrics document"),
    ]
    assert len({p.time_unix_nano for p in items if isinstance(p, Point)}) == 2


def test_ingest_puts_metric_samples_in_pool_samples_with_unknown_counts_null(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run" / "metrics"
    run.mkdir(parents=True)
    (run / "m.jsonl").write_bytes((DATA / "sqlalchemy-otlp.jsonl").read_bytes())
    with correlate.open_store(":memory:") as store:
        report = store.ingest([tmp_path / "run"], run="r")
        assert [(f.format, f.family, f.rows_added) for f in report.files] == [
            ("otlp-metrics", "metrics", 6)
        ]
        assert "metrics (pool samples): otlp-metrics 6" in report.summary()
        rows = store.con.execute(
            "SELECT count(*), max(checked_out), count(waiters), count(timeouts_total), "
            "count(leak_suspects_open) FROM pool_samples"
        ).fetchone()
    assert rows == (6, 3, 0, 0, 0)


levels = st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(used=levels)
def test_delta_and_cumulative_temporality_give_the_same_samples(used: list[int]) -> None:
    pool = _attr("db.client.connection.pool.name", "p")
    state = _attr("db.client.connection.state", "used")
    cumulative = [
        json.loads(_doc([_updown("db.client.connection.count", i + 1, v, [pool, state])]))
        for i, v in enumerate(used)
    ]
    delta = [
        json.loads(
            _doc(
                [
                    _updown(
                        "db.client.connection.count",
                        i + 1,
                        v - (used[i - 1] if i else 0),
                        [pool, state],
                        temporality=1,
                    )
                ]
            )
        )
        for i, v in enumerate(used)
    ]
    a, _ = pool_samples(p for d in cumulative for p in points_of(d))
    b, _ = pool_samples(p for d in delta for p in points_of(d))
    assert a == b
    assert [r[7] for r in a] == used


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=100, deadline=None)
@given(body=json_values)
def test_any_json_under_resource_metrics_is_points_or_problems_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, body: Any
) -> None:
    path = tmp_path_factory.mktemp("h") / "m.jsonl"
    path.write_text(json.dumps({"resourceMetrics": body}) + "\n")
    for item in read_points(path):
        assert isinstance(item, Point | Problem)


def test_what_correlate_collect_writes_for_metrics_is_read(tmp_path: Path) -> None:
    from correlate.collect.signals import decode_protobuf
    from correlate.ingest.otlp_framing import frames

    lines = []
    with (DATA / "hikaricp-new-semconv.binpb").open("rb") as stream:
        for frame in frames(stream, "collector"):
            payload = frame.payload
            assert payload is not None
            decoded = decode_protobuf("metrics", payload)  # what the receiver keeps
            assert decoded.encoding == "jsonl"
            lines.append(decoded.payload.decode())
    path = tmp_path / "metrics" / "collect-000001.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    assert _samples(path) == _samples(DATA / "hikaricp-new-semconv.jsonl")


pool_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: {"asInt": str(n)}),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: {"asDouble": x}),
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.tuples(
            st.sampled_from(["count", "max", "pending_requests", "timeouts"]),
            st.sampled_from([1, 2]),
            pool_values,
        ),
        min_size=1,
        max_size=10,
    )
)
def test_nan_infinite_negative_or_huge_pool_values_are_skipped_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, values: list[tuple[str, int, dict[str, Any]]]
) -> None:
    pool = _attr("db.client.connection.pool.name", "p")
    # one readable count, so the file holds something whatever the values
    lines = [
        _doc(
            [
                _updown(
                    "db.client.connection.count",
                    0,
                    1,
                    [pool, _attr("db.client.connection.state", "used")],
                )
            ]
        )
    ]
    for i, (suffix, temporality, value) in enumerate(values):
        attrs = [pool, _attr("db.client.connection.state", "used")] if suffix == "count" else [pool]
        metric = _updown(f"db.client.connection.{suffix}", i + 1, 0, attrs, temporality)
        point = metric["sum"]["dataPoints"][0]
        del point["asInt"]
        point.update(value)
        lines.append(_doc([metric]))
    path = tmp_path_factory.mktemp("v") / "m.jsonl"
    # Python's json writes NaN and Infinity bare, as the SDK's json.dumps would
    path.write_text("\n".join(lines) + "\n")
    with correlate.open_store(":memory:") as store:
        store.ingest([path], run="r")
        rows = store.con.execute(
            "SELECT checked_out, capacity, waiters, timeouts_total FROM pool_samples"
        ).fetchall()
    for row in rows:
        assert all(v is None or 0 <= v < 2**63 for v in row)
        assert row[0] is not None and row[0] < 2**31


def test_a_nan_used_count_is_a_note_naming_the_pool_and_the_rest_is_read(tmp_path: Path) -> None:
    pool = _attr("pool.name", "HikariPool-1")
    used = _attr("state", "used")
    metrics = [
        _updown("db.client.connections.usage", t, v, [pool, used]) for t, v in ((1, 2), (2, 0))
    ]
    metrics[1]["sum"]["dataPoints"][0]["asDouble"] = float("nan")
    del metrics[1]["sum"]["dataPoints"][0]["asInt"]
    rows, notes = pool_samples(points_of(json.loads(_doc(metrics))))
    assert [r[7] for r in rows] == [2]
    assert notes == [
        "pool 'HikariPool-1' (pid 0): 1 point(s) of 'db.client.connections.usage' skipped: "
        "not a count (NaN, infinite, negative or too large)"
    ]


def test_a_run_with_pool_metrics_and_no_connect_spans_says_so_not_no_pool_telemetry(
    tmp_path: Path,
) -> None:
    # The Java agent's HikariCP metrics come without any span around a checkout.
    (tmp_path / "m.jsonl").write_bytes((DATA / "hikaricp-new-semconv.jsonl").read_bytes())
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(tmp_path, store=store)
    assert analysis.summary["pool_samples"] > 0
    assert not [g for g in analysis.gaps if g.startswith("no pool telemetry")]
    assert [g for g in analysis.gaps if g.startswith("pool metrics but no connect spans")]


def test_a_gzip_metrics_file_cut_short_gives_the_documents_before_the_cut(
    tmp_path: Path,
) -> None:
    import gzip
    import zlib

    sample = Path(__file__).parents[1] / "sample_traces" / "checkout-blackfriday-otel"
    (whole,) = (sample / "metrics").glob("*.jsonl.gz")
    data = gzip.compress(gzip.decompress(whole.read_bytes()))
    cut = data[: len(data) // 2]  # a Collector stopped mid-write
    path = tmp_path / "metrics.jsonl.gz"
    path.write_bytes(cut)
    prefix = zlib.decompressobj(wbits=31).decompress(cut)
    complete = prefix.count(b"\n")
    items = list(read_points(path))
    problems = [p for p in items if isinstance(p, Problem)]
    assert [(p.line, "cut short" in p.reason) for p in problems] == [(complete + 1, True)]
    times = {p.time_unix_nano for p in items if isinstance(p, Point)}
    assert len(times) == complete  # one export a line in this sample, every whole one read
    with correlate.open_store(":memory:") as store:
        report = store.ingest([path], run="r")  # named on its own: read, not refused
        (rows,) = store.con.execute("SELECT count(*) FROM pool_samples").fetchone() or (0,)
    assert rows == complete and report.skipped == 1


def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


@pytest.mark.parametrize("framing", ["varint", "raw"])
def test_varint_delimited_and_raw_metrics_protobuf_give_the_collector_framings_samples(
    tmp_path: Path, framing: str
) -> None:
    from correlate.ingest.otlp_framing import frames
    from correlate.inputs import Head

    collector = DATA / "hikaricp-new-semconv.binpb"
    with collector.open("rb") as f:
        payloads = [frame.payload for frame in frames(f, "collector")]
    assert payloads and all(payloads)
    if framing == "varint":  # an SDK's writeDelimitedTo, one request after another
        data = b"".join(_varint(len(p)) + p for p in payloads if p)
    else:  # one request (an OTLP/HTTP body): concatenated requests merge into one
        data = b"".join(p for p in payloads if p)
    path = tmp_path / f"{framing}.binpb"
    path.write_bytes(data)
    assert sniff_proto(Head.of(path))
    with correlate.open_store(":memory:") as store:
        report = store.ingest([path], run="r")
        assert [f.format for f in report.files] == ["otlp-metrics-proto"]
    items = list(read_proto_points(path))
    assert not [i for i in items if isinstance(i, Problem)]
    rows, _ = pool_samples(i for i in items if isinstance(i, Point))
    assert rows == _samples(DATA / "hikaricp-new-semconv.jsonl")
