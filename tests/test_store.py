"""The run store: creation, schema versions, locking, queries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import correlate
from correlate.errors import (
    QueryError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
)
from correlate.schema import SCHEMA_VERSION
from correlate.store import Store

from .conftest import DATA

CHECKOUT = DATA / "otlp" / "checkout.jsonl"


def test_new_store_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with correlate.open_store(path) as store:
        version = store.con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == (str(SCHEMA_VERSION),)
    with correlate.open_store(path, read_only=True) as store:  # reopens cleanly
        assert store.runs().empty


def test_default_path_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRELATE_DB", str(tmp_path / "env.duckdb"))
    with correlate.open_store() as store:
        assert store.path == str(tmp_path / "env.duckdb")
    assert (tmp_path / "env.duckdb").exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    correlate.open_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(
        SchemaVersionError, match="written by a newer correlate .* upgrade correlate"
    ):
        correlate.open_store(path)


def test_older_schema_without_a_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    correlate.open_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(
        SchemaVersionError, match="store schema 0, which this correlate cannot migrate"
    ):
        correlate.open_store(path)
    with pytest.raises(SchemaVersionError, match="Open it once with a writing command"):
        correlate.open_store(path, read_only=True)


def test_migration_runs_when_one_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    correlate.open_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION - 1)])
    con.close()
    monkeypatch.setitem(
        correlate.schema.MIGRATIONS, SCHEMA_VERSION - 1, "CREATE TABLE migrated_marker (x INTEGER)"
    )
    with correlate.open_store(path) as store:
        assert store.sql("SELECT count(*) AS n FROM migrated_marker")["n"][0] == 0
        version = store.con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == (str(SCHEMA_VERSION),)


def _schema_1_ddl() -> str:
    """Schema 1 as it was: no load tables, client request ids required."""
    from correlate.schema import DDL, LOAD_DDL, TAG_SPAN_COLUMNS, WATCH_DDL

    optional_ids = "trace_id VARCHAR,\n    span_id VARCHAR,\n    method VARCHAR NOT NULL"
    comment = DDL[
        DDL.index("-- trace_id and span_id are NULL") : DDL.index("CREATE TABLE client_requests")
    ]
    assert DDL.count(optional_ids) == 1 and DDL.count(LOAD_DDL) == 1
    # Exactly schema 1's DDL: checked equal to correlate/schema.py at commit 1bd6e48.
    tag_columns = "".join(f",\n    {name} {type_}" for name, type_ in TAG_SPAN_COLUMNS)
    assert DDL.count(tag_columns) == 1
    # the db_spans view lists the span columns: schema 1's had no tag columns
    view_tags = "".join(f", s.{name}" for name, _ in TAG_SPAN_COLUMNS)
    assert DDL.count(view_tags) == 1
    return (
        DDL.replace(tag_columns, "")
        .replace(view_tags, "")
        .replace(WATCH_DDL, "")
        .replace(LOAD_DDL, "")
        .replace(comment, "")
        .replace(
            optional_ids,
            "trace_id VARCHAR NOT NULL,\n    span_id VARCHAR NOT NULL,\n    method VARCHAR NOT NULL",
        )
    )


def test_migration_from_schema_1_adds_the_load_tables(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(_schema_1_ddl())
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO client_requests VALUES (1, 1, ?, ?, 'GET', '/a', '/a', 10, 5, 200, true, NULL, 3, 1)",
        ["a" * 32, "b" * 16],
    )
    with pytest.raises(duckdb.ConstraintException):
        con.execute(
            "INSERT INTO client_requests VALUES (1, 1, NULL, NULL, 'GET', '/a', '/a', 10, 5, 200, true, NULL, 3, 1)"
        )
    con.close()
    with pytest.raises(SchemaVersionError, match="store schema 1"):
        correlate.open_store(path, read_only=True)
    with correlate.open_store(path) as store:
        con = store.con
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert con.execute(
            "SELECT count(*), any_value(trace_id) FROM client_requests"
        ).fetchone() == (
            1,
            "a" * 32,
        )
        con.execute(
            "INSERT INTO client_requests VALUES (1, 1, NULL, NULL, 'GET', '/a', '/a', 10, 5, 200, true, NULL, 0, 0)"
        )
        for table in ("load_samples", "load_summary", "load_thresholds", "load_failures"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        migrated = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    with correlate.open_store(tmp_path / "new.duckdb") as fresh:
        created = fresh.con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    assert migrated == created


def test_foreign_duckdb_file_and_garbage_file(tmp_path: Path) -> None:
    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a correlate store"):
        correlate.open_store(foreign)
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("not a database")
    with pytest.raises(StoreError, match="cannot open store .*garbage.duckdb"):
        correlate.open_store(garbage)


def test_read_only_open_of_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no store at .*: ingest a run first"):
        correlate.open_store(tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "missing.duckdb").exists()


def test_second_process_gets_store_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, correlate
                store = correlate.open_store({str(path)!r})
                print("open", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(
            StoreLockedError, match=r"store is locked: .*s\.duckdb is open in another process"
        ):
            correlate.open_store(path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the other process is gone the store opens and is intact.
    with correlate.open_store(path) as store:
        assert store.runs().empty


def test_runs_lists_counts_range_and_services(store: correlate.Store) -> None:
    store.ingest([CHECKOUT], run="smoke", labels={"branch": "main"})
    frame = store.runs()
    assert list(frame["name"]) == ["smoke"]
    row = frame.iloc[0]
    assert (row["spans"], row["traces"], row["files"], row["skipped"]) == (5, 2, 1, 0)
    assert row["services"] == "checkout"
    assert row["duration_s"] == pytest.approx(1.012)


def test_sql_returns_a_dataframe_and_wraps_errors(store: correlate.Store) -> None:
    store.ingest([CHECKOUT], run="r")
    frame = store.sql("SELECT kind, count(*) AS n FROM spans GROUP BY kind ORDER BY kind")
    assert frame.to_dict("records") == [{"kind": "CLIENT", "n": 3}, {"kind": "SERVER", "n": 2}]
    assert store.sql("SELECT ? AS x", [41 + 1])["x"][0] == 42
    with pytest.raises(QueryError, match="no_such_table"):
        store.sql("SELECT * FROM no_such_table")


def test_run_id_names_the_known_runs(store: correlate.Store) -> None:
    with pytest.raises(RunNotFoundError, match="holds no runs yet"):
        store.run_id("x")
    store.ingest([CHECKOUT], run="a")
    with pytest.raises(RunNotFoundError, match="no run named 'x' .*known runs: a"):
        store.run_id("x")
    assert store.run_id("a") == 1


def test_read_only_store_refuses_to_ingest(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    correlate.open_store(path).close()
    with (
        correlate.open_store(path, read_only=True) as store,
        pytest.raises(StoreError, match="read-only"),
    ):
        store.ingest([CHECKOUT], run="r")


def test_empty_run_name_is_refused(store: correlate.Store) -> None:
    with pytest.raises(correlate.CorrelateError, match="non-empty name"):
        store.ingest([CHECKOUT], run=" ")


def test_atomic_commits_together_and_nested_blocks_join_the_outer_one(store: Store) -> None:
    with store.atomic() as con:
        con.execute("INSERT INTO meta VALUES ('a', '1')")
        with store.atomic() as inner:
            inner.execute("INSERT INTO meta VALUES ('b', '2')")
    assert sorted(store.sql("SELECT key FROM meta WHERE key IN ('a', 'b')")["key"]) == ["a", "b"]


def test_atomic_rolls_back_everything_when_an_inner_block_fails(store: Store) -> None:
    with pytest.raises(RuntimeError), store.atomic() as con:
        con.execute("INSERT INTO meta VALUES ('outer', '1')")
        with store.atomic() as inner:
            inner.execute("INSERT INTO meta VALUES ('inner', '2')")
            raise RuntimeError("boom")
    assert store.sql("SELECT key FROM meta WHERE key IN ('outer', 'inner')").empty
    with store.atomic() as con:  # the store is usable again afterwards
        con.execute("INSERT INTO meta VALUES ('after', '3')")
    assert store.run_names() == []


def test_a_store_whose_key_merged_function_arguments_is_rekeyed_and_fingerprinted(
    tmp_path: Path,
) -> None:
    # schema 7's key collapsed any list of placeholders: coalesce($1, $2) and coalesce($1)
    # shared one key and so one statement row, whichever text came first
    from tests.builders import RunBuilder

    path = tmp_path / "s.duckdb"
    b = RunBuilder()
    r = b.request("t1", 0, 100, "/a")
    for n, sql in enumerate(["SELECT coalesce($1, $2) FROM t", "SELECT coalesce($1) FROM t"]):
        b.span("t1", 1 + n * 10, 5 + n * 10, parent=r, kind="CLIENT", db="postgresql", sql=sql)
    b.build(correlate.open_store(path)).close()
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM statements WHERE text = 'SELECT coalesce($1) FROM t'")
    con.execute("UPDATE statements SET key = 'placeholders: SELECT coalesce(?) FROM t'")
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.close()
    with correlate.open_store(path) as store:
        rows = store.con.execute(
            "SELECT db_statement, normalized FROM db_spans ORDER BY start_ns"
        ).fetchall()
    assert rows == [
        ("SELECT coalesce($1, $2) FROM t", "SELECT COALESCE($1, $2) FROM t"),
        ("SELECT coalesce($1) FROM t", "SELECT COALESCE($1) FROM t"),
    ]
