"""The private ClickHouse database an analysis of a ClickHouse source works in.

The analysis reads the local store's tables (:mod:`correlate.schema`) by name.
Against a ClickHouse source they live in a work database of its own, made for
one analysis and dropped after it: ``spans`` is a view over the exporter's
``otel_traces``, and every other table is created here with the store's
columns, its ClickHouse types derived from the store's DuckDB DDL (never a
second hand-kept copy), empty or filled from a local run (plans and load
results stay in the local store and are uploaded for the analysis).

>>> print(clickhouse_type("STRUCT(time_ns BIGINT, name VARCHAR)[]"))
Array(Tuple(`time_ns` Nullable(Int64), `name` Nullable(String)))
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import TYPE_CHECKING, Any

from correlate.clickhouse.otel_schema import quote_identifier

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from correlate.clickhouse.engine import ClickHouse

#: Tables the analysis never reads from a work database: the store's own
#: bookkeeping, and those built from the source (views and fingerprints).
NOT_CREATED = frozenset({"meta", "spans", "statements", "pool_samples"})

_SCALARS = {
    "BOOLEAN": "Bool",
    "TINYINT": "Int8",
    "SMALLINT": "Int16",
    "INTEGER": "Int32",
    "BIGINT": "Int64",
    "HUGEINT": "Int128",
    "UTINYINT": "UInt8",
    "USMALLINT": "UInt16",
    "UINTEGER": "UInt32",
    "UBIGINT": "UInt64",
    "FLOAT": "Float32",
    "DOUBLE": "Float64",
    "VARCHAR": "String",
    # the JSON text as it is: the translated analysis reads keys with JSONExtract
    "JSON": "String",
    "TIMESTAMP WITH TIME ZONE": "DateTime64(6, 'UTC')",
    "TIMESTAMP": "DateTime64(6)",
    "DATE": "Date32",
}


def work_database_name() -> str:
    """A fresh name for a work database: one per analysis, never reused."""
    return f"correlate_work_{secrets.token_hex(6)}"


def clickhouse_type(duckdb_type: str, *, nullable: bool = True) -> str:
    """The ClickHouse type that holds what a DuckDB column of ``duckdb_type`` holds.

    Scalars are ``Nullable`` when ``nullable``; arrays, maps and tuples cannot be in
    ClickHouse, so an absent list is read back as an empty one.
    """
    text = duckdb_type.strip()
    if text.endswith("[]"):
        return f"Array({clickhouse_type(text[:-2])})"
    upper = text.upper()
    if upper.startswith("STRUCT(") and text.endswith(")"):
        fields = [
            f"{quote_identifier(name.strip(chr(34)))} {clickhouse_type(kind)}"
            for name, kind in _fields(text[len("STRUCT(") : -1])
        ]
        return f"Tuple({', '.join(fields)})"
    if upper.startswith("MAP(") and text.endswith(")"):
        key, value = _split(text[len("MAP(") : -1])
        return f"Map({clickhouse_type(key, nullable=False)}, {clickhouse_type(value)})"
    scalar = _SCALARS.get(upper)
    if scalar is None:
        raise ValueError(f"no ClickHouse type for the store's column type {duckdb_type!r}")
    return f"Nullable({scalar})" if nullable else scalar


def _split(text: str) -> list[str]:
    """``text`` split at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _fields(text: str) -> list[tuple[str, str]]:
    out = []
    for part in _split(text):
        match = re.match(r'("[^"]+"|\w+)\s+(.*)$', part, re.S)
        if match is None:
            raise ValueError(f"cannot read the struct field {part!r}")
        out.append((match.group(1), match.group(2)))
    return out


@functools.cache
def store_tables() -> dict[str, tuple[tuple[str, str, bool], ...]]:
    """Every table of the store's schema: ``name -> ((column, DuckDB type, nullable), …)``.

    Read from a throwaway DuckDB store made with :data:`correlate.schema.DDL`, so the
    work database follows the schema as it changes.
    """
    import duckdb

    from correlate.schema import DDL

    con = duckdb.connect()
    try:
        con.execute(DDL)
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name IN (SELECT table_name FROM "
            "information_schema.tables WHERE table_type = 'BASE TABLE') "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, kind, nullable in rows:
        tables.setdefault(str(table), []).append((str(column), str(kind), bool(nullable)))
    return {name: tuple(columns) for name, columns in tables.items()}


def table_ddl(database: str, table: str) -> str:
    """``CREATE TABLE`` of the store's ``table`` in ``database``, as a Memory table."""
    columns = ",\n    ".join(
        f"{quote_identifier(column)} {clickhouse_type(kind, nullable=nullable)}"
        for column, kind, nullable in store_tables()[table]
    )
    return (
        f"CREATE TABLE {quote_identifier(database)}.{quote_identifier(table)} (\n"
        f"    {columns}\n) ENGINE = Memory"
    )


def create_tables(conn: ClickHouse, database: str, tables: tuple[str, ...] | None = None) -> None:
    """Create the store's tables (all but :data:`NOT_CREATED`, or ``tables``) in ``database``."""
    names = tables if tables is not None else tuple(sorted(set(store_tables()) - NOT_CREATED))
    for name in names:
        conn.command(table_ddl(database, name))


#: How a local run's rows are picked per table: by run, or through the run's files/plans.
_ROWS_OF_RUN = {
    "problems": "file_id IN (SELECT file_id FROM files WHERE run_id = $run)",
    "plan_nodes": "plan_id IN (SELECT plan_id FROM plans WHERE run_id = $run)",
    "plan_insights": "plan_id IN (SELECT plan_id FROM plans WHERE run_id = $run)",
}


def upload_run(
    local: duckdb.DuckDBPyConnection,
    local_run_id: int,
    conn: ClickHouse,
    database: str,
    run_id: int,
    tables: tuple[str, ...],
) -> int:
    """Copy a local run's rows of ``tables`` into ``database``, renumbered as run ``run_id``.

    Returns the rows copied. The tables must exist in ``database`` already.
    """
    copied = 0
    for table in tables:
        columns = [column for column, _, _ in store_tables()[table]]
        where = _ROWS_OF_RUN.get(table, "run_id = $run")
        select = ", ".join("$new AS run_id" if c == "run_id" else f'"{c}"' for c in columns)
        copied += _copy(
            local,
            f"SELECT {select} FROM {table} WHERE {where}",
            local_run_id,
            run_id,
            conn,
            f"{quote_identifier(database)}.{quote_identifier(table)}",
        )
    return copied


def upload_like(
    local: duckdb.DuckDBPyConnection,
    local_run_id: int,
    conn: ClickHouse,
    database: str,
    target: str,
    table: str,
    run_id: int,
) -> int:
    """Copy a local run's rows of ``table`` into ``database.target`` (made like the
    source's view of ``table``), renumbered as run ``run_id``; a NULL list as empty."""
    kinds = dict((c, k) for c, k, _ in store_tables()[table])
    select = ", ".join(
        "$new AS run_id"
        if c == "run_id"
        else f'coalesce("{c}", []) AS "{c}"'
        if kinds[c].endswith("[]")
        else f'"{c}"'
        for c in kinds
    )
    return _copy(
        local,
        f"SELECT {select} FROM {table} WHERE run_id = $run",
        local_run_id,
        run_id,
        conn,
        f"{quote_identifier(database)}.{quote_identifier(target)}",
    )


def _copy(
    local: duckdb.DuckDBPyConnection, sql: str, run: int, new: int, conn: ClickHouse, target: str
) -> int:
    # both are ints of ours, never trace text
    text = sql.replace("$run", str(int(run))).replace("$new", str(int(new)))
    cursor = local.cursor()  # the store's connection may hold an unfinished result
    try:
        data = cursor.sql(text).to_arrow_table()
    finally:
        cursor.close()
    if hasattr(data, "read_all"):
        data = data.read_all()
    if data.num_rows:
        conn.insert_arrow(target, plain_arrow(data))
    return int(data.num_rows)


def plain_arrow(data: pa.Table) -> pa.Table:
    """``data`` with DuckDB's extension types (JSON) as the strings they hold."""
    import pyarrow as pa

    def plain(kind: Any) -> Any:
        if isinstance(kind, pa.ExtensionType):
            return plain(kind.storage_type)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return pa.list_(pa.field(kind.value_field.name, plain(kind.value_type)))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in kind])
        if pa.types.is_map(kind):
            return pa.map_(plain(kind.key_type), plain(kind.item_type))
        return kind

    columns = []
    for column in data.columns:
        target = plain(column.type)
        if isinstance(column.type, pa.ExtensionType):
            column = pa.chunked_array([c.storage for c in column.chunks], target)
        elif target != column.type:
            column = column.cast(target)
        columns.append(column)
    return pa.table(columns, names=data.column_names)


__all__ = [
    "NOT_CREATED",
    "clickhouse_type",
    "create_tables",
    "plain_arrow",
    "store_tables",
    "table_ddl",
    "upload_like",
    "upload_run",
    "work_database_name",
]
