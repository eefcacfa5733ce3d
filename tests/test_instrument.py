"""correlate.instrument.record(): spans, pool telemetry and run.json, on SQLite."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from sqlalchemy.pool import Pool, SingletonThreadPool

from correlate.errors import CorrelateError
from correlate.instrument import RecordError, Recording, record
from correlate.instrument import pool as pool_module


@pytest.fixture(autouse=True)
def no_leftover_instrumentation() -> Any:
    """Every test must leave OTel and SQLAlchemy as it found them."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    global_before = trace.get_tracer_provider()
    yield
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    assert not hasattr(Pool.connect, "__correlate_original__")
    assert not hasattr(SingletonThreadPool.connect, "__correlate_original__")
    assert len(pool_module._REGISTRY) == 0
    assert trace.get_tracer_provider() is global_before


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    eng = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'app.db'}",
        pool_size=2,
        max_overflow=0,
        pool_timeout=0.2,
        connect_args={"check_same_thread": False},
    )
    yield eng
    eng.dispose()


def _start(engine: Any, run_dir: Path, provider: TracerProvider, **kw: Any) -> Recording:
    kw.setdefault("sample_interval", 60.0)  # samples only when the test asks
    kw.setdefault("leak_grace", 0.0)
    return record(engine, run_dir, "shop", tracer_provider=provider, **kw)


def _server_span(provider: TracerProvider, route: str) -> Any:
    return provider.get_tracer("test").start_as_current_span(
        f"GET {route}", kind=SpanKind.SERVER, attributes={"http.route": route}
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _otlp_spans(run_dir: Path) -> list[Any]:
    from opentelemetry.proto_json.collector.trace.v1.trace_service import (
        ExportTraceServiceRequest,
    )

    spans = []
    files = sorted((run_dir / "spans").glob("*.jsonl"))
    assert files, "no span file written"
    for path in files:
        for line in path.read_text().splitlines():
            request = ExportTraceServiceRequest.from_json(line)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    spans.extend(scope_spans.spans)
    return spans


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        for field in ("string_value", "int_value", "bool_value", "double_value"):
            got = getattr(value, field, None)
            if got is not None:
                out[kv.key] = got
                break
    return out


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


def test_spans_round_trip_as_otlp_json(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    with _start(engine, tmp_path, provider):
        with _server_span(provider, "/orders/<int:id>") as server, engine.connect() as conn:
            conn.exec_driver_sql("select 1").scalar()
        server_ids = server.get_span_context()

    spans = _otlp_spans(tmp_path)
    by_name = {s.name: s for s in spans}
    assert set(by_name) >= {"GET /orders/<int:id>", "connect"}
    db_spans = [s for s in spans if s.name.startswith("select")]
    assert len(db_spans) == 1
    assert {_hex(s.trace_id) for s in spans} == {format(server_ids.trace_id, "032x")}
    connect = by_name["connect"]
    assert _hex(connect.parent_span_id) == format(server_ids.span_id, "016x")
    # The pool facts ride on the spans too, for a plain OTLP consumer.
    assert _attrs(connect)["correlate.pool.wait_ns"] >= 0
    assert _attrs(by_name["GET /orders/<int:id>"])["correlate.pool.checkouts"] == 1
    # Raw lines are OTLP/JSON as the Collector writes it: hex ids, not base64.
    raw = json.loads((next((tmp_path / "spans").glob("*.jsonl"))).read_text().splitlines()[0])
    span = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16) >= 0


def test_checkout_records_wait_hold_route_and_location(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    with _start(engine, tmp_path, provider):
        with _server_span(provider, "/a") as server, engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        request_id = format(server.get_span_context().span_id, "016x")

    (checkout,) = _lines(tmp_path / "pool" / "checkouts.jsonl")
    assert checkout["route"] == "/a"
    assert checkout["request_span_id"] == request_id
    assert checkout["connect_span_id"] is not None
    assert checkout["outcome"] == "returned"
    assert checkout["wait_ns"] >= 0 and checkout["hold_ns"] >= 0
    assert (
        checkout["start_unix_nano"]
        <= checkout["acquired_unix_nano"]
        <= checkout["returned_unix_nano"]
    )
    assert checkout["new_connection"] is True
    assert checkout["location"].startswith("tests/test_instrument.py:")
    assert _lines(tmp_path / "pool" / "leaks.jsonl") == []


def test_leaked_connection_is_a_suspect_with_its_span_route_and_line(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    kept = []
    with _start(engine, tmp_path, provider) as rec:
        with _server_span(provider, "/healthy"), engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        with _server_span(provider, "/checkout") as leaking:
            conn = engine.connect()
            leak_line = _this_line() - 1
            conn.exec_driver_sql("select 2")
            kept.append(conn)  # the bug: a reference outlives the request
        rec.sample_now()
        assert rec.stats.leak_suspects == 1
    ctx = leaking.get_span_context()

    (leak,) = _lines(tmp_path / "pool" / "leaks.jsonl")
    assert leak["route"] == "/checkout"
    assert leak["trace_id"] == format(ctx.trace_id, "032x")
    assert leak["request_span_id"] == format(ctx.span_id, "016x")
    assert leak["location"].startswith(f"tests/test_instrument.py:{leak_line} ")
    assert (
        leak["checked_out_unix_nano"] <= leak["request_end_unix_nano"] <= leak["detected_unix_nano"]
    )
    still_out = [c for c in _lines(tmp_path / "pool" / "checkouts.jsonl") if c["leak_suspect"]]
    assert [c["outcome"] for c in still_out] == ["open_at_shutdown"]
    kept[0].close()


def _this_line() -> int:
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_connection_returned_after_request_end_within_grace_is_no_leak(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    # Like a Flask-SQLAlchemy session removed in teardown_appcontext, just
    # after the server span ended.
    with _start(engine, tmp_path, provider, leak_grace=30.0) as rec:
        with _server_span(provider, "/late-close"):
            conn = engine.connect()
        rec.sample_now()
        conn.close()
        rec.sample_now()
        assert rec.stats.leak_suspects == 0
    assert _lines(tmp_path / "pool" / "leaks.jsonl") == []


def test_samples_show_checkout_count_rising(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    held = []
    with _start(engine, tmp_path, provider) as rec:
        for _ in range(2):
            held.append(engine.connect())
            rec.sample_now()
        for conn in held:
            conn.close()
        rec.sample_now()
    samples = _lines(tmp_path / "pool" / "samples.jsonl")
    counts = [s["checked_out"] for s in samples]
    assert counts[:4] == [0, 1, 2, 0]
    assert samples[2]["size"] == 2 and samples[2]["capacity"] == 2
    assert all(s["pool_class"] == "QueuePool" for s in samples)
    assert [s["checkouts_total"] for s in samples[:4]] == [0, 1, 2, 2]


def test_pool_timeout_is_recorded_with_its_route(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    held = [engine.connect(), engine.connect()]
    with _start(engine, tmp_path, provider) as rec:
        with (
            _server_span(provider, "/products/<int:id>") as server,
            pytest.raises(sqlalchemy.exc.TimeoutError),
        ):
            engine.connect()
        rec.sample_now()
        assert rec.stats.timeouts == 1
    for conn in held:
        conn.close()

    timeouts = [
        c for c in _lines(tmp_path / "pool" / "checkouts.jsonl") if c["outcome"] == "timeout"
    ]
    assert len(timeouts) == 1
    (timeout,) = timeouts
    assert timeout["route"] == "/products/<int:id>"
    assert timeout["request_span_id"] == format(server.get_span_context().span_id, "016x")
    assert timeout["wait_ns"] >= 150_000_000  # pool_timeout=0.2
    assert "QueuePool limit" in timeout["error"]
    assert timeout["acquired_unix_nano"] is None and timeout["hold_ns"] is None
    assert _lines(tmp_path / "pool" / "samples.jsonl")[-1]["timeouts_total"] == 1
    server_span = next(s for s in _otlp_spans(tmp_path) if s.name == "GET /products/<int:id>")
    assert _attrs(server_span)["correlate.pool.timeouts"] == 1


def test_wait_is_measured_while_another_thread_holds_the_pool(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    small = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'one.db'}", pool_size=1, max_overflow=0, pool_timeout=5
    )
    holder = small.connect()
    release = threading.Timer(0.15, holder.close)
    with _start(small, tmp_path / "run", provider):
        release.start()
        with _server_span(provider, "/wait"), small.connect() as conn:
            conn.exec_driver_sql("select 1")
    release.join()
    small.dispose()
    waited = [
        c for c in _lines(tmp_path / "run" / "pool" / "checkouts.jsonl") if c["route"] == "/wait"
    ]
    assert waited[0]["wait_ns"] >= 100_000_000


def test_run_json_describes_the_run_without_password(
    tmp_path: Path, provider: TracerProvider
) -> None:
    # No connection is made: the URL is only described.
    eng = sqlalchemy.create_engine("postgresql+psycopg://shop:s3cret@db.internal:5432/shop")
    with record(eng, tmp_path, "checkout", tracer_provider=provider, load_profile={"users": 3}):
        pass
    text = (tmp_path / "run.json").read_text()
    assert "s3cret" not in text
    info = json.loads(text)
    assert info["format"] == "correlate-run" and info["format_version"] == 1
    assert info["service"] == "checkout"
    assert info["started_unix_nano"] <= info["ended_unix_nano"]
    assert info["load_profile"] == {"users": 3}
    assert info["databases"][0]["url"] == "postgresql+psycopg://shop:***@db.internal:5432/shop"
    assert info["databases"][0]["pool"]["size"] == 5
    assert info["packages"]["sqlalchemy"] == sqlalchemy.__version__
    assert "git" in info


def test_sqlcommenter_option_comments_statements(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    seen: list[str] = []

    def grab(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sqlalchemy.event.listen(engine, "after_cursor_execute", grab)
    with (
        _start(engine, tmp_path, provider, sqlcommenter=True),
        _server_span(provider, "/c"),
        engine.connect() as conn,
    ):
        conn.exec_driver_sql("select 1")
    with engine.connect() as conn:  # after close(): plain again
        conn.exec_driver_sql("select 2")
    sqlalchemy.event.remove(engine, "after_cursor_execute", grab)
    assert "traceparent=" in seen[0]
    assert seen[-1] == "select 2"


def test_close_is_idempotent_and_stops_recording(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    rec = _start(engine, tmp_path, provider)
    rec.close()
    rec.close()
    assert rec.closed
    with engine.connect() as conn:
        conn.exec_driver_sql("select 1")
    assert _lines(tmp_path / "pool" / "checkouts.jsonl") == []
    # Our processors came off the provider we joined.
    assert provider._active_span_processor._span_processors == ()


def test_engine_dispose_keeps_tracking(
    tmp_path: Path, engine: Any, provider: TracerProvider
) -> None:
    with _start(engine, tmp_path, provider) as rec:
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        assert rec.stats.checkouts == 2
    waits = [c["wait_ns"] for c in _lines(tmp_path / "pool" / "checkouts.jsonl")]
    assert len(waits) == 2 and all(w is not None for w in waits)


def test_record_rejects_bad_arguments(tmp_path: Path, engine: Any) -> None:
    with pytest.raises(RecordError, match="at least one"):
        record([], tmp_path, "x")
    with pytest.raises(RecordError, match="TracerProvider"):
        record(engine, tmp_path, "x", tracer_provider=object())  # type: ignore[arg-type]
    assert issubclass(RecordError, CorrelateError)


@pytest.mark.parametrize("poolclass", ["NullPool", "SingletonThreadPool", "StaticPool"])
def test_other_pool_classes_are_tracked(
    tmp_path: Path, provider: TracerProvider, poolclass: str
) -> None:
    eng = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'p.db'}", poolclass=getattr(sqlalchemy.pool, poolclass)
    )
    with _start(eng, tmp_path / "run", provider) as rec:
        with _server_span(provider, "/p"), eng.connect() as conn:
            conn.exec_driver_sql("select 1")
        rec.sample_now()
    eng.dispose()
    (checkout,) = _lines(tmp_path / "run" / "pool" / "checkouts.jsonl")
    assert checkout["route"] == "/p" and checkout["wait_ns"] is not None
    samples = _lines(tmp_path / "run" / "pool" / "samples.jsonl")
    assert {s["pool_class"] for s in samples} == {poolclass}
    assert samples[-1]["checkouts_total"] == 1
