"""Unexplained time: a route whose latency is mostly outside DB, pool and downstream spans.

Rule (correlate's own): the route's mean time in none of those spans is at
least :data:`MIN_SHARE` of its mean latency *and* at least :data:`MIN_APP_MS`,
over at least :data:`MIN_REQUESTS` requests. The absolute floor keeps fast
routes, where a few milliseconds of framework work are most of the time,
from being flagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.analysis.findings import Finding, ms, pct

if TYPE_CHECKING:
    from correlate.analysis.run import Run

MIN_SHARE = 0.5
MIN_APP_MS = 50.0
MIN_REQUESTS = 10


def unexplained_time(run: Run) -> list[Finding]:
    reqs = run.table("requests")
    rows = run.con.execute(
        f"""
        SELECT route, count(*) AS n, avg(duration_ms) AS mean_ms, avg(app_ms) AS app_ms,
               sum(app_ms) AS total_app_ms, quantile_cont(app_ms, 0.5) AS p50_app_ms,
               list(trace_id ORDER BY app_ms DESC)[1:3] AS traces
        FROM {reqs} GROUP BY route
        HAVING count(*) >= {MIN_REQUESTS} AND avg(app_ms) >= {MIN_APP_MS}
           AND avg(app_ms) >= {MIN_SHARE} * avg(duration_ms)
        ORDER BY total_app_ms DESC
        """
    ).fetchall()
    found = []
    for route, n, mean_ms, app_ms, total, p50, traces in rows:
        share = app_ms / mean_ms if mean_ms else 0.0
        found.append(
            Finding(
                kind="unexplained_time",
                severity="warning",
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
                    f"≥ {pct(MIN_SHARE)} of mean latency and ≥ {MIN_APP_MS:.0f} ms per request "
                    f"outside DB, pool and downstream spans, ≥ {MIN_REQUESTS} requests"
                ),
                source="correlate",
            )
        )
    return found
