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
- its *wait*, when it queued: its time beyond the statement's uncontended median.

The sweep is one pass over the executions in start order with a heap of the holds
still open, so it is O(n log n) in the statement's executions.
"""

from __future__ import annotations

import bisect
import heapq
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
class Execution:
    """One execution of a locking statement, and what the sweep found about it."""

    th: int
    rh: int
    span_id: str
    trace_id: str
    route: str
    start_ns: int
    end_ns: int
    hold_end_ns: int
    ahead: int = 0
    queued: bool = False
    wait_ns: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def hold_ms(self) -> float:
        return (self.hold_end_ns - self.end_ns) / 1e6


@dataclass
class Queue:
    """The executions of one locking statement, swept."""

    fingerprint: str
    statement: str
    tables: list[str]
    executions: list[Execution]
    baseline_ms: float = 0.0
    busy_ms: float = 0.0
    requests: int = 0
    by_ahead: dict[str, float] = field(default_factory=dict)

    @property
    def contended(self) -> list[Execution]:
        return [e for e in self.executions if e.ahead > 0]

    @property
    def queued(self) -> list[Execution]:
        return [e for e in self.executions if e.queued]

    @property
    def lost_ms(self) -> float:
        return sum(e.wait_ns for e in self.executions) / 1e6


_EXECUTIONS_SQL = """
WITH lockers AS (
    SELECT fingerprint, any_value(normalized) AS statement, any_value(tables) AS tables,
           -- a session-level advisory lock outlives COMMIT
           bool_or(regexp_matches(normalized, $session_lock, 'i')) AS outlives_commit
    FROM statements
    WHERE run_id = $run AND regexp_matches(normalized, $pattern, 'i')
      AND NOT regexp_matches(normalized, $never_waits, 'i')
    GROUP BY fingerprint
),
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
SELECT e.fingerprint, any_value(l.statement), any_value(l.tables),
       e.th, e.rh, e.span_id, e.trace_id, e.route, e.start_ns, e.end_ns,
       greatest(e.end_ns, coalesce(
           min(d.end_ns) FILTER (WHERE d.fingerprint IN (SELECT fingerprint FROM ends)
                                 AND NOT e.outlives_commit),
           max(d.end_ns), e.end_ns)) AS hold_end_ns
FROM execs e
JOIN lockers l USING (fingerprint)
LEFT JOIN {parts} d
  ON d.th = e.th AND d.rh = e.rh AND d.category = 'db' AND d.start_ns >= e.end_ns
GROUP BY e.fingerprint, e.th, e.rh, e.span_id, e.trace_id, e.route, e.start_ns, e.end_ns,
         e.outlives_commit
ORDER BY e.fingerprint, e.start_ns, e.span_id
"""

_BUSY_SQL = """
SELECT sum(r.duration_ms - r.pool_ms), count(*) FROM {reqs} r
WHERE EXISTS (SELECT 1 FROM {parts} p
              WHERE p.th = r.th AND p.rh = r.rh AND p.category = 'db' AND p.fingerprint = $fp)
"""


def queues(run: Run, tolerance_ms: float, min_uncontended: int) -> list[Queue]:
    """Every locking statement of the run, its executions swept (see the module doc)."""
    parts, reqs = run.table("parts"), run.table("requests")
    rows = run.con.execute(
        _EXECUTIONS_SQL.format(parts=parts, reqs=reqs),
        {
            "run": run.run_id,
            "pattern": LOCKING_PATTERN,
            "never_waits": NEVER_WAITS_PATTERN,
            "session_lock": SESSION_LOCK_PATTERN,
        },
    ).fetchall()
    grouped: dict[str, Queue] = {}
    for fp, statement, tables, th, rh, span_id, trace_id, route, s0, s1, hold in rows:
        queue = grouped.get(fp)
        if queue is None:
            queue = grouped[fp] = Queue(str(fp), str(statement), list(tables or []), [])
        queue.executions.append(
            Execution(int(th), int(rh), str(span_id), str(trace_id), str(route),
                      int(s0), max(int(s1), int(s0)), max(int(hold), int(s1), int(s0)))
        )  # fmt: skip
    for queue in grouped.values():
        sweep(queue, int(tolerance_ms * 1e6), min_uncontended)
        ((busy, requests),) = run.con.execute(
            _BUSY_SQL.format(parts=parts, reqs=reqs), {"fp": queue.fingerprint}
        ).fetchall()
        queue.busy_ms = float(busy or 0.0)
        queue.requests = int(requests or 0)
    return list(grouped.values())


def sweep(queue: Queue, tolerance_ns: int, min_uncontended: int) -> None:
    """Mark each execution's ``ahead``, ``queued`` and ``wait_ns``; set the baseline.

    An execution with others ahead *queued* when it was granted (it ended) while no
    other request held the lock, after at least one of those ahead let go: the lock
    passed from one to the next. Waiters need not be served in arrival order (a
    PostgreSQL row lock is not a fair queue), so which of them goes next is not
    assumed. Running beside another's hold (a different row) is not queueing.
    """
    execs = sorted(queue.executions, key=lambda e: (e.start_ns, e.span_id))
    granted_inside = _granted_inside_a_hold(execs, tolerance_ns)
    open_holds: list[tuple[int, int]] = []  # (hold end, index), the earliest end first
    open_per_request: Counter[tuple[int, int]] = Counter()  # so counting costs no scan
    for i, e in enumerate(execs):
        while open_holds and open_holds[0][0] <= e.start_ns:
            _, j = heapq.heappop(open_holds)
            open_per_request[(execs[j].th, execs[j].rh)] -= 1
        mine = (e.th, e.rh)
        e.ahead = len(open_holds) - open_per_request[mine]
        e.queued = bool(
            e.ahead
            and _first_let_go(execs, open_holds, mine) <= e.end_ns + tolerance_ns
            and not granted_inside[i]
        )
        heapq.heappush(open_holds, (e.hold_end_ns, i))
        open_per_request[mine] += 1
    free = [e.duration_ms for e in execs if e.ahead == 0]
    if len(free) >= min_uncontended:
        baseline = statistics.median(free)
    else:  # nearly always contended: its fastest tenth stands in for its own time
        durations = sorted(e.duration_ms for e in execs)
        baseline = durations[len(durations) // 10] if durations else 0.0
    queue.baseline_ms = baseline
    base_ns = int(baseline * 1e6)
    for e in execs:
        if e.queued:  # granted only as another let go: its time beyond its own was waiting
            e.wait_ns = max(0, e.end_ns - e.start_ns - base_ns)
    queue.executions = execs
    buckets: dict[str, list[float]] = defaultdict(list)
    for e in execs:
        buckets[str(e.ahead) if e.ahead < 3 else "3+"].append(e.duration_ms)
    queue.by_ahead = {k: statistics.median(v) for k, v in sorted(buckets.items())}


def _first_let_go(
    execs: list[Execution], open_holds: list[tuple[int, int]], mine: tuple[int, int]
) -> int:
    """The earliest end among the open holds of requests other than ``mine``: the heap's
    top, unless that is ``mine`` (a statement run twice in one request)."""
    end, j = open_holds[0]
    if (execs[j].th, execs[j].rh) != mine:
        return end
    return min(h for h, k in open_holds if (execs[k].th, execs[k].rh) != mine)


def _granted_inside_a_hold(execs: list[Execution], tolerance_ns: int) -> list[bool]:
    """For each execution: did it end inside another request's hold (beyond the tolerance)?

    Holds sorted by start, with the two largest hold ends of distinct requests so far,
    so each question is one binary search.
    """
    holds = sorted((e.end_ns, e.hold_end_ns, (e.th, e.rh)) for e in execs)
    starts = [h[0] for h in holds]
    none: tuple[int, object] = (-(2**63), None)
    best, second = none, none
    tops: list[tuple[tuple[int, object], tuple[int, object]]] = []
    for _, end, request in holds:
        if request == best[1]:
            best = (max(best[0], end), request)
        elif end > best[0]:
            best, second = (end, request), best
        elif end > second[0]:
            second = (end, request)
        tops.append((best, second))
    inside = []
    for e in execs:
        k = bisect.bisect_left(starts, e.end_ns - tolerance_ns)
        if k == 0:
            inside.append(False)
            continue
        first, other = tops[k - 1]
        latest = first[0] if first[1] != (e.th, e.rh) else other[0]
        inside.append(latest > e.end_ns + tolerance_ns)
    return inside


@dataclass(frozen=True)
class Activity:
    """What requests did while holding the lock: one kind of call, or their own code."""

    label: str
    category: str
    calls: int
    total_ms: float
    median_ms: float


_HELD_SQL = """
SELECT h.span_id, d.category, d.span_id AS call_id, d.fingerprint,
       greatest(d.a, h.t0) AS a, least(d.b, h.t1) AS b,
       s.name, s.http_method, s.url_path, s.server_address, s.peer_service, s.db_system
FROM {holds} h
JOIN {parts} d ON d.th = h.th AND d.rh = h.rh AND d.span_id IS NOT NULL
     AND d.span_id <> h.span_id AND d.a < h.t1 AND d.b > h.t0
     AND d.category IN ('db', 'downstream')
LEFT JOIN spans s ON s.run_id = $run AND s.trace_id = d.trace_id AND s.span_id = d.span_id
"""


def held_activities(run: Run, executions: list[Execution]) -> list[Activity]:
    """What the holders did inside their holds, largest total time first (own code last)."""
    holding = [e for e in executions if e.hold_end_ns > e.end_ns]
    if not holding:
        return []
    rows = run.query_with(
        "holds",
        {
            "th": ("uint64", [e.th for e in holding]),
            "rh": ("uint64", [e.rh for e in holding]),
            "span_id": ("string", [e.span_id for e in holding]),
            "t0": ("int64", [e.end_ns for e in holding]),
            "t1": ("int64", [e.hold_end_ns for e in holding]),
        },
        _HELD_SQL,
        parts=run.table("parts"),
    )
    per_label: dict[tuple[str, str], list[float]] = defaultdict(list)
    covered: Counter[str] = Counter()
    for hold_id, category, _call, fp, a, b, name, method, path, address, peer, system in rows:
        length = max(0, int(b) - int(a))
        covered[hold_id] += length
        label = (
            _call_label(name, method, path, address, peer)
            if category == "downstream"
            else f"other statements ({system or 'database'})"
        )
        del fp
        per_label[(label, str(category))].append(length / 1e6)
    found = [
        Activity(label, category, len(v), sum(v), statistics.median(v))
        for (label, category), v in per_label.items()
    ]
    own = [max(0.0, e.hold_ms - covered[e.span_id] / 1e6) for e in holding]
    found.sort(key=lambda a: (-a.total_ms, a.label))
    found.append(Activity("the application's own code", "app", len(own), sum(own),
                          statistics.median(own)))  # fmt: skip
    return found


def _call_label(
    name: str | None, method: str | None, path: str | None, address: str | None, peer: str | None
) -> str:
    """The call without an article: ``HTTP call POST /fraud-check``."""
    if method and path:
        return f"HTTP call {method} {path}"
    target = peer or address
    if target:
        return f"call to {target}" + (f" ({name})" if name else "")
    return f"call {name}" if name else "outbound call"


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
