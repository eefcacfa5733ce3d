"""The demo shop: seeding, the planted faults, and run_demo end to end."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from correlate.demo import DemoError, Faults, load_stages, run_demo
from correlate.demo import runner as runner_module
from correlate.demo.shop import CUSTOMER_INDEX, make_engine, scoped, seed

PG_DSN = os.environ.get(
    "CORRELATE_TEST_PG_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_reachable() -> str | None:
    try:
        engine = sqlalchemy.create_engine(PG_DSN, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL at {PG_DSN} unreachable: {exc.__class__.__name__}"
    return None


def _needs_demo_packages() -> None:
    import importlib.util

    for module in ("locust", "flask", "waitress"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (pip install 'correlate[demo]')")


def _lines(path: Path) -> list[dict[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_load_stages_ramp_steady_ramp_down() -> None:
    stages = load_stages(60, 20)
    assert [s["until_s"] for s in stages] == [12, 48, 60]
    assert [s["users"] for s in stages] == [20, 20, 0]
    assert load_stages(30, 8, "constant") == [{"until_s": 30, "users": 8, "spawn_rate": 80}]
    with pytest.raises(DemoError, match="unknown load shape"):
        load_stages(30, 8, "spiky")


def _table_digest(dsn: str) -> list[Any]:
    engine = sqlalchemy.create_engine(dsn)
    with engine.connect() as conn:
        digest = [
            conn.exec_driver_sql(
                "select count(*), sum(customer_id), sum(total_cents) from orders"
            ).one(),
            conn.exec_driver_sql(
                "select count(*), sum(product_id * quantity) from order_items"
            ).one(),
        ]
    engine.dispose()
    return digest


def _has_customer_index(dsn: str) -> bool:
    engine = sqlalchemy.create_engine(dsn)
    names = {ix["name"] for ix in sqlalchemy.inspect(engine).get_indexes("orders")}
    engine.dispose()
    return CUSTOMER_INDEX in names


def test_seed_is_deterministic_and_the_index_follows_the_flag(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    seed(a, orders=2_000, seed=7, missing_index=True)
    seed(b, orders=2_000, seed=7, missing_index=False)
    assert _table_digest(a) == _table_digest(b)
    assert _table_digest(a)[0][0] == 2_000
    assert not _has_customer_index(a)
    assert _has_customer_index(b)
    seed(a, orders=2_000, seed=8)  # reseeding replaces, and another seed differs
    assert _table_digest(a) != _table_digest(b)


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.db'}"
    seed(dsn, orders=3_000)
    return dsn


def _client(dsn: str, faults: Faults) -> tuple[Any, Any, list[str]]:
    pytest.importorskip("flask")
    from correlate.demo.app import create_app

    engine = make_engine(dsn, pool_size=2, max_overflow=1, pool_timeout=0.3)
    statements: list[str] = []
    sqlalchemy.event.listen(
        engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt)
    )
    app = create_app(scoped(engine, "unused"), faults)
    return app.test_client(), engine, statements


@pytest.mark.parametrize(("n_plus_one", "expected"), [(True, 21), (False, 2)])
def test_recent_orders_queries_once_per_order_only_with_the_fault(
    shop_db: str, n_plus_one: bool, expected: int
) -> None:
    client, engine, statements = _client(shop_db, Faults(n_plus_one=n_plus_one))
    response = client.get("/orders/recent")
    assert response.status_code == 200
    assert len(response.get_json()["orders"]) == 20
    assert len(statements) == expected
    engine.dispose()


def _checkout(client: Any, card: str) -> Any:
    body = {"customer_id": 1, "items": [{"product_id": 1, "quantity": 1}], "card": card}
    return client.post("/checkout", json=body)


def test_declined_payment_leaks_a_connection_until_the_pool_times_out(shop_db: str) -> None:
    from correlate.demo import app as app_module

    client, engine, _ = _client(shop_db, Faults(pool_leak=True))
    try:
        assert _checkout(client, "4242424242424242").status_code == 201
        assert engine.pool.checkedout() == 0
        for expected_out in (1, 2, 3):  # pool_size 2 + max_overflow 1
            assert _checkout(client, "4000000000000002").status_code == 402
            assert engine.pool.checkedout() == expected_out
        # Exhausted: every database endpoint now waits pool_timeout, then 503.
        assert client.get("/products/1").status_code == 503
        assert client.get("/health").status_code == 200
    finally:
        for session in app_module._RETRY_QUEUE:
            session.close()
        app_module._RETRY_QUEUE.clear()
        engine.dispose()


def test_declined_payment_returns_the_connection_when_fixed(shop_db: str) -> None:
    client, engine, _ = _client(shop_db, Faults.none())
    for _ in range(4):
        assert _checkout(client, "4000000000000002").status_code == 402
    assert engine.pool.checkedout() == 0
    assert client.get("/products/1").status_code == 200
    engine.dispose()


@pytest.mark.parametrize(
    ("hot_row", "expected"),
    [(True, ["UPDATE", "FRAUD", "COMMIT"]), (False, ["FRAUD", "UPDATE", "COMMIT"])],
)
def test_checkout_holds_the_hot_row_across_the_fraud_call_only_with_the_fault(
    shop_db: str, hot_row: bool, expected: list[str]
) -> None:
    pytest.importorskip("flask")
    from correlate.demo import app as app_module
    from correlate.demo.fraud import FraudClient, start_fraud_stub

    engine = make_engine(shop_db, pool_size=2, max_overflow=1, pool_timeout=0.3)
    events: list[str] = []
    sqlalchemy.event.listen(
        engine,
        "before_cursor_execute",
        lambda c, cur, stmt, *a: events.append(stmt.split()[0].upper()),
    )
    sqlalchemy.event.listen(engine, "commit", lambda conn: events.append("COMMIT"))
    stub = start_fraud_stub(latency_s=0.001, on_call=lambda: events.append("FRAUD"))
    try:
        app = app_module.create_app(
            scoped(engine, "unused"), Faults(hot_row=hot_row), FraudClient(stub.url)
        )
        assert _checkout(app.test_client(), "4242424242424242").status_code == 201
        # The row lock the UPDATE takes lasts until the commit: with the fault
        # the fraud call happens inside it, fixed it happens before.
        assert [e for e in events if e in ("UPDATE", "FRAUD", "COMMIT")] == expected
        events.clear()
        # A declined card reaches neither the hot row nor the fraud check.
        assert _checkout(app.test_client(), "4000000000000002").status_code == 402
        assert "UPDATE" not in events and "FRAUD" not in events
    finally:
        stub.close()
        for session in app_module._RETRY_QUEUE:
            session.close()
        app_module._RETRY_QUEUE.clear()
        engine.dispose()


def test_customer_orders_uses_the_index_only_when_fixed(tmp_path: Path) -> None:
    plans = {}
    for missing in (True, False):
        dsn = f"sqlite:///{tmp_path / f'{missing}.db'}"
        seed(dsn, orders=1_000, missing_index=missing)
        engine = sqlalchemy.create_engine(dsn)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "explain query plan select id from orders where customer_id = 3 "
                "order by created_at desc limit 20"
            ).all()
        plans[missing] = " ".join(str(r[-1]) for r in rows)
        engine.dispose()
    assert "SCAN orders" in plans[True]
    assert CUSTOMER_INDEX in plans[False]


def test_run_demo_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    _needs_demo_packages()
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(DemoError, match="already holds a run"):
        run_demo(tmp_path, duration=1, users=1)


def test_run_demo_stops_its_processes_on_ctrl_c(tmp_path: Path, monkeypatch: Any) -> None:
    _needs_demo_packages()
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def tracking_popen(*args: Any, **kwargs: Any) -> Any:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    real_wait_ready = runner_module._wait_ready

    def ready_then_interrupt(*args: Any, **kwargs: Any) -> None:
        real_wait_ready(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module.subprocess, "Popen", tracking_popen)
    monkeypatch.setattr(runner_module, "_wait_ready", ready_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "run", duration=5, users=1, orders=500)
    assert len(started) == 1
    assert all(proc.poll() is not None for proc in started)
    # The service closed its recording on the way out: run.json has an end.
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["ended_unix_nano"] is not None


def _server_spans(run_dir: Path) -> list[dict[str, Any]]:
    spans = []
    for path in sorted((run_dir / "spans").glob("*.jsonl*")):
        for request in _lines(path):
            for rs in request["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    spans.extend(s for s in ss["spans"] if s["kind"] == 2)
    return spans


def test_run_demo_short_run_on_sqlite(tmp_path: Path) -> None:
    _needs_demo_packages()
    out = tmp_path / "run"
    result = run_demo(out, duration=4, users=4, orders=2_000, think_time=(0.05, 0.1), compress=True)
    assert result.requests > 20
    assert result.elapsed_s < 4 + 10
    assert result.app_returncode == 0
    assert {p.name for p in (out / "pool").iterdir()} == {
        "checkouts.jsonl.gz",
        "samples.jsonl.gz",
        "leaks.jsonl.gz",
    }
    assert (out / "load" / "locust_stats.csv").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["demo"]["faults"] == {
        "missing_index": True,
        "n_plus_one": True,
        "pool_leak": True,
        "hot_row": True,
    }
    assert info["load"]["users"] == 4 and info["ended_unix_nano"] > info["started_unix_nano"]
    # Every client request joins its server span exactly, on trace_id.
    client = _lines(out / "load" / "requests.jsonl.gz")
    server = {s["traceId"]: s for s in _server_spans(out)}
    assert len(client) == result.requests
    assert all(r["trace_id"] in server for r in client)
    routes = {
        a["value"]["stringValue"]
        for s in server.values()
        for a in s["attributes"]
        if a["key"] == "http.route"
    }
    assert routes <= {r["name"] for r in client}
    assert "/orders/recent" in routes
    sample = client[0]
    assert server[sample["trace_id"]]["parentSpanId"] == sample["span_id"]


@pytest.mark.slow
@pytest.mark.postgres
def test_run_demo_against_postgres_shows_the_faults(tmp_path: Path) -> None:
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    _needs_demo_packages()
    out = tmp_path / "run"
    result = run_demo(
        out,
        dsn=PG_DSN,
        duration=25,
        users=20,
        orders=100_000,
        schema="correlate_demo_test",
    )
    assert result.elapsed_s < 25 + 10
    checkouts = _lines(out / "pool" / "checkouts.jsonl")
    leaks = _lines(out / "pool" / "leaks.jsonl")
    assert leaks and {leak["route"] for leak in leaks} == {"/checkout"}
    assert all("correlate/demo/app.py" in leak["location"] for leak in leaks)
    recent = [c for c in checkouts if c["route"] == "/orders/recent" and c["outcome"] == "returned"]
    assert recent
    samples = _lines(out / "pool" / "samples.jsonl")
    assert max(s["checked_out"] for s in samples) >= len(leaks)
