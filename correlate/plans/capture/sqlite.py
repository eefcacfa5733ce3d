"""SQLite capture: ``EXPLAIN QUERY PLAN`` on a file opened read-only.

Placeholders are taken as they are; every one is written as ``?`` and bound to NULL,
which Python's sqlite3 requires and the plan does not look at (unless SQLite was built
with STAT4, which can re-plan for bound values).

What keeps the file safe from the text: it is opened through a ``mode=ro`` URI (the
file cannot be written through this connection) with ``PRAGMA query_only``; Python's
sqlite3 ``execute`` runs one statement and refuses text with a second one ("You can only
execute one statement at a time"), and the lexer refuses a ``;`` before that. ``EXPLAIN
QUERY PLAN`` executes nothing, and SQLite has no EXPLAIN ANALYZE, so ``analyze`` only
plans.
"""

from __future__ import annotations

import os

from correlate.fingerprint.placeholders import split_placeholders
from correlate.plans.capture.common import (
    CaptureConnectionError,
    CapturedPlan,
    ServerFacts,
    Session,
    Statement,
    refusal,
    refused,
)


class SQLiteSession(Session):
    dialect = "sqlite"

    def open(self) -> None:
        from urllib.parse import quote

        from sqlalchemy.engine import URL

        database = self.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            if not os.path.exists(database):
                raise CaptureConnectionError(
                    f"no SQLite database at {database}; check the path in the URL "
                    "(sqlite:///relative/path.db or sqlite:////absolute/path.db)",
                    self.shown,
                )
            # Read-only at the file level: nothing this session runs can write.
            self.url = URL.create(
                "sqlite+pysqlite",
                database=f"file:{quote(os.path.abspath(database))}",
                query={"mode": "ro", "uri": "true"},
            )
        elif database and database.startswith("file:"):
            # A URI the operator wrote: whatever mode it asked for, capture reads only.
            self.url = self.url.update_query_dict({"mode": "ro", "uri": "true"})
        super().open()
        self.conn.execute("PRAGMA query_only = ON")

    def rollback(self) -> None:
        self.conn.rollback()

    def facts(self) -> ServerFacts:
        import sqlite3

        return ServerFacts("sqlite", sqlite3.sqlite_version, {})

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import sqlite3

        split = split_placeholders(statement.text, "sqlite")
        why = refusal(statement.text, split, analyze)
        if why:
            return refused(statement, why)
        # Every placeholder becomes ``?`` bound to NULL: EXPLAIN QUERY PLAN does
        # not need values, but Python's sqlite3 insists on one per parameter.
        out = [piece if isinstance(piece, str) else "?" for piece in split.pieces]
        nulls = [None] * len(split.slots)
        sql = "".join(out).strip().rstrip(";").rstrip()
        note = "SQLite has no EXPLAIN ANALYZE; this is the plan only" if analyze else None
        command = f"EXPLAIN QUERY PLAN {sql}"
        try:
            cur = self.conn.execute(command, nulls)
            try:
                rows = [tuple(row) for row in cur.fetchall()]
            finally:
                cur.close()
        except sqlite3.Error as exc:
            message = str(exc)
            if "syntax error" in message or "incomplete input" in message:
                code = "syntax"
            elif message.startswith("no such"):
                code = "missing_object"
            else:
                code = "error"
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=sql,
                reason=message,
                reason_code=code,
                note=note,
                commands=(command,),
            )
        finally:
            self.rollback()
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=sql,
            method="explain_query_plan",
            plan=rows,
            note=note,
            commands=(command,),
        )
