"""N+1 queries: one statement shape run again and again under one parent span.

Rule (Sentry's N+1 DB query detector; docs/rules.md#n_plus_one): the same
fingerprint at least ``min_calls`` times under one parent, and the union of
those spans' intervals at least ``min_union_ms``. Two deliberate differences:
spans are grouped by parent rather than by an unbroken run of DB spans, so
SQLAlchemy's pool ``connect`` spans between the queries do not hide the
pattern (a known miss of Sentry's sequence rule); and overlapping spans count,
as in Sentry's detector since it dropped its overlap check. Severity escalates
at ``critical_calls`` repetitions, perf-sentinel's critical level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class NPlusOneSettings:
    """Thresholds of :func:`n_plus_one` (keys ``n_plus_one.*``)."""

    section: ClassVar[str] = "n_plus_one"
    #: a finding below critical_calls is a warning: min_calls above it leaves none
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("min_calls", "critical_calls"),)
    min_calls: int = setting(5, "calls of one fingerprint under one parent span", low=2)
    min_union_ms: float = setting(50.0, "union of those calls' intervals, per parent", unit="ms")
    critical_calls: int = setting(10, "calls per request from which the finding is critical")
    min_request_share: float = share(
        0.05, "share of its route's requests below which the pattern is only info"
    )


DEFAULTS = NPlusOneSettings()


def n_plus_one(run: Run, settings: NPlusOneSettings = DEFAULTS) -> list[Finding]:
    s = settings
    parts, reqs = run.table("parts"), run.table("requests")
    rows = run.con.execute(
        f"""
        WITH db AS (
            SELECT th, rh, ph, fingerprint, a, b
            FROM {parts} WHERE category = 'db' AND b > a
        ),
        islands AS (
            SELECT *, sum(new_island) OVER (PARTITION BY th, rh, ph, fingerprint
                                            ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS island
            FROM (
                SELECT *, CASE WHEN a > max(b) OVER (
                    PARTITION BY th, rh, ph, fingerprint
                    ORDER BY a, b ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                    THEN 1 ELSE 0 END AS new_island
                FROM db
            )
        ),
        groups AS (
            SELECT th, rh, ph, fingerprint,
                   sum(calls) AS calls, sum(b - a) / 1e6 AS union_ms
            FROM (SELECT th, rh, ph, fingerprint, island,
                         count(*) AS calls, min(a) AS a, max(b) AS b
                  FROM islands GROUP BY ALL)
            GROUP BY ALL
            HAVING sum(calls) >= $min_calls
        ),
        -- a request may run the loop under several parents: one row per request
        hits AS (
            SELECT r.route, g.fingerprint, any_value(r.trace_id) AS trace_id,
                   sum(g.calls) AS calls, sum(g.union_ms) AS union_ms,
                   any_value(r.duration_ms) AS duration_ms
            FROM groups g JOIN {reqs} r ON r.th = g.th AND r.rh = g.rh
            WHERE g.union_ms >= $min_union_ms
            GROUP BY r.th, r.rh, r.route, g.fingerprint
        )
        SELECT h.route, h.fingerprint, count(*) AS requests,
               (SELECT count(*) FROM {reqs} r WHERE r.route = h.route) AS route_requests,
               avg(h.calls) AS calls, max(h.calls) AS max_calls, avg(h.union_ms) AS union_ms,
               sum(h.union_ms) AS total_ms, avg(h.duration_ms) AS duration_ms,
               list(h.trace_id ORDER BY h.union_ms DESC)[1:3] AS traces
        FROM hits h GROUP BY h.route, h.fingerprint
        ORDER BY total_ms DESC
        """,
        {"min_calls": s.min_calls, "min_union_ms": s.min_union_ms},
    ).fetchall()
    texts = _texts(run)
    found = []
    for route, fp, n, route_n, calls, max_calls, union_ms, total_ms, duration_ms, traces in rows:
        share = n / route_n if route_n else 0.0
        severity = Severity.CRITICAL if calls >= s.critical_calls else Severity.WARNING
        if share < s.min_request_share:
            severity = Severity.INFO
        table = texts.get(fp, ("", None))[1]
        what = f"the same query{f' on {table}' if table else ''}"
        found.append(
            Finding(
                kind=FindingKind.N_PLUS_ONE,
                severity=severity,
                title=f"N+1 queries in {route}: {what} {calls:.0f}× per request",
                route=route,
                fingerprint=fp,
                impact_ms=float(total_ms),
                evidence={
                    "requests": int(n),
                    "route_requests": int(route_n),
                    "share_of_requests": share,
                    "calls_per_request": float(calls),
                    "max_calls": int(max_calls),
                    "union_ms_per_request": float(union_ms),
                    "mean_request_ms": float(duration_ms),
                    "statement": texts.get(fp, ("", None))[0],
                },
                trace_ids=tuple(traces),
                explanation=(
                    f"{pct(share)} of {route} requests ({n} of {route_n}) run {what} "
                    f"{calls:.0f} times under one parent span, {ms(union_ms)} of database time "
                    f"per request out of {ms(duration_ms)}: one query per item instead of one "
                    "for all of them."
                ),
                suggestion=(
                    "Fetch the rows for all items in one query: an IN (…) or a join, or with "
                    "SQLAlchemy eager loading (selectinload / joinedload) on the relationship "
                    "the loop walks."
                ),
                threshold=(
                    f"≥ {s.min_calls} calls of one fingerprint under one parent and ≥ "
                    f"{s.min_union_ms:.0f} ms of their union; critical from {s.critical_calls} "
                    "calls"
                ),
                source="Sentry N+1 DB query detector, connect spans transparent; perf-sentinel "
                "critical level (docs/rules.md#n_plus_one)",
            )
        )
    return found


def _texts(run: Run) -> dict[str, tuple[str, str | None]]:
    rows = run.con.execute(
        "SELECT fingerprint, any_value(normalized), any_value(tables[1]) FROM statements "
        "WHERE run_id = ? GROUP BY fingerprint",
        [run.run_id],
    ).fetchall()
    return {fp: (text, table) for fp, text, table in rows}
