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
* Even to plan, a statement may call only built-in functions: the servers evaluate some
  while planning (PostgreSQL: stable ones of constants; MariaDB/MySQL: whole derived
  tables). PostgreSQL refuses non-built-ins and the built-ins that read outside the
  statement's tables (``current_setting``, ``table_to_xml``, …); MariaDB/MySQL keep an
  allow-list. Values MariaDB/MySQL capture reads for placeholders are shown as ``***``.
* ``analyze=True`` **executes** statements that only read, call only built-in functions
  that cannot act (PostgreSQL: immutable or stable by ``pg_proc.provolatile``; MySQL: an
  allow-list), and have no placeholders (the span has no values for them). Anything
  else gets its reason.
* Passwords (in the URL, in its query string, in ``PGPASSWORD``/``MYSQL_PWD``) never
  appear in the result, in log records or in error messages (:mod:`correlate.redact`).
"""

from __future__ import annotations

from correlate.fingerprint.placeholders import to_numbered
from correlate.plans.capture.common import (
    EXPLAINABLE,
    READ_ONLY_STARTS,
    CaptureConnectionError,
    CapturedPlan,
    CaptureResult,
    ServerFacts,
    Statement,
)
from correlate.plans.capture.driver import explain_statements, parse_url
from correlate.redact import redact_url

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
