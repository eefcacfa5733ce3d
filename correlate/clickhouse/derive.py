"""Local ingest's DuckDB expressions and queries, for ClickHouse.

The canonical columns are derived by SQL that :mod:`correlate.ingest.canonical`,
:mod:`correlate.routes` and :mod:`correlate.schema` write once, for DuckDB, from the
tables in :mod:`correlate.semconv`. The views run the same SQL inside ClickHouse,
translated as the analysis is (:mod:`correlate.clickhouse.translate`), so no rule
exists twice.

>>> clickhouse_expr("regexp_replace(x, '^a', '')")
"replaceRegexpOne(x, '^a', '')"
"""

from __future__ import annotations

from correlate.clickhouse.translate import expression_to_clickhouse, to_clickhouse

__all__ = ["clickhouse_expr", "clickhouse_query"]


def clickhouse_expr(duckdb_sql: str) -> str:
    """The ClickHouse text of one DuckDB scalar expression."""
    return expression_to_clickhouse(duckdb_sql)


def clickhouse_query(duckdb_sql: str, database: str | None = None) -> str:
    """The ClickHouse text of one DuckDB statement; tables named without a database are
    read from ``database`` when given."""
    return to_clickhouse(duckdb_sql, database=database)
