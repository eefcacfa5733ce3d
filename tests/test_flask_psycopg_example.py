"""examples/flask-psycopg live: a leaking psycopg2 pool, told by its own errors.

The service runs as a user runs it, exporting OTLP/HTTP to ``correlate collect``; a few
shoppers drive it for some seconds, every third checkout of each paying with a declined
card, which with ``LEAK=1`` keeps its connection. The pool of three is soon empty and every
later request fails at once with psycopg2's "connection pool exhausted": the verdict must
name a leak from those errors alone, the pool making no span of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.kinds import FindingKind

from .test_leak import causes

APP = Path(__file__).resolve().parents[1] / "examples" / "flask-psycopg" / "app.py"
SHOPPERS, DRIVE_S = 4, 14.0
DECLINED, PAID = "4000000000000002", "4242424242424242"


@pytest.fixture
def database_url(pg_dsn: str) -> Iterator[str]:
    """libpq's URL of the test database; the example's tables are dropped afterwards."""
    pytest.importorskip("opentelemetry.instrumentation.psycopg2")
    pytest.importorskip("opentelemetry.instrumentation.flask")
    import psycopg
    from sqlalchemy import make_url

    url = make_url(pg_dsn).set(drivername="postgresql").render_as_string(hide_password=False)
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS fp_orders, fp_products")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(ready: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def _shop(base: str, stop: float) -> None:
    """One shopper: browse, check out, look up an order, until ``stop``."""
    checkouts = 0
    while time.monotonic() < stop:
        checkouts += 1
        card = DECLINED if checkouts % 3 == 0 else PAID
        body = json.dumps({"customer_id": 7, "total": 25, "card": card}).encode()
        for request in (
            urllib.request.Request(f"{base}/products"),
            urllib.request.Request(
                f"{base}/checkout", body, {"Content-Type": "application/json"}, method="POST"
            ),
            urllib.request.Request(f"{base}/orders/1"),
        ):
            with contextlib.suppress(urllib.error.HTTPError):  # 404, 500: answered
                urllib.request.urlopen(request, timeout=10).close()
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.postgres
def test_a_leaking_psycopg2_pool_is_named_from_its_errors(
    database_url: str, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    collector = subprocess.Popen(
        [sys.executable, "-m", "correlate", "collect", "--out", str(run), "--http-port", "0",
         "--no-grpc"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    shop: subprocess.Popen[bytes] | None = None
    try:
        _until(lambda: (run / "run.json").exists(), "correlate collect")
        otlp = json.loads((run / "run.json").read_text())["otlp_http"]
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "POOL": "psycopg2",
            "POOL_SIZE": "3",
            "LEAK": "1",
            "PORT": str(port),
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        }
        shop = subprocess.Popen(
            [sys.executable, str(APP)], env=env, stderr=subprocess.DEVNULL, cwd=tmp_path
        )
        base = f"http://127.0.0.1:{port}"
        _until(lambda: shop.poll() is not None or _answers(f"{base}/healthz"), "the shop")
        assert shop.poll() is None, "the shop exited on start"
        stop = time.monotonic() + DRIVE_S
        shoppers = [threading.Thread(target=_shop, args=(base, stop)) for _ in range(SHOPPERS)]
        for t in shoppers:
            t.start()
        for t in shoppers:
            t.join()
    finally:
        if shop is not None:
            _stop(shop)  # the SDK exports its last spans as the process exits
        _stop(collector)

    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(run, store=store)
    text = analysis.to_text()
    pool = [f for f in analysis.findings if f.kind.startswith("pool_")]
    assert [f.kind for f in pool] == [FindingKind.POOL_LEAK], text
    (leak,) = pool
    assert leak.severity == "critical"
    assert "psycopg2.pool.PoolError: connection pool exhausted" in leak.explanation
    assert leak.evidence["requests_without_a_connection"] > 20
    assert causes(analysis.findings) == {"pool_leak"}
    assert "(failed checkouts only)" in text
