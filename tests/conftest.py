"""Shared fixtures.

Tests that need PostgreSQL, MariaDB, RabbitMQ or Redis use the ``pg_dsn`` / ``mysql_dsn`` /
``amqp_url`` / ``redis_url``
fixtures. Without a server they skip, on a laptop; when
``CORRELATE_NO_SKIP=1`` (CI sets it) they fail instead, so a CI run can
never pass with those tests quietly skipped. Every other fixture lives in
``tests/data``, so a fresh clone runs the whole suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

import correlate
from correlate.store import Store

# Property tests check what holds, not how fast: on a busy two-core CI machine a slow
# example is no failure (speed lives in benchmarks/).
hypothesis_settings.register_profile("correlate", deadline=None)
hypothesis_settings.load_profile("correlate")

DATA = Path(__file__).parent / "data"

PG_DSN = os.environ.get(
    "CORRELATE_TEST_PG_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_DSN = os.environ.get("CORRELATE_TEST_MYSQL_DSN", "mysql+pymysql://root@127.0.0.1:3306/test")


def _no_skip() -> bool:
    return os.environ.get("CORRELATE_NO_SKIP", "") not in ("", "0")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {str(exc).strip()[:200]})"
    if _no_skip():
        pytest.fail(message + " and CORRELATE_NO_SKIP is set", pytrace=False)
    pytest.skip(message)


def _check(dsn: str, what: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(dsn, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver or network failure means "not here"
        _unavailable(what, exc)
    finally:
        engine.dispose()
    return dsn


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """SQLAlchemy URL of the test PostgreSQL server."""
    return _check(PG_DSN, "PostgreSQL")


@pytest.fixture(scope="session")
def mysql_dsn() -> str:
    """SQLAlchemy URL of the test MariaDB/MySQL server."""
    return _check(MYSQL_DSN, "MariaDB")


AMQP_URL = os.environ.get("CORRELATE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("CORRELATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reach(url: str, what: str, client: str, ping: Callable[[Any], object]) -> str:
    """``url`` once ``ping(module)`` reached the server with ``client``'s Python module."""
    import importlib

    try:
        module = importlib.import_module(client)
    except ImportError as exc:
        _unavailable(f"{client} (the test extra)", exc)
    try:
        ping(module)
    except Exception as exc:  # any connection failure means "not here"
        _unavailable(what, exc)
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """AMQP URL of the test RabbitMQ broker (for messaging instrumentations' spans)."""
    return _reach(
        AMQP_URL,
        "RabbitMQ",
        "pika",
        lambda pika: pika.BlockingConnection(
            pika.URLParameters(AMQP_URL + "?socket_timeout=3")
        ).close(),
    )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis server (for the cache instrumentation's spans)."""
    return _reach(
        REDIS_URL,
        "Redis",
        "redis",
        lambda redis: redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping(),
    )


def require_chdb() -> None:
    """Skip (on a laptop without chDB) or fail (CORRELATE_NO_SKIP) a ClickHouse test."""
    try:
        import chdb  # noqa: F401
    except ImportError as exc:
        _unavailable("chDB (pip install 'correlate[chdb]')", exc)


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chDB connection for a test module (chDB holds one session directory per process:
    a module that opens its own closes this one's first by running apart)."""
    require_chdb()
    from correlate.clickhouse.connection import connect

    conn = connect(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    yield conn
    conn.close()


@pytest.fixture
def store() -> Iterator[Store]:
    """A throwaway in-memory store."""
    with correlate.open_store(":memory:") as s:
        yield s


#: Fixtures of a shared server: a test using one runs in the serial pass.
SERVER_FIXTURES = frozenset({"pg_dsn", "mysql_dsn", "amqp_url", "redis_url"})
#: Modules that time real work (services under load, threads, subprocesses that must answer
#: in time, a browser) or use a server without a fixture: their tests run in the serial pass
#: too, so no other test's load moves their figures.
SERIAL_MODULES = frozenset(
    {
        "test_cli",
        "test_collect",
        "test_collect_node",
        "test_collect_record",
        "test_collect_signals",
        "test_demo",
        "test_instrument",
        "test_notebook",
        "test_report_browser",
        "test_section_contention",
        "test_stability",
        "test_store",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``serial`` every test that uses a server or times real work.

    ``make test`` runs these one at a time (``-m serial``) and, beside them at the lowest CPU
    priority, the others on several processes (``-m "not serial"``); a plain ``pytest`` runs
    everything in one process.
    """
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        uses_server = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_server or module in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CORRELATE_NO_SKIP, a skipped server test is a failed test, however it skipped."""
    outcome = yield
    report = outcome.get_result()
    needs_server = any(
        any(item.iter_markers(name))
        for name in ("postgres", "mariadb", "clickhouse", "rabbitmq", "redis")
    )
    if report.skipped and needs_server and _no_skip():
        report.outcome = "failed"
        report.longrepr = f"skipped a server test under CORRELATE_NO_SKIP: {report.longrepr}"
