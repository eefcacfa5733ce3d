"""Polling MariaDB and MySQL: the process list with each session's InnoDB transaction and lock wait.

One query per poll joins ``information_schema.PROCESSLIST`` to ``INNODB_TRX``
(which session holds a transaction, since when, and whether it waits on a lock)
and to the server's lock-wait view, found once at start:

- MariaDB: ``information_schema.INNODB_LOCK_WAITS`` and ``INNODB_LOCKS``;
- MySQL 8: ``performance_schema.data_lock_waits`` and ``data_locks``;
- neither: sessions only, ``lock_view`` null.

A session whose command is ``Sleep`` while it has an InnoDB transaction is
idle in a transaction. Seeing other users' sessions needs the ``PROCESS``
privilege, as do the InnoDB tables.
"""

from __future__ import annotations

from typing import Any

from correlate.watch.records import QUERY_TEXT_LIMIT
from correlate.watch.snapshot import Row, Snapshot, age, cut, fingerprint_id, us_to_ns

MARIADB_LOCKS = "information_schema.INNODB_LOCK_WAITS"
MYSQL_LOCKS = "performance_schema.data_lock_waits"

_LOCK_JOINS = {
    MARIADB_LOCKS: """
LEFT JOIN information_schema.INNODB_LOCK_WAITS w ON w.requesting_trx_id = t.trx_id
LEFT JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id
""",
    MYSQL_LOCKS: """
LEFT JOIN performance_schema.data_lock_waits w
       ON w.REQUESTING_ENGINE_TRANSACTION_ID = t.trx_id
LEFT JOIN information_schema.INNODB_TRX b ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID
LEFT JOIN performance_schema.data_locks l ON l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID
""",
}
_LOCK_COLUMNS = {
    MARIADB_LOCKS: "b.trx_mysql_thread_id, l.lock_type, l.lock_mode, l.lock_table",
    MYSQL_LOCKS: "b.trx_mysql_thread_id, l.LOCK_TYPE, l.LOCK_MODE, "
    "CONCAT(l.OBJECT_SCHEMA, '.', l.OBJECT_NAME)",
}

# Server threads, not clients.
_NOT_CLIENTS = (
    "'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO', 'Slave_SQL', 'Slave_worker'"
)

_ACTIVE = {"query", "execute", "prepare", "fetch", "long data", "reset stmt", "init db"}


def _us(expr: str) -> str:
    return f"CAST(UNIX_TIMESTAMP({expr}) * 1000000 AS SIGNED)"


def build_query(lock_view: str | None, time_ms: bool) -> str:
    """The poll for a server with ``lock_view`` and (MariaDB) ``PROCESSLIST.TIME_MS``."""
    time_expr = "p.TIME_MS" if time_ms else "p.TIME * 1000"
    if lock_view is None:
        lock_columns, lock_joins = "NULL, NULL, NULL, NULL", ""
    else:
        lock_columns, lock_joins = _LOCK_COLUMNS[lock_view], _LOCK_JOINS[lock_view]
    return f"""
SELECT {_us("n.t")} AS server_us,
       p.ID, p.USER, p.HOST, p.DB, p.COMMAND, {time_expr}, p.STATE,
       LEFT(p.INFO, {QUERY_TEXT_LIMIT}),
       {_us("t.trx_started")}, t.trx_state, {_us("t.trx_wait_started")},
       {lock_columns}
FROM (SELECT NOW(6) AS t) n
LEFT JOIN information_schema.PROCESSLIST p
       ON p.ID <> CONNECTION_ID() AND p.COMMAND NOT IN ({_NOT_CLIENTS})
LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
{lock_joins}"""


class MySqlSampler:
    """Polls one MariaDB or MySQL server."""

    prepare_queries = 3
    sample_queries = 1

    def __init__(self) -> None:
        self.database = "mysql"
        self.server_version: str | None = None
        self.lock_view: str | None = None
        self.query = build_query(None, time_ms=False)

    def prepare(self, cursor: Any, statement_timeout_ms: int) -> None:
        cursor.execute("SELECT VERSION()")
        row = cursor.fetchone()
        self.server_version = str(row[0]) if row else None
        mariadb = "mariadb" in (self.server_version or "").lower()
        self.database = "mariadb" if mariadb else "mysql"
        if mariadb:
            cursor.execute(f"SET SESSION max_statement_time = {statement_timeout_ms / 1000:.3f}")
        else:
            cursor.execute(f"SET SESSION max_execution_time = {int(statement_timeout_ms)}")
        cursor.execute(
            """
            SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES
            WHERE (TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'INNODB_LOCK_WAITS')
               OR (TABLE_SCHEMA = 'performance_schema' AND TABLE_NAME = 'data_lock_waits')
            UNION ALL
            SELECT 'TIME_MS' FROM information_schema.COLUMNS
            WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'PROCESSLIST'
              AND COLUMN_NAME = 'TIME_MS'
            """
        )
        found = {str(r[0]).lower() for r in cursor.fetchall()}
        for view in (MARIADB_LOCKS, MYSQL_LOCKS):
            if view.lower() in found:
                self.lock_view = view
                break
        self.query = build_query(self.lock_view, time_ms="time_ms" in found)

    def sample(self, cursor: Any) -> Snapshot:
        cursor.execute(self.query)
        return snapshot(cursor.fetchall(), self.database)


def snapshot(rows: list[tuple[Any, ...]] | tuple[tuple[Any, ...], ...], database: str) -> Snapshot:
    """Sessions and lock waits from the rows of :func:`build_query`'s query."""
    now = int(rows[0][0]) * 1000
    result = Snapshot(now)
    sessions: dict[int, Row] = {}
    for row in rows:
        if row[1] is None:  # no other session
            continue
        (
            _,
            pid,
            user,
            host,
            db,
            command,
            time_ms,
            state,
            info,
            trx_us,
            trx_state,
            wait_us,
            blocking,
            lock_type,
            lock_mode,
            relation,
        ) = row
        session_id = int(pid)
        query = cut(info)
        if session_id not in sessions:
            trx = us_to_ns(trx_us)
            state_age = None if time_ms is None else int(float(time_ms) * 1_000_000)
            change = None if state_age is None else now - state_age
            verb = (command or "").lower()
            if verb == "sleep":
                activity = "idle_in_transaction" if trx is not None else "idle"
            else:
                activity = "active" if verb in _ACTIVE else "other"
            waiting = (trx_state or "").upper() == "LOCK WAIT"
            sessions[session_id] = {
                "session_id": session_id,
                "activity": activity,
                "state": state or None,
                "command": command,
                "wait_event_type": "Lock" if waiting else None,
                "wait_event": "innodb_row_lock" if waiting else None,
                "user": user,
                "database": db,
                "client": host,
                "application": None,
                "backend_type": None,
                "session_start_unix_nano": None,
                "xact_start_unix_nano": trx,
                "query_start_unix_nano": change if activity == "active" else None,
                "state_change_unix_nano": change,
                "xact_age_ns": age(now, trx),
                "state_age_ns": state_age,
                "query": query,
                "fingerprint": fingerprint_id(query, database) if query else None,
            }
        if blocking is not None:
            session = sessions[session_id]
            result.lock_waits.append(
                {
                    "blocked_id": session_id,
                    "blocking_id": int(blocking),
                    "lock_type": lock_type,
                    "lock_mode": lock_mode,
                    "relation": _text(relation),
                    "wait_started_unix_nano": us_to_ns(wait_us),
                    "blocked_query": query,
                    "blocked_fingerprint": session["fingerprint"],
                    "blocking_query": None,
                }
            )
    result.sessions = list(sessions.values())
    for wait in result.lock_waits:
        blocker = sessions.get(wait["blocking_id"])
        wait["blocking_query"] = blocker["query"] if blocker else None
    return result


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
