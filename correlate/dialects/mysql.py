"""MySQL and MariaDB: one SQL, two servers whose plans differ."""

from __future__ import annotations

from correlate.dialects.base import Dialect

MYSQL = Dialect(
    name="mysql",
    title="MySQL",
    db_systems=("mysql",),
    url_schemes=("mysql",),
    driver="pymysql",
    sqlglot="mysql",
    lexer="mysql",
    plan_source="mysql",
    placeholders=("pyformat", "format"),
    identifier_quote="`",
    # Either server plans either's statements; the server says which it is.
    explains=("mysql", "mariadb"),
    capture="correlate.plans.capture.mysql:MySQLSession",
)

MARIADB = Dialect(
    name="mariadb",
    title="MariaDB",
    db_systems=("mariadb",),
    url_schemes=("mariadb",),
    driver="pymysql",
    sqlglot="mysql",
    lexer="mysql",
    plan_source="mariadb",
    placeholders=("pyformat", "format"),
    identifier_quote="`",
    explains=("mysql", "mariadb"),
    capture="correlate.plans.capture.mysql:MySQLSession",
)
