"""``correlate sql``: ad-hoc SQL over a store that can read the store and nothing else.

A store holds text written by the service under test, and a query typed by a
user may come from a runbook or a chat message. So :func:`sql` opens its own
connection to the store file, read-only, with DuckDB's own safety switches:

* ``enable_external_access = false``: no file or URL is read or written
  (``COPY … TO``, ``EXPORT DATABASE``, ``ATTACH``, ``read_text``, ``glob``,
  ``read_csv`` all fail), and no extension is installed or loaded;
* ``autoinstall_known_extensions`` and ``autoload_known_extensions`` off, so
  a query naming ``https://…`` cannot fetch ``httpfs``;
* ``python_enable_replacements = false``, so a query cannot read Python
  variables of the process by name;
* ``lock_configuration = true``, so no ``SET`` can undo the above.

* ``allow_persistent_secrets = false``, so no secret is written to or read
  from ``~/.duckdb/stored_secrets``.

On top of those, the statement's type is checked with DuckDB's own parser
before anything runs: only queries (``SELECT``, ``WITH``, ``FROM``,
``VALUES``, ``SHOW``, ``DESCRIBE``, ``SUMMARIZE``) and ``EXPLAIN`` of a
query are allowed. ``EXPLAIN ANALYZE`` runs the statement it wraps, so the
wrapped statement is checked like any other: ``EXPLAIN ANALYZE COPY …`` is
refused as ``COPY`` is. One statement runs at a time (a second one's result
would hide the first's). ``allow_files=True`` (``--allow-files``) lifts the
ban on *reading* files (``read_csv``, ``read_parquet``, ``glob``); statements
that write (``COPY``, ``EXPORT``, ``ATTACH``), secrets and extensions stay
refused.

The store's own :meth:`~correlate.store.Store.sql`, which the library uses
internally, is not sandboxed: it runs on the connection the caller opened.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "store.duckdb")
>>> open_store(path).close()
>>> int(sql("SELECT count(*) AS n FROM spans", db=path)["n"][0])
0
>>> sql("COPY spans TO 'out.csv'", db=path)
Traceback (most recent call last):
...
correlate.errors.SandboxError: COPY is not allowed in correlate sql: it may only read the store (SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import QueryError, SandboxError, StoreError, StoreLockedError
from correlate.store import (
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_VAR,
    Store,
    default_store_path,
    open_store,
)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

#: What a sandboxed query may be, by DuckDB's statement type.
ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN")
ALLOWED_WORDS = "SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN"


def sandbox_config(*, allow_files: bool = False) -> dict[str, str | bool | int | float | list[str]]:
    """The DuckDB settings a sandboxed connection is opened with.

    >>> sandbox_config()["enable_external_access"], sandbox_config()["lock_configuration"]
    (False, True)
    """
    return {
        "access_mode": "READ_ONLY",
        "enable_external_access": allow_files,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,
        "memory_limit": os.environ.get(MEMORY_LIMIT_VAR) or DEFAULT_MEMORY_LIMIT,
        "lock_configuration": True,
    }


def open_sandbox(db: str | os.PathLike[str] | None = None, *, allow_files: bool = False) -> Store:
    """The store file ``db`` opened read-only in the sandbox (see the module's notes).

    The file must be a correlate store; it cannot be ``:memory:`` (a sandbox is
    a connection of its own) nor be open for writing in this process.
    """
    import duckdb

    location = str(db) if db is not None else default_store_path()
    if location == ":memory:":
        raise StoreError("correlate sql needs a store file, not :memory:")
    if not Path(location).exists():
        # the ordinary open says what to do next
        open_store(location, read_only=True).close()
    try:
        con = duckdb.connect(location, config=sandbox_config(allow_files=allow_files))
    except duckdb.ConnectionException as exc:
        raise StoreError(
            f"cannot open {location} for correlate sql: this process already has it open "
            f"with other settings (close that store first) [{exc}]"
        ) from None
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(location) from None
        raise StoreError(f"cannot open store {location}: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open store {location}: {exc}") from None
    try:
        _check_store(con, location)
    except BaseException:
        con.close()
        raise
    return Store(con, location, read_only=True)


def _check_store(con: duckdb.DuckDBPyConnection, location: str) -> None:
    from correlate.schema import SCHEMA_VERSION

    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    if "meta" not in tables:
        raise StoreError(f"{location} is not a correlate store (no meta table)")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row[0]) != SCHEMA_VERSION:
        raise StoreError(
            f"{location} has store schema {row[0] if row else 'unknown'}; this correlate "
            f"reads {SCHEMA_VERSION}. Open it once with a writing command (correlate ingest)"
        )


def check_statements(query: str) -> None:
    """:class:`SandboxError` unless ``query`` is one statement that only reads.

    >>> check_statements("EXPLAIN ANALYZE FROM spans")
    >>> check_statements("ATTACH 'other.duckdb' AS o")
    Traceback (most recent call last):
    ...
    correlate.errors.SandboxError: ATTACH is not allowed in correlate sql: it may only read the store (SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)
    >>> check_statements("EXPLAIN ANALYZE INSTALL httpfs")
    Traceback (most recent call last):
    ...
    correlate.errors.SandboxError: INSTALL/LOAD is not allowed in correlate sql, even inside EXPLAIN: it may only read the store (SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)
    """
    statements = _parse(query)
    if not statements:
        raise QueryError("no SQL statement given")
    # every statement is checked first, so a refused one is named as such
    for statement in statements:
        _check(statement.type.name, statement.query)
    if len(statements) > 1:
        raise QueryError(
            f"correlate sql runs one statement at a time; this query holds {len(statements)} "
            "(run them one by one)"
        )


def _parse(query: str) -> list[duckdb.Statement]:
    import duckdb

    try:
        return list(duckdb.extract_statements(query))
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from None


def _check(kind: str, text: str, *, inside: str = "") -> None:
    if kind not in ALLOWED_STATEMENTS:
        shown = {"LOAD": "INSTALL/LOAD", "SET": "SET/USE", "CALL": "CALL"}.get(kind, kind)
        raise SandboxError(
            f"{shown} is not allowed in correlate sql{inside}: it may only read the store "
            f"({ALLOWED_WORDS})"
        )
    if kind == "EXPLAIN":
        readings = [
            statements
            for candidate in _explained(text)
            if len(statements := _readings(candidate)) == 1
        ]
        if not readings:
            raise SandboxError(
                "correlate sql cannot tell which statement this EXPLAIN wraps; "
                "write it as EXPLAIN [ANALYZE] SELECT …"
            )
        for (statement,) in readings:
            if statement.type.name != "SELECT":
                _check(statement.type.name, statement.query, inside=", even inside EXPLAIN")


def _readings(text: str) -> list[duckdb.Statement]:
    try:
        return _parse(text)
    except QueryError:
        return []


def _explained(text: str) -> list[str]:
    """The texts that may be the statement an ``EXPLAIN`` wraps.

    DuckDB's Python API gives an EXPLAIN's type but not its inner statement's,
    so the prefix is taken off with DuckDB's tokenizer: ``EXPLAIN``, then
    ``ANALYZE``/``ANALYSE``, then an option list in parentheses. ``EXPLAIN
    (SELECT 1)`` reads both ways (options or a query in parentheses), so both
    readings are returned and each that parses must be a query.

    >>> _explained("EXPLAIN /* c */ ANALYZE (FORMAT JSON) COPY t TO 'x'")
    ["(FORMAT JSON) COPY t TO 'x'", "COPY t TO 'x'"]
    """
    import duckdb

    marks = duckdb.tokenize(text)
    ends = [offset for offset, _ in marks[1:]] + [len(text)]
    tokens = [
        (text[start:end].strip(), start, end)
        for (start, kind), end in zip(marks, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    if not tokens or tokens[0][0].upper() != "EXPLAIN":
        return []
    rest = tokens[1:]
    if rest and rest[0][0].upper() in ("ANALYZE", "ANALYSE"):
        rest = rest[1:]
    if not rest:
        return []
    candidates = [text[rest[0][1] :]]
    if rest[0][0] == "(":
        depth = 0
        for word, _, end in rest:
            depth += word.count("(") - word.count(")")
            if depth <= 0:
                candidates.append(text[end:])
                break
    return candidates


def sql(
    query: str,
    *,
    db: str | os.PathLike[str] | None = None,
    allow_files: bool = False,
) -> pd.DataFrame:
    """Run ``query`` over the store file ``db`` in the sandbox; ``correlate sql``'s twin.

    ``allow_files=True`` lets the query read files too (never write them).
    """
    import duckdb

    check_statements(query)
    with open_sandbox(db, allow_files=allow_files) as store:
        try:
            return store.con.execute(query).df()
        except duckdb.PermissionException as exc:
            hint = "" if allow_files else "; pass --allow-files (allow_files=True) to read files"
            raise SandboxError(
                f"not allowed in correlate sql: {_first_line(str(exc))}{hint}"
            ) from None
        except duckdb.Error as exc:
            raise QueryError(str(exc).strip()) from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


__all__ = ["ALLOWED_STATEMENTS", "check_statements", "open_sandbox", "sandbox_config", "sql"]
