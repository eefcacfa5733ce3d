"""Statement fingerprints for spans in ClickHouse: once per statement shape, in Python.

Local ingest keys every DB statement with the store's ``statement_key`` macro
(literals out, a trailing sqlcommenter comment off) and fingerprints one text per
key (:mod:`correlate.statements`). Here the same macros, transpiled from
:mod:`correlate.schema`, run inside ClickHouse; one representative text per distinct
(``db_system``, key) comes back, never one per span, is fingerprinted by
:func:`correlate.fingerprint.fingerprint_many`, and goes into a ``statements`` table
in the work database, with the store's ``db_spans`` view over it.
"""

from __future__ import annotations

from correlate.clickhouse.connection import Connection
from correlate.clickhouse.derive import clickhouse_expr, clickhouse_query
from correlate.clickhouse.otel_schema import quote_identifier

__all__ = ["db_spans_sql", "fingerprint_statements", "statement_key_sql", "strip_sqlcommenter_sql"]


def statement_key_sql(system: str, expr: str) -> str:
    """ClickHouse SQL for the store's ``statement_key(system, expr)`` macro (same regexes;
    the translation expands the macro from the store's DDL)."""
    return clickhouse_expr(f"statement_key({system}, {expr})")


def strip_sqlcommenter_sql(expr: str) -> str:
    """ClickHouse SQL for the store's ``strip_sqlcommenter(expr)`` macro."""
    return clickhouse_expr(f"strip_sqlcommenter({expr})")


def fingerprint_statements(conn: Connection, work_db: str = "correlate_work") -> tuple[int, int]:
    """Fingerprint each distinct statement shape of the ``spans`` view into ``work_db.statements``.

    One representative text per distinct (``db_system``, key) leaves ClickHouse,
    never one per span; each is fingerprinted by :func:`correlate.fingerprint.fingerprint_many`
    as local ingest does. Returns (distinct keys, DB spans).
    """
    import pyarrow as pa

    from correlate.fingerprint import fingerprint_many

    database = quote_identifier(work_db)
    key = statement_key_sql("db_system", "db_statement")
    strip = strip_sqlcommenter_sql("db_statement")
    result = conn.query_arrow(
        f"""SELECT db_system, {key} AS key, any({strip}) AS text, count() AS spans
FROM (SELECT db_system, db_statement FROM {database}.spans WHERE db_statement IS NOT NULL)
GROUP BY db_system, key"""
    )
    systems = result.column("db_system").to_pylist()
    keys = result.column("key").to_pylist()
    texts = result.column("text").to_pylist()
    found = fingerprint_many(zip(texts, systems, strict=True))
    rows = [found[(text, system)] for text, system in zip(texts, systems, strict=True)]
    table = pa.table(
        {
            "run_id": pa.array([1] * len(rows), pa.int32()),
            "db_system": pa.array(systems, pa.string()),
            "key": pa.array(keys, pa.string()),
            "text": pa.array(texts, pa.string()),
            "fingerprint": pa.array([f.id for f in rows], pa.string()),
            "normalized": pa.array([f.normalized for f in rows], pa.string()),
            "method": pa.array([f.method for f in rows], pa.string()),
            "operation": pa.array([f.operation or None for f in rows], pa.string()),
            "tables": pa.array([list(f.tables) for f in rows], pa.list_(pa.string())),
        }
    )
    conn.command(f"DROP TABLE IF EXISTS {database}.statements")
    conn.command(
        f"""CREATE TABLE {database}.statements (
    run_id Int32, db_system Nullable(String), key String, text String, fingerprint String,
    normalized String, method String, operation Nullable(String), tables Array(String)
) ENGINE = MergeTree ORDER BY key"""
    )
    if rows:
        conn.insert_arrow(f"{database}.statements", table)
    conn.command(f"CREATE OR REPLACE VIEW {database}.db_spans AS {db_spans_sql(work_db)}")
    spans = sum(result.column("spans").to_pylist())
    return len(rows), spans


def db_spans_sql(work_db: str) -> str:
    """ClickHouse text of the store's ``db_spans`` view over ``work_db``'s spans and statements."""
    from correlate.schema import DB_SPANS_VIEW

    select = DB_SPANS_VIEW[DB_SPANS_VIEW.index("SELECT") :].strip().rstrip(";")
    return clickhouse_query(select, work_db)
