"""PostgreSQL, and databases that speak its SQL (CockroachDB)."""

from __future__ import annotations

from correlate.dialects.base import Dialect

POSTGRESQL = Dialect(
    name="postgresql",
    title="PostgreSQL",
    # ``postgres`` is what some instrumentations write; CockroachDB parses PostgreSQL.
    db_systems=("postgresql", "postgres", "cockroachdb"),
    # ``postgres://`` is the Heroku/libpq spelling SQLAlchemy does not accept.
    url_schemes=("postgresql", "postgres", "pgsql"),
    driver="psycopg",
    sqlglot="postgres",
    lexer="postgres",
    plan_source="postgresql",
    placeholders=("pyformat", "format", "dollar"),
    identifier_quote='"',
    explains=("postgresql",),
    capture="correlate.plans.capture.postgresql:PostgresSession",
)
