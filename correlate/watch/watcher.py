"""The watch loop: poll on a fixed beat, write what was seen, survive a lost connection.

Bounded cost by construction: one connection (no pool), one query per poll,
a statement timeout on the session, and no catching up after a slow poll (a
missed beat is skipped, never run twice). A lost connection is retried with
a doubling backoff (from one interval up to :data:`MAX_BACKOFF_S`); every
failed attempt is a ``sample`` line with its error, and the gap is counted.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from correlate.errors import CorrelateError, DatabaseConnectionError
from correlate.watch.connection import Target, first_line, open_target
from correlate.watch.mysql import MySqlSampler
from correlate.watch.postgres import PostgresSampler
from correlate.watch.records import ACTIVITY_FILE, FORMAT_VERSION, QUERY_TEXT_LIMIT
from correlate.watch.snapshot import Sampler
from correlate.watch.writer import ActivityWriter

MAX_BACKOFF_S = 30.0
#: How often a sleeping watcher looks whether it was asked to stop.
_TICK_S = 0.05
#: Errors kept in the result (all of them are in the file).
_MAX_ERRORS = 20


@dataclass
class WatchStatus:
    """What the watcher has seen so far; given to the ``status`` callback after each poll."""

    samples: int
    failed: int
    sessions: int
    idle_in_transaction: int
    lock_waits: int
    connected: bool
    elapsed_s: float

    def line(self) -> str:
        """A one-line summary, for a terminal's status line.

        >>> WatchStatus(12, 0, 7, 2, 1, True, 12.3).line()
        'watch 12.3s: 12 samples, 7 sessions, 2 idle in transaction, 1 lock wait'
        """
        text = (
            f"watch {self.elapsed_s:.1f}s: {self.samples} samples, {self.sessions} sessions, "
            f"{self.idle_in_transaction} idle in transaction, "
            f"{self.lock_waits} lock wait{'' if self.lock_waits == 1 else 's'}"
        )
        if self.failed:
            text += f", {self.failed} failed"
        return text if self.connected else text + " (reconnecting)"


@dataclass
class WatchResult:
    """What one :func:`watch` did."""

    path: Path
    #: the URL watched, password removed
    url: str
    database: str
    server_version: str | None
    interval_s: float
    #: polls that returned data / that failed
    samples: int = 0
    failed_samples: int = 0
    #: ``session`` and ``lock_wait`` lines written
    rows: int = 0
    lock_waits: int = 0
    #: distinct sessions seen over the whole watch
    sessions_seen: int = 0
    #: statements sent to the server, set-up and polls
    queries: int = 0
    reconnects: int = 0
    #: time without data after a lost connection, summed
    gap_s: float = 0.0
    elapsed_s: float = 0.0
    #: "duration", "signal" (SIGINT/SIGTERM) or "stop" (the ``stop`` event)
    stopped_by: str = "duration"
    #: the first errors (with the password removed), at most 20
    errors: list[str] = field(default_factory=list)

    @property
    def queries_per_s(self) -> float:
        return self.queries / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """What happened, in a few lines."""
        lines = [
            f"watched {self.database} {self.server_version or ''} at {self.url} for "
            f"{self.elapsed_s:.1f}s (stopped by {self.stopped_by})".replace("  ", " "),
            f"{self.samples} samples every {self.interval_s:g}s, {self.sessions_seen} sessions "
            f"seen, {self.rows} rows ({self.lock_waits} lock waits) written to {self.path}",
            f"{self.queries} queries ({self.queries_per_s:.2f}/s)",
        ]
        if self.failed_samples or self.reconnects:
            lines.append(
                f"{self.failed_samples} failed polls, {self.reconnects} reconnects, "
                f"{self.gap_s:.1f}s without data"
            )
        lines.extend(f"  {e}" for e in self.errors)
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (
            f"<WatchResult {self.database} {self.samples} samples, {self.rows} rows, "
            f"{self.failed_samples} failed, {self.elapsed_s:.1f}s>"
        )

    def _repr_html_(self) -> str:
        from correlate.render.escape import html as escape

        return "<pre>" + escape(self.summary()) + "</pre>"


def watch(
    dsn: str,
    out: str | os.PathLike[str],
    *,
    interval: float = 1.0,
    duration: float | None = None,
    statement_timeout_ms: int | None = None,
    connect_timeout: float = 5.0,
    stop: threading.Event | None = None,
    status: Callable[[WatchStatus], None] | None = None,
    handle_signals: bool = True,
) -> WatchResult:
    """Poll the database at ``dsn`` every ``interval`` seconds into ``out/db/activity.jsonl``.

    Runs until ``duration`` seconds have passed, ``stop`` is set, or (with
    ``handle_signals``, in the main thread) SIGINT or SIGTERM arrives; then
    finishes the file and returns. ``out`` is the run directory. The statement
    timeout defaults to the interval, within 0.5 s to 5 s. Fails with
    :class:`~correlate.errors.DatabaseConnectionError` if the first connection
    cannot be made; later losses are retried. See docs/run-directory.md.
    """
    if not interval > 0:
        raise CorrelateError(f"the interval must be positive, not {interval}")
    if duration is not None and duration < 0:
        raise CorrelateError(f"the duration must not be negative, not {duration}")
    timeout_ms = statement_timeout_ms or int(min(5000, max(500, interval * 1000)))
    target = open_target(dsn, connect_timeout=connect_timeout, statement_timeout_ms=timeout_ms)
    try:
        return _Watcher(target, Path(out) / ACTIVITY_FILE, interval, timeout_ms).run(
            duration, stop, status, handle_signals
        )
    finally:
        target.engine.dispose()


class _Watcher:
    def __init__(self, target: Target, path: Path, interval: float, timeout_ms: int) -> None:
        self.target = target
        self.path = path
        self.interval = interval
        self.timeout_ms = timeout_ms
        self.sampler: Sampler = (
            PostgresSampler() if target.backend == "postgresql" else MySqlSampler()
        )
        self.errors = target.errors()
        self.conn: Any = None
        self.signalled = False
        self.result = WatchResult(path, target.url, target.backend, None, interval)

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> None:
        conn = self.target.connect()
        try:
            cursor = conn.cursor()
            self.sampler.prepare(cursor, self.timeout_ms)
            self.result.queries += self.sampler.prepare_queries
        except BaseException:
            conn.close()
            raise
        self.conn, self.cursor = conn, cursor

    def _drop(self) -> None:
        if self.conn is not None:
            with suppress(*self.errors):  # already gone; closing is all that was wanted
                self.conn.close()
            self.conn = None

    def _error(self, exc: BaseException) -> str:
        message = self.target.scrub(first_line(exc))
        if len(self.result.errors) < _MAX_ERRORS:
            self.result.errors.append(message)
        return message

    # -- the loop ------------------------------------------------------------------------

    def run(
        self,
        duration: float | None,
        stop: threading.Event | None,
        status: Callable[[WatchStatus], None] | None,
        handle_signals: bool,
    ) -> WatchResult:
        try:
            self._connect()
        except self.errors as exc:
            message = self.target.scrub(first_line(exc))
            raise DatabaseConnectionError(
                f"cannot connect to {self.target.url}: {message}", self.target.url
            ) from None
        result = self.result
        result.database = self.sampler.database
        result.server_version = self.sampler.server_version
        started = time.monotonic()
        deadline = None if duration is None else started + duration
        seen: set[int] = set()
        try:
            with ActivityWriter(self.path) as writer, self._signals(handle_signals):
                writer.write([self._header()])
                number = 0
                due = started
                beat = 0
                backoff = self.interval
                lost_at: float | None = None
                reconnected = False
                # A beat closer than a millisecond to the deadline is the deadline (float sums).
                while not self._stopping(stop) and (deadline is None or due < deadline - 1e-3):
                    number += 1
                    if self.conn is None:
                        try:
                            self._connect()
                            reconnected = True
                            result.reconnects += 1
                            backoff = self.interval
                        except self.errors as exc:
                            writer.write([self._failed(number, self._error(exc), None)])
                            result.failed_samples += 1
                            self._report(status, started, None)
                            backoff = min(MAX_BACKOFF_S, backoff * 2)
                            due = self._sleep_until(time.monotonic() + backoff, deadline, stop)
                            beat = math.ceil((due - started) / self.interval)
                            continue
                    lines, counts = self._poll(number, reconnected, seen)
                    writer.write(lines)
                    if counts is None:
                        result.failed_samples += 1
                        if lost_at is None:
                            lost_at = time.monotonic()
                    else:
                        result.samples += 1
                        result.rows += len(lines) - 1
                        result.lock_waits += counts[2]
                        reconnected = False
                        if lost_at is not None:
                            result.gap_s += time.monotonic() - lost_at
                            lost_at = None
                    self._report(status, started, counts)
                    beat += 1
                    elapsed = time.monotonic() - started
                    if beat * self.interval < elapsed:
                        beat = math.ceil(elapsed / self.interval)  # a slow poll: skip its beats
                    due = self._sleep_until(started + beat * self.interval, deadline, stop)
                if lost_at is not None:
                    result.gap_s += time.monotonic() - lost_at
        finally:
            self._drop()
        result.sessions_seen = len(seen)
        result.elapsed_s = time.monotonic() - started
        if self.signalled:
            result.stopped_by = "signal"
        elif stop is not None and stop.is_set():
            result.stopped_by = "stop"
        return result

    def _header(self) -> dict[str, Any]:
        return {
            "record": "watch",
            "format_version": FORMAT_VERSION,
            "time_unix_nano": time.time_ns(),
            "database": self.sampler.database,
            "server_version": self.sampler.server_version,
            "url": self.target.url,
            "interval_s": self.interval,
            "watcher_pid": os.getpid(),
            "lock_view": self.sampler.lock_view,
            "statement_timeout_ms": self.timeout_ms,
            "query_text_limit": QUERY_TEXT_LIMIT,
        }

    def _failed(self, number: int, error: str, query_ns: int | None) -> dict[str, Any]:
        return {
            "record": "sample",
            "sample": number,
            "time_unix_nano": time.time_ns(),
            "server_time_unix_nano": None,
            "query_ns": query_ns,
            "sessions": 0,
            "lock_waits": 0,
            "error": error,
            "reconnected": False,
        }

    def _poll(
        self, number: int, reconnected: bool, seen: set[int]
    ) -> tuple[list[dict[str, Any]], tuple[int, int, int] | None]:
        """The sample's lines, and (sessions, idle in transaction, lock waits) if it worked."""
        local = time.time_ns()
        begun = time.perf_counter_ns()
        self.result.queries += self.sampler.sample_queries
        try:
            snap = self.sampler.sample(self.cursor)
        except self.errors as exc:
            spent = time.perf_counter_ns() - begun
            message = self._error(exc)
            if not _alive(self.conn):
                self._drop()
            return [self._failed(number, message, spent)], None
        spent = time.perf_counter_ns() - begun
        key = {
            "sample": number,
            "time_unix_nano": local,
            "server_time_unix_nano": snap.server_time_unix_nano,
        }
        lines: list[dict[str, Any]] = [
            {
                "record": "sample",
                **key,
                "query_ns": spent,
                "sessions": len(snap.sessions),
                "lock_waits": len(snap.lock_waits),
                "error": None,
                "reconnected": reconnected,
            }
        ]
        lines.extend({"record": "session", **key, **s} for s in snap.sessions)
        lines.extend({"record": "lock_wait", **key, **w} for w in snap.lock_waits)
        seen.update(s["session_id"] for s in snap.sessions)
        idle = sum(1 for s in snap.sessions if s["activity"].startswith("idle_in_transaction"))
        return lines, (len(snap.sessions), idle, len(snap.lock_waits))

    def _report(
        self,
        status: Callable[[WatchStatus], None] | None,
        started: float,
        counts: tuple[int, int, int] | None,
    ) -> None:
        if status is None:
            return
        sessions, idle, waits = counts or (0, 0, 0)
        status(
            WatchStatus(
                self.result.samples,
                self.result.failed_samples,
                sessions,
                idle,
                waits,
                self.conn is not None,
                time.monotonic() - started,
            )
        )

    # -- stopping ------------------------------------------------------------------------

    def _stopping(self, stop: threading.Event | None) -> bool:
        return self.signalled or (stop is not None and stop.is_set())

    def _sleep_until(
        self, due: float, deadline: float | None, stop: threading.Event | None
    ) -> float:
        """Sleep until ``due`` (or the deadline, or a stop request); return ``due``."""
        until = due if deadline is None else min(due, deadline)
        while not self._stopping(stop):
            left = until - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_TICK_S, left))
        return due

    @contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        """SIGINT and SIGTERM ask the loop to stop (main thread only), then are restored."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            # Only a flag: the loop sees it within one tick and finishes the file.
            self.signalled = True

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)


def _alive(conn: Any) -> bool:
    """Whether a DBAPI connection (behind SQLAlchemy's wrapper) is still open."""
    driver = getattr(conn, "driver_connection", conn)
    if driver is None:
        return False
    closed = getattr(driver, "closed", None)
    if isinstance(closed, bool):  # psycopg
        return not closed
    is_open = getattr(driver, "open", None)  # pymysql
    return bool(is_open) if is_open is not None else True
