"""Who waited for whom in one application section: the measurements behind ``section_contention``.

A *section* is every span of one name in one service that is the application's own
work: below a request, neither the request itself nor a database, pool or outbound
call (an INTERNAL span around a ``with lock:``, a ``synchronized`` block, an advisory
lock taken in code). When a lock serialises a section, its *critical parts* (the time
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

Sorting by start and by end, every execution is looked at once with binary searches,
so a section of n executions costs O(n log n) plus the overlaps actually found.
"""

from __future__ import annotations

import bisect
import heapq
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from correlate.analysis.requests import CATEGORY_SQL

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass
class Execution:
    """One execution of a section, and what the sweep found about it."""

    th: int
    rh: int
    span_id: str
    trace_id: str
    route: str
    request_start_ns: int
    start_ns: int
    end_ns: int
    ahead: int = 0
    handoff: bool = False
    spaced: bool = False
    wait_ns: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def before_ms(self) -> float:
        """The request's time before the section started."""
        return max(0, self.start_ns - self.request_start_ns) / 1e6

    @property
    def contended(self) -> bool:
        return self.ahead > 0 or self.handoff

    @property
    def queued(self) -> bool:
        return self.handoff or (self.ahead > 0 and self.spaced)


@dataclass
class Section:
    """The executions of one section (service and span name), swept."""

    service: str
    name: str
    executions: list[Execution]
    baseline_ms: float = 0.0
    baseline_before_ms: float = 0.0
    busy_ms: float = 0.0
    requests: int = 0
    by_ahead: dict[str, float] = field(default_factory=dict)

    @property
    def contended(self) -> list[Execution]:
        return [e for e in self.executions if e.contended]

    @property
    def queued(self) -> list[Execution]:
        return [e for e in self.executions if e.queued]

    @property
    def handoffs(self) -> int:
        return sum(e.handoff for e in self.executions)

    @property
    def lost_ms(self) -> float:
        return sum(e.wait_ns for e in self.executions) / 1e6


_EXECUTIONS_SQL = """
WITH own AS (
    SELECT o.th, o.rh, s.service, s.name, s.span_id, s.trace_id, s.start_ns, s.end_ns
    FROM {owner} o JOIN {tree} s USING (th, sh)
    WHERE o.depth > 0 AND s.kind IS DISTINCT FROM 'SERVER' AND s.name IS NOT NULL
      AND ({category}) IS NULL
),
big AS (
    SELECT service, name FROM own GROUP BY ALL HAVING count(*) >= $min_executions
)
SELECT e.service, e.name, e.th, e.rh, e.span_id, e.trace_id, r.route, r.start_ns,
       e.start_ns, e.end_ns
FROM own e JOIN big USING (service, name) JOIN {reqs} r USING (th, rh)
ORDER BY e.service, e.name, e.start_ns, e.span_id
"""

_BUSY_SQL = """
SELECT sum(r.duration_ms - r.pool_ms), count(*) FROM {reqs} r
WHERE (r.th, r.rh) IN (SELECT (th, rh) FROM {section_keys})
"""


def sections(
    run: Run, *, tolerance_ms: float, handoff_ms: float, spacing: float,
    min_uncontended: int, min_executions: int,
) -> list[Section]:  # fmt: skip
    """Every section of the run with at least ``min_executions`` executions, swept."""
    rows = run.con.execute(
        _EXECUTIONS_SQL.format(
            owner=run.table("owner"), tree=run.table("tree"), reqs=run.table("requests"),
            category=CATEGORY_SQL,
        ),
        {"min_executions": min_executions},
    ).fetchall()  # fmt: skip
    grouped: dict[tuple[str, str], Section] = {}
    for service, name, th, rh, span_id, trace_id, route, r0, s0, s1 in rows:
        key = (str(service), str(name))
        section = grouped.get(key)
        if section is None:
            section = grouped[key] = Section(key[0], key[1], [])
        section.executions.append(
            Execution(int(th), int(rh), str(span_id), str(trace_id), str(route),
                      int(r0), int(s0), max(int(s1), int(s0)))
        )  # fmt: skip
    found = []
    for section in grouped.values():
        sweep(section, int(tolerance_ms * 1e6), int(handoff_ms * 1e6), spacing, min_uncontended)
        found.append(section)
    return found


def busy(run: Run, section: Section) -> None:
    """Set the time (outside pool waits) and number of the requests that run ``section``."""
    ((total, requests),) = run.query_with(
        "section_keys",
        {
            "th": ("uint64", [e.th for e in section.executions]),
            "rh": ("uint64", [e.rh for e in section.executions]),
        },
        _BUSY_SQL,
        reqs=run.table("requests"),
    )
    section.busy_ms = float(total or 0.0)
    section.requests = int(requests or 0)


_INSIDE_SQL = """
SELECT p.category, count(*), sum(least(p.b, e.t1) - greatest(p.a, e.t0)) / 1e6
FROM {section_inside} e JOIN {parts} p
  ON p.th = e.th AND p.rh = e.rh AND p.a < e.t1 AND p.b > e.t0 AND p.span_id IS NOT NULL
 AND p.span_id <> e.span_id
GROUP BY p.category ORDER BY p.category
"""


def inside(run: Run, executions: list[Execution]) -> dict[str, tuple[int, float]]:
    """Calls made inside these executions, by category (``db``, ``downstream``, ``pool``):
    how many and their time in milliseconds, clipped to the executions."""
    rows = run.query_with(
        "section_inside",
        {
            "th": ("uint64", [e.th for e in executions]),
            "rh": ("uint64", [e.rh for e in executions]),
            "span_id": ("string", [e.span_id for e in executions]),
            "t0": ("int64", [e.start_ns for e in executions]),
            "t1": ("int64", [e.end_ns for e in executions]),
        },
        _INSIDE_SQL,
        parts=run.table("parts"),
    )
    return {str(c): (int(n), float(ms or 0.0)) for c, n, ms in rows}


def sweep(
    section: Section, tolerance_ns: int, handoff_ns: int, spacing: float, min_uncontended: int
) -> None:
    """Mark each execution's ``ahead``, ``handoff``, ``spaced`` and ``wait_ns``; set baselines."""
    execs = sorted(section.executions, key=lambda e: (e.start_ns, e.span_id))
    n = len(execs)
    open_ends: list[tuple[int, int]] = []  # (end, index), the earliest end first
    open_per_request: Counter[tuple[int, int]] = Counter()  # so counting costs no scan
    for i, e in enumerate(execs):
        while open_ends and open_ends[0][0] <= e.start_ns:
            _, j = heapq.heappop(open_ends)
            open_per_request[(execs[j].th, execs[j].rh)] -= 1
        e.ahead = len(open_ends) - open_per_request[(e.th, e.rh)]
        heapq.heappush(open_ends, (e.end_ns, i))
        open_per_request[(e.th, e.rh)] += 1
    by_end = sorted(range(n), key=lambda k: execs[k].end_ns)
    ends = [execs[k].end_ns for k in by_end]
    for e in execs:
        if e.ahead:
            continue
        # handed over: another request's execution ended just before this one started,
        # while this request was already in flight
        lo = max(
            bisect.bisect_left(ends, e.start_ns - handoff_ns),
            bisect.bisect_right(ends, e.request_start_ns),  # ended after this request began
        )
        hi = bisect.bisect_right(ends, e.start_ns + tolerance_ns)
        e.handoff = any(_other(execs[by_end[k]], e) for k in range(lo, hi))
    free = [e for e in execs if not e.contended]
    durations = sorted(e.duration_ms for e in execs)
    if len(free) >= min_uncontended:
        baseline = statistics.median(e.duration_ms for e in free)
        before = statistics.median(e.before_ms for e in free)
    else:  # nearly always contended: the fastest tenth stands in for its own time
        baseline = durations[n // 10] if durations else 0.0
        befores = sorted(e.before_ms for e in execs)
        before = befores[n // 10] if befores else 0.0
    section.baseline_ms, section.baseline_before_ms = baseline, before
    gap_ns = max(int(spacing * baseline * 1e6), tolerance_ns)
    for e in execs:
        if e.ahead:
            # every other request's execution ending near this one's end overlapped it:
            # their critical parts overlapped, so they ran side by side
            lo = bisect.bisect_right(ends, e.end_ns - gap_ns)
            hi = bisect.bisect_left(ends, e.end_ns + gap_ns)
            e.spaced = not any(
                _other(o, e) and o.start_ns < e.end_ns and o.end_ns > e.start_ns
                for o in (execs[by_end[k]] for k in range(lo, hi))
            )
        if e.handoff:
            e.wait_ns = max(0, int((e.before_ms - before) * 1e6))
        elif e.queued:
            e.wait_ns = max(0, int((e.duration_ms - baseline) * 1e6))
    section.executions = execs
    buckets: dict[str, list[float]] = {}
    for e in execs:
        buckets.setdefault(str(e.ahead) if e.ahead < 3 else "3+", []).append(e.duration_ms)
    section.by_ahead = {k: statistics.median(v) for k, v in sorted(buckets.items())}


def _other(a: Execution, b: Execution) -> bool:
    return (a.th, a.rh) != (b.th, b.rh)
