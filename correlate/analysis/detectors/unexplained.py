"""Unexplained time: a route whose latency is mostly outside DB, pool and downstream spans.

Rule (correlate's own; docs/rules.md#unexplained_time): the route's mean time
in none of those spans is at least ``min_share`` of its mean latency *and* at
least ``min_app_ms``, over at least ``min_requests`` requests. The absolute floor keeps fast
routes, where a few milliseconds of framework work are most of the time,
from being flagged.

When most of that time is a wait before the request's first query while the service's
connection holders were at their ceiling (:mod:`correlate.analysis.connection_queue`), the
requests most likely queued for a pooled connection that no span measures: the routes that
waited for one pool (a service's connections to one database) are told in one finding, each
with its wait, rather than one finding a route. It is still an inference from timing, and
the finding says that too, rather than calling the wait the routes' own code. Two pools with
one database name (a primary and a replica both serving ``shop``) are told apart by where
they are: "to shop on db1.internal:5432".
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, ClassVar

from correlate.analysis import stack
from correlate.analysis.connection_queue import queued_routes
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
    """Routes mostly outside any span, and the pools their requests most likely queued for."""
    queued_routes(run, settings)  # made anew with these thresholds
    table = run.table("queued_routes")
    rows = run.con.execute(
        f"""
        SELECT route, requests, mean_ms, app_ms, total_app_ms, p50_app_ms, traces, queued_ms,
               queued_traces, service, database, ceiling, processes, pool, queued, server
        FROM {table} ORDER BY total_app_ms DESC, route
        """
    ).fetchall()
    found: list[Finding] = []
    pools: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    tools: dict[str, str] = {}
    for row in rows:
        if row[14]:
            pools.setdefault((str(row[9]), str(row[13])), []).append(row)
        else:
            service = str(row[9] or "")
            if service not in tools:
                tools[service] = stack.profiler(stack.language(run, service))
            found.append(_own_time(settings, *row[:7], tools=tools[service]))
    labels = _database_labels({k: (str(r[0][10]), str(r[0][15] or "")) for k, r in pools.items()})
    for (service, pool), routes in pools.items():
        found.append(_pool_queue(settings, service, labels[service, pool], routes))
    return found


def _database_labels(pools: dict[tuple[str, str], tuple[str, str]]) -> dict[Any, str]:
    """Each pool's database as its findings name it: ``(service, key) → (database, server)``
    to ``shop``, or ``shop on db1.internal:5432`` where another pool, with another key, has
    that database name too (two services' pools with one key differ by service already).

    >>> _database_labels({("a", "1"): ("shop", "db1:5432"), ("a", "2"): ("shop", "db2:5432"),
    ...                   ("a", "3"): ("reports", "db1:5432")})
    {('a', '1'): 'shop on db1:5432', ('a', '2'): 'shop on db2:5432', ('a', '3'): 'reports'}
    """
    keys: dict[str, set[str]] = {}
    for (_, key), (database, _) in pools.items():
        keys.setdefault(database, set()).add(key)
    return {
        pool: f"{database} on {server}"
        if database and server and len(keys[database]) > 1
        else database
        for pool, (database, server) in pools.items()
    }


def _threshold(s: UnexplainedTimeSettings) -> str:
    return (
        f"≥ {pct(s.min_share)} of mean latency and ≥ {s.min_app_ms:.0f} ms per "
        f"request outside DB, pool and downstream spans, ≥ {s.min_requests} requests"
    )


def _own_time(
    s: UnexplainedTimeSettings, route: str, n: int, mean_ms: float, app_ms: float,
    total: float, p50: float, traces: list[str], *, tools: str,
) -> Finding:  # fmt: skip
    """A route's uncovered time, read as its own."""
    share = app_ms / mean_ms if mean_ms else 0.0
    return Finding(
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
            f"Profile the route with {tools} under the same load, or add spans around its "
            "steps; "
            "instrument any HTTP client, cache or queue library it calls."
        ),
        threshold=_threshold(s),
        source="correlate (docs/rules.md#unexplained_time)",
    )


def _pool_queue(
    s: UnexplainedTimeSettings, service: str, database: str, rows: list[tuple[Any, ...]]
) -> Finding:
    """The routes that most likely queued for one pool, each with its wait, in one finding."""
    # route, requests, mean, uncovered and waited per request, example traces
    waits = sorted(
        ((str(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[7]), list(r[8])) for r in rows),
        key=lambda w: (-w[4] * w[1], w[0]),
    )
    ceiling, processes = int(rows[0][11]), int(rows[0][12])
    n = sum(w[1] for w in waits)
    waited = sum(w[4] * w[1] for w in waits)
    queued_ms, app_ms = waited / n, sum(w[3] * w[1] for w in waits) / n
    mean_ms = sum(w[2] * w[1] for w in waits) / n
    routes = [
        {"route": route, "requests": k, "mean_ms": mean, "app_ms": app, "queued_ms": queued}
        for route, k, mean, app, queued, _ in waits
    ]
    names = [w[0] for w in waits]
    listed = _listed(names)
    to = f" to {database}" if database else ""
    of = f" of {service}" if service else ""
    anywhere = f" in any of its {processes} processes" if processes > 1 else ""
    each = " in each" if processes > 1 else ""
    shown = ", ".join(f"{w[0]} {ms(w[4])} of {ms(w[3])}" for w in waits[:_SHOWN])
    more = f" and {len(waits) - _SHOWN} more" if len(waits) > _SHOWN else ""
    each_wait = f" Waits per request: {shown}{more}." if len(waits) > 1 else ""
    whose = "routes'" if len(waits) > 1 else "route's"
    # (a queue_share under one half reads a queue in less than most of the time)
    how_much = "most of it" if queued_ms >= 0.5 * app_ms else f"{pct(queued_ms / app_ms)} of it"
    # the longest waits, a route at a time
    traces = [t for tier in zip_longest(*(w[5] for w in waits)) for t in tier if t]
    return Finding(
        kind=FindingKind.UNEXPLAINED_TIME,
        severity=Severity.WARNING,
        title=(
            f"Unexplained time in {listed}: {how_much} a wait before the first query, "
            f"most likely for a connection from a pool of about {ceiling}"
        ),
        route=names[0],
        impact_ms=waited,
        evidence={
            "queued_ms": queued_ms,
            "app_ms": app_ms,
            "holders_ceiling": ceiling,
            "requests": n,
            "mean_ms": mean_ms,
            "share": app_ms / mean_ms if mean_ms else 0.0,
            "service": service,
            "database": database or None,
            "processes": processes,
            "routes": routes,
        },
        trace_ids=tuple(traces[:3]),
        explanation=(
            f"Requests on {listed} spend {ms(app_ms)} of their {ms(mean_ms)} mean outside any "
            f"database, pool or outgoing-call span, and {ms(queued_ms)} of it "
            f"({pct(queued_ms / app_ms)}) passes before the request's first query while other "
            f"requests{of} held connections{to} (ran between their first and last query) "
            f"{ceiling} at once, the most that held one together in the run{anywhere}: the "
            f"requests most likely queued for a connection{to} from a pool of about "
            f"{ceiling}{each}.{each_wait} No span or metric measures that wait (the driver's pool "
            "reports none), so it is read from the spans' timing, not measured, and the time "
            f"breakdown still counts it as application time. The other "
            f"{ms(max(app_ms - queued_ms, 0.0))} is the {whose} own code or another "
            "uninstrumented wait."
        ),
        suggestion=(
            f"Look at the connection pool first: at most {ceiling} requests held a "
            "connection at once while others waited. Size it for the concurrency, or hold "
            "connections for less time (the slowest statements, work done while holding "
            "one); instrument the pool's checkouts (pool metrics or connect spans) to "
            "measure the wait."
        ),
        threshold=_threshold(s) + f", ≥ {pct(s.queue_share)} of it a wait before the first query",
        source="correlate (docs/rules.md#unexplained_time)",
    )


#: routes named one by one in a pool queue's title and explanation
_SHOWN = 4


def _listed(routes: list[str]) -> str:
    """``/a``, ``/a and /b``, ``/a, /b, /c and /d``, ``/a, /b, /c, /d and 2 more routes``."""
    if len(routes) > _SHOWN:
        return ", ".join(routes[:_SHOWN]) + f" and {len(routes) - _SHOWN} more routes"
    return " and ".join(filter(None, (", ".join(routes[:-1]), routes[-1])))
