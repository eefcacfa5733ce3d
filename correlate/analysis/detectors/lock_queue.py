"""Who waited for whom on one locking statement: the measurements behind ``lock_contention``.

A *locking statement* takes a lock that lasts until its transaction ends: an
``UPDATE`` or ``DELETE``, a ``SELECT … FOR UPDATE / NO KEY UPDATE / SHARE``, an
upsert, ``LOCK TABLE``, an advisory lock (:data:`LOCKING_PATTERN`; not one that skips locked
rows or fails rather than wait, :data:`NEVER_WAITS_PATTERN`). For each of
its executions the spans give:

- its *hold*: from the end of the statement (the lock is granted by then) to the
  end of the first COMMIT or ROLLBACK of the same request after it when one is
  traced (not for a session-level advisory lock, which outlives it), else to the
  end of its last database call after it, the latest point at which spans show
  the transaction still at work (the COMMIT itself is rarely traced);
- the executions of the same statement in *other* requests that were ahead of it
  when it started: started before it and not yet past their hold;
- whether it *queued*: it ended after one of them let go and inside nobody else's
  hold (within a tolerance), the lock passing from one holder to the next, rather
  than running beside the others;
- its *wait*, when it queued: its time beyond the statement's uncontended median
  (when nearly every execution had someone ahead, the median of those during which
  nobody else let go, if less than the fastest tenth: in a queue that never drains,
  even the fastest tenth waited for a whole hold; but only when the queued ones each
  ended about the same time after a hold ended, as when the lock passes on).

All of it is SQL, so the executions never leave the engine that holds the spans (DuckDB,
or ClickHouse): the run's ``locks`` table keeps one row per execution, and what comes back
is a few rows per statement. How many are ahead of an execution comes from running counts
in start order; whether it queued pairs it only with the executions of other requests
whose holds meet its own time, and not even that when the execution just before it let
go in time (the usual case, and the whole of a pile-up at one instant).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from correlate.analysis.requests import staged

if TYPE_CHECKING:
    from correlate.analysis.run import Run

#: Statements whose locks last until their transaction ends (RE2, matched case-insensitively).
LOCKING_PATTERN = (
    r"^\s*(update|delete)\s"
    r"|^\s*with\s.*\)\s*(update|delete)\s"
    r"|\sfor\s+(no\s+key\s+|key\s+)?(update|share)(\s|;|$)"
    r"|\slock\s+in\s+share\s+mode"
    r"|^\s*lock\s"
    r"|pg_advisory(_xact)?_lock"
    r"|\bget_lock\s*\("
    r"|on\s+conflict[^;]*do\s+update"
    r"|on\s+duplicate\s+key\s+update"
)

#: Locks held by the session, not the transaction: they outlive COMMIT.
SESSION_LOCK_PATTERN = r"pg_advisory_lock|\bget_lock\s*\("

#: Locking reads that never wait for a lock: they skip locked rows or fail at once.
NEVER_WAITS_PATTERN = r"\sskip\s+locked(\s|;|$)|\snowait(\s|;|$)"


@dataclass
class Queue:
    """One locking statement, its executions swept and summed up (see the module doc)."""

    fingerprint: str
    statement: str
    tables: list[str]
    executions: int
    #: executions that started while another request held the lock
    contended: int
    #: of those, executions granted only as another request let go
    queued: int
    #: median duration of the contended executions (0 when none)
    contended_median_ms: float
    #: the uncontended median; when nearly all contended, the fastest tenth's edge or
    #: the median of those that waited for nobody (:func:`sweep_stages`), whichever is
    #: less (the latter only when the queued ended alike after a hold ended)
    baseline_ms: float
    #: the queued executions' time beyond the baseline, summed
    lost_ms: float
    #: median duration per number ahead ("0", "1", "2", "3+")
    by_ahead: dict[str, float]
    hold_median_ms: float
    #: requests with an execution whose hold outlasts the statement
    holding_requests: int
    holding_median_ms: float
    #: (route, executions, median hold, total hold), longest total hold first
    routes: list[tuple[str, int, float, float]]
    #: example traces: the longest waits first, and the first holds in start order
    waited_traces: tuple[str, ...]
    holding_traces: tuple[str, ...]
    busy_ms: float = 0.0
    requests: int = 0


_LOCKERS_SQL = """
lockers AS (
    SELECT fingerprint, any_value(normalized) AS statement, any_value(tables) AS tables,
           -- a session-level advisory lock outlives COMMIT
           bool_or(regexp_matches(normalized, $session_lock, 'i')) AS outlives_commit
    FROM statements
    WHERE run_id = $run AND regexp_matches(normalized, $pattern, 'i')
      AND NOT regexp_matches(normalized, $never_waits, 'i')
    GROUP BY fingerprint
)"""

_EXECUTIONS_SQL = """
WITH {lockers},
ends AS (
    SELECT DISTINCT fingerprint FROM statements
    WHERE run_id = $run AND upper(operation) IN ('COMMIT', 'ROLLBACK', 'END')
),
execs AS (
    SELECT p.fingerprint, p.th, p.rh, p.span_id, p.trace_id, p.start_ns, p.end_ns, r.route,
           l.outlives_commit
    FROM {parts} p JOIN {reqs} r USING (th, rh) JOIN lockers l USING (fingerprint)
    WHERE p.category = 'db' AND p.span_id IS NOT NULL
)
SELECT e.fingerprint, e.th, e.rh, e.span_id, e.trace_id, e.route, e.start_ns,
       greatest(e.end_ns, e.start_ns) AS end_ns,
       greatest(e.end_ns, e.start_ns, coalesce(
           min(d.end_ns) FILTER (WHERE d.fingerprint IN (SELECT fingerprint FROM ends)
                                 AND NOT e.outlives_commit),
           max(d.end_ns), e.end_ns)) AS hold_end_ns
FROM execs e
LEFT JOIN {parts} d
  ON d.th = e.th AND d.rh = e.rh AND d.category = 'db' AND d.start_ns >= e.end_ns
GROUP BY e.fingerprint, e.th, e.rh, e.span_id, e.trace_id, e.route, e.start_ns, e.end_ns,
         e.outlives_commit
"""

_COUNTED_SQL = """
WITH ordered AS (
    SELECT *, row_number() OVER (PARTITION BY fingerprint ORDER BY start_ns, span_id) AS k,
           -- instant executions with no hold starting here, from this one on in order:
           -- released by its start, but not ahead of it
           sum(CASE WHEN hold_end_ns = start_ns THEN 1 ELSE 0 END) OVER (
               PARTITION BY fingerprint, start_ns ORDER BY span_id DESC
               ROWS UNBOUNDED PRECEDING) AS instant_from_here
    FROM {prev}
),
events AS (
    SELECT fingerprint, hold_end_ns AS t, 0 AS kind, 0 AS k FROM ordered
    UNION ALL
    SELECT fingerprint, start_ns AS t, 1 AS kind, k FROM ordered
    UNION ALL
    SELECT fingerprint, end_ns + $tolerance AS t, 2 AS kind, k FROM ordered
    UNION ALL  -- its end, ahead of any hold ending then (its own, when it has none)
    SELECT fingerprint, end_ns AS t, -1 AS kind, k FROM ordered
),
released AS (  -- holds ended by each execution's start, and by its end, whoever started them
    SELECT fingerprint, k, max(CASE WHEN kind = 1 THEN n END) AS n,
           max(CASE WHEN kind = 2 THEN n END) AS n_end,
           max(CASE WHEN kind = -1 THEN last_hold_end END) AS last_let_go
    FROM (
        SELECT fingerprint, kind, k,
               sum(CASE WHEN kind = 0 THEN 1 ELSE 0 END) OVER (
                   PARTITION BY fingerprint ORDER BY t, kind ROWS UNBOUNDED PRECEDING) AS n,
               max(CASE WHEN kind = 0 THEN t END) OVER (
                   PARTITION BY fingerprint ORDER BY t, kind ROWS UNBOUNDED PRECEDING)
                   AS last_hold_end
        FROM events
    ) WHERE kind <> 0
    GROUP BY fingerprint, k
),
own AS (  -- holds of its own request still open when it starts: not ahead of it
    SELECT i.fingerprint, i.k, count(*) AS n
    FROM ordered i JOIN ordered j
      ON j.fingerprint = i.fingerprint AND j.th = i.th AND j.rh = i.rh
     AND j.k < i.k AND j.hold_end_ns > i.start_ns
    GROUP BY i.fingerprint, i.k
),
mine AS (  -- holds of its own request (its own among them) that ended while it ran
    SELECT i.fingerprint, i.k, count(*) AS n
    FROM ordered i JOIN ordered j
      ON j.fingerprint = i.fingerprint AND j.th = i.th AND j.rh = i.rh
     AND j.hold_end_ns > i.start_ns AND j.hold_end_ns <= i.end_ns + $tolerance
    GROUP BY i.fingerprint, i.k
),
counted AS (
    SELECT o.fingerprint, o.th, o.rh, o.span_id, o.trace_id, o.route, o.start_ns, o.end_ns,
           o.hold_end_ns, o.k,
           o.k - 1 - (r.n - o.instant_from_here) - coalesce(w.n, 0) AS ahead,
           -- the execution just before it let go in time: it queued behind that one
           -- (the usual case, settled without pairing it with all those ahead)
           coalesce(p.hold_end_ns > o.start_ns AND p.hold_end_ns <= o.end_ns + $tolerance
                    AND NOT (p.th = o.th AND p.rh = o.rh), false) AS after_previous,
           -- nobody else let go while it ran: it waited for no one, whoever started first
           r.n_end - r.n - coalesce(m.n, 0) = 0 AS free,
           -- how long it ran after the last hold to end before its end: when the lock
           -- passed to it then, its own time (and the holder's untraced COMMIT)
           o.end_ns - r.last_let_go AS after_let_go
    FROM ordered o
    JOIN released r ON r.fingerprint = o.fingerprint AND r.k = o.k
    LEFT JOIN own w ON w.fingerprint = o.fingerprint AND w.k = o.k
    LEFT JOIN mine m ON m.fingerprint = o.fingerprint AND m.k = o.k
    LEFT JOIN ordered p ON p.fingerprint = o.fingerprint AND p.k = o.k - 1
)
SELECT * FROM counted
"""

#: Pairs are looked for only in time buckets, each as wide as the statement's longest
#: execution (plus the tolerance) and its longest hold, so an execution's end-plus-
#: tolerance interval, and a hold, reach into two buckets at most.
_BUCKETED_SQL = """
WITH width AS (
    SELECT fingerprint,
           greatest(max(end_ns - start_ns) + $tolerance, max(hold_end_ns - end_ns), 1) AS w
    FROM {prev} GROUP BY fingerprint
)
SELECT c.fingerprint, c.th, c.rh, c.span_id, c.trace_id, c.route, c.start_ns, c.end_ns,
       c.hold_end_ns, c.k, c.ahead, c.after_previous, c.free, c.after_let_go, w.w,
       c.end_ns // w.w AS end_bucket, c.hold_end_ns // w.w AS hold_bucket
FROM {prev} c JOIN width w ON w.fingerprint = c.fingerprint
"""

_SWEPT_SQL = """
WITH probes AS (  -- the buckets of (start, end + tolerance], for a release inside it
    SELECT fingerprint, th, rh, k, start_ns, end_ns, (start_ns + 1) // w AS bucket
    FROM {prev} WHERE ahead > 0 AND NOT after_previous
    UNION ALL
    SELECT fingerprint, th, rh, k, start_ns, end_ns, (end_ns + $tolerance) // w AS bucket
    FROM {prev}
    WHERE ahead > 0 AND NOT after_previous AND (end_ns + $tolerance) // w <> (start_ns + 1) // w
),
let_go AS (  -- another request ahead of it let go before it ended
    SELECT i.fingerprint, i.k, count(*) AS n
    FROM probes i JOIN {prev} j
      ON j.fingerprint = i.fingerprint AND j.hold_bucket = i.bucket
     AND j.k < i.k AND j.hold_end_ns > i.start_ns
     AND j.hold_end_ns <= i.end_ns + $tolerance AND NOT (j.th = i.th AND j.rh = i.rh)
    GROUP BY i.fingerprint, i.k
),
holds AS (  -- the buckets of [end, hold end]
    SELECT fingerprint, th, rh, end_ns, hold_end_ns, end_bucket AS bucket FROM {prev}
    UNION ALL
    SELECT fingerprint, th, rh, end_ns, hold_end_ns, hold_bucket AS bucket FROM {prev}
    WHERE hold_bucket <> end_bucket
),
inside AS (  -- it ended inside another request's hold: it ran beside it
    SELECT i.fingerprint, i.k, count(*) AS n
    FROM {prev} i JOIN holds j
      ON j.fingerprint = i.fingerprint AND j.bucket = i.end_bucket
     AND j.end_ns < i.end_ns - $tolerance AND j.hold_end_ns > i.end_ns + $tolerance
     AND NOT (j.th = i.th AND j.rh = i.rh)
    WHERE i.ahead > 0
    GROUP BY i.fingerprint, i.k
)
SELECT c.fingerprint, c.th, c.rh, c.span_id, c.trace_id, c.route, c.start_ns, c.end_ns,
       c.hold_end_ns, c.k, c.ahead, c.free, c.after_let_go,
       c.ahead > 0 AND (c.after_previous OR coalesce(l.n, 0) > 0) AND coalesce(x.n, 0) = 0
           AS queued
FROM {prev} c
LEFT JOIN let_go l ON l.fingerprint = c.fingerprint AND l.k = c.k
LEFT JOIN inside x ON x.fingerprint = c.fingerprint AND x.k = c.k
"""


def sweep_stages(source: str) -> list[str]:
    """The stages (:func:`correlate.analysis.requests.staged`) that sweep the executions
    ``source`` selects (``fingerprint, th, rh, span_id, trace_id, route, start_ns,
    end_ns, hold_end_ns``): one row each, with its place ``k`` in start order, ``ahead``,
    ``queued``, ``free`` (no other request let go while it ran, within the tolerance:
    it waited for nobody, even one that started first and reached the row last) and
    ``after_let_go`` (ns from the end of the last hold that ended before it did, to its
    end; NULL when none did).
    Parameter ``$tolerance`` (ns), and those of ``source``.

    ``ahead``, ``free`` and ``after_let_go`` come from running counts (start order, holds
    released by each start and each end), so they cost no pairing of executions; whether
    one *queued* pairs it only with the executions of other requests whose holds meet its own time,
    found in the same time bucket (:data:`_BUCKETED_SQL`).
    """
    return [source, _COUNTED_SQL, _BUCKETED_SQL, _SWEPT_SQL]


_SUMMARY_SQL = """
WITH {lockers},
sized AS (
    SELECT *, (end_ns - start_ns) / 1e6 AS ms, (hold_end_ns - end_ns) / 1e6 AS hold_ms,
           after_let_go / 1e6 AS after_let_go_ms,
           sum(1) OVER (PARTITION BY fingerprint) AS n,
           row_number() OVER (PARTITION BY fingerprint ORDER BY end_ns - start_ns) AS by_time
    FROM {locks}
),
baselines AS (
    SELECT fingerprint,
           CASE WHEN count(*) FILTER (WHERE ahead = 0) >= $min_uncontended
                THEN median(ms) FILTER (WHERE ahead = 0)
                -- nearly always contended: its fastest tenth stands in for its own time,
                -- unless those that waited for nobody took less: in a queue that never
                -- drains even the fastest tenth waited for a whole hold. Slow executions
                -- running side by side look the same, their quick ones waiting for nobody
                -- by chance; but only in a queue does each queued one end the same time
                -- after a hold ends (the lock passed on, then its own time): the spread of
                -- that time, tenth to ninetieth percentile, within theirs and the tolerance
                WHEN count(*) FILTER (WHERE free) > 0
                     AND coalesce(quantile_cont(after_let_go_ms, 0.9) FILTER (WHERE queued)
                                  - quantile_cont(after_let_go_ms, 0.1) FILTER (WHERE queued), 0)
                         <= median(ms) FILTER (WHERE free) + $tolerance_ms
                THEN least(median(ms) FILTER (WHERE free),
                           max(ms) FILTER (WHERE by_time = n // 10 + 1))
                ELSE max(ms) FILTER (WHERE by_time = n // 10 + 1) END AS baseline_ms
    FROM sized GROUP BY fingerprint
),
waits AS (
    SELECT s.fingerprint, s.th, s.rh, s.trace_id, s.k, s.ahead, s.queued, s.end_ns,
           s.hold_end_ns, s.ms, s.hold_ms, b.baseline_ms,
           CASE WHEN s.queued  -- granted only as another let go: beyond its own was waiting
                THEN greatest(0, s.end_ns - s.start_ns - CAST(trunc(b.baseline_ms * 1e6) AS BIGINT))
                ELSE 0 END AS wait_ns
    FROM sized s JOIN baselines b ON b.fingerprint = s.fingerprint
)
SELECT w.fingerprint, any_value(l.statement), any_value(l.tables), count(*),
       count(*) FILTER (WHERE w.ahead > 0), count(*) FILTER (WHERE w.queued),
       coalesce(median(w.ms) FILTER (WHERE w.ahead > 0), 0.0), any_value(w.baseline_ms),
       sum(w.wait_ns), median(w.hold_ms),
       count(DISTINCT (w.th, w.rh)) FILTER (WHERE w.hold_end_ns > w.end_ns),
       coalesce(median(w.hold_ms) FILTER (WHERE w.hold_end_ns > w.end_ns), 0.0),
       list(w.trace_id ORDER BY w.wait_ns DESC, w.k)[1:3],
       list(w.trace_id ORDER BY w.k) FILTER (WHERE w.hold_end_ns > w.end_ns)[1:3]
FROM waits w JOIN lockers l ON l.fingerprint = w.fingerprint
GROUP BY w.fingerprint
ORDER BY w.fingerprint
"""

_BY_AHEAD_SQL = """
SELECT fingerprint, CASE WHEN ahead < 3 THEN CAST(ahead AS VARCHAR) ELSE '3+' END AS bucket,
       median((end_ns - start_ns) / 1e6)
FROM {locks} GROUP BY fingerprint, bucket ORDER BY fingerprint, bucket
"""

_ROUTES_SQL = """
SELECT fingerprint, route, count(*), median((hold_end_ns - end_ns) / 1e6),
       sum(hold_end_ns - end_ns) / 1e6
FROM {locks} GROUP BY fingerprint, route
"""

_BUSY_SQL = """
SELECT f.fingerprint, sum(r.duration_ms - r.pool_ms), count(*)
FROM (SELECT DISTINCT th, rh, fingerprint FROM {parts}
      WHERE category = 'db' AND fingerprint IN (SELECT fingerprint FROM {locks})) f
JOIN {reqs} r ON r.th = f.th AND r.rh = f.rh
GROUP BY f.fingerprint
"""

_PATTERNS = {
    "pattern": LOCKING_PATTERN,
    "never_waits": NEVER_WAITS_PATTERN,
    "session_lock": SESSION_LOCK_PATTERN,
}


def queues(run: Run, tolerance_ms: float, min_uncontended: int) -> list[Queue]:
    """Every locking statement of the run, its executions swept (see the module doc).

    The executions stay in the engine (the run's ``locks`` table); what comes back is a
    few rows per statement: its counts, medians, routes and example traces.
    """
    parts, reqs, locks = run.table("parts"), run.table("requests"), run.table("locks")
    executions = _EXECUTIONS_SQL.format(lockers=_LOCKERS_SQL, parts=parts, reqs=reqs)
    staged(
        run.con,
        locks,
        sweep_stages(executions),
        {"run": run.run_id, "tolerance": int(tolerance_ms * 1e6), **_PATTERNS},
    )
    rows = run.con.execute(
        _SUMMARY_SQL.format(lockers=_LOCKERS_SQL, locks=locks),
        {
            "run": run.run_id,
            "min_uncontended": min_uncontended,
            "tolerance_ms": tolerance_ms,
            **_PATTERNS,
        },
    ).fetchall()
    by_ahead: dict[str, dict[str, float]] = defaultdict(dict)
    for fp, bucket, median in run.con.execute(_BY_AHEAD_SQL.format(locks=locks)).fetchall():
        by_ahead[str(fp)][str(bucket)] = float(median)
    routes: dict[str, list[tuple[str, int, float, float]]] = defaultdict(list)
    for fp, route, n, median, total in run.con.execute(_ROUTES_SQL.format(locks=locks)).fetchall():
        routes[str(fp)].append((str(route), int(n), float(median), float(total)))
    busy = {
        str(fp): (ms, n)
        for fp, ms, n in run.con.execute(
            _BUSY_SQL.format(parts=parts, reqs=reqs, locks=locks)
        ).fetchall()
    }
    found = []
    for (fp, statement, tables, n, contended, queued, contended_ms, baseline, lost_ns,
         hold_ms, holding, holding_ms, waited, held) in rows:  # fmt: skip
        queue = Queue(
            str(fp), str(statement), list(tables or []), int(n), int(contended), int(queued),
            float(contended_ms), float(baseline or 0.0), int(lost_ns or 0) / 1e6,
            dict(sorted(by_ahead[str(fp)].items())), float(hold_ms or 0.0), int(holding),
            float(holding_ms), sorted(routes[str(fp)], key=lambda r: (-r[3], r[0])),
            tuple(dict.fromkeys(waited or [])), tuple(dict.fromkeys(held or [])),
        )  # fmt: skip
        busy_ms, requests = busy.get(queue.fingerprint, (None, 0))
        queue.busy_ms = float(busy_ms or 0.0)
        queue.requests = int(requests or 0)
        found.append(queue)
    return found


@dataclass(frozen=True)
class Activity:
    """What requests did while holding the lock: one kind of call, or their own code."""

    label: str
    category: str
    calls: int
    total_ms: float
    median_ms: float


#: What a call inside a hold was, in words (the outbound call's label without an article:
#: ``HTTP call POST /fraud-check``, ``call to fraud (POST)``; other statements by database).
_LABEL_SQL = """
CASE WHEN d.category <> 'downstream'
         THEN 'other statements (' || coalesce(nullif(s.db_system, ''), 'database') || ')'
     WHEN nullif(s.http_method, '') IS NOT NULL AND nullif(s.url_path, '') IS NOT NULL
         THEN 'HTTP call ' || s.http_method || ' ' || s.url_path
     WHEN coalesce(nullif(s.peer_service, ''), nullif(s.server_address, '')) IS NOT NULL
         THEN 'call to ' || coalesce(nullif(s.peer_service, ''), nullif(s.server_address, ''))
              || CASE WHEN nullif(s.name, '') IS NOT NULL THEN ' (' || s.name || ')'
                      ELSE '' END
     WHEN nullif(s.name, '') IS NOT NULL THEN 'call ' || s.name
     ELSE 'outbound call' END"""

_HELD_SQL = """
WITH holds AS (
    SELECT fingerprint, th, rh, span_id, end_ns AS t0, hold_end_ns AS t1 FROM {locks}
    WHERE hold_end_ns > end_ns
),
inside AS (
    SELECT h.fingerprint, h.span_id AS hold_id, d.category, {label} AS label,
           greatest(0, least(d.b, h.t1) - greatest(d.a, h.t0)) AS ns
    FROM holds h
    JOIN {parts} d ON d.th = h.th AND d.rh = h.rh AND d.span_id IS NOT NULL
         AND d.span_id <> h.span_id AND d.a < h.t1 AND d.b > h.t0
         AND d.category IN ('db', 'downstream')
    LEFT JOIN spans s ON s.run_id = $run AND s.trace_id = d.trace_id AND s.span_id = d.span_id
),
covered AS (SELECT fingerprint, hold_id, sum(ns) AS ns FROM inside GROUP BY fingerprint, hold_id),
own AS (
    SELECT h.fingerprint, greatest(0.0, (h.t1 - h.t0) / 1e6 - coalesce(c.ns, 0) / 1e6) AS ms
    FROM holds h LEFT JOIN covered c ON c.fingerprint = h.fingerprint AND c.hold_id = h.span_id
)
SELECT fingerprint, label, category, count(*) AS calls, sum(ns) / 1e6 AS total_ms,
       median(ns / 1e6) AS median_ms, 0 AS last
FROM inside GROUP BY fingerprint, label, category
UNION ALL
SELECT fingerprint, 'the application''s own code', 'app', count(*), sum(ms), median(ms), 1
FROM own GROUP BY fingerprint
"""


def held_activities(run: Run) -> dict[str, list[Activity]]:
    """What the holders of each locking statement's lock did inside their holds (from the
    run's ``locks`` table that :func:`queues` made), per fingerprint: largest total time
    first, own code last; a statement nobody held past its end has none.

    One statement for all of them: each on its own read the run's spans once more.
    """
    rows = run.con.execute(
        _HELD_SQL.format(locks=run.table("locks"), parts=run.table("parts"), label=_LABEL_SQL),
        {"run": run.run_id},
    ).fetchall()
    calls: dict[str, list[Activity]] = defaultdict(list)
    own: dict[str, Activity] = {}
    for fp, label, category, n, total, median, last in rows:
        if last:
            own[str(fp)] = Activity(str(label), str(category), int(n), float(total),
                                    float(median))  # fmt: skip
        else:
            calls[str(fp)].append(
                Activity(str(label), str(category), int(n), float(total or 0.0), float(median))
            )
    found = {}
    for fp, app in own.items():
        if app.calls:
            found[fp] = [*sorted(calls[fp], key=lambda a: (-a.total_ms, a.label)), app]
    return found


@dataclass(frozen=True)
class LockWaits:
    """What ``correlate watch`` saw of one statement's lock waits in the database."""

    waits: int
    samples: int
    blocked_sessions: int
    relation: str | None
    lock_mode: str | None
    lock_type: str | None
    blocking_query: str | None
    blocking_idle_in_transaction: float | None

    def evidence(self) -> dict[str, Any]:
        return {
            "db_lock_waits": self.waits,
            "db_lock_wait_samples": self.samples,
            "db_blocked_sessions": self.blocked_sessions,
            "db_lock_relation": self.relation,
            "db_lock_mode": self.lock_mode,
            "db_lock_type": self.lock_type,
            "db_blocking_query": self.blocking_query,
            "db_blocking_idle_in_transaction_share": self.blocking_idle_in_transaction,
        }


_LOCK_WAITS_SQL = """
SELECT count(*), count(DISTINCT (w.file_id, w.watch, w.sample)),
       count(DISTINCT (w.file_id, w.watch, w.blocked_id)),
       -- a wait on the row's tuple names the relation; one on the holder's
       -- transaction id does not
       mode(w.relation) FILTER (WHERE w.relation IS NOT NULL),
       mode(w.lock_mode) FILTER (WHERE w.lock_mode IS NOT NULL),
       mode(w.lock_type) FILTER (WHERE w.lock_type IS NOT NULL),
       mode(w.blocking_query) FILTER (WHERE w.blocking_query IS NOT NULL),
       avg(CASE WHEN a.activity IS NULL THEN NULL
                WHEN a.activity LIKE 'idle_in_transaction%' THEN 1.0 ELSE 0.0 END)
FROM db_lock_waits w
LEFT JOIN db_activity a
  ON a.run_id = w.run_id AND a.file_id = w.file_id AND a.watch = w.watch
 AND a.sample = w.sample AND a.session_id = w.blocking_id
WHERE w.run_id = $run AND w.blocked_fingerprint = $fp
"""


def lock_waits(run: Run, fingerprint: str) -> LockWaits | None:
    """The database's record of sessions blocked on ``fingerprint``, None when it has none."""
    ((waits, samples, blocked, relation, mode, type_, query, idle),) = run.con.execute(
        _LOCK_WAITS_SQL, {"run": run.run_id, "fp": fingerprint}
    ).fetchall()
    if not waits:
        return None
    return LockWaits(
        int(waits), int(samples), int(blocked), relation, mode, type_, query,
        None if idle is None else float(idle),
    )  # fmt: skip
