"""Live capture of plans: placeholders, safety, and each server's plans.

The server tests create their own tables (schema ``correlate_capture_test`` on
PostgreSQL, tables prefixed ``cct_`` on MariaDB, a tmp file for SQLite) and
drop them afterwards.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from correlate.errors import CorrelateError
from correlate.plans.capture import (
    CaptureConnectionError,
    CaptureResult,
    Statement,
    explain_statements,
    redact_url,
    to_numbered,
)

SECRET = "s3cret-Pa55"
PG_SCHEMA = "correlate_capture_test"


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a PostgreSQL plan tree, depth first."""
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def pg_nodes(result: CaptureResult, key: str) -> list[dict[str, Any]]:
    captured = result.get(key)
    assert captured is not None and captured.ok, captured
    return list(plan_nodes(captured.plan[0]["Plan"]))


def mysql_tables(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``table`` object of a MariaDB/MySQL JSON plan."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "table" and isinstance(value, dict):
                yield value
            yield from mysql_tables(value)
    elif isinstance(node, list):
        for item in node:
            yield from mysql_tables(item)


# --- Placeholders and URLs, no server -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("where a = %(a)s and b = %(b)s", "where a = $1 and b = $2", 2),
        ("where a = %(a)s or a2 = %(a)s", "where a = $1 or a2 = $1", 1),
        ("where a = %s and b = %s", "where a = $1 and b = $2", 2),
        ("where a = ? and b = ?", "where a = $1 and b = $2", 2),
        ("where a = :a and b = :b and c = :a", "where a = $1 and b = $2 and c = $1", 2),
        ("where a = %(a)s::INTEGER", "where a = $1::INTEGER", 1),
        ("where a = ?::INTEGER and b::text = :b", "where a = $1::INTEGER and b::text = $2", 2),
        ("where a = $1 and b = $2", "where a = $1 and b = $2", 2),
        # pyformat text: %% is a literal %, and ? stays the jsonb operator
        (
            "where n like 'a%%' and j ? 'k' and a = %s",
            "where n like 'a%' and j ? 'k' and a = $1",
            1,
        ),
        # nothing inside quotes, quoted identifiers, comments or dollar quotes
        ("""where '?' = "c?" and a = ? -- b = ?""", """where '?' = "c?" and a = $1 -- b = ?""", 1),
        ("where $$ :x ? $$ = a /* :y */ and b = :z", "where $$ :x ? $$ = a /* :y */ and b = $1", 1),
        ("where a = %s;", "where a = $1", 1),
    ],
)
def test_placeholders_become_numbered(text: str, expected: str, count: int) -> None:
    assert to_numbered("select * from t " + text) == ("select * from t " + expected, count)


def test_redact_url_hides_the_password() -> None:
    assert redact_url(f"postgresql://app:{SECRET}@db/shop") == "postgresql://app:***@db/shop"
    assert SECRET not in redact_url(f"garbage {SECRET} ::")


def test_unsupported_url_is_a_correlate_error() -> None:
    with pytest.raises(CorrelateError, match="supports PostgreSQL"):
        explain_statements(f"mssql+pyodbc://sa:{SECRET}@db/shop", [])


# --- SQLite -------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table orders (id integer primary key, customer_id int, note text)")
        conn.executemany(
            "insert into orders (customer_id, note) values (?, ?)",
            [(i % 50, f"n{i}") for i in range(500)],
        )
    conn.close()
    return path


def sqlite_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("select count(*) from orders").fetchone()[0])
    finally:
        conn.close()


def test_sqlite_scan_then_search_using_index(sqlite_db: Path) -> None:
    url = f"sqlite:///{sqlite_db}"
    statements = [
        Statement("qmark", "select * from orders where customer_id = ?"),
        Statement("named", "select * from orders where customer_id = :cid"),
        Statement("pyformat", "select * from orders where customer_id = %(cid)s"),
        Statement("format", "select * from orders where customer_id = %s"),
    ]
    before = explain_statements(url, statements)
    assert before.server.dialect == "sqlite"
    for captured in before:
        assert captured.method == "explain_query_plan", captured
        assert [row[3] for row in captured.plan] == ["SCAN orders"]

    conn = sqlite3.connect(sqlite_db)
    conn.execute("create index orders_customer_idx on orders (customer_id)")
    conn.close()

    after = explain_statements(url, statements)
    for captured in after:
        (detail,) = [row[3] for row in captured.plan]
        assert detail.startswith("SEARCH orders USING INDEX orders_customer_idx"), detail


def test_sqlite_dml_is_explained_not_run(sqlite_db: Path) -> None:
    before = sqlite_count(sqlite_db)
    result = explain_statements(
        f"sqlite:///{sqlite_db}",
        [
            ("delete", "delete from orders where customer_id = ?"),
            ("update", "update orders set note = ? where id = ?"),
            ("insert", "insert into orders (customer_id, note) values (?, ?)"),
        ],
    )
    assert [c.method for c in result] == ["explain_query_plan"] * 3
    assert sqlite_count(sqlite_db) == before


def test_sqlite_failures_are_recorded_and_the_rest_explained(sqlite_db: Path) -> None:
    result = explain_statements(
        f"sqlite:///{sqlite_db}",
        [
            ("ddl", "create table other (a int)"),
            ("ok1", "select * from orders where id = ?"),
            ("syntax", "select * from orders where"),
            ("missing", "select * from no_such_table"),
            ("two", "select 1; drop table orders"),
            ("ok2", "select count(*) from orders"),
        ],
    )
    codes = {c.key: c.reason_code for c in result}
    assert codes == {
        "ddl": "not_explainable",
        "ok1": None,
        "syntax": "syntax",
        "missing": "missing_object",
        "two": "refused",
        "ok2": None,
    }
    assert "no such table" in (result.get("missing").reason or "")  # type: ignore[union-attr]
    assert sqlite_count(sqlite_db) == 500


def test_sqlite_analyze_refuses_dml(sqlite_db: Path) -> None:
    result = explain_statements(
        f"sqlite:///{sqlite_db}", [("d", "delete from orders"), ("s", "select 1")], analyze=True
    )
    assert result.get("d").reason_code == "refused"  # type: ignore[union-attr]
    assert result.get("s").note  # type: ignore[union-attr]
    assert sqlite_count(sqlite_db) == 500


def test_sqlite_missing_file_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(CaptureConnectionError, match="check the path"):
        explain_statements(f"sqlite:///{tmp_path / 'nope.db'}", [("a", "select 1")])
    assert not (tmp_path / "nope.db").exists()


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_conninfo(dsn: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(dsn)
    parts = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[Any]:
    """An autocommit psycopg connection with a fresh test schema holding ``orders``."""
    import psycopg

    conn = psycopg.connect(pg_conninfo(pg_dsn), autocommit=True)
    conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    conn.execute(
        f"CREATE TABLE {PG_SCHEMA}.orders (id serial PRIMARY KEY, customer_id int NOT NULL, "
        "status text NOT NULL, created timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute(
        f"INSERT INTO {PG_SCHEMA}.orders (customer_id, status) "
        "SELECT g % 2000, 'new' FROM generate_series(1, 50000) g"
    )
    conn.execute(f"CREATE SEQUENCE {PG_SCHEMA}.seq")
    conn.execute(f"ANALYZE {PG_SCHEMA}.orders")
    try:
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.close()


def pg_count(conn: Any) -> tuple[int, int]:
    row = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status = 'new') FROM {PG_SCHEMA}.orders"
    ).fetchone()
    return int(row[0]), int(row[1])


@pytest.mark.postgres
def test_pg_seq_scan_then_index_scan(pg_dsn: str, pg: Any) -> None:
    statements = [
        Statement("pyformat", f"select * from {PG_SCHEMA}.orders where customer_id = %(cid)s"),
        Statement("format", f"select * from {PG_SCHEMA}.orders where customer_id = %s"),
        Statement("qmark", f"select * from {PG_SCHEMA}.orders where customer_id = ?"),
        Statement(
            "sqlalchemy",
            f"SELECT orders.id FROM {PG_SCHEMA}.orders "
            "WHERE orders.customer_id = %(customer_id_1)s::INTEGER",
        ),
    ]
    before = explain_statements(pg_dsn, statements)
    assert before.server.dialect == "postgresql"
    for statement in statements:
        captured = before.get(statement.key)
        assert captured is not None and captured.method in ("prepare_force_generic", "generic_plan")
        assert "$1" in (captured.sql or "")
        scans = [n for n in pg_nodes(before, statement.key) if n.get("Relation Name") == "orders"]
        assert [n["Node Type"] for n in scans] == ["Seq Scan"], statement.key
        assert "customer_id" in scans[0]["Filter"]

    pg.execute(f"CREATE INDEX orders_customer_idx ON {PG_SCHEMA}.orders (customer_id)")
    pg.execute(f"ANALYZE {PG_SCHEMA}.orders")
    after = explain_statements(pg_dsn, statements)
    for statement in statements:
        types = {n["Node Type"] for n in pg_nodes(after, statement.key)}
        assert types & {"Index Scan", "Bitmap Heap Scan", "Index Only Scan"}, (statement.key, types)
        index_nodes = [n for n in pg_nodes(after, statement.key) if "Index Name" in n]
        assert index_nodes[0]["Index Name"] == "orders_customer_idx"


@pytest.mark.postgres
def test_pg_no_prepared_statement_or_transaction_is_left(pg_dsn: str, pg: Any) -> None:
    # One connection for everything, so the session's prepared statements are visible.
    from correlate.plans.capture import parse_url, postgresql

    session = postgresql.PostgresSession(parse_url(pg_dsn)[0], 5000, 1000)
    session.open()
    try:
        session.explain(Statement("a", f"select * from {PG_SCHEMA}.orders where id = %s"), False)
        session.explain(Statement("b", "select * from nowhere where id = %s"), False)
        left = session.conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
        assert left == 0
        assert session.conn.info.transaction_status == 0  # IDLE, not in a transaction
    finally:
        session.close()


@pytest.mark.postgres
def test_pg_untyped_parameter_is_retried_as_text(pg_dsn: str, pg: Any) -> None:
    result = explain_statements(
        pg_dsn,
        [("t", f"select * from {PG_SCHEMA}.orders where %(x)s is null or customer_id = %(y)s")],
    )
    captured = result.get("t")
    assert captured is not None and captured.ok, captured
    assert any("(text, unknown)" in c for c in captured.commands)


@pytest.mark.postgres
def test_pg_dml_is_explained_without_changing_rows(pg_dsn: str, pg: Any) -> None:
    before = pg_count(pg)
    result = explain_statements(
        pg_dsn,
        [
            ("update", f"update {PG_SCHEMA}.orders set status = %(s)s where customer_id = %(c)s"),
            ("delete", f"delete from {PG_SCHEMA}.orders where customer_id = %s"),
            ("insert", f"insert into {PG_SCHEMA}.orders (customer_id, status) values (%s, %s)"),
            ("delete_all", f"delete from {PG_SCHEMA}.orders"),
        ],
    )
    assert all(c.ok for c in result), result.failed
    ops = {c.key: c.plan[0]["Plan"].get("Operation") for c in result}
    assert ops == {
        "update": "Update",
        "delete": "Delete",
        "insert": "Insert",
        "delete_all": "Delete",
    }
    assert pg_count(pg) == before


@pytest.mark.postgres
def test_pg_failures_are_recorded_and_the_rest_explained(pg_dsn: str, pg: Any) -> None:
    result = explain_statements(
        pg_dsn,
        [
            ("ddl", f"create table {PG_SCHEMA}.other (a int)"),
            ("drop", f"drop table {PG_SCHEMA}.orders"),
            ("ok1", f"select * from {PG_SCHEMA}.orders where id = %s"),
            ("syntax", f"select * from {PG_SCHEMA}.orders where"),
            ("missing", f"select * from {PG_SCHEMA}.no_such_table where id = %s"),
            ("two", f"select 1; drop table {PG_SCHEMA}.orders"),
            ("ok2", f"select count(*) from {PG_SCHEMA}.orders"),
        ],
    )
    codes = {c.key: c.reason_code for c in result}
    assert codes == {
        "ddl": "not_explainable",
        "drop": "not_explainable",
        "ok1": None,
        "syntax": "syntax",
        "missing": "missing_object",
        "two": "refused",
        "ok2": None,
    }
    assert "no_such_table" in (result.get("missing").reason or "")  # type: ignore[union-attr]
    assert result.get("ok2").method == "explain_json"  # type: ignore[union-attr]
    exists = pg.execute(f"SELECT to_regclass('{PG_SCHEMA}.orders') IS NOT NULL").fetchone()[0]
    assert exists


@pytest.mark.postgres
def test_pg_analyze_times_out(pg_dsn: str, pg: Any) -> None:
    started = time.monotonic()
    result = explain_statements(
        pg_dsn,
        [
            ("slow", "SELECT count(*) FROM generate_series(1, 1000000000)"),
            ("sleep", "SELECT pg_sleep(10)"),
            ("after", "SELECT 1"),
        ],
        analyze=True,
        statement_timeout_ms=300,
    )
    assert time.monotonic() - started < 5
    slow = result.get("slow")
    assert slow is not None and slow.reason_code == "timeout"
    assert "statement timeout" in (slow.reason or "")
    # pg_sleep is volatile: never run, whatever the timeout.
    sleep = result.get("sleep")
    assert sleep is not None and sleep.reason_code == "refused" and not sleep.commands
    assert "pg_sleep(), a volatile function" in (sleep.reason or "")
    after = result.get("after")
    assert after is not None and after.method == "analyze"
    assert "Execution Time" in after.plan[0]


@pytest.mark.postgres
def test_pg_analyze_refuses_writes_and_runs_read_only(pg_dsn: str, pg: Any) -> None:
    before = pg_count(pg)
    result = explain_statements(
        pg_dsn,
        [
            ("delete", f"delete from {PG_SCHEMA}.orders"),
            (
                "cte",
                f"with d as (delete from {PG_SCHEMA}.orders returning id) select count(*) from d",
            ),
            # Reads by its first word but writes: the READ ONLY transaction stops it.
            ("nextval", f"select nextval('{PG_SCHEMA}.seq')"),
            ("select", f"select count(*) from {PG_SCHEMA}.orders"),
            ("params", f"select * from {PG_SCHEMA}.orders where id = %s"),
        ],
        analyze=True,
    )
    assert result.get("delete").reason_code == "refused"  # type: ignore[union-attr]
    assert result.get("cte").reason_code == "refused"  # type: ignore[union-attr]
    nextval = result.get("nextval")
    assert nextval is not None and nextval.reason_code == "refused"
    assert "nextval(), a volatile function" in (nextval.reason or "")
    assert pg.execute(f"SELECT last_value, is_called FROM {PG_SCHEMA}.seq").fetchone() == (1, False)
    selected = result.get("select")
    assert selected is not None and selected.method == "analyze"
    assert "Actual Rows" in selected.plan[0]["Plan"]
    params = result.get("params")
    assert params is not None and params.method == "prepare_force_generic" and params.note
    assert pg_count(pg) == before


@pytest.mark.postgres
def test_pg_lock_timeout(pg_dsn: str, pg: Any) -> None:
    import psycopg

    holder = psycopg.connect(pg_conninfo(pg_dsn))
    try:
        holder.execute(f"LOCK TABLE {PG_SCHEMA}.orders IN ACCESS EXCLUSIVE MODE")
        result = explain_statements(
            pg_dsn,
            [("locked", f"select * from {PG_SCHEMA}.orders where id = %s")],
            lock_timeout_ms=200,
        )
    finally:
        holder.rollback()
        holder.close()
    locked = result.get("locked")
    assert locked is not None and locked.reason_code == "lock_timeout", locked


@pytest.mark.postgres
def test_pg_connection_closed_on_keyboard_interrupt(
    pg_dsn: str, pg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from correlate.plans.capture import postgresql

    def interrupted(self: Any, statement: Statement, analyze: bool) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(postgresql.PostgresSession, "explain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        explain_statements(pg_dsn, [("a", "select 1")])
    # The server ends the backend a moment after the client hangs up.
    for _ in range(50):
        sessions = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'correlate-capture'"
        ).fetchone()[0]
        if sessions == 0:
            break
        time.sleep(0.05)
    assert sessions == 0


@pytest.mark.postgres
def test_pg_server_facts(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # libpq passes PGOPTIONS to the server: a session with a planner switch off.
    monkeypatch.setenv("PGOPTIONS", "-c enable_seqscan=off -c work_mem=8MB")
    result = explain_statements(pg_dsn, [])
    facts = result.server
    assert facts.dialect == "postgresql"
    assert facts.version[:2].isdigit()
    assert facts.settings["enable_seqscan"] == "off"
    assert facts.settings["work_mem"] == "8MB"
    assert {"random_page_cost", "effective_cache_size", "plan_cache_mode", "jit"} <= set(
        facts.settings
    )
    assert "enable_indexscan" not in facts.settings  # only the switches that are off


@pytest.mark.postgres
def test_pg_password_never_shown(
    pg_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_dsn)
    caplog.set_level(logging.DEBUG)
    # The test server trusts local users, so a password is accepted and ignored.
    ok = explain_statements(url.set(password=SECRET).render_as_string(False), [("a", "select 1")])
    assert SECRET not in repr(ok) and ":***@" in ok.url

    # A role that does not exist, and a port nothing listens on.
    for bad in (
        url.set(username="no_such_role_x", password=SECRET),
        url.set(port=1, password=SECRET),
    ):
        with pytest.raises(CaptureConnectionError) as info:
            explain_statements(bad.render_as_string(hide_password=False), [("a", "select 1")])
        message = str(info.value)
        assert SECRET not in message and SECRET not in info.value.url
        assert "port" in message and "password" in message
        # No chained driver exception to print a traceback (or a password) from.
        assert info.value.__cause__ is None and info.value.__suppress_context__

    # From the environment, as libpq reads it.
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with pytest.raises(CaptureConnectionError) as info:
        explain_statements(
            url.set(username="no_such_role_x").render_as_string(False), [("a", "select 1")]
        )
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


@pytest.mark.postgres
@pytest.mark.parametrize("parameter", ["password", "sslpassword", "passfile"])
def test_pg_secret_in_the_query_string_never_shown(
    pg_dsn: str,
    parameter: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from click.testing import CliRunner
    from sqlalchemy.engine import make_url

    import correlate
    from correlate.cli import cli
    from tests.test_plans_store import _run_file

    caplog.set_level(logging.DEBUG)
    bad = make_url(pg_dsn).set(username="no_such_role_x", query={parameter: SECRET})
    dsn = bad.render_as_string(hide_password=False)
    assert SECRET in dsn
    with pytest.raises(CaptureConnectionError) as info:
        explain_statements(dsn, [("a", "select 1")])
    assert SECRET not in str(info.value) and SECRET not in info.value.url
    assert f"{parameter}=***" in info.value.url
    # And as `correlate plans capture` prints it.
    db = tmp_path / "store.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([_run_file(tmp_path, "SELECT 1", "postgresql")], run="r")
    out = CliRunner().invoke(cli, ["plans", "capture", "--run", "r", "--dsn", dsn, "--db", str(db)])
    assert out.exit_code == 1 and "cannot connect" in out.output
    assert SECRET not in out.output and f"{parameter}=***" in out.output
    assert SECRET not in caplog.text and SECRET not in capsys.readouterr().err


# --- MariaDB ------------------------------------------------------------------------------------


def mysql_connect(dsn: str) -> Any:
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(dsn)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        autocommit=True,
    )


@pytest.fixture
def my(mysql_dsn: str) -> Iterator[Any]:
    """A pymysql connection with a fresh ``cct_orders`` table."""
    conn = mysql_connect(mysql_dsn)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cct_orders")
        cur.execute(
            "CREATE TABLE cct_orders (id int PRIMARY KEY AUTO_INCREMENT, customer_id int NOT NULL, "
            "status varchar(20) NOT NULL, created date NOT NULL) ENGINE=InnoDB"
        )
        rows = ", ".join(f"({i % 500}, 'new', '2024-01-{i % 28 + 1:02d}')" for i in range(5000))
        cur.execute(f"INSERT INTO cct_orders (customer_id, status, created) VALUES {rows}")
        cur.execute("ANALYZE TABLE cct_orders")
        cur.fetchall()
    try:
        yield conn
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS cct_orders")
        conn.close()


def my_count(conn: Any) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), sum(status = 'new') FROM cct_orders")
        total, new = cur.fetchone()
    return int(total), int(new)


@pytest.mark.mariadb
def test_mariadb_all_then_ref(mysql_dsn: str, my: Any) -> None:
    statements = [
        Statement("pyformat", "select * from cct_orders where customer_id = %(cid)s"),
        Statement("format", "select * from cct_orders o where o.customer_id = %s"),
    ]
    before = explain_statements(mysql_dsn, statements)
    assert before.server.dialect in ("mariadb", "mysql")
    assert "optimizer_switch" in before.server.settings
    for captured in before:
        assert captured.method == "explain_json", captured
        (table,) = mysql_tables(captured.plan)
        assert table["access_type"] == "ALL"

    with my.cursor() as cur:
        cur.execute("CREATE INDEX cct_orders_customer_idx ON cct_orders (customer_id)")
    after = explain_statements(mysql_dsn, statements)
    for captured in after:
        (table,) = mysql_tables(captured.plan)
        assert table["access_type"] == "ref", captured
        assert table["key"] == "cct_orders_customer_idx"


@pytest.mark.mariadb
def test_mariadb_literals_are_real_values(mysql_dsn: str, my: Any) -> None:
    result = explain_statements(
        mysql_dsn,
        [
            # a primary-key lookup of a value that does not exist would plan as "Impossible WHERE"
            ("pk", "select * from cct_orders where id = %s"),
            ("range", "select * from cct_orders where created between %s and %s limit %s"),
            ("in", "select * from cct_orders where customer_id in (%s, %s) and status = %s"),
        ],
    )
    pk = result.get("pk")
    assert pk is not None and pk.ok
    assert [t["access_type"] for t in mysql_tables(pk.plan)] == ["const"]
    assert result.get("range").sql.endswith("limit 10")  # type: ignore[union-attr]
    # The value read from the table is sent, but never shown: it may be a secret.
    in_list = result.get("in")
    assert in_list is not None and in_list.sql == (
        "select * from cct_orders where customer_id in (***, ***) and status = ***"
    )
    assert "'new'" not in json.dumps([in_list.plan, in_list.commands])


@pytest.mark.mariadb
def test_mariadb_dml_is_explained_without_changing_rows(mysql_dsn: str, my: Any) -> None:
    before = my_count(my)
    result = explain_statements(
        mysql_dsn,
        [
            ("update", "update cct_orders set status = %(s)s where customer_id = %(c)s"),
            ("delete", "delete from cct_orders where customer_id = %s"),
            ("insert", "insert into cct_orders (customer_id, status, created) values (%s, %s, %s)"),
            ("delete_all", "delete from cct_orders"),
        ],
    )
    assert all(c.method == "explain_json" for c in result), result.failed
    assert my_count(my) == before


@pytest.mark.mariadb
def test_mariadb_failures_are_recorded_and_the_rest_explained(mysql_dsn: str, my: Any) -> None:
    result = explain_statements(
        mysql_dsn,
        [
            ("ddl", "create table cct_other (a int)"),
            ("ok1", "select * from cct_orders where id = %s"),
            ("syntax", "select * from cct_orders where"),
            ("missing", "select * from cct_no_such_table"),
            ("ok2", "select count(*) from cct_orders"),
        ],
    )
    codes = {c.key: c.reason_code for c in result}
    assert codes == {
        "ddl": "not_explainable",
        "ok1": None,
        "syntax": "syntax",
        "missing": "missing_object",
        "ok2": None,
    }


@pytest.mark.mariadb
def test_mariadb_analyze_times_out_and_refuses_dml(mysql_dsn: str, my: Any) -> None:
    before = my_count(my)
    started = time.monotonic()
    result = explain_statements(
        mysql_dsn,
        [
            (
                "slow",
                "SELECT count(*) FROM information_schema.COLUMNS a, "
                "information_schema.COLUMNS b, information_schema.COLUMNS c",
            ),
            ("sleep", "SELECT SLEEP(10)"),
            ("delete", "delete from cct_orders"),
            ("select", "select count(*) from cct_orders"),
        ],
        analyze=True,
        statement_timeout_ms=300,
    )
    assert time.monotonic() - started < 5
    assert result.get("slow").reason_code == "timeout"  # type: ignore[union-attr]
    sleep = result.get("sleep")
    assert sleep is not None and sleep.reason_code == "refused" and not sleep.commands
    assert "SLEEP()" in (sleep.reason or "")
    assert result.get("delete").reason_code == "refused"  # type: ignore[union-attr]
    selected = result.get("select")
    assert selected is not None and selected.method == "analyze"
    assert "r_total_time_ms" in str(selected.plan) or isinstance(selected.plan, str)
    assert my_count(my) == before


@pytest.mark.mariadb
def test_mariadb_bad_password_is_not_shown(mysql_dsn: str) -> None:
    from sqlalchemy.engine import make_url

    bad = make_url(mysql_dsn).set(password=SECRET).render_as_string(hide_password=False)
    with pytest.raises(CaptureConnectionError) as info:
        explain_statements(bad, [("a", "select 1")])
    message = str(info.value)
    assert SECRET not in message
    assert "Access denied" in message and "password" in message and ":***@" in message


@pytest.mark.postgres
@pytest.mark.parametrize("tail", ["@TAIL1", "@TA@IL1", "/x@TAIL1"])
def test_pg_password_with_an_unescaped_at_never_shown(
    pg_dsn: str, tail: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """postgresql://u:Pa55@TAIL1@host/db: drivers would take TAIL1@host for the host and
    quote it; capture and watch refuse the URL and show none of the password."""
    from click.testing import CliRunner
    from sqlalchemy.engine import make_url

    import correlate
    from correlate.cli import cli
    from tests.test_plans_store import _run_file

    caplog.set_level(logging.DEBUG)
    url = make_url(pg_dsn)
    dsn = (
        f"{url.drivername}://{url.username}:Pa55{tail}@{url.host}:{url.port or 5432}/{url.database}"
    )
    with pytest.raises(CaptureConnectionError, match="write each '@' of the password as %40"):
        explain_statements(dsn, [("a", "select 1")])
    db = tmp_path / "store.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([_run_file(tmp_path, "SELECT 1", "postgresql")], run="r")
    capture = CliRunner().invoke(
        cli, ["plans", "capture", "--run", "r", "--dsn", dsn, "--db", str(db)]
    )
    watch = CliRunner().invoke(
        cli, ["watch", "--dsn", dsn, "--out", str(tmp_path / "w"), "--duration", "1s"]
    )
    for out in (capture, watch):
        assert out.exit_code == 1, out.output
        assert "%40" in out.output and f"{url.username}:***@{url.host}" in out.output
        for piece in ("Pa55", "TAIL1", "IL1", "TA@"):
            assert piece not in out.output, out.output
    assert "TAIL1" not in caplog.text and "IL1" not in caplog.text
