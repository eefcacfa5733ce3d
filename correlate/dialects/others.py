"""Databases whose statements are fingerprinted but whose plans correlate cannot read."""

from __future__ import annotations

from correlate.dialects.base import Dialect

MSSQL = Dialect(
    name="mssql",
    title="SQL Server",
    db_systems=("mssql", "microsoft.sql_server"),
    url_schemes=("mssql",),
    sqlglot="tsql",
    lexer="tsql",
    placeholders=("qmark", "named"),
    identifier_quote="[",
)

ORACLE = Dialect(
    name="oracle",
    title="Oracle",
    db_systems=("oracle", "oracle.db"),
    url_schemes=("oracle",),
    sqlglot="oracle",
    # `:1` is a placeholder as `:name` is; comments do not nest, `$$` quotes nothing
    lexer="oracle",
    placeholders=("named", "numeric"),
)

DUCKDB = Dialect(
    name="duckdb",
    title="DuckDB",
    db_systems=("duckdb",),
    url_schemes=("duckdb",),
    sqlglot="duckdb",
    placeholders=("qmark", "dollar"),
)
