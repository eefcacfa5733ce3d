"""``correlate sql`` may read the store and nothing else: no files, no other stores, no extensions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.errors import QueryError, SandboxError, StoreError
from correlate.sandbox import check_statements, open_sandbox, sandbox_config

from .builders import RunBuilder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.duckdb"
    b = RunBuilder()
    b.request("t1", 0, 10)
    b.request("t2", 5, 30, "/b")
    with correlate.open_store(path) as store:
        b.build(store)
    return path


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Path]:
    """Another store, which a query must not be able to touch."""
    path = tmp_path / "other.duckdb"
    b = RunBuilder(name="precious")
    b.request("t1", 0, 10)
    with correlate.open_store(path) as store:
        b.build(store)
    yield path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text("key\nhunter2\n")
    return path


def _spans(path: Path) -> int:
    with correlate.open_store(path, read_only=True) as store:
        return int(store.sql("SELECT count(*) AS n FROM spans")["n"][0])


def _sql(db: Path, query: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sql", query, "--db", str(db), *extra])
    return result.exit_code, result.output


def test_ordinary_queries_work(db: Path) -> None:
    code, out = _sql(db, "SELECT http_route, count(*) AS n FROM spans GROUP BY ALL ORDER BY 1")
    assert code == 0, out
    assert out.splitlines()[-1] == "(2 rows)"
    for query in ("SHOW TABLES", "DESCRIBE spans", "FROM runs", "EXPLAIN SELECT 1", "VALUES (1)"):
        assert _sql(db, query)[0] == 0, query
    assert correlate.sql("SELECT count(*) AS n FROM spans", db=db)["n"][0] == 2


def test_copy_to_writes_no_file(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "stolen.csv"
    for allow in ((), ("--allow-files",)):
        code, out = _sql(db, f"COPY spans TO '{target}'", *allow)
        assert code == 1
        assert out.startswith("Error: COPY is not allowed in correlate sql")
    assert not target.exists()


def test_export_database_writes_nothing(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "export"
    code, out = _sql(db, f"EXPORT DATABASE '{target}'", "--allow-files")
    assert code == 1
    assert "EXPORT is not allowed in correlate sql" in out
    assert not target.exists()


def test_attach_cannot_empty_another_store(db: Path, other: Path) -> None:
    query = f"ATTACH '{other}' AS o (READ_WRITE); DELETE FROM o.spans"
    for allow in ((), ("--allow-files",)):
        code, out = _sql(db, query, *allow)
        assert code == 1
        assert "ATTACH is not allowed in correlate sql" in out
    assert _spans(other) == 1


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM '{secret}'",
        "SELECT * FROM glob('{secret_dir}/*')",
    ],
)
def test_files_are_not_read(db: Path, secret: Path, query: str) -> None:
    code, out = _sql(db, query.format(secret=secret, secret_dir=secret.parent))
    assert code == 1
    assert out.startswith("Error: not allowed in correlate sql")
    assert "--allow-files" in out
    assert "hunter2" not in out


def test_allow_files_lifts_reads_only(db: Path, secret: Path, tmp_path: Path) -> None:
    code, out = _sql(
        db, f"SELECT key FROM read_csv('{secret}')", "--allow-files", "--format", "csv"
    )
    assert (code, out) == (0, "key\nhunter2\n")
    frame = correlate.sql(f"SELECT * FROM glob('{tmp_path}/*.csv')", db=db, allow_files=True)
    assert frame.file.tolist() == [str(secret)]


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("INSTALL httpfs", "INSTALL/LOAD"),
        ("LOAD httpfs", "INSTALL/LOAD"),
        ("SET enable_external_access = true", "SET/USE"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CALL pragma_version()", "CALL"),
        ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
        ("DELETE FROM spans", "DELETE"),
        ("SELECT 1; DROP TABLE spans", "DROP"),
        ("DETACH store", "DETACH"),
    ],
)
def test_only_reading_statements_run(db: Path, query: str, refused: str) -> None:
    code, out = _sql(db, query, "--allow-files")
    assert code == 1
    assert out.startswith(f"Error: {refused} is not allowed in correlate sql")
    assert _spans(db) == 2


def test_the_engine_refuses_too_without_the_statement_check(db: Path, tmp_path: Path) -> None:
    """The statement check is one layer; DuckDB's own switches hold without it."""
    target = tmp_path / "out.csv"
    with open_sandbox(db) as store:
        con = store.con
        for query in (
            f"COPY spans TO '{target}'",
            f"ATTACH '{tmp_path / 'new.duckdb'}' AS n",
            "SELECT * FROM read_text('/etc/hostname')",
            "LOAD httpfs",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(query)
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM spans")
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ("
                "'enable_external_access', 'lock_configuration', 'autoload_known_extensions', "
                "'autoinstall_known_extensions', 'access_mode')"
            ).fetchall()
        )
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "access_mode": "read_only",
    }
    assert not target.exists()
    assert not (tmp_path / "new.duckdb").exists()


def test_remote_files_need_an_extension_that_never_loads(db: Path) -> None:
    assert not sandbox_config(allow_files=True)["autoinstall_known_extensions"]
    with pytest.raises(QueryError, match="httpfs"):
        correlate.sql("SELECT * FROM 'https://example.invalid/x.csv'", db=db, allow_files=True)


def test_python_variables_are_not_tables(db: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"secret": ["hunter2"]})
    assert not frame.empty
    with pytest.raises(QueryError, match="frame"):
        correlate.sql("SELECT * FROM frame", db=db)


def test_check_statements_reports_syntax_errors_as_query_errors() -> None:
    with pytest.raises(QueryError, match="syntax error"):
        check_statements("SELEC 1")
    with pytest.raises(QueryError, match="no SQL statement"):
        check_statements("  ;")
    with pytest.raises(SandboxError):
        check_statements("SELECT 1; EXPORT DATABASE 'x'")


def test_the_internal_store_sql_is_unchanged(db: Path) -> None:
    with correlate.open_store(db) as store:
        store.sql("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
        assert store.sql("SELECT x FROM scratch")["x"].tolist() == [1]


def test_a_sandbox_needs_a_store_file(tmp_path: Path, db: Path) -> None:
    with pytest.raises(StoreError, match="not :memory:"):
        correlate.sql("SELECT 1", db=":memory:")
    with pytest.raises(StoreError, match="no store at"):
        correlate.sql("SELECT 1", db=tmp_path / "missing.duckdb")
    plain = tmp_path / "plain.duckdb"
    duckdb.connect(str(plain)).execute("CREATE TABLE t (x INT)").close()
    with pytest.raises(StoreError, match="not a correlate store"):
        correlate.sql("SELECT 1", db=plain)
    with correlate.open_store(db), pytest.raises(StoreError, match="already has it open"):
        correlate.sql("SELECT 1", db=db)


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("EXPLAIN ANALYZE COPY (SELECT trace_id FROM spans LIMIT 3) TO '{target}'", "COPY"),
        ("EXPLAIN ANALYSE COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN /* c */ ANALYZE COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN (ANALYZE) COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN (FORMAT JSON, ANALYZE) COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN ANALYZE (FORMAT JSON) COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN COPY spans TO '{target}'", "COPY"),
        ("EXPLAIN ANALYZE INSTALL httpfs", "INSTALL/LOAD"),
        ("EXPLAIN ANALYZE LOAD httpfs", "INSTALL/LOAD"),
        ("EXPLAIN ANALYZE CREATE PERSISTENT SECRET rv (TYPE http, BEARER_TOKEN 'x')", "CREATE"),
        ("EXPLAIN ANALYZE CREATE SECRET rv (TYPE http, BEARER_TOKEN 'x')", "CREATE"),
        ("EXPLAIN ANALYZE INSERT INTO spans SELECT * FROM spans", "INSERT"),
        ("EXPLAIN ANALYZE DELETE FROM spans", "DELETE"),
        ("EXPLAIN ANALYZE UPDATE spans SET name = 'x'", "UPDATE"),
    ],
)
def test_explain_does_not_smuggle_a_statement(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, refused: str
) -> None:
    """EXPLAIN ANALYZE runs what it wraps, so what it wraps is checked like any statement."""
    monkeypatch.setenv("HOME", str(tmp_path))
    target = tmp_path / "pwn.csv"
    for allow in ((), ("--allow-files",)):
        code, out = _sql(db, query.format(target=target), *allow)
        assert code == 1, out
        assert out.startswith(
            f"Error: {refused} is not allowed in correlate sql, even inside EXPLAIN"
        ), out
    assert not target.exists()
    assert not (tmp_path / ".duckdb").exists()
    assert _spans(db) == 2


@pytest.mark.parametrize(
    "query",
    [
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT count(*) FROM spans",
        "explain /* why */ analyse select 1",
        "EXPLAIN (SELECT 1)",
        "EXPLAIN ((SELECT 1) UNION (SELECT 2))",
        "EXPLAIN (FORMAT JSON) SELECT 1",
        "EXPLAIN (ANALYZE, FORMAT JSON) FROM spans",
        "EXPLAIN ANALYZE WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "EXPLAIN SUMMARIZE spans",
    ],
)
def test_explain_of_a_query_still_works(db: Path, query: str) -> None:
    code, out = _sql(db, query, "--allow-files")
    assert code == 0, out


def test_persistent_secrets_are_off_even_with_files() -> None:
    assert sandbox_config(allow_files=True)["allow_persistent_secrets"] is False


def test_one_statement_at_a_time(db: Path) -> None:
    """Only the last statement's result would be shown, so more than one is refused."""
    code, out = _sql(db, "SELECT 1 AS a; SELECT 2 AS b")
    assert code == 1
    assert out == (
        "Error: correlate sql runs one statement at a time; this query holds 2 "
        "(run them one by one)\n"
    )
    with pytest.raises(QueryError, match="one statement at a time"):
        correlate.sql("FROM spans; FROM runs", db=db)
    assert _sql(db, "SELECT 1 AS a;")[0] == 0
    assert _sql(db, "SELECT 1 AS a; -- trailing comment")[0] == 0
