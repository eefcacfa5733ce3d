"""SQLite."""

from __future__ import annotations

from correlate.dialects.base import Dialect

SQLITE = Dialect(
    name="sqlite",
    title="SQLite",
    db_systems=("sqlite",),
    url_schemes=("sqlite",),
    driver="pysqlite",
    sqlglot="sqlite",
    lexer="sqlite",
    plan_source="sqlite",
    placeholders=("qmark", "named"),
    identifier_quote='"',
    explains=("sqlite",),
    capture="correlate.plans.capture.sqlite:SQLiteSession",
)
