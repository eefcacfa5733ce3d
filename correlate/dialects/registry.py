"""The registry of dialects: canonical names, ``db.system`` aliases and URL schemes."""

from __future__ import annotations

from correlate.dialects.base import Dialect, UnknownDatabaseError
from correlate.dialects.clickhouse import CLICKHOUSE
from correlate.dialects.mysql import MARIADB, MYSQL
from correlate.dialects.others import DUCKDB, MSSQL, ORACLE
from correlate.dialects.postgresql import POSTGRESQL
from correlate.dialects.sqlite import SQLITE

#: Canonical name -> Dialect, in the order they are tried. Edit with :func:`register`.
DIALECTS: dict[str, Dialect] = {}
_BY_SYSTEM: dict[str, Dialect] = {}
_BY_SCHEME: dict[str, Dialect] = {}


def register(dialect: Dialect) -> Dialect:
    """Add ``dialect`` (or replace the one of the same name); its aliases win over older ones."""
    DIALECTS[dialect.name] = dialect
    for system in (dialect.name, *dialect.db_systems):
        _BY_SYSTEM[system.lower()] = dialect
    for scheme in dialect.url_schemes:
        _BY_SCHEME[scheme.lower()] = dialect
    return dialect


for _dialect in (POSTGRESQL, MYSQL, MARIADB, SQLITE, CLICKHOUSE, MSSQL, ORACLE, DUCKDB):
    register(_dialect)


def get(name: str) -> Dialect:
    """The dialect called ``name`` (canonical name or any ``db.system`` alias)."""
    dialect = for_db_system(name)
    if dialect is None:
        raise UnknownDatabaseError(
            f"unknown database {name!r}; known: {', '.join(sorted(DIALECTS))}"
        )
    return dialect


def for_db_system(value: str | None) -> Dialect | None:
    """The dialect a span's ``db.system``/``db.system.name`` names, or None."""
    if not value:
        return None
    return _BY_SYSTEM.get(value.strip().lower())


def url_scheme(url: str) -> str:
    """The backend part of a URL's scheme: ``postgresql+psycopg://…`` -> ``postgresql``.

    >>> url_scheme("MariaDB+pymysql://app@db/shop"), url_scheme("sqlite:///x.db")
    ('mariadb', 'sqlite')
    """
    return url.split(":", 1)[0].split("+", 1)[0].strip().lower() if ":" in url else ""


def for_url(url: str) -> Dialect:
    """The dialect a SQLAlchemy-style URL names by its scheme."""
    from correlate.redact import redact_url

    dialect = _BY_SCHEME.get(url_scheme(url))
    if dialect is None:
        raise UnknownDatabaseError(
            f"cannot tell which database {redact_url(url)} is: use a postgresql://, "
            "mysql://, mariadb:// or sqlite:/// URL"
        )
    return dialect
