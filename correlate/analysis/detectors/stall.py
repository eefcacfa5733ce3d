"""The database stopped answering: a stretch in which no query of a busy service ended.

Rule (docs/rules.md#database_stall): a service whose database calls ended steadily (at
least ``min_queries`` before) goes at least ``min_gap_s`` — and ``gap_factor`` times its
slowest call so far (p99) — without one call ending, while at least ``min_requests`` of its
requests ran. A query's span ends only when the query returns, so a hung database or a
network that drops everything and closes nothing leaves exactly that: the calls in flight
never reach the trace (or reach it only when the service gives up on them: asyncpg's, which
a server shutting down cancels, end then, long after they began), later requests wait for a
connection or a reply that never comes, and end only when their clients give up (on Node,
with the status they had, 200). A call was in flight in a request that took a connection
(a checkout span) and saw nothing of its own end after, in a call whose span ran through the
stretch, or in a request that never ended (its calls under a parent that never did): without
any, the silence is no stall (a pool that leaked dry). Without
a checkout timeout nothing fails, and each such request reads as its own code's time
(``unexplained_time``), which this finding explains instead; with one, the pool's
finding names the hang (docs/rules.md#pool_exhausted) and this one stays beside it as info.

correlate's own rule: Datadog's and pganalyze's views of a database that stops answering
are its server metrics (active sessions, waits), which a load-test run often lacks; the
spans still show the silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.findings import Finding, ms
from correlate.analysis.pool_stalled import CHECKOUTS_SQL, SUGGESTION, with_tables
from correlate.analysis.settings import setting
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class StallSettings:
    """Thresholds of :func:`database_stall` (keys ``database_stall.*``)."""

    section: ClassVar[str] = "database_stall"
    min_gap_s: float = setting(2.0, "time without a database call ending, at least", unit="s")
    gap_factor: float = setting(
        10.0, "…and at least this many times the service's p99 call before it", low=1.0
    )
    min_queries: int = setting(50, "database calls of the service that ended before it", low=1)
    min_requests: int = setting(10, "requests of the service running during it", low=1)
    min_in_flight: int = setting(
        3, "requests with a call in flight in it that was never answered", low=1
    )


DEFAULTS = StallSettings()

_GAPS_SQL = (
    """
WITH calls AS (
    SELECT coalesce(r.service, '') AS service, p.th, p.rh, p.start_ns, p.end_ns,
           max(p.start_ns) OVER (PARTITION BY coalesce(r.service, '')) AS last_start_ns
    FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    WHERE p.category = 'db' AND p.span_id IS NOT NULL
),
ends AS (
    -- each call's end and the next one's (the service's requests' last end, after the last)
    SELECT service, end_ns AS from_ns,
           coalesce(lead(end_ns) OVER (PARTITION BY service ORDER BY end_ns),
                    (SELECT max(end_ns) FROM {reqs} x WHERE coalesce(x.service, '') = calls.service))
               AS to_ns,
           row_number() OVER (PARTITION BY service ORDER BY end_ns) AS before,
           min(start_ns) OVER (PARTITION BY service) AS first_ns
    FROM calls
),
last_checkout AS ("""
    + CHECKOUTS_SQL
    + """
),
orphaned AS (
    -- the spans of the traces with no request
    SELECT coalesce(s.service, '') AS service, s.th, s.sh, s.ph, s.parent_id, s.start_ns,
           s.end_ns, ({category}) AS category
    FROM {tree} s WHERE s.th NOT IN (SELECT th FROM {owner})
),
parented AS (
    SELECT c.sh FROM orphaned c JOIN orphaned p ON p.th = c.th AND p.sh = c.ph
),
silent AS (
    -- a request that took a connection and started work on it that never reported back
    -- (no query or call after its last checkout ended), then ran on: a call in flight
    SELECT coalesce(r.service, '') AS service, r.th, r.rh, c.end_ns AS got_ns, r.end_ns,
           0 AS unended
    FROM last_checkout c JOIN {reqs} r ON r.th = c.th AND r.rh = c.rh
    WHERE c.k = 1 AND c.status_code IS DISTINCT FROM 'ERROR'
      AND NOT EXISTS (
          SELECT 1 FROM {parts} q
          WHERE q.th = c.th AND q.rh = c.rh AND q.category IN ('db', 'downstream')
            AND q.end_ns > c.end_ns)
    UNION ALL
    -- a call seen in flight: its span ended long after it began, when the service gave
    -- up on it (asyncpg's, cancelled at shutdown), not when the database answered: no
    -- call of the service began after it ended (a slow query that returned is no such
    -- call); no checkout span needed
    SELECT service, th, rh, start_ns, end_ns, 0 FROM calls
    WHERE end_ns - start_ns >= $min_gap AND end_ns >= last_start_ns
    UNION ALL
    -- a request that never ended (its server stopped with it waiting): only its calls that
    -- ended were exported, in a trace with no request, under a parent that never ended
    -- (its request's); silent from its last call to the run's end, which came as the
    -- stretch began (not a request whose span was merely lost, long before)
    SELECT service, th, ph, max(end_ns), (SELECT max(end_ns) FROM {tree}), 1 FROM orphaned
    WHERE category = 'db' AND parent_id IS NOT NULL AND sh NOT IN (SELECT sh FROM parented)
      AND start_ns >= (SELECT min(start_ns) FROM {reqs})
    GROUP BY service, th, ph
),
gaps AS (
    -- every stretch long enough after enough calls (the widest may be a pause between
    -- stages that nobody ran in, and must not hide a narrower one that qualifies), with
    -- its calls in flight: few requests are silent, so this stays cheap however many
    SELECT e.*,
           (SELECT count(DISTINCT (x.th, x.rh)) FROM silent x WHERE x.service = e.service
              AND x.got_ns < e.to_ns AND x.end_ns >= greatest(x.got_ns, e.from_ns) + $min_gap
              AND (x.unended = 0 OR x.got_ns >= e.from_ns - $min_gap))
               AS in_flight
    FROM ends e WHERE e.to_ns - e.from_ns >= $min_gap AND e.before >= $min_queries
),
widest AS (
    -- only the widest few with calls in flight are worth the scans of requests below
    SELECT * FROM gaps WHERE in_flight >= $min_in_flight
    QUALIFY row_number() OVER (PARTITION BY service ORDER BY to_ns - from_ns DESC, from_ns) <= 8
)
SELECT w.service, w.from_ns, w.to_ns, w.before, w.first_ns,
       (SELECT quantile_cont(c.end_ns - c.start_ns, 0.99) FROM calls c
        WHERE c.service = w.service AND c.end_ns <= w.from_ns) AS p99_ns,
       (SELECT count(*) FROM {reqs} r WHERE coalesce(r.service, '') = w.service
          AND r.start_ns < w.to_ns AND r.end_ns > w.from_ns) AS running,
       (SELECT count(*) FROM {reqs} r WHERE coalesce(r.service, '') = w.service
          AND r.start_ns >= w.from_ns AND r.end_ns <= w.to_ns) AS inside,
       (SELECT quantile_cont(r.duration_ms, 0.5) FROM {reqs} r
        WHERE coalesce(r.service, '') = w.service
          AND r.start_ns >= w.from_ns AND r.end_ns <= w.to_ns) AS inside_ms,
       (SELECT count(*) FROM {reqs} r WHERE coalesce(r.service, '') = w.service
          AND r.start_ns < w.to_ns AND r.end_ns > w.from_ns AND r.error) AS failed,
       w.in_flight
FROM widest w
ORDER BY w.service, w.to_ns - w.from_ns DESC, w.from_ns
"""
)


def database_stall(run: Run, settings: StallSettings = DEFAULTS) -> list[Finding]:
    s = settings
    rows = run.con.execute(
        with_tables(_GAPS_SQL, run),
        {
            "min_gap": int(s.min_gap_s * 1e9),
            "min_queries": s.min_queries,
            "min_in_flight": s.min_in_flight,
        },
    ).fetchall()
    found, seen = [], set()
    for service, lo, hi, before, first, p99, running, inside, inside_ms, failed, in_flight in rows:
        gap = hi - lo
        if (
            service in seen  # its widest stretch that qualifies is found already
            or in_flight < s.min_in_flight
            or before < s.min_queries
            or running < s.min_requests
            or gap < s.min_gap_s * 1e9
            or gap < s.gap_factor * (p99 or 0)
        ):
            continue
        rate = before / max((lo - first) / 1e9, 1e-9)  # since its first call, not the run's start
        found.append(_finding(run, s, service or None, lo, hi, before, rate, p99, running, inside,
                              inside_ms, failed, in_flight))  # fmt: skip
        seen.add(service)
    return sorted(found, key=lambda f: -f.evidence["silent_s"])


def _finding(
    run: Run,
    s: StallSettings,
    service: str | None,
    lo: int,
    hi: int,
    before: int,
    rate: float,
    p99: float | None,
    running: int,
    inside: int,
    inside_ms: float | None,
    failed: int,
    in_flight: int,
) -> Finding:
    start, end = run.span
    t0, t1 = (lo - start) / 1e9, (hi - start) / 1e9
    to_end = hi >= end - 1e9  # it lasted to the run's last request
    whose = f" of {service}" if service else ""
    inside_text = (
        (
            f"; the one that began and ended within it took {ms(inside_ms)}"
            if inside == 1
            else f"; the {inside:,} that began and ended within it took {ms(inside_ms)} each "
            "(median)"
        )
        + ", with no query answered"
        if inside and inside_ms is not None
        else ""
    )
    gave_up = (
        "until its client gave up (none failed)"
        if failed == 0
        else f"until it failed ({failed:,} did) or its client gave up"
    )
    return Finding(
        kind=FindingKind.DATABASE_STALL,
        severity=Severity.CRITICAL,
        title=(
            f"The database stopped answering at {t0:.0f} s: no query{whose} ended "
            + ("until the run's end" if to_end else f"for {(hi - lo) / 1e9:.1f} s")
        ),
        route=None,
        impact_ms=0.0,
        evidence={
            "service": service,
            "from_s": t0,
            "to_s": t1,
            "silent_s": (hi - lo) / 1e9,
            "calls_before": int(before),
            "calls_per_second_before": rate,
            "p99_call_ms_before": (p99 or 0) / 1e6,
            "requests_running": int(running),
            "requests_within": int(inside),
            "median_ms_within": inside_ms,
            "requests_failed": int(failed),
            "calls_in_flight": int(in_flight),
        },
        explanation=(
            f"Before {t0:.0f} s {service or 'the service'} had {before:,} database calls answered "
            f"({rate:,.0f} a second, p99 {ms((p99 or 0) / 1e6)}); from then "
            + ("to the end of the run" if to_end else f"to {t1:.0f} s")
            + f" not one call ended, while {running:,} of its requests ran{inside_text}. "
            f"{in_flight:,} requests had taken a connection and started a call on it by then "
            "or in it, and none of those calls was ever answered. A call's span ends when the "
            "database answers it (or the service gives up on it): the database, or the network "
            "to it, stopped answering, and "
            "every request after waited for a reply or for a connection that those calls "
            f"held, {gave_up}. The time it "
            "waited reads as the requests' own code, because no span that ended covers it."
        ),
        suggestion=SUGGESTION
        + " Give the pool's checkouts a timeout too (node-postgres connectionTimeoutMillis, "
        "SQLAlchemy pool_timeout), so that requests fail fast rather than queue behind them.",
        threshold=(
            f"no database call ending for ≥ {s.min_gap_s:g} s and ≥ {s.gap_factor:g}× the "
            f"p99 call before, after ≥ {s.min_queries} calls, with ≥ {s.min_requests} "
            f"requests running and ≥ {s.min_in_flight} calls in flight in it that "
            "were never answered"
        ),
        source="correlate (docs/rules.md#database_stall)",
    )
