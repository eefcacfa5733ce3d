"""ClickHouse: statements are fingerprinted; plans are not read or captured yet."""

from __future__ import annotations

from correlate.dialects.base import Dialect

CLICKHOUSE = Dialect(
    name="clickhouse",
    title="ClickHouse",
    db_systems=("clickhouse",),
    url_schemes=("clickhouse",),
    sqlglot="clickhouse",
    placeholders=("pyformat", "format"),
    identifier_quote="`",
)
