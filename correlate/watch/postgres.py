"""Polling PostgreSQL: ``pg_stat_activity`` and who blocks whom, in one round trip.

``pg_blocking_pids()`` takes the lock manager's locks for a moment, so it is
called only for sessions waiting on a lock (``wait_event_type = 'Lock'``), and
``pg_locks`` is read only for those too (a gating condition PostgreSQL checks
before scanning). Client backends only; the watcher's own session is left out.
A role with ``pg_monitor`` sees every session's query; without it, other
users' queries read ``<insufficient privilege>``.
"""

from __future__ import annotations

from typing import Any

from correlate.watch.records import QUERY_TEXT_LIMIT
from correlate.watch.snapshot import Row, Snapshot, age, cut, fingerprint_id, us_to_ns


def _us(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


QUERY = f"""
SELECT {_us("n.t")} AS server_us,
       a.pid, a.state, a.wait_event_type, a.wait_event,
       {_us("a.backend_start")}, {_us("a.xact_start")},
       {_us("a.query_start")}, {_us("a.state_change")},
       a.application_name,
       host(a.client_addr) || ':' || a.client_port,
       a.usename, a.datname, a.backend_type,
       left(a.query, {QUERY_TEXT_LIMIT}),
       w.blocking, w.locktype, w.mode, w.relation
FROM (SELECT clock_timestamp() AS t) n
LEFT JOIN pg_stat_activity a
       ON a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
LEFT JOIN LATERAL (
    SELECT pg_blocking_pids(a.pid) AS blocking, l.locktype, l.mode,
           l.relation::regclass::text AS relation
    FROM (SELECT 1) one
    LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
    WHERE a.wait_event_type = 'Lock'
    LIMIT 1
) w ON true
"""

_ACTIVITY = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
}


class PostgresSampler:
    """Polls one PostgreSQL server."""

    database = "postgresql"
    lock_view: str | None = "pg_blocking_pids"
    prepare_queries = 3
    sample_queries = 1

    def __init__(self) -> None:
        self.server_version: str | None = None

    def prepare(self, cursor: Any, statement_timeout_ms: int) -> None:
        cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        cursor.execute(f"SET lock_timeout = {int(statement_timeout_ms)}")
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
        self.server_version = str(row[0]) if row else None

    def sample(self, cursor: Any) -> Snapshot:
        cursor.execute(QUERY)
        return snapshot(cursor.fetchall())


def snapshot(rows: list[tuple[Any, ...]]) -> Snapshot:
    """Sessions and lock waits from the rows of :data:`QUERY`."""
    now = int(rows[0][0]) * 1000
    result = Snapshot(now)
    for row in rows:
        if row[1] is None:  # the LEFT JOIN's row when no other session exists
            continue
        (
            _,
            pid,
            state,
            wait_type,
            wait_event,
            backend_us,
            xact_us,
            query_us,
            change_us,
            app,
            client,
            user,
            dbname,
            backend_type,
            text,
            blocking,
            locktype,
            mode,
            relation,
        ) = row
        xact = us_to_ns(xact_us)
        change = us_to_ns(change_us)
        query = cut(text)
        session: Row = {
            "session_id": int(pid),
            "activity": _ACTIVITY.get(state or "", "other"),
            "state": state,
            "command": None,
            "wait_event_type": wait_type,
            "wait_event": wait_event,
            "user": user,
            "database": dbname,
            "client": client,
            "application": app,
            "backend_type": backend_type,
            "session_start_unix_nano": us_to_ns(backend_us),
            "xact_start_unix_nano": xact,
            "query_start_unix_nano": us_to_ns(query_us),
            "state_change_unix_nano": change,
            "xact_age_ns": age(now, xact),
            "state_age_ns": age(now, change),
            "query": query,
            "fingerprint": fingerprint_id(query, "postgresql") if query else None,
        }
        result.sessions.append(session)
        for blocker in blocking or ():
            result.lock_waits.append(
                {
                    "blocked_id": int(pid),
                    "blocking_id": int(blocker),
                    "lock_type": locktype,
                    "lock_mode": mode,
                    "relation": relation,
                    "wait_started_unix_nano": None,
                    "blocked_query": query,
                    "blocked_fingerprint": session["fingerprint"],
                    "blocking_query": None,
                }
            )
    by_id = {s["session_id"]: s for s in result.sessions}
    for wait in result.lock_waits:
        blocker = by_id.get(wait["blocking_id"])
        wait["blocking_query"] = blocker["query"] if blocker else None
    return result
