"""How much the run's requests suffered from the connection pool: the time they waited
for a connection, and the checkouts that failed.

A checkout fails three ways the spans show: a checkout span (``connect``,
``pg-pool.connect``, …) that ends in error with a timeout, with no exception at all, or in
a trace that says a pool's own "no connection" words (node-postgres's instrumentation
records its checkout's error without a type, while the request's handler span says
``timeout exceeded when trying to connect``); a refused connection is not the pool
running dry. Then a checkout ``correlate.instrument``
saw time out; and, for a pool that makes no checkout span, a request that raised the
pool's own "no connection" error (:mod:`correlate.analysis.pool_errors`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from correlate.analysis import pool_errors
from correlate.analysis.pool_errors import exception_sql, exception_text_sql, head_sql

if TYPE_CHECKING:
    from correlate.analysis.run import Run


#: A checkout that gave up after waiting says so in its exception's type or message
#: (``PoolTimeout``, ``request timed out after``); one that found the pool empty and
#: failed at once does not (psycopg2's ``PoolError: connection pool exhausted``).
TIMED_OUT = re.compile(r"time ?out|timed out", re.IGNORECASE)


#: SQL: the traces of a run with a span that says a pool's words (:data:`pool_errors.PATTERN`)
#: in an exception or its status. Takes ``$run`` and ``$pattern``.
_SAID_SQL = f"""
    SELECT trace_id
    FROM (SELECT trace_id, {exception_sql("ev.attributes")} AS words
          FROM (SELECT trace_id, unnest(events) AS ev
                FROM spans WHERE run_id = $run AND len(events) > 0)
          WHERE ev.name = 'exception')
    WHERE regexp_matches({head_sql(exception_text_sql("words"))}, $pattern)
    UNION
    SELECT trace_id FROM spans
    WHERE run_id = $run AND status_code = 'ERROR' AND status_message IS NOT NULL
      AND regexp_matches({head_sql("status_message")}, $pattern)
"""


def dry_checkout_sql(events: str, trace_id: str) -> str:
    """SQL: whether a failed checkout span (its ``events`` and ``trace_id`` columns) failed
    for want of a connection, by the rule above. Takes ``$run`` and ``$pattern``."""
    return f"""(len(list_filter({events}, lambda e: e.name = 'exception')) = 0
        OR len(list_filter({events}, lambda e: e.name = 'exception'
               AND (e.attributes->>'$."exception.type"') ILIKE '%timeout%')) > 0
        OR {trace_id} IN ({_SAID_SQL}))"""


def dry_requests_sql(parts: str) -> str:
    """SQL: ``(th, rh)`` of each request with a checkout that failed for want of a
    connection, by the rule above: the pool's own error, or a failed checkout span that
    :func:`dry_checkout_sql` keeps (not a refused connection). Takes ``$run`` and
    ``$pattern``."""
    return f"""
        SELECT DISTINCT p.th, p.rh FROM {parts} p
        LEFT JOIN spans s ON s.run_id = $run AND s.trace_id = p.trace_id
             AND s.span_id = p.span_id
        WHERE p.category = 'pool' AND p.status_code = 'ERROR'
          AND (p.span_id IS NULL OR {dry_checkout_sql("s.events", "s.trace_id")})
    """


def failed_for_want_of_a_connection(run: Run, lo: int, hi: int) -> int:
    """How many failed requests ending in ``[lo, hi)`` (ns) had a checkout that failed for
    want of a connection (:func:`dry_requests_sql`)."""
    reqs, parts = run.table("requests"), run.table("parts")
    row = run.con.execute(
        f"""
        SELECT count(*) FROM {reqs} r
        JOIN ({dry_requests_sql(parts)}) pe ON pe.th = r.th AND pe.rh = r.rh
        WHERE r.error AND r.end_ns >= $lo AND r.end_ns < $hi
        """,
        {"run": run.run_id, "lo": lo, "hi": hi, "pattern": pool_errors.PATTERN},
    ).fetchone()
    return int(row[0]) if row else 0


#: A connection to the database that could not be opened or was lost, in the words of the
#: drivers (Node's socket errors, node-postgres's ``Connection terminated…``, libpq's
#: ``could not connect`` and ``server closed the connection unexpectedly``) and of
#: PostgreSQL's SQLSTATE class 08, "connection exception". A pool that ran dry says none of
#: them: it opens no connection.
LOST_CONNECTION = (
    r"econnrefused|econnreset|etimedout|ehostunreach|enetunreach|connection terminated|"
    r"could not connect|connection refused|connection reset|"
    r"server closed the connection unexpectedly|sqlstate[ =:]*08"
)
#: Span names that cover opening one new connection, not a checkout from the pool:
#: @opentelemetry/instrumentation-pg's ``pg.connect`` around ``Client.connect()``.
CONNECT_ATTEMPT_NAMES = ("pg.connect",)


def lost_connection_sql(span: str = "spans") -> str:
    """SQL: the failed span ``span`` says its connection to the database broke or could not
    be opened (:data:`LOST_CONNECTION`'s words in the head of its status or of an
    exception event's message, :data:`pool_errors.HEAD_CHARS`; or a class 08 SQLSTATE).
    Takes ``$lost`` (:data:`LOST_CONNECTION`)."""
    message = "e.attributes->>'$.\"exception.message\"'"
    return f"""({span}.status_code = 'ERROR'
        AND (regexp_matches({head_sql(f"coalesce({span}.status_message, '')")}, $lost)
             OR coalesce({span}.attributes->>'$."db.response.status_code"', '') LIKE '08%'
             OR len(list_filter({span}.events, lambda e: e.name = 'exception'
                    AND regexp_matches({head_sql(f"coalesce({message}, '')")}, $lost))) > 0))"""


#: SQL: per trace of the run, its spans that say a connection to the database failed (a
#: failed connection attempt, or :func:`lost_connection_sql`): how many, the first one's
#: start, its message. Takes ``$run``, ``$lost`` and ``$names``.
_LOST_SQL = f"""
    SELECT trace_id, count(*) AS n, min(start_ns) AS first_ns, max(start_ns) AS last_ns,
           arg_min(coalesce(nullif(status_message, ''),
                            list_filter(events, lambda e: e.name = 'exception')[1]
                                .attributes->>'$."exception.message"'), start_ns) AS message,
           count(*) FILTER (WHERE list_contains($names, name)) AS attempts
    FROM spans
    WHERE run_id = $run AND status_code = 'ERROR'
      AND (list_contains($names, name) OR {lost_connection_sql()})
    GROUP BY trace_id
"""


@dataclass(frozen=True)
class Unreachable:
    """Failed requests whose traces say a connection to the database failed."""

    #: failed requests with such a span in their trace
    requests: int
    #: of their spans, the connection attempts that failed (``pg.connect``)
    attempts: int
    #: when the first and the last such span began (ns), or None
    first_ns: int | None
    last_ns: int | None
    #: the words most of them say, cut short
    message: str | None
    #: all failed requests, those that ended before the first such span, and the last end
    failed: int = 0
    failed_before: int = 0
    last_failure_ns: int | None = None

    def explains(self, at_least: int, window_ns: int) -> bool:
        """Whether the connections that failed are the run's failures' story: at least
        ``at_least`` requests lost theirs, most failures came after the first, and they
        went on failing to within ``window_ns`` of the last failure (a pool that ran dry
        opens no connection, so none of its failures says so)."""
        return (
            self.requests >= at_least
            and 2 * self.failed_before <= self.failed
            and (self.last_ns or 0) >= (self.last_failure_ns or 0) - window_ns
        )

    def sentence(self, run_start: int) -> str:
        """``'from 8 s, 60 attempts to open a connection failed and 19 failed requests …'``."""
        at = f"from {((self.first_ns or run_start) - run_start) / 1e9:.0f} s"
        tried = (
            f"{self.attempts} attempt{'s' if self.attempts != 1 else ''} to open a connection "
            "failed and "
            if self.attempts
            else ""
        )
        said = f" ({self.message})" if self.message else ""
        return (
            f"{at}, {tried}{self.requests} failed request{'s' if self.requests != 1 else ''} "
            f"lost their connection to the database or could not open one{said}"
        )


def unreachable(run: Run, lo: int | None = None, hi: int | None = None) -> Unreachable:
    """The failed requests ending in ``[lo, hi)`` (ns; the whole run by default) whose
    traces say a connection to the database failed (:data:`LOST_CONNECTION`)."""
    reqs = run.table("requests")
    row = run.con.execute(
        f"""
        WITH failed AS (SELECT trace_id, end_ns FROM {reqs}
                        WHERE error AND end_ns >= $lo AND end_ns < $hi),
        lost AS (SELECT c.* FROM failed r JOIN ({_LOST_SQL}) c ON c.trace_id = r.trace_id)
        SELECT (SELECT count(*) FROM lost), (SELECT coalesce(sum(attempts), 0) FROM lost),
               (SELECT min(first_ns) FROM lost), (SELECT max(last_ns) FROM lost),
               (SELECT mode(message) FROM lost), (SELECT count(*) FROM failed),
               (SELECT count(*) FROM failed WHERE end_ns < (SELECT min(first_ns) FROM lost)),
               (SELECT max(end_ns) FROM failed)
        """,
        {
            "run": run.run_id,
            "lost": LOST_CONNECTION,
            "names": list(CONNECT_ATTEMPT_NAMES),
            "lo": lo if lo is not None else -(2**62),
            "hi": hi if hi is not None else 2**62,
        },
    ).fetchone()
    if row is None or not row[0]:
        return Unreachable(0, 0, None, None, None)
    n, attempts, first, last, message, failed, before, last_failure = row
    return Unreachable(
        int(n), int(attempts), int(first), int(last), str(message)[:80] if message else None,
        int(failed), int(before or 0), int(last_failure) if last_failure is not None else None,
    )  # fmt: skip


@dataclass
class Pressure:
    requests: int
    total_ms: float
    wait_ms: float
    waited: int
    #: checkouts that failed: timed out, or found the pool empty
    timeouts: int
    #: requests that failed with one
    timeout_errors: int
    #: the exception most often recorded on them
    exception: str | None
    routes: list[tuple[str, float]]
    #: of ``timeouts``, the requests that raised the pool's own error (no checkout span),
    #: and the pool that says so
    pool_errors: int = 0
    pool: str | None = None

    @property
    def share(self) -> float:
        return self.wait_ms / self.total_ms if self.total_ms else 0.0

    @property
    def timed_out(self) -> bool | None:
        """Whether the failed checkouts timed out; None when none failed. False only when
        every one is the pool's own error and its words say no timeout: such a pool
        refuses a checkout at once, with no wait to time out.

        >>> refused = "psycopg2.pool.PoolError: connection pool exhausted"
        >>> Pressure(9, 90.0, 9.0, 3, 3, 3, refused, [], pool_errors=3).timed_out
        False
        >>> waited = "psycopg_pool.PoolTimeout: couldn't get a connection after 1.00 sec"
        >>> Pressure(9, 90.0, 9.0, 3, 3, 3, waited, [], pool_errors=3).timed_out
        True
        """
        if not self.timeouts:
            return None
        refused = self.pool_errors == self.timeouts and self.exception is not None
        return not (refused and not TIMED_OUT.search(self.exception or ""))

    @property
    def failures_word(self) -> str:
        """The failed checkouts in a rule's words: ``timeouts``, unless they did not time out."""
        return "failed checkouts" if self.timed_out is False else "timeouts"

    def failures_sentence(self) -> str:
        """``'12 checkouts timed out (TimeoutError), failing 12 requests'``."""
        exc = f" ({self.exception})" if self.exception else ""
        if self.pool_errors and self.pool_errors == self.timeouts:
            return (
                f"{self.pool_errors} request{'s' if self.pool_errors != 1 else ''} found no "
                f"connection to take from the pool{exc}"
            )
        return f"{self.timeouts} checkouts timed out{exc}, failing {self.timeout_errors} requests"


def pressure(run: Run) -> Pressure:
    """The run's pool pressure, read from its request tables."""
    reqs, parts = run.table("requests"), run.table("parts")
    n, total, wait, waited = run.con.execute(
        f"SELECT count(*), coalesce(sum(duration_ms), 0), coalesce(sum(pool_ms), 0), "
        f"count(*) FILTER (WHERE pool_ms >= 1) FROM {reqs}"
    ).fetchone() or (0, 0, 0.0, 0)
    # timeouts: connect spans that failed waiting, and checkouts the instrument saw time out
    failed = f"""
        SELECT s.events, s.trace_id FROM {parts} p
        JOIN spans s ON s.run_id = $run AND s.trace_id = p.trace_id AND s.span_id = p.span_id
        WHERE p.category = 'pool' AND s.status_code = 'ERROR'
    """
    # a failed connect whose exception is no timeout (a refused connection) is not the
    # pool running dry; one without any exception recorded, or in a trace that says a
    # pool's words, is given the benefit of it
    (span_timeouts,) = run.con.execute(
        f"""
        SELECT count(*) FILTER (WHERE {dry_checkout_sql("events", "trace_id")})
        FROM ({failed})
        """,
        {"run": run.run_id, "pattern": pool_errors.PATTERN},
    ).fetchone() or (0,)
    (exception,) = run.con.execute(
        f"""
        SELECT mode(ev.attributes->>'$."exception.type"')
        FROM (SELECT unnest(events) AS ev FROM ({failed}))
        WHERE ev.name = 'exception'
        """,
        {"run": run.run_id},
    ).fetchone() or (None,)
    (checkout_timeouts,) = run.con.execute(
        "SELECT count(*) FROM pool_checkouts WHERE run_id = ? AND outcome = 'timeout'",
        [run.run_id],
    ).fetchone() or (0,)
    (raised,) = run.con.execute(
        f"SELECT count(*) FROM {parts} WHERE {pool_errors.IS_ERROR_PART}"
    ).fetchone() or (0,)
    pool = None
    if raised:
        pool, words = pool_errors.said(run)
        exception = exception or words
    (timeout_errors,) = run.con.execute(
        f"""
        SELECT count(DISTINCT (r.th, r.rh)) FROM {reqs} r
        JOIN {parts} p ON p.th = r.th AND p.rh = r.rh
        WHERE r.error AND p.category = 'pool' AND p.status_code = 'ERROR'
        """,
    ).fetchone() or (0,)
    routes = run.con.execute(
        f"SELECT route, avg(pool_ms) FROM {reqs} GROUP BY route HAVING avg(pool_ms) > 0 "
        "ORDER BY 2 DESC"
    ).fetchall()
    return Pressure(
        requests=int(n),
        total_ms=float(total),
        wait_ms=float(wait),
        waited=int(waited),
        timeouts=max(int(span_timeouts) + int(raised), int(checkout_timeouts)),
        timeout_errors=int(timeout_errors),
        exception=exception,
        routes=[(str(r), float(w)) for r, w in routes],
        pool_errors=int(raised),
        pool=pool,
    )
