"""Hostile statement texts against real servers: nothing but one planned statement runs.

Span statements are written by the service under test, so ``plans capture`` must treat
them as untrusted. Each server gets a canary table with rows and a table an attack would
drop; after every batch both must be intact, the capture's transactions must have
committed nothing, and a bystander session must still be alive.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.plans.capture import CaptureResult, explain_statements
from tests.test_plans_capture import mysql_connect, pg_conninfo

DROP_PG = "DROP TABLE victim.t2"
KILL = "SELECT pg_terminate_backend({pid})"

# (key, text, what capture must do): "plan" = planned, else the reason_code it records.
PG_CORPUS: list[tuple[str, str, str]] = [
    # x$y$ is an identifier to PostgreSQL, not a dollar quote hiding what follows.
    ("dollar-ident", f"SELECT 1 AS x$y$; COMMIT; {DROP_PG}; SELECT 1 AS z$y$", "refused"),
    ("dollar-quote", "SELECT $q$; COMMIT; DROP TABLE victim.t2;$q$ AS s", "plan"),
    # PostgreSQL ends a -- comment at \r.
    ("comment-cr", f"SELECT 1 -- note\r; COMMIT; {DROP_PG}", "refused"),
    ("comment-lf", f"SELECT 1 -- note; COMMIT; {DROP_PG}\n", "plan"),
    # Block comments nest: the first */ does not end this one.
    ("nested-hidden", f"SELECT /* a /* b */ ; COMMIT; {DROP_PG}; */ 1", "plan"),
    ("nested-after", f"SELECT /* a /* b */ */ 1; COMMIT; {DROP_PG}", "refused"),
    # E'' strings take \' as a quote; standard strings do not.
    ("e-string", f"SELECT E'\\'; COMMIT; {DROP_PG}; --' AS s", "plan"),
    ("e-backslash", f"SELECT E'\\\\'; COMMIT; {DROP_PG}; --'", "refused"),
    ("std-backslash", f"SELECT '\\'; COMMIT; {DROP_PG}; --'", "refused"),
    ("unicode", f"SELECT U&'\\0041'; COMMIT; {DROP_PG}", "refused"),
    ("quoted-ident", f'SELECT 1 AS "a;b"; COMMIT; {DROP_PG}', "refused"),
    ("quoted-ident-ok", 'SELECT 1 AS "a;b"', "plan"),
    ("placeholder", f"SELECT * FROM victim.canary WHERE id = %s; {DROP_PG}", "refused"),
    ("insert-commit", "INSERT INTO victim.canary VALUES (99); COMMIT; SELECT 1", "refused"),
    ("read-write", "SELECT 1; SET default_transaction_read_only = off", "refused"),
    ("commit", "COMMIT", "not_explainable"),
    ("drop", DROP_PG, "not_explainable"),
    ("explain-analyze", "EXPLAIN ANALYZE DELETE FROM victim.canary", "not_explainable"),
    ("unclosed", f"SELECT 'a; {DROP_PG}", "refused"),
    ("delete", "DELETE FROM victim.canary", "plan"),  # explained, never run
    (
        "cte-delete",
        "WITH d AS (DELETE FROM victim.canary RETURNING 1) SELECT count(*) FROM d",
        "plan",
    ),
    ("kill", KILL, "plan"),  # planned only: a plain EXPLAIN calls nothing volatile
    ("sleep", "SELECT pg_sleep(30)", "plan"),  # volatile: never evaluated while planning
    # The planner evaluates stable built-ins of constants, and a cast error quotes them.
    (
        "current-setting",
        "SELECT * FROM victim.canary WHERE id = CAST(current_setting('data_directory') AS int)",
        "refused",
    ),
    (
        "table-to-xml",
        "SELECT * FROM victim.canary WHERE id::text = "
        "CAST(table_to_xml('victim.secrets', true, true, '') AS text)::int::text",
        "refused",
    ),
    (
        "database-to-xml",
        "SELECT * FROM victim.canary WHERE id = %s AND "
        "id::text = CAST(pg_catalog.database_to_xml(true, true, '') AS text)::int::text",
        "refused",
    ),
    (
        "backend-activity",
        "SELECT * FROM victim.canary WHERE id = CAST(pg_stat_get_backend_activity(1) AS int)",
        "refused",
    ),
    ("txid", "SELECT txid_current()", "refused"),
    ("udf", "SELECT * FROM victim.canary WHERE id = victim.leak()", "refused"),
    ("user-operator", "SELECT 1 WHERE 0 OPERATOR(victim.<<<) 1", "refused"),
    ("user-operator-any", "SELECT 1 WHERE 0 OPERATOR(victim.<<<) ANY (SELECT 1)", "refused"),
    (
        "user-operator-using",
        "SELECT id FROM victim.canary ORDER BY id USING OPERATOR(victim.<<<)",
        "refused",
    ),
]
# Under --analyze: what may run runs, everything that could act is refused unsent.
PG_ANALYZE: list[tuple[str, str, str]] = [
    ("kill", KILL, "refused"),
    ("sleep", "SELECT pg_sleep(30)", "refused"),
    ("nextval", "SELECT nextval('victim.seq')", "refused"),
    ("set-config", "SELECT set_config('default_transaction_read_only', 'off', false)", "refused"),
    ("dblink", "SELECT * FROM dblink('dbname=x', 'DROP TABLE victim.t2') AS t(a int)", "refused"),
    ("advisory", "SELECT pg_advisory_lock(1)", "refused"),
    ("query-to-xml", f"SELECT query_to_xml('{DROP_PG}', true, true, '')", "refused"),
    (
        "cte-delete",
        "WITH d AS (DELETE FROM victim.canary RETURNING 1) SELECT count(*) FROM d",
        "refused",
    ),
    ("for-update", "SELECT * FROM victim.canary FOR UPDATE", "refused"),
    ("select-into", "SELECT * INTO victim.copy FROM victim.canary", "refused"),
    ("delete", "DELETE FROM victim.canary", "refused"),
    ("read", "SELECT count(*), max(id), now() FROM victim.canary", "plan"),
    ("txid", "SELECT txid_current()", "refused"),  # stable, yet assigns a transaction id
    ("xact-id", "SELECT pg_current_xact_id()", "refused"),
    # Operators outside an A_Expr: x OP ANY (subquery), ORDER BY … USING OP.
    ("operator-any", "SELECT 1 WHERE 0 OPERATOR(victim.<<<) ANY (SELECT 1)", "refused"),
    (
        "operator-using",
        "SELECT id FROM victim.canary ORDER BY id USING OPERATOR(victim.<<<)",
        "refused",
    ),
    ("operator", "SELECT 1 WHERE 0 OPERATOR(victim.<<<) 1", "refused"),
]


def _check(result: CaptureResult, corpus: list[tuple[str, str, str]]) -> None:
    for key, _text, expected in corpus:
        captured = result.get(key)
        assert captured is not None, key
        if expected == "plan":
            assert captured.ok, (key, captured.reason)
        else:
            assert captured.reason_code == expected, (key, captured.reason_code, captured.reason)
            if expected in ("refused", "not_explainable"):
                # Refused before the server saw it: nothing was sent for it.
                assert captured.commands == (), key


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def victim(pg_dsn: str) -> Iterator[Any]:
    """Schema ``victim``: a canary with rows, a table to drop, a sequence; and a bystander."""
    import psycopg

    conn = psycopg.connect(pg_conninfo(pg_dsn), autocommit=True)
    conn.execute("DROP SCHEMA IF EXISTS victim CASCADE")
    conn.execute("CREATE SCHEMA victim")
    conn.execute("CREATE TABLE victim.canary (id int PRIMARY KEY)")
    conn.execute("INSERT INTO victim.canary SELECT generate_series(1, 50)")
    conn.execute("CREATE TABLE victim.t2 (a int)")
    conn.execute("CREATE SEQUENCE victim.seq")
    conn.execute("CREATE TABLE victim.secrets (s text)")
    conn.execute("INSERT INTO victim.secrets VALUES ('SUPER-SECRET-ROW')")
    conn.execute(
        "CREATE FUNCTION victim.leak() RETURNS int STABLE LANGUAGE sql "
        "AS $$ SELECT s::int FROM victim.secrets $$"
    )
    # A volatile operator that would take 30 s, in the schema and on the search path.
    conn.execute(
        "CREATE FUNCTION victim.slow_lt(a int, b int) RETURNS bool VOLATILE LANGUAGE sql "
        "AS $$ SELECT pg_sleep(30) IS NOT NULL AND a < b $$"
    )
    conn.execute(
        "CREATE OPERATOR victim.<<< (LEFTARG = int, RIGHTARG = int, FUNCTION = victim.slow_lt)"
    )
    bystander = psycopg.connect(pg_conninfo(pg_dsn), autocommit=True)
    conn.bystander_pid = bystander.info.backend_pid  # type: ignore[attr-defined]
    try:
        yield conn
        _assert_pg_intact(conn, bystander)
    finally:
        bystander.close()
        conn.execute("DROP SCHEMA IF EXISTS victim CASCADE")
        conn.close()


def _assert_pg_intact(conn: Any, bystander: Any) -> None:
    assert conn.execute("SELECT count(*), sum(id) FROM victim.canary").fetchone() == (50, 1275)
    assert conn.execute("SELECT to_regclass('victim.t2') IS NOT NULL").fetchone() == (True,)
    assert conn.execute("SELECT to_regclass('victim.copy')").fetchone() == (None,)
    assert conn.execute("SELECT last_value, is_called FROM victim.seq").fetchone() == (1, False)
    # The bystander was not terminated, and no capture session is left behind.
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    left = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'correlate-capture'"
    ).fetchone()
    assert left == (0,)


def _pg_corpus(victim: Any, corpus: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    pid = victim.bystander_pid
    return [(key, text.format(pid=pid) if key == "kill" else text) for key, text, _ in corpus]


def _assert_nothing_leaked(result: CaptureResult, pg: Any) -> None:
    data_directory = pg.execute("SHOW data_directory").fetchone()[0]
    for captured in result:
        assert "SUPER-SECRET" not in (captured.reason or ""), captured.key
        assert data_directory not in (captured.reason or ""), captured.key


@pytest.mark.postgres
def test_pg_hostile_statements_are_refused_or_only_planned(pg_dsn: str, victim: Any) -> None:
    started = time.monotonic()
    result = explain_statements(pg_dsn, _pg_corpus(victim, PG_CORPUS), statement_timeout_ms=20_000)
    assert time.monotonic() - started < 10  # pg_sleep(30) and the operator did not run
    _check(result, PG_CORPUS)
    _assert_nothing_leaked(result, victim)
    setting = result.get("current-setting")
    assert setting is not None and "current_setting(), which reads outside" in (
        setting.reason or ""
    )
    udf = result.get("udf")
    assert udf is not None and "victim.leak(), not a built-in function" in (udf.reason or "")
    # What was sent is exactly one EXPLAIN of exactly the statement.
    hidden = result.get("nested-hidden")
    assert hidden is not None and hidden.commands == (
        f"EXPLAIN (SETTINGS, FORMAT JSON) {hidden.sql}",
    )


@pytest.mark.postgres
def test_pg_analyze_runs_only_what_cannot_act(pg_dsn: str, victim: Any) -> None:
    started = time.monotonic()
    result = explain_statements(
        pg_dsn, _pg_corpus(victim, PG_ANALYZE), analyze=True, statement_timeout_ms=20_000
    )
    assert time.monotonic() - started < 10  # the volatile operator did not run
    _check(result, PG_ANALYZE)
    _assert_nothing_leaked(result, victim)
    kill = result.get("kill")
    assert kill is not None and "pg_terminate_backend(), a volatile function" in (kill.reason or "")
    dblink = result.get("dblink")
    assert dblink is not None and "dblink(), which reads outside" in (dblink.reason or "")
    read = result.get("read")
    assert read is not None and read.method == "analyze"


@pytest.mark.postgres
def test_pg_capture_connection_cannot_run_two_statements_or_write(pg_dsn: str, victim: Any) -> None:
    """Below the parser check: the protocol and the session refuse on their own."""
    import psycopg

    from correlate.plans.capture import parse_url
    from correlate.plans.capture.postgresql import PostgresSession

    session = PostgresSession(parse_url(pg_dsn)[0], 5000, 1000)
    session.open()
    try:
        with session.conn.cursor() as cur:
            with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
                session._send(cur, f"SELECT 1; {DROP_PG}")
            session._send(cur, "SHOW default_transaction_read_only")
            assert cur.fetchone() == ("on",)
            # A COMMIT that slipped through would leave the next transaction read-only.
            session._send(cur, "COMMIT")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                session._send(cur, DROP_PG)
    finally:
        session.close()


def _spans_file(tmp_path: Path, texts: list[str], system: str) -> Path:
    trace = "1" * 32
    spans: list[dict[str, Any]] = [
        {"traceId": trace, "spanId": "a" * 16, "name": "GET /x", "kind": 2,
         "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
         "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}]},
    ]  # fmt: skip
    for i, text in enumerate(texts):
        spans.append(
            {
                "traceId": trace,
                "spanId": f"{i + 1:016x}",
                "parentSpanId": "a" * 16,
                "name": "query",
                "kind": 3,
                "startTimeUnixNano": str(1_000_000_000 + i * 1000),
                "endTimeUnixNano": str(1_000_000_000 + i * 1000 + 500),
                "attributes": [
                    {"key": "db.system", "value": {"stringValue": system}},
                    {"key": "db.statement", "value": {"stringValue": text}},
                ],
            }
        )
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    return path


@pytest.mark.postgres
def test_pg_plans_capture_cli_with_hostile_spans(pg_dsn: str, victim: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from correlate.cli import cli

    texts = [text for _, text in _pg_corpus(victim, PG_CORPUS + PG_ANALYZE)]
    db = tmp_path / "store.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([_spans_file(tmp_path, texts, "postgresql")], run="hostile")
    for analyze in ([], ["--analyze"]):
        out = CliRunner().invoke(
            cli,
            ["plans", "capture", "--run", "hostile", "--dsn", pg_dsn, "--db", str(db), *analyze],
        )
        assert out.exit_code == 0, out.output
        assert "not explained" in out.output
    with correlate.open_store(db, read_only=True) as store:
        reasons = store.sql("SELECT reason_code, count(*) AS n FROM plans GROUP BY ALL")
        assert set(reasons["reason_code"].dropna()) >= {"refused", "not_explainable"}


_FRAGMENTS = st.sampled_from(
    [
        "SELECT 1",
        " ",
        ";",
        "\r",
        "\n",
        "--",
        "/*",
        "*/",
        "'",
        "E'",
        "\\",
        '"',
        "$$",
        "$y$",
        " x$y$",
        "U&'",
        " COMMIT",
        f" {DROP_PG}",
        " INSERT INTO victim.canary VALUES (7)",
        " SET default_transaction_read_only = off",
        " AS a",
    ]
)


@pytest.mark.postgres
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    texts=st.lists(
        st.lists(_FRAGMENTS, min_size=1, max_size=10).map("".join), min_size=5, max_size=5
    ),
    analyze=st.booleans(),
)
def test_pg_random_texts_never_act(
    pg_dsn: str, victim: Any, texts: list[str], analyze: bool
) -> None:
    result = explain_statements(
        pg_dsn, [(str(i), "SELECT 1" + t) for i, t in enumerate(texts)], analyze=analyze
    )
    for captured in result:
        # Every command sent is one EXPLAIN/PREPARE of the statement or a fixed one of ours.
        assert len(captured.commands) <= 4
    bystander = victim.bystander_pid
    assert victim.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (bystander,)
    ).fetchone() == (1,)
    assert victim.execute("SELECT count(*) FROM victim.canary").fetchone() == (50,)
    assert victim.execute("SELECT to_regclass('victim.t2') IS NOT NULL").fetchone() == (True,)


# --- MariaDB ------------------------------------------------------------------------------------

DROP_MY = "DROP TABLE hostile_t2"
MY_CORPUS: list[tuple[str, str, str]] = [
    ("two", f"SELECT 1; {DROP_MY}", "refused"),
    ("hash-comment", f"SELECT 1 # note\n; {DROP_MY}", "refused"),
    ("hash-hidden", f"SELECT 1 # note ; {DROP_MY}", "plan"),
    ("dashes-no-space", f"SELECT 1 --1; {DROP_MY}", "refused"),
    ("dashes-space", f"SELECT 1 -- note; {DROP_MY}", "plan"),
    ("cr-comment", f"SELECT 1 -- note\r; {DROP_MY}", "plan"),  # MySQL ends it at \n only
    ("backslash", f"SELECT 'a\\'; {DROP_MY}; -- ' AS s", "plan"),
    ("backslash-dq", f'SELECT "a\\"; {DROP_MY}; -- " AS s', "plan"),
    ("doubled", f"SELECT 'a''; {DROP_MY}; -- '", "plan"),  # '' is a quote in the string
    ("executable", f"SELECT 1 /*! ; {DROP_MY} */", "refused"),
    ("executable-versioned", "SELECT 1 /*!50000 + SLEEP(5) */", "refused"),
    ("mariadb-executable", f"SELECT 1 /*M! ; {DROP_MY} */", "refused"),
    ("backtick", "SELECT `a;b` FROM hostile_canary", "missing_object"),
    ("delete", "DELETE FROM hostile_canary", "plan"),
    # MariaDB runs derived tables while explaining: calls are allow-listed even here.
    ("derived-lock", "SELECT * FROM (SELECT GET_LOCK('correlate_hostile', 0) AS g) x", "refused"),
    ("derived-sleep", "SELECT * FROM (SELECT SLEEP(30) AS s) x", "refused"),
    ("stored-function", "SELECT * FROM (SELECT `evil`(1) AS e) x", "refused"),
    # A comment between a name and its "(" hides nothing: the server calls the function.
    ("comment-call", "SELECT * FROM (SELECT SLEEP/**/(30) AS s) x", "refused"),
    ("hash-call", "SELECT * FROM (SELECT GET_LOCK#x\n('correlate_hostile', 0) AS g) x", "refused"),
    ("dashes-call", "SELECT * FROM (SELECT SLEEP-- x\n(30) AS s) x", "refused"),
    (
        "comment-exfil",
        "SELECT * FROM (SELECT EXTRACTVALUE/**/(1, CONCAT(0x7e, LOAD_FILE/**/"
        "(0x2f6574632f686f73746e616d65), (SELECT CONCAT(user, 0x3a, password) "
        "FROM mysql.user LIMIT 1))) AS s) x",
        "refused",
    ),
    (
        "comment-setval",
        "DELETE FROM hostile_canary WHERE id IN "
        "(SELECT v FROM (SELECT SETVAL/**/(hostile_seq, 525252) AS v) t)",
        "refused",
    ),
    ("next-value", "SELECT * FROM (SELECT NEXT VALUE FOR hostile_seq AS v) x", "refused"),
    # A qualified name is a stored function, even one named like an allowed built-in.
    ("qualified", "SELECT * FROM (SELECT {db}.concat(1) AS s) x", "refused"),
    ("qualified-quoted", "SELECT * FROM (SELECT `{db}` . /* x */ `concat` (1) AS s) x", "refused"),
    # MariaDB reads a no-break space as part of a name: concat\u00a0 is a stored function.
    ("nbsp", "SELECT * FROM (SELECT concat\u00a0(1) AS s) x", "refused"),
    ("tab-vt", "SELECT\t1\x0b+\x0c1 FROM hostile_canary", "plan"),
    ("hint", "SELECT /*+ MAX_EXECUTION_TIME(100000) */ * FROM hostile_canary", "refused"),
    ("builtin-concat", "SELECT * FROM (SELECT concat(1) AS s) x", "plan"),
    ("insert-columns", "INSERT INTO hostile_canary (id) VALUES (%s)", "plan"),
    ("insert-qualified", "INSERT INTO {db}.hostile_canary (id) VALUES (%s)", "plan"),
    ("kill", "KILL {conn_id}", "not_explainable"),
    ("drop", DROP_MY, "not_explainable"),
]
MY_ANALYZE: list[tuple[str, str, str]] = [
    ("sleep", "SELECT SLEEP(30)", "refused"),
    ("get-lock", "SELECT GET_LOCK('x', 10)", "refused"),
    ("benchmark", "SELECT BENCHMARK(100000000, MD5('a'))", "refused"),
    ("load-file", "SELECT LOAD_FILE('/etc/passwd')", "refused"),
    ("outfile", "SELECT * FROM hostile_canary INTO OUTFILE '/tmp/correlate-x'", "refused"),
    ("delete", "DELETE FROM hostile_canary", "refused"),
    ("read", "SELECT count(*), max(id), lower('A') FROM hostile_canary", "plan"),
]


@pytest.fixture
def my_victim(mysql_dsn: str) -> Iterator[Any]:
    conn = mysql_connect(mysql_dsn)
    bystander = mysql_connect(mysql_dsn)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS hostile_canary, hostile_t2")
        cur.execute("CREATE TABLE hostile_canary (id int PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(
            "INSERT INTO hostile_canary VALUES " + ", ".join(f"({i})" for i in range(1, 51))
        )
        cur.execute("CREATE TABLE hostile_t2 (a int)")
        cur.execute("DROP SEQUENCE IF EXISTS hostile_seq")
        cur.execute("CREATE SEQUENCE hostile_seq")
        # A stored function named like a built-in, reachable only by its qualified name.
        cur.execute("DROP FUNCTION IF EXISTS `concat`")
        cur.execute(
            "CREATE FUNCTION `concat`(x INT) RETURNS INT NOT DETERMINISTIC RETURN SLEEP(30)"
        )
        cur.execute("SELECT DATABASE()")
        conn.db = cur.fetchone()[0]
    conn.bystander_id = bystander.thread_id()
    try:
        yield conn
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(id) FROM hostile_canary")
            assert cur.fetchone() == (50, 1275)
            cur.execute(
                "SELECT count(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'hostile_t2'"
            )
            assert cur.fetchone() == (1,)
            # Sequences are not transactional: a value taken would stay taken.
            cur.execute("SELECT next_not_cached_value FROM hostile_seq")
            assert cur.fetchone() == (1,)
        with bystander.cursor() as cur:
            cur.execute("SELECT 1, IS_USED_LOCK('correlate_hostile')")
            assert cur.fetchone() == (1, None)
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS hostile_canary, hostile_t2")
            cur.execute("DROP SEQUENCE IF EXISTS hostile_seq")
            cur.execute("DROP FUNCTION IF EXISTS `concat`")
        bystander.close()
        conn.close()


def _my_corpus(conn: Any, corpus: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [
        (key, text.replace("{conn_id}", str(conn.bystander_id)).replace("{db}", conn.db))
        for key, text, _ in corpus
    ]


@pytest.mark.mariadb
def test_mariadb_hostile_statements_are_refused_or_only_planned(
    mysql_dsn: str, my_victim: Any
) -> None:
    started = time.monotonic()
    result = explain_statements(
        mysql_dsn, _my_corpus(my_victim, MY_CORPUS), statement_timeout_ms=20_000
    )
    # SLEEP(30) and the stored concat() would each take the full timeout had they run.
    assert time.monotonic() - started < 10
    _check(result, MY_CORPUS)
    for key in ("comment-exfil", "qualified"):
        captured = result.get(key)
        assert captured is not None and "mysql.user" not in (captured.reason or "")
    qualified = result.get("qualified-quoted")
    assert qualified is not None and f"`{my_victim.db}`.`concat`()" in (qualified.reason or "")


@pytest.mark.mariadb
def test_mariadb_analyze_runs_only_allowed_functions(mysql_dsn: str, my_victim: Any) -> None:
    result = explain_statements(mysql_dsn, _my_corpus(my_victim, MY_ANALYZE), analyze=True)
    _check(result, MY_ANALYZE)
    assert not Path("/tmp/correlate-x").exists()


@pytest.mark.mariadb
def test_mariadb_server_refuses_a_second_statement_on_the_capture_connection(
    mysql_dsn: str, my_victim: Any
) -> None:
    """The lexer is the second line: the connection itself cannot carry two statements."""
    import pymysql

    from correlate.plans.capture import parse_url
    from correlate.plans.capture.mysql import MySQLSession

    session = MySQLSession(parse_url(mysql_dsn)[0], 5000, 1000)
    session.open()
    try:
        with session.conn.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError):
            cur.execute(f"SELECT 1; {DROP_MY}")
    finally:
        session.close()


# --- SQLite -------------------------------------------------------------------------------------

SQLITE_CORPUS: list[tuple[str, str, str]] = [
    ("two", "SELECT 1; DROP TABLE t2", "refused"),
    ("cr-comment", "SELECT 1 -- note\r; DROP TABLE t2", "plan"),  # SQLite ends it at \n only
    ("lf-comment", "SELECT 1 -- note\n; DROP TABLE t2", "refused"),
    ("bracket", "SELECT [a;b] FROM canary", "missing_object"),
    ("bracket-drop", "SELECT [a]; DROP TABLE t2", "refused"),
    ("string", "SELECT 'a''; DROP TABLE t2; --'", "plan"),
    ("delete", "DELETE FROM canary", "plan"),
    ("attach", "ATTACH DATABASE 'x.db' AS x", "not_explainable"),
    ("pragma", "PRAGMA writable_schema = ON", "not_explainable"),
]


@pytest.fixture
def sqlite_victim(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "victim.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE canary (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO canary VALUES (?)", [(i,) for i in range(1, 51)])
    conn.execute("CREATE TABLE t2 (a int)")
    conn.commit()
    conn.close()
    yield path
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*), sum(id) FROM canary").fetchone() == (50, 1275)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't2'").fetchone() == (
            1,
        )
    finally:
        conn.close()


def test_sqlite_hostile_statements_are_refused_or_only_planned(sqlite_victim: Path) -> None:
    result = explain_statements(f"sqlite:///{sqlite_victim}", [(k, t) for k, t, _ in SQLITE_CORPUS])
    for key, _text, expected in SQLITE_CORPUS:
        captured = result.get(key)
        assert captured is not None
        if expected == "plan":
            assert captured.ok, (key, captured.reason)
        else:
            assert captured.reason_code == expected, (key, captured.reason)
    assert not (sqlite_victim.parent / "x.db").exists()


def test_sqlite_driver_runs_one_statement_per_execute(sqlite_victim: Path) -> None:
    """The driver enforces one statement per execute(), as capture relies on."""
    conn = sqlite3.connect(f"file:{sqlite_victim}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.ProgrammingError, match="one statement at a time"):
            conn.execute("EXPLAIN QUERY PLAN SELECT 1; DROP TABLE t2")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM canary")
    finally:
        conn.close()


_MY_FRAGMENTS = st.sampled_from(
    [
        " ",
        ";",
        "\r",
        "\n",
        "#",
        "--",
        "-- ",
        "/*",
        "/*!",
        "*/",
        "'",
        '"',
        "`",
        "\\",
        f" {DROP_MY}",
        " DELETE FROM hostile_canary",
        " COMMIT",
        " AS a",
    ]
)


@pytest.mark.mariadb
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    texts=st.lists(
        st.lists(_MY_FRAGMENTS, min_size=1, max_size=10).map("".join), min_size=5, max_size=5
    ),
    analyze=st.booleans(),
)
def test_mariadb_random_texts_never_act(
    mysql_dsn: str, my_victim: Any, texts: list[str], analyze: bool
) -> None:
    explain_statements(
        mysql_dsn, [(str(i), "SELECT 1" + t) for i, t in enumerate(texts)], analyze=analyze
    )
    with my_victim.cursor() as cur:
        cur.execute("SELECT count(*) FROM hostile_canary")
        assert cur.fetchone() == (50,)
        cur.execute(
            "SELECT count(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'hostile_t2'"
        )
        assert cur.fetchone() == (1,)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    texts=st.lists(
        st.lists(_FRAGMENTS | _MY_FRAGMENTS | st.just("["), min_size=1, max_size=10).map("".join),
        min_size=5,
        max_size=5,
    )
)
def test_sqlite_random_texts_never_act(sqlite_victim: Path, texts: list[str]) -> None:
    texts = [t.replace("victim.", "").replace("hostile_", "") for t in texts]
    explain_statements(
        f"sqlite:///{sqlite_victim}", [(str(i), "SELECT 1" + t) for i, t in enumerate(texts)]
    )
    conn = sqlite3.connect(sqlite_victim)
    try:
        assert conn.execute("SELECT count(*) FROM canary").fetchone() == (50,)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't2'").fetchone() == (
            1,
        )
    finally:
        conn.close()


def test_sqlite_uri_asking_for_rw_is_opened_read_only(sqlite_victim: Path) -> None:
    from correlate.plans.capture import parse_url
    from correlate.plans.capture.sqlite import SQLiteSession

    session = SQLiteSession(parse_url(f"sqlite:///file:{sqlite_victim}?mode=rw&uri=true")[0], 1, 1)
    session.open()
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            session.conn.execute("PRAGMA query_only = OFF")
            session.conn.execute("DELETE FROM canary")
    finally:
        session.close()


@pytest.mark.mariadb
def test_mariadb_unreadable_plan_is_one_statements_reason(
    mysql_dsn: str, my_victim: Any, tmp_path: Path
) -> None:
    """A NUL byte in a statement comes back raw inside MariaDB's JSON: that statement gets
    a reason, and every other statement its plan."""
    texts = [
        "SELECT count(*) FROM hostile_canary",
        "SELECT * FROM hostile_canary WHERE concat(id, 'a\x00b') = 'x'",
        "SELECT max(id) FROM hostile_canary",
    ]
    db = tmp_path / "store.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([_spans_file(tmp_path, texts, "mysql")], run="nul")
        report = store.capture_plans("nul", mysql_dsn)
        assert report.captured == 2, report.summary()
        [(fingerprint, reason)] = report.failed
        assert "the server's plan could not be read" in reason
        kept = store.sql("SELECT fingerprint, reason_code FROM plans WHERE reason IS NOT NULL")
        assert kept.to_dict("records") == [{"fingerprint": fingerprint, "reason_code": "error"}]


@pytest.mark.mariadb
def test_mariadb_sampled_values_are_never_kept(
    mysql_dsn: str, my_victim: Any, tmp_path: Path
) -> None:
    """A placeholder is filled with a real value of its column so the optimizer reads a
    real row; that value is masked in everything capture returns, stores and prints."""
    with my_victim.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS hostile_keys")
        cur.execute(
            "CREATE TABLE hostile_keys (id int PRIMARY KEY, api_key varchar(64) UNIQUE, "
            "pin bigint UNIQUE)"
        )
        cur.execute("INSERT INTO hostile_keys VALUES (1, 'sk_live_SUPERSECRET_123', 987654321)")
    texts = [
        "SELECT id FROM hostile_keys WHERE api_key = %s",
        "SELECT api_key FROM hostile_keys WHERE pin = %s",
    ]
    try:
        result = explain_statements(mysql_dsn, [(t, t) for t in texts])
        for captured in result:
            assert captured.ok, captured.reason
            shown = json.dumps([captured.sql, captured.plan, captured.commands, captured.reason])
            assert "SUPERSECRET" not in shown and "987654321" not in shown
            assert "***" in (captured.sql or "")
        db = tmp_path / "store.duckdb"
        with correlate.open_store(db) as store:
            store.ingest([_spans_file(tmp_path, texts, "mysql")], run="sampled")
            report = store.capture_plans("sampled", mysql_dsn)
            assert report.captured == 2, report.summary()
            stored = store.sql("SELECT * FROM plans").to_json(date_format="iso")
            assert "SUPERSECRET" not in stored and "987654321" not in stored
            nodes = store.sql("SELECT * FROM plan_nodes").to_json(date_format="iso")
            assert "SUPERSECRET" not in nodes and "987654321" not in nodes
        from correlate.reporting import report as render_report

        with correlate.open_store(db) as store:
            for fmt in ("markdown", "json", "html", "text"):
                text = render_report("sampled", store=store, format=fmt)
                assert "SUPERSECRET" not in text and "987654321" not in text, fmt
    finally:
        with my_victim.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS hostile_keys")
