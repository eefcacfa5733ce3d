"""A downstream endpoint that dominates its caller's route, with what the callee spends on.

Rule (docs/rules.md#slow_downstream): on a route, the calls to one downstream endpoint —
an HTTP, RPC or other client span without a database system, identified as the
repeated-calls family identifies it (:mod:`~correlate.analysis.detectors.calls`: the
method, the callee's service or address and the route template it reached) — take at
least ``min_share`` of the route's time outside pool waits, over at least
``min_requests`` requests, with fewer than ``n_plus_one.min_calls`` calls per request
(more is an N+1's) and a median call of at least ``min_call_ms``. The share is the
criterion, as for a slow query; the floor (the slow-query rule's) only keeps out a fast
route whose one call is most of its time: a thin proxy in front of its backend.
Critical when the calls are at least ``critical_share_of_latency`` of the route's whole
latency.

When the callee's own SERVER spans are in the run, the finding says what the callee's
requests spend their time on (:mod:`correlate.analysis.requests`: its pool wait, its
database with its heaviest statement, its own downstream calls, its own code): the
callee's breakdown tells where to look next. Where ``unexplained_time`` reads the callee's
route as queued for a pooled connection that no span measures (the run's ``queued_routes``,
:mod:`correlate.analysis.connection_queue`), that wait is a part of its own, said to be
inferred, and not counted as its own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from correlate.analysis.connection_queue import lead_waits, queued_routes
from correlate.analysis.detectors.calls import calls_table, unions_sql
from correlate.analysis.detectors.n_plus_one import DEFAULTS as N_PLUS_ONE
from correlate.analysis.detectors.n_plus_one import NPlusOneSettings
from correlate.analysis.detectors.unexplained import DEFAULTS as UNEXPLAINED
from correlate.analysis.detectors.unexplained import UnexplainedTimeSettings
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class SlowDownstreamSettings:
    """Thresholds of :func:`slow_downstream` (keys ``slow_downstream.*``)."""

    section: ClassVar[str] = "slow_downstream"
    min_share: float = share(
        0.5, "share of the route's time outside pool waits in calls to one endpoint"
    )
    min_call_ms: float = setting(
        100.0,
        "median duration of one call: below it a dependency is within a normal network "
        "budget, however much of the route it is",
        unit="ms",
    )
    critical_share_of_latency: float = share(
        0.8, "share of the route's whole latency from which the finding is critical"
    )
    min_requests: int = setting(5, "requests of the route that called the endpoint", low=1)


DEFAULTS = SlowDownstreamSettings()

#: One row per (route, endpoint) that dominates the route. The endpoints are calls to
#: another service: a database's client span is the slow_query detector's, and a message
#: sent (``messaging``) is not waited for.
_SQL = """
WITH per_request AS (
    -- per request and endpoint: the calls, and their union (calls at once count once)
    SELECT th, rh, family, shape, any_value(target) AS target, sum(calls) AS calls,
           sum(b - a) / 1e6 AS union_ms
    FROM ({unions}) GROUP BY ALL
),
route_time AS (
    SELECT route, count(*) AS n, sum(duration_ms) AS total_ms,
           sum(duration_ms - pool_ms) AS busy_ms
    FROM {reqs} GROUP BY route
),
per AS (
    SELECT r.route, p.family, p.shape, any_value(p.target) AS target, count(*) AS requests,
           sum(p.calls) AS calls,
           sum(least(p.union_ms, greatest(r.duration_ms - r.pool_ms, 0))) AS down_ms,
           list(r.trace_id ORDER BY p.union_ms DESC, r.trace_id)[1:3] AS traces
    FROM per_request p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    GROUP BY ALL
),
call_ms AS (
    SELECT r.route, c.family, c.shape, quantile_cont((c.b - c.a) / 1e6, 0.5) AS p50_ms,
           quantile_cont((c.b - c.a) / 1e6, 0.95) AS p95_ms
    FROM {calls} c JOIN {reqs} r ON r.th = c.th AND r.rh = c.rh
    WHERE c.family IN ('http', 'rpc', 'call')
    GROUP BY ALL
)
SELECT p.route, p.family, p.shape, p.target, p.requests, t.n, p.calls, p.down_ms,
       p.down_ms / nullif(t.busy_ms, 0) AS busy_share,
       p.down_ms / nullif(t.total_ms, 0) AS latency_share,
       c.p50_ms, c.p95_ms, t.total_ms / t.n AS route_mean_ms, p.traces
FROM per p JOIN route_time t USING (route) JOIN call_ms c USING (route, family, shape)
WHERE p.calls < $max_calls * p.requests
  AND p.requests >= $min_requests
  AND p.down_ms >= $min_share * t.busy_ms AND p.down_ms > 0
  AND c.p50_ms >= $min_call_ms
ORDER BY p.down_ms DESC, p.route, p.shape
""".replace(
    "{unions}",
    unions_sql(
        "(SELECT * FROM {calls} WHERE family IN ('http', 'rpc', 'call') AND shape IS NOT NULL)",
        "th, rh, family, shape",
    ),
)

#: What the callee's requests (its SERVER spans under the calls) spend their time on; on a
#: route read as queued for a connection, the inferred wait is apart from its own code.
_CALLEE_SQL = """
WITH callee AS (
    -- columns named (not q.*): engines differ in how they name a star's columns in a join
    SELECT q.route, q.duration_ms, q.pool_ms, q.db_ms, q.downstream_ms, q.app_ms, q.th, q.rh,
           CASE WHEN k.route IS NOT NULL THEN least(coalesce(w.queued_ms, 0), q.app_ms)
                ELSE 0 END AS queued_ms,
           k.ceiling, k.processes
    FROM {calls} c
    JOIN {reqs} r ON r.th = c.th AND r.rh = c.rh
    JOIN {tree} s ON s.th = c.th AND s.ph = c.sh AND s.kind = 'SERVER'
    JOIN {reqs} q ON q.th = s.th AND q.rh = s.sh
    LEFT JOIN {lead_waits} w ON w.th = q.th AND w.rh = q.rh
    LEFT JOIN (SELECT route, ceiling, processes FROM {queued} WHERE queued) k
        ON k.route = q.route
    WHERE r.route = $route AND c.family = $family AND c.shape = $shape
)
SELECT mode(route), count(*), avg(duration_ms), avg(pool_ms), avg(db_ms),
       avg(downstream_ms), avg(app_ms - queued_ms), avg(queued_ms), max(ceiling),
       max(processes),
       (SELECT arg_max(fingerprint, total) FROM (
            SELECT q.fingerprint, sum(q.db_ms) AS total
            FROM {rq} q JOIN callee USING (th, rh) GROUP BY ALL))
FROM callee
"""


def slow_downstream(
    run: Run,
    settings: SlowDownstreamSettings = DEFAULTS,
    n_plus_one: NPlusOneSettings = N_PLUS_ONE,
    unexplained: UnexplainedTimeSettings = UNEXPLAINED,
) -> list[Finding]:
    """Downstream endpoints that take most of a route's time; ``n_plus_one.min_calls`` calls
    per request and more are the N+1 detector's, and a callee's wait inferred from timing is
    told apart on the routes ``unexplained_time`` reads as queued (with ``unexplained``)."""
    s = settings
    tables = {
        "calls": calls_table(run),
        "reqs": run.table("requests"),
        "tree": run.table("tree"),
        "rq": run.table("request_queries"),
    }
    rows = run.con.execute(
        _SQL.format(**tables),
        {
            "max_calls": n_plus_one.min_calls,
            "min_requests": s.min_requests,
            "min_share": s.min_share,
            "min_call_ms": s.min_call_ms,
        },
    ).fetchall()
    if rows:  # made anew with these thresholds
        tables["queued"] = queued_routes(run, unexplained)
        tables["lead_waits"] = lead_waits(run)
    found = []
    for (
        route, family, shape, target, n, route_n, calls, down_ms, busy_share, lat_share, p50,
        p95, mean, traces,
    ) in rows:  # fmt: skip
        callee = _callee(run, tables, route, family, shape)
        per_call = float(calls) / int(n)
        endpoint = shape if family == "http" else f"{target or 'the callee'} {shape}"
        evidence = {
            "requests": int(n),
            "route_requests": int(route_n),
            "calls_per_request": per_call,
            "downstream_ms": float(down_ms),
            "share_of_time_outside_pool_wait": float(busy_share),
            "share_of_latency": float(lat_share),
            "p50_call_ms": float(p50),
            "p95_call_ms": float(p95),
            "route_mean_ms": float(mean),
            "family": family,
            "shape": shape,
            "target": target,
            **callee,
        }
        critical = lat_share >= s.critical_share_of_latency
        found.append(
            Finding(
                FindingKind.SLOW_DOWNSTREAM,
                Severity.CRITICAL if critical else Severity.WARNING,
                f"Slow downstream in {route}: {endpoint}, median {ms(p50)} per call",
                explanation=(
                    f"Calls to {endpoint} take {pct(busy_share)} of {route}'s time outside "
                    f"pool waits ({ms(float(down_ms) / int(n))} of a request's {ms(mean)} on "
                    f"average; {per_call:.1f} call(s) per request, median call {ms(p50)}, "
                    f"p95 {ms(p95)})." + _callee_sentence(callee)
                ),
                suggestion=_suggestion(callee, target),
                threshold=(
                    f"one endpoint ≥ {pct(s.min_share)} of a route's time outside pool waits, "
                    f"fewer than {n_plus_one.min_calls} calls per request and median call ≥ "
                    f"{s.min_call_ms:g} ms; critical from {pct(s.critical_share_of_latency)} "
                    "of its whole latency"
                ),
                source="correlate; time spent per downstream service as in Datadog APM and "
                "Elastic APM dependencies (docs/rules.md#slow_downstream)",
                impact_ms=float(down_ms),
                route=route,
                evidence=evidence,
                trace_ids=tuple(traces),
            )
        )
    return found


#: The callee's parts, in the order the breakdown names them.
_PARTS = (
    ("db_ms", "its database"),
    ("downstream_ms", "its own downstream calls"),
    ("pool_ms", "waiting for a pooled connection"),
    ("queued_ms", "a likely queue for a pooled connection"),
    ("app_ms", "its own code"),
)


def _callee(
    run: Run, tables: dict[str, str], route: str, family: str, shape: str
) -> dict[str, Any]:
    """The callee's breakdown as evidence (``callee_requests`` 0 when none of its SERVER
    spans are in the run)."""
    row = run.con.execute(
        _CALLEE_SQL.format(**tables), {"route": route, "family": family, "shape": shape}
    ).fetchone()
    if row is None or not row[1]:
        return {"callee_requests": 0}
    callee_route, n, duration, pool, db, down, app, queued, ceiling, processes, top = row
    out: dict[str, Any] = {
        "callee_route": callee_route,
        "callee_requests": int(n),
        "callee_mean_ms": float(duration),
        "callee_pool_ms": float(pool),
        "callee_db_ms": float(db),
        "callee_downstream_ms": float(down),
        "callee_queued_ms": float(queued),
        "callee_app_ms": float(app),
        "callee_top_fingerprint": top,
    }
    if ceiling is not None:  # its route reads as queued for a pool of about this size
        out["callee_pool_ceiling"], out["callee_pool_processes"] = int(ceiling), int(processes)
    if top is not None:
        text = run.con.execute(
            "SELECT any_value(normalized) FROM statements WHERE run_id = ? AND fingerprint = ?",
            [run.run_id, top],
        ).fetchone()
        out["callee_top_statement"] = text[0] if text else None
    return out


def _callee_main_part(callee: dict[str, Any]) -> tuple[str, str, float] | None:
    """The callee's largest part: (key, words, share of its time), or None without it."""
    if not callee.get("callee_requests") or not callee.get("callee_mean_ms"):
        return None
    key, words = max(_PARTS, key=lambda p: callee[f"callee_{p[0]}"])
    return key, words, callee[f"callee_{key}"] / callee["callee_mean_ms"]


def _callee_sentence(callee: dict[str, Any]) -> str:
    main = _callee_main_part(callee)
    if main is None:
        return " The callee's own spans are not in the run, so what it spends the time on is not known."
    parts = ", ".join(
        f"{words} {ms(callee[f'callee_{key}'])}"
        for key, words in _PARTS
        if callee[f"callee_{key}"] > 0
    )
    key, words, main_share = main
    statement = callee.get("callee_top_statement")
    heaviest = f" (most of it {statement})" if key == "db_ms" and statement else ""
    return (
        f" Its server side, {callee['callee_route']}, spends {ms(callee['callee_mean_ms'])} a "
        f"request: {parts}; {pct(main_share)} is {words}{heaviest}." + _queue_sentence(callee)
    )


def _queue_sentence(callee: dict[str, Any]) -> str:
    """What the callee's inferred wait is, said in full (the analysis may hold no
    unexplained-time finding to point at)."""
    if callee.get("callee_queued_ms", 0) <= 0 or "callee_pool_ceiling" not in callee:
        return ""
    processes = callee["callee_pool_processes"]
    each = f" in each of its {processes} processes" if processes > 1 else ""
    return (
        " No span measures that queue: it is read from the spans' timing, passing before the "
        "callee's first query while its connections, a pool of about "
        f"{callee['callee_pool_ceiling']}{each}, are all held."
    )


def _suggestion(callee: dict[str, Any], target: str | None) -> str:
    main = _callee_main_part(callee)
    name = target or "the callee"
    if main is None:
        return (
            f"Record {name}'s spans in the same run (propagate the trace context) to see "
            "where its time goes; meanwhile cache what does not change per request, or make "
            "the call off the request path."
        )
    key = main[0]
    if key == "db_ms":
        return (
            f"Look at {callee['callee_route']}'s database time first (its slow-query "
            "findings, when it has them): the caller waits for it."
        )
    if key == "downstream_ms":
        return (
            f"{callee['callee_route']} waits on its own downstream calls: follow the trace "
            "one hop further."
        )
    if key == "pool_ms":
        return f"{callee['callee_route']} waits for pooled connections: see its pool findings."
    if key == "queued_ms":
        return (
            f"{callee['callee_route']} most likely queues for a pooled connection (a pool of "
            f"about {callee['callee_pool_ceiling']}): size the pool for its concurrency, or "
            "hold connections for less time; instrument the pool's checkouts to measure the "
            "wait."
        )
    return (
        f"{callee['callee_route']} spends the time in its own code: profile it, or cache its "
        "answer on the caller's side when it does not change per request."
    )
