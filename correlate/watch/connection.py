"""The watcher's one database connection: opened, set up, and never leaking its password.

The watcher holds exactly one DBAPI connection at a time (SQLAlchemy parses the
URL and picks the driver; no pool), in autocommit so it never sits in a
transaction of its own. Every message that leaves this module goes through
:func:`scrub`, so the URL's password cannot reach a file, a log or an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from correlate.errors import DatabaseConnectionError
from correlate.redact import UNESCAPED_AT, redact_url, scrub, unescaped_at, url_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

#: How the watcher names itself to the server (PostgreSQL's application_name,
#: the MySQL connection attribute program_name).
APPLICATION_NAME = "correlate-watch"

__all__ = ["APPLICATION_NAME", "Target", "first_line", "open_target", "redact_url", "scrub"]


@dataclass
class Target:
    """A database to watch: its SQLAlchemy engine (no pool) and what to hide."""

    engine: Engine
    #: "postgresql" or "mysql" (MariaDB and MySQL; told apart after connecting)
    backend: str
    url: str
    secrets: tuple[str, ...]

    def scrub(self, message: str) -> str:
        return scrub(message, self.secrets)

    def connect(self) -> Any:
        """A new DBAPI connection in autocommit; the driver's or SQLAlchemy's error if not."""
        raw = self.engine.raw_connection()
        dbapi_conn: Any = raw.driver_connection
        if self.backend == "postgresql":
            dbapi_conn.autocommit = True
        else:
            dbapi_conn.autocommit(True)
        return raw

    def errors(self) -> tuple[type[BaseException], ...]:
        """The exception types a lost or failing connection raises."""
        from sqlalchemy.exc import DBAPIError

        dbapi = self.engine.dialect.dbapi
        return (DBAPIError, dbapi.Error) if dbapi is not None else (DBAPIError,)


def open_target(dsn: str, *, connect_timeout: float, statement_timeout_ms: int) -> Target:
    """Parse ``dsn`` and make an engine for it; nothing is connected yet."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    redacted = redact_url(dsn)
    if unescaped_at(dsn):
        raise DatabaseConnectionError(f"cannot use {redacted}: {UNESCAPED_AT}", redacted)
    if dsn.startswith("postgres://"):
        dsn = "postgresql://" + dsn[len("postgres://") :]
    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):
        raise DatabaseConnectionError(
            f"not a database URL: {redacted}; expected e.g. "
            "postgresql+psycopg://monitor@db:5432/shop",
            redacted,
        ) from None
    url, backend = _with_driver(url, redacted)
    secrets = tuple(url_secrets(url))
    timeout = max(1, round(connect_timeout))
    connect_args: dict[str, Any]
    if backend == "postgresql":
        connect_args = {"application_name": APPLICATION_NAME, "connect_timeout": timeout}
    else:
        # A client-side bound too, in case the server ignores its statement timeout.
        read_timeout = max(1, round(statement_timeout_ms / 1000) + 5)
        connect_args = {
            "connect_timeout": timeout,
            "read_timeout": read_timeout,
            "program_name": APPLICATION_NAME,
        }
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DatabaseConnectionError(
            f"cannot use {redacted}: {scrub(str(exc), secrets)} "
            "(pip install 'correlate[postgres]' or 'correlate[mysql]' for the drivers)",
            redacted,
        ) from None
    return Target(engine, backend, redacted, secrets)


def _with_driver(url: URL, redacted: str) -> tuple[URL, str]:
    backend = url.get_backend_name()
    # A bare scheme means psycopg2/mysqlclient to SQLAlchemy; correlate's drivers
    # are psycopg 3 and pymysql.
    if backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        return url, "postgresql"
    if backend in ("mysql", "mariadb"):
        if url.get_driver_name() in ("", "mysqldb"):
            url = url.set(drivername=f"{backend}+pymysql")
        return url, "mysql"
    raise DatabaseConnectionError(
        f"correlate watch reads PostgreSQL, MariaDB and MySQL, not {backend!r} ({redacted})",
        redacted,
    )


def first_line(exc: BaseException) -> str:
    """The driver's own message of a (possibly SQLAlchemy-wrapped) error, first line only."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0]
