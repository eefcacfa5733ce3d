"""Error bursts: stretches of the run where requests fail far more than at its start.

Rule (Grafana k6 Performance Insights, "increased HTTP failure rate";
docs/rules.md#error_burst): a window whose error rate is at least ``rise``
(10 percentage points) above the rate at the start of the run. Adjacent
flagged windows (one quiet window allowed between) make one burst. Each burst
names its routes, status codes and the exception types recorded on the
failing requests' spans. Critical when the burst's errors are at least
``critical_share`` of all the run's requests.

A run that fails from its start has no rise to see; k6's "high HTTP failure
rate" covers it (docs/rules.md#error_rate): more than ``high_start_rate`` of
the first ``start_requests`` requests failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.findings import Finding, pct
from correlate.analysis.pool_pressure import failed_for_want_of_a_connection, unreachable
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class ErrorBurstSettings:
    """Thresholds of :func:`error_bursts` (keys ``error_bursts.*``)."""

    section: ClassVar[str] = "error_bursts"
    rise: float = share(0.10, "a window's error rate above the start's rate (0.10 = 10 points)")
    baseline_windows: int = setting(3, "windows at the start that set the baseline rate", low=1)
    min_errors: int = setting(3, "failed requests in a burst", low=1)
    critical_share: float = share(
        0.05, "the burst's errors as a share of all the run's requests, from which it is critical"
    )
    high_start_rate: float = share(
        0.15, "error rate of the first requests above which the run failed from its start"
    )
    start_requests: int = setting(100, "how many first requests that rate is taken over", low=1)
    pool_share: float = share(
        0.5, "share of a burst's failures that failed waiting for a connection: a pool symptom"
    )


DEFAULTS = ErrorBurstSettings()


def error_bursts(run: Run, settings: ErrorBurstSettings = DEFAULTS) -> list[Finding]:
    s = settings
    timeline = run.timeline()
    busy = timeline[timeline.requests > 0]
    if busy.empty or busy.errors.sum() < s.min_errors:
        return []
    base = busy.head(s.baseline_windows)
    baseline = float(base.errors.sum() / max(base.requests.sum(), 1))
    start_ns = run.span[0]
    (first_end,) = run.con.execute(
        f"SELECT max(end_ns) FROM (SELECT end_ns FROM {run.table('requests')} "
        "ORDER BY end_ns LIMIT $n)",
        {"n": s.start_requests},
    ).fetchone() or (None,)
    early = (
        _burst(run, s, start_ns, int(first_end) + 1, 0.0, int(timeline.requests.sum()))
        if first_end is not None
        else []
    )
    if early and early[0].evidence["error_rate"] > s.high_start_rate:
        return [_from_start(early[0], s)]
    flagged = list(busy.bucket[busy.error_rate >= baseline + s.rise])
    bursts: list[list[int]] = []
    for b in flagged:
        if bursts and b - bursts[-1][-1] <= 2:
            bursts[-1].append(b)
        else:
            bursts.append([b])
    width = float(timeline.width_s.iloc[0])
    total_requests = int(timeline.requests.sum())
    found = []
    for burst in bursts:
        lo = start_ns + int(burst[0] * width * 1e9)
        hi = start_ns + int((burst[-1] + 1) * width * 1e9)
        found.extend(_burst(run, s, lo, hi, baseline, total_requests))
    return found


def _burst(
    run: Run, s: ErrorBurstSettings, lo: int, hi: int, baseline: float, total: int
) -> list[Finding]:
    reqs, owner, tree = run.table("requests"), run.table("owner"), run.table("tree")
    params = {"run": run.run_id, "lo": lo, "hi": hi}
    row = run.con.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE error),
               -- its first three failures are its examples: not every failed request's id
               list(trace_id ORDER BY start_ns) FILTER (WHERE error)[1:3],
               histogram(route) FILTER (WHERE error),
               histogram(coalesce(http_status::VARCHAR, 'no status')) FILTER (WHERE error)
        FROM {reqs} r
        WHERE r.end_ns >= $lo AND r.end_ns < $hi
        """,
        {"lo": lo, "hi": hi},
    ).fetchone()
    if row is None or (row[1] or 0) < s.min_errors:
        return []
    n, errors, traces, routes, statuses = row
    pool_failed = failed_for_want_of_a_connection(run, lo, hi)
    routes, statuses = routes or {}, statuses or {}
    exceptions = dict(
        run.con.execute(
            f"""
            SELECT ev.attributes->>'$."exception.type"' AS type, count(*) AS n
            FROM (
                SELECT unnest(s.events) AS ev
                FROM {reqs} r
                JOIN {owner} o ON o.th = r.th AND o.rh = r.rh
                JOIN {tree} t ON t.th = o.th AND t.sh = o.sh
                JOIN spans s ON s.run_id = $run AND s.trace_id = t.trace_id
                            AND s.span_id = t.span_id
                WHERE r.error AND r.end_ns >= $lo AND r.end_ns < $hi
            )
            WHERE ev.name = 'exception'
            GROUP BY type ORDER BY n DESC
            """,
            params,
        ).fetchall()
    )
    rate = errors / n
    # the last window may reach past the run's last request: the burst ends with the run
    t0, t1 = (lo - run.span[0]) / 1e9, (min(hi, run.span[1]) - run.span[0]) / 1e9
    top_routes = sorted(routes.items(), key=lambda kv: -kv[1])
    route = top_routes[0][0] if top_routes else None
    exc_text = (
        ", ".join(f"{k} ×{v}" for k, v in list(exceptions.items())[:3])
        if exceptions
        else "no exception recorded on their spans"
    )
    status_text = ", ".join(f"{k} ×{v}" for k, v in sorted(statuses.items(), key=lambda kv: -kv[1]))
    # the database out of reach: connections refused or lost (then the pool is no cause)
    lost = unreachable(run, lo, hi)
    outage = lost.explains(s.min_errors, hi - lo)
    # pool timeouts: most failed requests have a failed wait for a connection in them
    pool = not outage and pool_failed >= s.pool_share * errors
    return [
        Finding(
            kind=FindingKind.ERROR_BURST,
            severity=Severity.CRITICAL if errors >= s.critical_share * total else Severity.WARNING,
            title=f"Error burst from {t0:.0f} s to {t1:.0f} s: {pct(rate)} of requests failed",
            route=route if len(top_routes) == 1 else None,
            impact_ms=0.0,
            evidence={
                "from_s": t0,
                "to_s": t1,
                "requests": int(n),
                "errors": int(errors),
                "error_rate": rate,
                "baseline_error_rate": baseline,
                "routes": {str(k): int(v) for k, v in top_routes},
                "status_codes": {str(k): int(v) for k, v in statuses.items()},
                "exceptions": {str(k): int(v) for k, v in exceptions.items()},
                "failed_waiting_for_a_connection": int(pool_failed or 0),
                "lost_database_connection": lost.requests,
                "failed_connection_attempts": lost.attempts,
            },
            trace_ids=tuple(traces or []),
            explanation=(
                f"From {t0:.0f} s to {t1:.0f} s, {errors} of {n} requests failed "
                f"({pct(rate)}, against {pct(baseline)} at the start), across "
                f"{len(top_routes)} route{'s' if len(top_routes) != 1 else ''}; status codes "
                f"{status_text}; exceptions: {exc_text}."
                + (
                    " The failures are connection-pool "
                    + (
                        "timeouts"
                        if any("timeout" in str(k).lower() for k in exceptions)
                        else "checkouts that found no connection"
                    )
                    + ": see the pool finding."
                    if pool
                    else ""
                )
                + (
                    f" The database was out of reach: {lost.sentence(run.span[0])}. A pool "
                    "that ran dry opens no connection, so the pool is not the cause."
                    if outage
                    else ""
                )
            ),
            suggestion=(
                "Fix the pool finding first; these errors are its symptom."
                if pool
                else "Find why the service could not reach its database then (a restart or "
                "failover in the database's log, the network between them, max_connections)."
                if outage
                else "Open the example traces: the exception and the span it was raised in "
                "name the failing dependency."
            ),
            threshold=f"window error rate ≥ start rate + {pct(s.rise)}, ≥ {s.min_errors} errors",
            source="Grafana k6 Performance Insights, increased HTTP failure rate "
            "(docs/rules.md#error_burst)",
        )
    ]


def _from_start(f: Finding, s: ErrorBurstSettings) -> Finding:
    """The early-requests burst, reworded: the run failed from its start."""
    from dataclasses import replace

    e = f.evidence
    routes = len(e["routes"])
    pool = e["failed_waiting_for_a_connection"] >= s.pool_share * e["errors"]
    statuses = ", ".join(f"{k} ×{v}" for k, v in e["status_codes"].items())
    exceptions = ", ".join(f"{k} ×{v}" for k, v in list(e["exceptions"].items())[:3])
    return replace(
        f,
        kind=FindingKind.ERROR_RATE,
        severity=Severity.CRITICAL,
        title=f"High error rate from the start: {pct(e['error_rate'])} of the first requests failed",
        explanation=(
            f"Of the first {e['requests']} requests, {e['errors']} failed ({pct(e['error_rate'])}) "
            f"across {routes} route{'s' if routes != 1 else ''}; status codes {statuses}; "
            f"exceptions: {exceptions or 'none recorded on their spans'}. "
            + (
                "Most of them failed waiting for a connection: the pool ran dry from the start "
                "(see the pool finding)."
                if pool
                else "The service was failing before any load built up: a configuration, "
                "dependency or deployment problem rather than one of capacity."
            )
        ),
        threshold=f"> {pct(s.high_start_rate)} errors in the first {s.start_requests} requests",
        source="Grafana k6 Performance Insights, high HTTP failure rate (docs/rules.md#error_rate)",
    )
