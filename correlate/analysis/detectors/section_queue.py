"""Who waited for whom in one application section: the measurements behind ``section_contention``.

A *section* is every span of one name in one service that is the application's own
work: below a request, neither the request itself nor a database, pool or outbound
call (an INTERNAL span around a ``with lock:``, a ``synchronized`` block, an advisory
lock taken in code). The spans opentelemetry-instrumentation-asgi (FastAPI, Starlette)
records for each protocol message (``GET /orders http send``: the response's start and
body handed to the server, a few microseconds each, one after the other on the event
loop) are the server's transport, not a section: they are left out, known by their
``asgi.event.type`` attribute (by their names only in a run where no span has it). When a lock serialises a section, its *critical parts* (the time
the lock is held) never overlap, and the spans show it in one of two ways:

- the span covers the wait and the critical part (it starts before acquiring): the
  executions overlap, but each one's *end* lies at least one critical part away from
  the end of every other execution it overlapped; its duration is the wait plus its
  own time. Overlapping code that runs beside the others (threads interleaving under
  a GIL, I/O waits) ends closer together than that: their critical parts overlap;
- the span covers only the critical part (it starts once acquired): the executions
  never overlap, and one starts as the one before it ends (within ``handoff_ms``),
  while its request was already in flight before that end; its request's time
  before the section is the wait.

An execution with another request's execution of the same section in flight when it
started, or handed the section directly, is *contended*; a contended execution
*queued* when it is an overlap whose end kept its distance from all the others' or a
hand-off. Its *wait* is its time beyond the section's uncontended duration (the span
covers the wait), or its request's time before the section beyond the uncontended
requests' time before it (the span covers the critical part only).

All of it is SQL, so the executions stay in the engine that holds the spans (the run's
``sections`` table) and a few rows per section come back. How many are ahead of an
execution comes from running counts in start order, and so does a hand-off (the other
requests' ends just before an execution's start); spacing pairs a contended execution
only with the ends near its own end, and not even that when its neighbour in end order
already ran beside it (the whole of a pile-up at one instant), and then only within time
buckets two gaps wide.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from correlate.analysis.requests import CATEGORY_SQL, staged

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass
class Section:
    """One section (service and span name), its executions swept and summed up."""

    service: str
    name: str
    executions: int
    #: executions that met another request's execution, or were handed the section
    contended: int
    #: of those, executions that ran one at a time (spaced ends) or were handed over
    queued: int
    handoffs: int
    #: uncontended executions, and queued ones that were not handed over
    free: int
    queued_overlaps: int
    #: their waits (ns), summed
    queued_overlaps_wait_ns: int
    baseline_ms: float
    baseline_before_ms: float
    lost_ms: float
    #: median wait and median time before the section of the queued executions
    median_wait_ms: float
    median_before_ms: float
    #: the executions' time, summed
    spent_ms: float
    #: median duration per number ahead ("0", "1", "2", "3+")
    by_ahead: dict[str, float]
    #: (route, executions, total wait), the most waiting first
    routes: list[tuple[str, int, float]]
    #: example traces, the longest waits first
    waited_traces: tuple[str, ...]
    busy_ms: float = 0.0
    requests: int = 0


_EXECUTIONS_SQL = """
WITH own AS (
    SELECT o.th, o.rh, s.service, s.name, s.span_id, s.trace_id, s.start_ns, s.end_ns
    FROM {owner} o JOIN {tree} s USING (th, sh)
    WHERE o.depth > 0 AND s.kind IS DISTINCT FROM 'SERVER' AND s.name IS NOT NULL
      AND ({category}) IS NULL
      -- the ASGI instrumentation's spans of the server's own protocol messages, known
      -- by the message they carry; by their names only in a run where none says so
      -- (an export that dropped attributes)
      AND s.asgi_event IS NULL
      AND NOT ((SELECT count(*) FROM {tree} a WHERE a.asgi_event IS NOT NULL) = 0
               AND (s.name LIKE '% http send' OR s.name LIKE '% http receive'
                    OR s.name LIKE '% websocket send' OR s.name LIKE '% websocket receive'))
),
big AS (
    SELECT service, name FROM own GROUP BY ALL HAVING count(*) >= $min_executions
)
SELECT e.service, e.name, e.th, e.rh, e.span_id, e.trace_id, r.route,
       r.start_ns AS request_start_ns, e.start_ns, greatest(e.end_ns, e.start_ns) AS end_ns
FROM own e JOIN big USING (service, name) JOIN {reqs} r USING (th, rh)
"""

_COUNTED_SQL = """
WITH ordered AS (
    SELECT *, row_number() OVER (PARTITION BY service, name ORDER BY start_ns, span_id) AS k,
           -- instant executions starting here, from this one on in order: ended by its
           -- start, but not ahead of it
           sum(CASE WHEN end_ns = start_ns THEN 1 ELSE 0 END) OVER (
               PARTITION BY service, name, start_ns ORDER BY span_id DESC
               ROWS UNBOUNDED PRECEDING) AS instant_from_here
    FROM {prev}
),
events AS (
    SELECT service, name, end_ns AS t, 0 AS kind, 0 AS k FROM ordered
    UNION ALL
    SELECT service, name, start_ns AS t, 1 AS kind, k FROM ordered
),
ended AS (  -- executions ended by each one's start, whenever they started
    SELECT service, name, k, n FROM (
        SELECT service, name, kind, k,
               sum(1 - kind) OVER (PARTITION BY service, name ORDER BY t, kind
                                   ROWS UNBOUNDED PRECEDING) AS n
        FROM events
    ) WHERE kind = 1
),
own AS (  -- its own request's executions still running when it starts
    SELECT i.service, i.name, i.k, count(*) AS n
    FROM ordered i JOIN ordered j
      ON j.service = i.service AND j.name = i.name AND j.th = i.th AND j.rh = i.rh
     AND j.k < i.k AND j.end_ns > i.start_ns
    GROUP BY i.service, i.name, i.k
),
counted AS (
    SELECT o.service, o.name, o.th, o.rh, o.span_id, o.trace_id, o.route,
           o.request_start_ns, o.start_ns, o.end_ns, o.k,
           o.k - 1 - (e.n - o.instant_from_here) - coalesce(w.n, 0) AS ahead
    FROM ordered o
    JOIN ended e ON e.service = o.service AND e.name = o.name AND e.k = o.k
    LEFT JOIN own w ON w.service = o.service AND w.name = o.name AND w.k = o.k
)
SELECT * FROM counted
"""

_MARKED_SQL = """
-- handed over: another request's execution ended just before it started (within
-- the hand-off allowance), while its own request was already in flight
WITH bounds AS (
    SELECT service, name, th, rh, k,
           greatest(start_ns - $handoff - 1, request_start_ns) AS lo,
           start_ns + $tolerance AS hi
    FROM {prev} WHERE ahead = 0
),
marks AS (  -- the ends of executions, and each interval's bounds among them
    SELECT service, name, end_ns AS t, 0 AS kind, 0 AS k, 0 AS upper FROM {prev}
    UNION ALL
    SELECT service, name, lo AS t, 1 AS kind, k, 0 AS upper FROM bounds
    UNION ALL
    SELECT service, name, hi AS t, 1 AS kind, k, 1 AS upper FROM bounds
),
ended_by AS (
    SELECT service, name, k, upper, n FROM (
        SELECT service, name, kind, k, upper,
               sum(1 - kind) OVER (PARTITION BY service, name ORDER BY t, kind
                                   ROWS UNBOUNDED PRECEDING) AS n
        FROM marks
    ) WHERE kind = 1
),
ends_near AS (  -- ends in (lo, hi], every request's
    SELECT service, name, k,
           max(n) FILTER (WHERE upper = 1) - max(n) FILTER (WHERE upper = 0) AS n
    FROM ended_by GROUP BY service, name, k
),
own_near AS (  -- of those, its own request's (itself included)
    SELECT b.service, b.name, b.k, count(*) AS n
    FROM bounds b JOIN {prev} j
      ON j.service = b.service AND j.name = b.name AND j.th = b.th AND j.rh = b.rh
     AND j.end_ns > b.lo AND j.end_ns <= b.hi
    GROUP BY b.service, b.name, b.k
),
handed AS (
    SELECT e.service, e.name, e.k, e.n - coalesce(o.n, 0) AS n
    FROM ends_near e
    LEFT JOIN own_near o ON o.service = e.service AND o.name = e.name AND o.k = e.k
),
marked AS (
    SELECT c.service, c.name, c.th, c.rh, c.span_id, c.trace_id, c.route, c.start_ns,
           c.end_ns, c.k, c.ahead, coalesce(h.n, 0) > 0 AS handoff,
           (c.end_ns - c.start_ns) / 1e6 AS ms,
           greatest(0, c.start_ns - c.request_start_ns) / 1e6 AS before_ms,
           sum(1) OVER (PARTITION BY c.service, c.name) AS n,
           row_number() OVER (PARTITION BY c.service, c.name ORDER BY c.end_ns - c.start_ns)
               AS by_time,
           row_number() OVER (PARTITION BY c.service, c.name
                              ORDER BY greatest(0, c.start_ns - c.request_start_ns))
               AS by_before
    FROM {prev} c
    LEFT JOIN handed h ON h.service = c.service AND h.name = c.name AND h.k = c.k
),
baselines AS (
    SELECT service, name,
           count(*) FILTER (WHERE ahead = 0 AND NOT handoff) >= $min_uncontended AS enough,
           median(ms) FILTER (WHERE ahead = 0 AND NOT handoff) AS free_ms,
           median(before_ms) FILTER (WHERE ahead = 0 AND NOT handoff) AS free_before_ms,
           -- nearly always contended: the fastest tenth stands in for its own time
           max(ms) FILTER (WHERE by_time = n // 10 + 1) AS tenth_ms,
           max(before_ms) FILTER (WHERE by_before = n // 10 + 1) AS tenth_before_ms
    FROM marked GROUP BY service, name
),
gapped AS (
    SELECT m.service, m.name, m.th, m.rh, m.span_id, m.trace_id, m.route, m.start_ns,
           m.end_ns, m.k, m.ahead, m.handoff, m.ms, m.before_ms,
           CASE WHEN b.enough THEN b.free_ms ELSE b.tenth_ms END AS baseline_ms,
           CASE WHEN b.enough THEN b.free_before_ms ELSE b.tenth_before_ms END
               AS baseline_before_ms,
           greatest(CAST(trunc($spacing * CASE WHEN b.enough THEN b.free_ms ELSE b.tenth_ms END
                                * 1e6) AS BIGINT), $tolerance) AS gap_ns,
           -- the neighbours in end order, to settle most overlaps without a pairing
           lag(m.end_ns) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS prev_end, lag(m.start_ns) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS prev_start,
           lag(m.th) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS prev_th, lag(m.rh) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS prev_rh,
           lead(m.end_ns) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS next_end, lead(m.start_ns) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS next_start,
           lead(m.th) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS next_th, lead(m.rh) OVER (PARTITION BY m.service, m.name ORDER BY m.end_ns, m.k) AS next_rh
    FROM marked m JOIN baselines b ON b.service = m.service AND b.name = m.name
)
-- ends are paired only within time buckets two gaps wide: an end's (end - gap, end + gap)
-- reaches into two of them at most
SELECT *, greatest(2 * gap_ns, 1) AS w, end_ns // greatest(2 * gap_ns, 1) AS end_bucket
FROM gapped
"""

_SWEPT_SQL = """
WITH beside AS (  -- another request's execution that overlapped it ended near its end:
             -- their critical parts overlapped, so they ran side by side
    SELECT service, name, k,
           coalesce(prev_end > end_ns - gap_ns AND prev_start < end_ns AND prev_end > start_ns
                    AND NOT (prev_th = th AND prev_rh = rh), false)
           OR coalesce(next_end < end_ns + gap_ns AND next_start < end_ns
                       AND next_end > start_ns AND NOT (next_th = th AND next_rh = rh), false)
               AS by_neighbour
    FROM {prev}
),
probes AS (  -- the buckets of (end - gap, end + gap)
    SELECT g.service, g.name, g.th, g.rh, g.k, g.start_ns, g.end_ns, g.gap_ns,
           (g.end_ns - g.gap_ns + 1) // g.w AS bucket
    FROM {prev} g JOIN beside b ON b.service = g.service AND b.name = g.name AND b.k = g.k
    WHERE g.ahead > 0 AND NOT b.by_neighbour
    UNION ALL
    SELECT g.service, g.name, g.th, g.rh, g.k, g.start_ns, g.end_ns, g.gap_ns,
           (g.end_ns + g.gap_ns - 1) // g.w AS bucket
    FROM {prev} g JOIN beside b ON b.service = g.service AND b.name = g.name AND b.k = g.k
    WHERE g.ahead > 0 AND NOT b.by_neighbour
      AND (g.end_ns + g.gap_ns - 1) // g.w <> (g.end_ns - g.gap_ns + 1) // g.w
),
paired AS (
    SELECT i.service, i.name, i.k, count(*) AS n
    FROM probes i JOIN {prev} j
      ON j.service = i.service AND j.name = i.name AND j.end_bucket = i.bucket
     AND j.end_ns > i.end_ns - i.gap_ns AND j.end_ns < i.end_ns + i.gap_ns
     AND j.start_ns < i.end_ns AND j.end_ns > i.start_ns AND NOT (j.th = i.th AND j.rh = i.rh)
    GROUP BY i.service, i.name, i.k
),
swept AS (
    SELECT g.service, g.name, g.th, g.rh, g.span_id, g.trace_id, g.route, g.start_ns,
           g.end_ns, g.k, g.ahead, g.handoff, g.ms, g.before_ms, g.baseline_ms,
           g.baseline_before_ms, g.ahead > 0 OR g.handoff AS contended,
           g.handoff OR (g.ahead > 0 AND NOT b.by_neighbour AND coalesce(p.n, 0) = 0)
               AS queued
    FROM {prev} g
    JOIN beside b ON b.service = g.service AND b.name = g.name AND b.k = g.k
    LEFT JOIN paired p ON p.service = g.service AND p.name = g.name AND p.k = g.k
)
SELECT service, name, th, rh, span_id, trace_id, route, start_ns, end_ns, k, ahead, handoff,
       contended, queued, ms, before_ms, baseline_ms, baseline_before_ms,
       CASE WHEN handoff
                THEN greatest(0, CAST(trunc((before_ms - baseline_before_ms) * 1e6) AS BIGINT))
            WHEN queued THEN greatest(0, CAST(trunc((ms - baseline_ms) * 1e6) AS BIGINT))
            ELSE 0 END AS wait_ns
FROM swept
"""


def sweep_stages(source: str) -> list[str]:
    """The stages (:func:`correlate.analysis.requests.staged`) that sweep the executions
    ``source`` selects (``service, name, th, rh, span_id, trace_id, route,
    request_start_ns, start_ns, end_ns``): one row each, with ``k`` (start order),
    ``ahead``, ``handoff``, ``contended``, ``queued``, ``wait_ns`` and the section's
    baselines. Parameters: ``$tolerance`` and ``$handoff`` (ns), ``$spacing``,
    ``$min_uncontended``, and those of ``source``."""
    return [source, _COUNTED_SQL, _MARKED_SQL, _SWEPT_SQL]


_SUMMARY_SQL = """
SELECT service, name, count(*), count(*) FILTER (WHERE contended),
       count(*) FILTER (WHERE queued), count(*) FILTER (WHERE handoff),
       count(*) FILTER (WHERE NOT contended), count(*) FILTER (WHERE queued AND NOT handoff),
       coalesce(sum(wait_ns) FILTER (WHERE queued AND NOT handoff), 0),
       any_value(baseline_ms), any_value(baseline_before_ms), sum(wait_ns),
       median(wait_ns / 1e6) FILTER (WHERE queued), median(before_ms) FILTER (WHERE queued),
       sum(end_ns - start_ns) / 1e6,
       list(trace_id ORDER BY wait_ns DESC, k)[1:3]
FROM {sections} GROUP BY service, name ORDER BY service, name
"""

_BY_AHEAD_SQL = """
SELECT service, name, CASE WHEN ahead < 3 THEN CAST(ahead AS VARCHAR) ELSE '3+' END AS bucket,
       median(ms)
FROM {sections} GROUP BY service, name, bucket ORDER BY service, name, bucket
"""

_ROUTES_SQL = """
SELECT service, name, route, count(*), sum(wait_ns) / 1e6
FROM {sections} GROUP BY service, name, route
"""


def sections(
    run: Run, *, tolerance_ms: float, handoff_ms: float, spacing: float,
    min_uncontended: int, min_executions: int,
) -> list[Section]:  # fmt: skip
    """Every section of the run with at least ``min_executions`` executions, swept; the
    executions stay in the run's ``sections`` table."""
    table = run.table("sections")
    executions = _EXECUTIONS_SQL.format(
        owner=run.table("owner"), tree=run.table("tree"), reqs=run.table("requests"),
        category=CATEGORY_SQL,
    )  # fmt: skip
    staged(
        run.con,
        table,
        sweep_stages(executions),
        {
            "min_executions": min_executions, "tolerance": int(tolerance_ms * 1e6),
            "handoff": int(handoff_ms * 1e6), "spacing": spacing,
            "min_uncontended": min_uncontended,
        },
    )  # fmt: skip
    by_ahead: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for service, name, bucket, median in run.con.execute(
        _BY_AHEAD_SQL.format(sections=table)
    ).fetchall():
        by_ahead[(str(service), str(name))][str(bucket)] = float(median)
    routes: dict[tuple[str, str], list[tuple[str, int, float]]] = defaultdict(list)
    for service, name, route, n, wait in run.con.execute(
        _ROUTES_SQL.format(sections=table)
    ).fetchall():
        routes[(str(service), str(name))].append((str(route), int(n), float(wait or 0.0)))
    found = []
    for row in run.con.execute(_SUMMARY_SQL.format(sections=table)).fetchall():
        key = (str(row[0]), str(row[1]))
        n, contended, queued, handoffs, free, overlaps, overlaps_wait = (int(v) for v in row[2:9])
        baseline, before, lost, wait, queued_before, spent, traces = row[9:]
        found.append(
            Section(
                key[0],
                key[1],
                n,
                contended,
                queued,
                handoffs,
                free,
                overlaps,
                overlaps_wait,
                float(baseline or 0.0),
                float(before or 0.0),
                int(lost or 0) / 1e6,
                float(wait or 0.0),
                float(queued_before or 0.0),
                float(spent or 0.0),
                dict(sorted(by_ahead[key].items())),
                sorted(routes[key], key=lambda r: (-r[2], r[0])),
                tuple(dict.fromkeys(traces or [])),
            )
        )
    return found


_BUSY_SQL = """
SELECT sum(r.duration_ms - r.pool_ms), count(*) FROM {reqs} r
WHERE (r.th, r.rh) IN (SELECT (th, rh) FROM {sections} WHERE service = $service AND name = $name)
"""


def busy(run: Run, section: Section) -> None:
    """Set the time (outside pool waits) and number of the requests that run ``section``."""
    ((total, requests),) = run.con.execute(
        _BUSY_SQL.format(reqs=run.table("requests"), sections=run.table("sections")),
        {"service": section.service, "name": section.name},
    ).fetchall()
    section.busy_ms = float(total or 0.0)
    section.requests = int(requests or 0)


#: Which of a section's executions :func:`inside` looks into.
WHICH = {
    "all": "true",
    "free": "NOT contended",
    "queued_overlaps": "queued AND NOT handoff",
}

_INSIDE_SQL = """
SELECT p.category, count(*), sum(least(p.b, e.end_ns) - greatest(p.a, e.start_ns)) / 1e6
FROM {sections} e JOIN {parts} p
  ON p.th = e.th AND p.rh = e.rh AND p.a < e.end_ns AND p.b > e.start_ns
 AND p.span_id IS NOT NULL AND p.span_id <> e.span_id
WHERE e.service = $service AND e.name = $name AND {which}
GROUP BY p.category ORDER BY p.category
"""


def inside(run: Run, section: Section, which: str = "all") -> dict[str, tuple[int, float]]:
    """Calls made inside the section's executions (``which`` of them, a key of
    :data:`WHICH`), by category (``db``, ``downstream``, ``pool``): how many and their
    time in milliseconds, clipped to the executions."""
    params: dict[str, Any] = {"service": section.service, "name": section.name}
    rows = run.con.execute(
        _INSIDE_SQL.format(
            sections=run.table("sections"), parts=run.table("parts"), which=WHICH[which]
        ),
        params,
    ).fetchall()
    return {str(c): (int(n), float(ms or 0.0)) for c, n, ms in rows}
