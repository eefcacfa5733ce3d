"""Small constructed runs for the analysis tests: spans, pool telemetry and client requests.

Times are milliseconds from an arbitrary epoch; ids are made readable
(``t1``, ``s1``) and padded to hex-looking strings only where the store needs
nothing more than uniqueness.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from correlate.fingerprint.shape import fingerprint
from correlate.ingest.callees import link_callee_routes
from correlate.statements import fingerprint_run
from correlate.store import Store, open_store

T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def ns(ms: float) -> int:
    return T0 + int(ms * MS)


@dataclass
class RunBuilder:
    """Collects rows, then writes them into a fresh in-memory store as run ``name``."""

    name: str = "r"
    spans: list[dict[str, Any]] = field(default_factory=list)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    client: list[dict[str, Any]] = field(default_factory=list)
    db_samples: list[dict[str, Any]] = field(default_factory=list)
    db_activity: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str = "s") -> str:
        return f"{prefix}{next(self._ids)}"

    def span(
        self,
        trace: str,
        start: float,
        end: float,
        *,
        parent: str | None = None,
        kind: str = "INTERNAL",
        name: str | None = None,
        span_id: str | None = None,
        route: str | None = None,
        status: str = "UNSET",
        http_status: int | None = None,
        db: str | None = None,
        sql: str | None = None,
        events: list[dict[str, Any]] | None = None,
        service: str = "svc",
        template: str | None = None,
        scope: str | None = None,
    ) -> str:
        """A span; ``template`` is its ``http_target_template`` as ingest sets it (the
        route by default); ``scope`` the name of the instrumentation that made it."""
        sid = span_id or self.new_id()
        self.spans.append(
            {
                "trace_id": trace,
                "span_id": sid,
                "parent_id": parent,
                "name": name or (f"GET {route}" if route else (sql or kind).split(" ")[0]),
                "kind": kind,
                "service": service,
                "scope_name": scope,
                "start_ns": ns(start),
                "end_ns": ns(end),
                "duration_ns": ns(end) - ns(start),
                "status_code": status,
                "http_route": route,
                "http_target_template": template or route,
                "http_status_code": http_status,
                "db_system": db,
                "db_statement": sql,
                "events": events or [],
            }
        )
        return sid

    def request(
        self,
        trace: str,
        start: float,
        end: float,
        route: str = "/a",
        *,
        status: int = 200,
        error: bool = False,
        service: str = "svc",
        scope: str | None = None,
    ) -> str:
        return self.span(
            trace,
            start,
            end,
            kind="SERVER",
            route=route,
            http_status=status,
            status="ERROR" if error else "UNSET",
            service=service,
            scope=scope,
        )

    def query(
        self, trace: str, parent: str, start: float, end: float, sql: str = "SELECT 1"
    ) -> str:
        return self.span(trace, start, end, parent=parent, kind="CLIENT", db="postgresql", sql=sql)

    def connect(
        self, trace: str, parent: str, start: float, end: float, *, timeout: bool = False
    ) -> str:
        events = (
            [
                {
                    "time_ns": ns(end),
                    "name": "exception",
                    "attributes": json.dumps({"exception.type": "TimeoutError"}),
                }
            ]
            if timeout
            else []
        )
        return self.span(
            trace,
            start,
            end,
            parent=parent,
            kind="CLIENT",
            name="connect",
            db="postgresql",
            status="ERROR" if timeout else "UNSET",
            events=events,
        )

    def user_request(self, user: int, start: float, duration: float, route: str = "/a") -> None:
        """What the load generator saw (``client_requests``)."""
        self.client.append(
            {
                "trace_id": f"c{len(self.client)}",
                "span_id": f"p{len(self.client)}",
                "method": "GET",
                "name": route,
                "path": route,
                "start_unix_nano": ns(start),
                "duration_ns": int(duration * MS),
                "status_code": 200,
                "ok": True,
                "error": None,
                "response_bytes": 10,
                "user": user,
            }
        )

    def sample(self, at: float, checked_out: int, *, capacity: int = 10, waiters: int = 0) -> None:
        self.samples.append(
            {
                "time_unix_nano": ns(at),
                "pid": 1,
                "pool": "p",
                "pool_class": "QueuePool",
                "size": capacity,
                "max_overflow": 0,
                "capacity": capacity,
                "checked_out": checked_out,
                "checked_in": capacity - checked_out,
                "overflow": 0,
                "waiters": waiters,
                "timeouts_total": 0,
                "checkouts_total": 0,
                "leak_suspects_open": 0,
            }
        )

    def leak(self, trace: str, request_span: str, at: float, route: str = "/a") -> None:
        self.leaks.append(
            {
                "detected_unix_nano": ns(at),
                "pid": 1,
                "pool": "p",
                "trace_id": trace,
                "request_span_id": request_span,
                "connect_span_id": None,
                "span_id": None,
                "route": route,
                "request_name": f"GET {route}",
                "location": "app.py:12 in handler",
                "thread": "t",
                "checked_out_unix_nano": ns(at - 1000),
                "request_end_unix_nano": ns(at - 900),
                "held_ns": 1000 * MS,
            }
        )

    def watched(
        self,
        at: float,
        sessions: list[tuple[int, str, float, str | None]],
        *,
        server_ahead_ms: float = 0.0,
    ) -> None:
        """One ``correlate watch`` sample at ``at``: each session as ``(id, activity, its
        last statement's start, that statement)``, on a server clock ``server_ahead_ms``
        ahead of the watcher's."""
        sample = len(self.db_samples) + 1
        server = ns(at + server_ahead_ms)
        self.db_samples.append(
            {"watch": 1, "sample": sample, "time_unix_nano": ns(at),
             "server_time_unix_nano": server, "query_ns": 1000, "sessions": len(sessions),
             "lock_waits": 0, "error": None, "reconnected": False}
        )  # fmt: skip
        for session_id, activity, query_start, sql in sessions:
            started = ns(query_start + server_ahead_ms)
            self.db_activity.append(
                {"watch": 1, "sample": sample, "time_unix_nano": ns(at),
                 "server_time_unix_nano": server, "session_id": session_id,
                 "activity": activity, "backend_type": "client backend",
                 "query_start_unix_nano": started, "state_change_unix_nano": started,
                 "state_age_ns": server - started, "query": sql,
                 "fingerprint": fingerprint(sql, "postgresql").id if sql else None}
            )  # fmt: skip

    def build(self, store: Store | None = None) -> Store:
        import pandas as pd

        store = store or open_store(":memory:")
        run_id = store.ensure_run(self.name, source="test", labels=None)
        con = store.con
        if self.spans:
            frame = pd.DataFrame(self.spans)
            frame["run_id"] = run_id
            frame["file_id"] = 0
            con.register("built_spans", frame)
            con.execute(
                """
                INSERT INTO spans BY NAME
                SELECT * REPLACE (
                    CAST(events AS STRUCT(time_ns BIGINT, name VARCHAR, attributes JSON)[])
                        AS events)
                FROM built_spans
                """
            )
            con.unregister("built_spans")
        for table, rows in (
            ("pool_leaks", self.leaks),
            ("pool_samples", self.samples),
            ("client_requests", self.client),
            ("db_samples", self.db_samples),
            ("db_activity", self.db_activity),
        ):
            if rows:
                frame = pd.DataFrame(rows)
                frame["run_id"] = run_id
                frame["file_id"] = 0
                con.register("built_rows", frame)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM built_rows")
                con.unregister("built_rows")
        store.refresh_run_stats(run_id)
        fingerprint_run(store, run_id)
        link_callee_routes(store, run_id)
        return store
