"""Unexplained time: a route whose latency is mostly outside DB, pool and downstream spans.

Rule (correlate's own; docs/rules.md#unexplained_time): the route's mean time
in none of those spans is at least ``min_share`` of its mean latency *and* at
least ``min_app_ms``, over at least ``min_requests`` requests. The absolute floor keeps fast
routes, where a few milliseconds of framework work are most of the time,
from being flagged.
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
class UnexplainedTimeSettings:
    """Thresholds of :func:`unexplained_time` (keys ``unexplained_time.*``)."""

    section: ClassVar[str] = "unexplained_time"
    min_share: float = share(0.5, "share of the route's mean latency outside DB/pool/downstream")
    min_app_ms: float = setting(50.0, "mean time per request outside those spans", unit="ms")
    min_requests: int = setting(10, "requests of the route", low=1)


DEFAULTS = UnexplainedTimeSettings()


def unexplained_time(run: Run, settings: UnexplainedTimeSettings = DEFAULTS) -> list[Finding]:
    s = settings
    reqs = run.table("requests")
    rows = run.con.execute(
        f"""
        SELECT route, count(*) AS n, avg(duration_ms) AS mean_ms, avg(app_ms) AS app_ms,
               sum(app_ms) AS total_app_ms, quantile_cont(app_ms, 0.5) AS p50_app_ms,
               list(trace_id ORDER BY app_ms DESC, trace_id)[1:3] AS traces
        FROM {reqs} GROUP BY route
        HAVING count(*) >= $min_requests AND avg(app_ms) >= $min_app_ms
           AND avg(app_ms) >= $min_share * avg(duration_ms)
        ORDER BY total_app_ms DESC, route
        """,
        {"min_requests": s.min_requests, "min_app_ms": s.min_app_ms, "min_share": s.min_share},
    ).fetchall()
    found = []
    for route, n, mean_ms, app_ms, total, p50, traces in rows:
        share = app_ms / mean_ms if mean_ms else 0.0
        found.append(
            Finding(
                kind=FindingKind.UNEXPLAINED_TIME,
                severity=Severity.WARNING,
                title=f"Unexplained time in {route}: {pct(share)} outside DB and downstream spans",
                route=route,
                impact_ms=float(total),
                evidence={
                    "requests": int(n),
                    "mean_ms": float(mean_ms),
                    "app_ms": float(app_ms),
                    "p50_app_ms": float(p50),
                    "share": share,
                },
                trace_ids=tuple(traces),
                explanation=(
                    f"{route} spends {ms(app_ms)} of its {ms(mean_ms)} mean in its own code: no "
                    "database, pool or outgoing-call span covers that time. It is CPU work, "
                    "waiting on something not instrumented (a lock, sleep, file or an HTTP "
                    "client without instrumentation), or serialisation."
                ),
                suggestion=(
                    "Profile the route (pyinstrument, py-spy) or add spans around its steps; "
                    "instrument any HTTP client, cache or queue library it calls."
                ),
                threshold=(
                    f"≥ {pct(s.min_share)} of mean latency and ≥ {s.min_app_ms:.0f} ms per "
                    f"request outside DB, pool and downstream spans, ≥ {s.min_requests} requests"
                ),
                source="correlate (docs/rules.md#unexplained_time)",
            )
        )
    return found
