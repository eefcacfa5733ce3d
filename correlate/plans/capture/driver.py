"""Parse the URL, open the database's capture session, explain each statement."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from correlate.plans.capture.common import (
    CaptureConnectionError,
    CaptureResult,
    Session,
    Statement,
    log,
)
from correlate.redact import UNESCAPED_AT, redact_url, unescaped_at

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from correlate.dialects import Dialect


def parse_url(dsn: str) -> tuple[URL, Dialect]:
    """The SQLAlchemy URL (with this project's driver for a bare scheme) and its dialect."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from correlate.dialects import UnknownDatabaseError, for_url, url_scheme

    try:
        dialect = for_url(dsn)
    except UnknownDatabaseError:
        dialect = None
    scheme = url_scheme(dsn)
    if dialect is not None and scheme != dialect.url_schemes[0]:
        # postgres:// (Heroku, libpq) and other aliases: SQLAlchemy knows only the first.
        dsn = dialect.url_schemes[0] + dsn[len(scheme) :]
    if unescaped_at(dsn):
        shown = redact_url(dsn)
        raise CaptureConnectionError(f"cannot use {shown}: {UNESCAPED_AT}", shown)
    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):
        raise CaptureConnectionError(
            "not a database URL; pass one such as postgresql+psycopg://user@host:5432/db, "
            "mysql+pymysql://user@host:3306/db or sqlite:///path/to/file.db",
            redact_url(dsn),
        ) from None
    if dialect is None or dialect.capture is None:
        raise CaptureConnectionError(
            "live capture supports PostgreSQL, MariaDB/MySQL and SQLite, "
            f"not {dialect.title if dialect else repr(url.get_backend_name())}",
            redact_url(url),
        )
    # A bare scheme means psycopg2/mysqlclient to SQLAlchemy; the drivers this project
    # installs are psycopg 3 and pymysql.
    if dialect.driver and url.get_driver_name() in ("", "psycopg2", "mysqldb"):
        url = url.set(drivername=f"{url.get_backend_name()}+{dialect.driver}")
    return url, dialect


def explain_statements(
    dsn: str,
    statements: Iterable[Statement | tuple[str, str]],
    *,
    analyze: bool = False,
    statement_timeout_ms: int = 5000,
    lock_timeout_ms: int = 1000,
) -> CaptureResult:
    """Explain each statement against the live database at ``dsn`` (a SQLAlchemy URL).

    ``analyze=True`` **executes** each statement that only reads (see the module
    docstring) to get measured plans; the default only plans. Every statement runs in a
    read-only transaction that is rolled back, under ``statement_timeout_ms`` and
    ``lock_timeout_ms``. A statement that cannot be explained or is refused gets a
    ``reason`` and the capture goes on; a database that cannot be reached raises
    :class:`CaptureConnectionError`.
    """
    if statement_timeout_ms <= 0 or lock_timeout_ms <= 0:
        raise ValueError("statement_timeout_ms and lock_timeout_ms must be positive")
    url, dialect = parse_url(dsn)
    shown = redact_url(url)
    items = [s if isinstance(s, Statement) else Statement(*s) for s in statements]
    log.info("explaining %d statements on %s (analyze=%s)", len(items), shown, analyze)
    session: Session = dialect.session_class()(url, statement_timeout_ms, lock_timeout_ms)
    # Closing in ``finally`` covers KeyboardInterrupt too: no connection or open
    # transaction is left behind on the server.
    try:
        session.open()
        facts = session.facts()
        plans = [session.explain(item, analyze) for item in items]
    finally:
        session.close()
    return CaptureResult(url=shown, server=facts, analyze=analyze, plans=plans)
