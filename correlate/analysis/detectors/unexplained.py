"""Unexplained time: a route whose latency is mostly outside DB, pool and downstream spans.

Rule (correlate's own; docs/rules.md#unexplained_time): the route's mean time
in none of those spans is at least ``min_share`` of its mean latency *and* at
least ``min_app_ms``, over at least ``min_requests`` requests. The absolute floor keeps fast
routes, where a few milliseconds of framework work are most of the time,
from being flagged.

When most of that time is a wait before the request's first query while the service's
connection holders were at their ceiling (:mod:`correlate.analysis.connection_queue`), the
finding says so: the requests most likely queued for a pooled connection that no span
measures. It is still an inference from timing, and the finding says that too, rather than
calling the wait the route's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.connection_queue import lead_waits
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class UnexplainedTimeSettings:
    """Thresholds of :func:`unexplained_time` (keys ``unexplained_time.*``)."""

    section: ClassVar[str] = "unexplained_time"
    min_share: float = share(0.5, "share of the route's mean latency outside DB/pool/downstream")
    min_app_ms: float = setting(50.0, "mean time per request outside those spans", unit="ms")
    min_requests: int = setting(10, "requests of the route", low=1)
    queue_share: float = share(
        0.5,
        "share of that time before the first query with the connection holders at their "
        "ceiling, from which it is read as a queue for a connection",
    )


DEFAULTS = UnexplainedTimeSettings()


def unexplained_time(run: Run, settings: UnexplainedTimeSettings = DEFAULTS) -> list[Finding]:
    s = settings
    lead_waits(run)  # made on first use
    reqs, leads = run.table("requests"), run.table("lead_waits")
    rows = run.con.execute(
        f"""
        SELECT r.route, count(*) AS n, avg(r.duration_ms) AS mean_ms, avg(r.app_ms) AS app_ms,
               sum(r.app_ms) AS total_app_ms, quantile_cont(r.app_ms, 0.5) AS p50_app_ms,
               list(r.trace_id ORDER BY r.app_ms DESC, r.trace_id)[1:3] AS traces,
               avg(coalesce(w.queued_ms, 0)) AS queued_ms, max(w.ceiling) AS ceiling
        FROM {reqs} r LEFT JOIN {leads} w ON w.th = r.th AND w.rh = r.rh
        GROUP BY r.route
        HAVING count(*) >= $min_requests AND avg(r.app_ms) >= $min_app_ms
           AND avg(r.app_ms) >= $min_share * avg(r.duration_ms)
        ORDER BY total_app_ms DESC, r.route
        """,
        {"min_requests": s.min_requests, "min_app_ms": s.min_app_ms, "min_share": s.min_share},
    ).fetchall()
    found = []
    for route, n, mean_ms, app_ms, total, p50, traces, queued_ms, ceiling in rows:
        share = app_ms / mean_ms if mean_ms else 0.0
        evidence = {
            "requests": int(n),
            "mean_ms": float(mean_ms),
            "app_ms": float(app_ms),
            "p50_app_ms": float(p50),
            "share": share,
        }
        title = f"Unexplained time in {route}: {pct(share)} outside DB and downstream spans"
        explanation = (
            f"{route} spends {ms(app_ms)} of its {ms(mean_ms)} mean in its own code: no "
            "database, pool or outgoing-call span covers that time. It is CPU work, "
            "waiting on something not instrumented (a lock, sleep, file or an HTTP "
            "client without instrumentation), or serialisation."
        )
        suggestion = (
            "Profile the route (pyinstrument, py-spy) or add spans around its steps; "
            "instrument any HTTP client, cache or queue library it calls."
        )
        if ceiling is not None and queued_ms >= s.queue_share * app_ms:
            evidence |= {"queued_ms": float(queued_ms), "holders_ceiling": int(ceiling)}
            title += ", most of it a wait before the first query"
            explanation = (
                f"{route} spends {ms(app_ms)} of its {ms(mean_ms)} mean outside any database, "
                f"pool or outgoing-call span, and {ms(queued_ms)} of it "
                f"({pct(queued_ms / app_ms)}) passes before the request's first query while "
                "other requests of the service held connections (ran between their first and "
                f"last query) {ceiling} at once, the most that held one together in the run: "
                "the requests most likely queued for a connection from a pool of about "
                f"{ceiling}. No span or metric measures that wait (the driver's pool reports "
                "none), so it is read from the spans' timing, not measured, and the time "
                "breakdown still counts it as application time. The other "
                f"{ms(max(app_ms - queued_ms, 0.0))} is the route's own code or another "
                "uninstrumented wait."
            )
            suggestion = (
                f"Look at the connection pool first: at most {ceiling} requests held a "
                "connection at once while others waited. Size it for the concurrency, or hold "
                "connections for less time (the slowest statements, work done while holding "
                "one); instrument the pool's checkouts (pool metrics or connect spans) to "
                "measure the wait."
            )
        found.append(
            Finding(
                kind=FindingKind.UNEXPLAINED_TIME,
                severity=Severity.WARNING,
                title=title,
                route=route,
                impact_ms=float(total),
                evidence=evidence,
                trace_ids=tuple(traces),
                explanation=explanation,
                suggestion=suggestion,
                threshold=(
                    f"≥ {pct(s.min_share)} of mean latency and ≥ {s.min_app_ms:.0f} ms per "
                    f"request outside DB, pool and downstream spans, ≥ {s.min_requests} requests"
                ),
                source="correlate (docs/rules.md#unexplained_time)",
            )
        )
    return found
