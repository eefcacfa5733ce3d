"""A driver's session setup on a fresh connection is no request's work.

A SQLAlchemy engine's first connection runs the dialect's introspection (server version,
current schema, session settings) inside whichever request first uses the pool, and a
driver may set up each new connection (``SET NAMES``). The drivers' own instrumentations
record those statements as the request's children. Real runs: SQLAlchemy on psycopg
(PostgreSQL) and on PyMySQL (MariaDB), recorded by ``tests/helpers/first_connect_producer.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import fan_out
from correlate.fingerprint.session import is_session_statement
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .helpers.produce import produce

PRODUCER = Path(__file__).parent / "helpers" / "first_connect_producer.py"


def _findings(dsn: str, out: Path) -> dict[tuple[str, str | None], correlate.Finding]:
    produce(PRODUCER, dsn, out, "driver")
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store)
        setup = store.con.execute(
            "SELECT count(*) FROM spans WHERE db_statement IS NOT NULL "
            "AND db_statement NOT LIKE 'SELECT c%'"
        ).fetchone()
    assert setup is not None and setup[0] >= 4, "the first connection's statements are recorded"
    return {(f.kind, f.route): f for f in analysis.findings}


def _check(found: dict[tuple[str, str | None], correlate.Finding]) -> None:
    # /dashboard makes 18 reads; only its first request, on the pool's first connection,
    # has the dialect's introspection among its calls as well
    assert not [key for key in found if key[1] == "/dashboard"]
    # /report's 24 reads are a fan-out whatever ran before them
    report = found[(FindingKind.FAN_OUT, "/report")]
    assert report.evidence["calls_per_request"] == 24


@pytest.mark.postgres
def test_postgresql_first_connect_statements_are_no_fan_out(pg_dsn: str, tmp_path: Path) -> None:
    _check(_findings(pg_dsn, tmp_path / "pg.jsonl"))


@pytest.mark.mariadb
def test_mariadb_first_connect_statements_are_no_fan_out(mysql_dsn: str, tmp_path: Path) -> None:
    _check(_findings(mysql_dsn, tmp_path / "mysql.jsonl"))


# What psycopg's and the DB-API integration's spans recorded of SQLAlchemy 2.0's first
# connection (PostgreSQL, then MariaDB with PyMySQL), and session setup of other drivers.
SESSION = [
    "select pg_catalog.version()",
    "select current_schema()",
    "show transaction isolation level",
    "show standard_conforming_strings",
    "select pg_catalog.current_setting('standard_conforming_strings')",
    "SET NAMES utf8mb4",
    "SELECT VERSION()",
    "SELECT DATABASE()",
    "SELECT @@tx_isolation",
    "SELECT @@sql_mode",
    "SELECT @@lower_case_table_names",
    "SHOW VARIABLES LIKE 'sql_mode'",
    "SELECT @@transaction_isolation AS iso",
    "SET search_path TO tenant_7, public",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "select sys_context('USERENV', 'CURRENT_SCHEMA') from dual",
    "SELECT schema_name()",
]

WORK = [
    "SELECT c0 FROM ctest_wide WHERE id = %(id)s",
    "SELECT version FROM releases WHERE id = 1",
    "SELECT version() FROM releases",
    "SET @rank = (SELECT max(score) FROM players)",
    "SELECT current_setting('x') || name FROM t",
    "SELECT @@sql_mode, (SELECT count(*) FROM orders)",
    "UPDATE settings SET v = 1",
    "select pg_sleep(1)",
    # a request's own round trips, however little they read
    "select nextval('orders_id_seq')",
    "SELECT pg_advisory_lock(1)",
    "SELECT set_config('app.tenant', '7', false)",
    "SELECT now()",
    "SELECT txid_current()",
    "SELECT 1",
    # the previous statement's outcome, asked after each INSERT or UPDATE
    "SELECT @@IDENTITY",
    "SELECT @@ROWCOUNT",
    "SELECT @@error",
    "SELECT @@last_insert_id",
    "SELECT @@session.warning_count",
    # a T-SQL batch needs no semicolon between its statements
    "SET NOCOUNT ON UPDATE orders SET status = 1 WHERE id = @p0",
    "SET XACT_ABORT ON\nDELETE FROM cart WHERE user_id = @p0",
    "SHOW TABLES\nDELETE FROM t",
]


@pytest.mark.parametrize("text", SESSION)
def test_session_setup_statements_are_recognised(text: str) -> None:
    assert is_session_statement(text)


@pytest.mark.parametrize("text", WORK)
def test_statements_that_do_work_are_not_session_setup(text: str) -> None:
    assert not is_session_statement(text)


@pytest.mark.parametrize(
    ("system", "text"),
    [
        ("redis", "SET cart:{n} 3"),  # the instrumentation's sanitising turned off
        ("memcached", "set cart_{n}"),
        ("mssql", "SELECT @@IDENTITY"),
    ],
)
def test_a_loop_of_commands_spelled_like_session_setup_is_a_fan_out(system: str, text: str) -> None:
    b = RunBuilder()
    for i in range(5):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 200, "/cart")
        for n in range(25):
            at = start + 1 + n * 5
            b.span(trace, at, at + 4, parent=r, kind="CLIENT", name="SET", db=system,
                   sql=text.format(n=n))  # fmt: skip
    with open_run(b.build(), "r") as run:
        (f,) = fan_out(run)
    assert f.evidence["calls_per_request"] == 25
