"""Live capture: ask a running database how it would execute span statements.

>>> from correlate.plans.capture import Statement, explain_statements
>>> result = explain_statements(  # doctest: +SKIP
...     "postgresql+psycopg://app@db.internal/shop",
...     [Statement("fp-1", "select * from orders where customer_id = %(cid)s")],
... )
>>> result.plans[0].method, result.plans[0].plan[0]["Plan"]["Node Type"]  # doctest: +SKIP
('prepare_force_generic', 'Bitmap Heap Scan')

The raw plans come back untouched: PostgreSQL, MariaDB and MySQL as the parsed JSON
document, SQLite as the ``EXPLAIN QUERY PLAN`` rows (``id, parent, notused, detail``
tuples). A statement that cannot be explained, or that capture refuses to send, gets a
``reason`` (and a ``reason_code``) instead, and the capture goes on with the next one.

Statement texts come from spans, which the service under test wrote: they are
untrusted. Each database's module (:mod:`.postgresql`, :mod:`.mysql`, :mod:`.sqlite`)
says how its server is kept from running anything but one planned statement; in short:

* A plain EXPLAIN plans the statement and never executes it; INSERT, UPDATE and DELETE
  are explained, never run.
* A text is sent only once the server's own grammar (PostgreSQL: libpg_query) or a lexer
  with the server's quoting and comment rules reads it as exactly one statement, over a
  connection that cannot carry two (PostgreSQL's extended protocol, MySQL without
  multi-statements, sqlite3's one-statement ``execute``).
* Each statement runs in its own read-only transaction, rolled back, under a statement
  and a lock timeout; the PostgreSQL session is read-only by default, the SQLite file is
  opened read-only.
* ``analyze=True`` **executes** statements that only read, call only built-in functions
  that cannot act (PostgreSQL: immutable or stable by ``pg_proc.provolatile``; MySQL: an
  allow-list), and have no placeholders (the span has no values for them). Anything
  else gets its reason.
* Passwords (in the URL, in its query string, in ``PGPASSWORD``/``MYSQL_PWD``) never
  appear in the result, in log records or in error messages (:mod:`correlate.redact`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from correlate.fingerprint.placeholders import to_numbered
from correlate.plans.capture.common import (
    EXPLAINABLE,
    READ_ONLY_STARTS,
    CaptureConnectionError,
    CapturedPlan,
    CaptureResult,
    ServerFacts,
    Session,
    Statement,
    log,
)
from correlate.redact import redact_url

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from correlate.dialects import Dialect

__all__ = [
    "EXPLAINABLE",
    "READ_ONLY_STARTS",
    "CaptureConnectionError",
    "CaptureResult",
    "CapturedPlan",
    "ServerFacts",
    "Statement",
    "explain_statements",
    "parse_url",
    "redact_url",
    "to_numbered",
]


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
