"""A slow query that dominates its route, with what its plan says about why.

Rule (docs/rules.md#slow_query): on a route, one fingerprint (run fewer than
the N+1 detector's ``n_plus_one.min_calls`` per request) takes at least
``min_share`` of the route's time *outside pool waits* — a pool that is out of
connections inflates every route alike and says nothing about the query — and
its median call takes at least ``min_call_ms``, an absolute floor so that a
fast route whose only query is most of its time is not called slow — unless the
query's plan has a critical insight (a scan reading far more rows than it returns):
such a query does not flicker, it is slow by construction and grows with the data,
so only the trivial floor ``min_planned_call_ms`` applies.
correlate's own rule: Sentry's slow DB query detector flags single spans over
500 ms, far above a load test's interesting range, and the "dominates" idea
comes from pganalyze's per-query share of total time. Critical when the query
alone is at least ``critical_share_of_latency`` of the route's whole latency, or
when its plan has a critical insight and reads ``critical_rows_read`` rows a call.

The plan linked to the fingerprint (``correlate plans capture`` or plan files)
supplies the why: its insights become the explanation and fix.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from correlate.analysis.connection_queue import queued_routes
from correlate.analysis.detectors.n_plus_one import DEFAULTS as N_PLUS_ONE
from correlate.analysis.detectors.n_plus_one import NPlusOneSettings, untexted
from correlate.analysis.detectors.unexplained import DEFAULTS as UNEXPLAINED
from correlate.analysis.detectors.unexplained import UnexplainedTimeSettings
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.fingerprint import table_free_calls
from correlate.kinds import FindingKind
from correlate.semconv import NOT_SQL_SYSTEMS
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class SlowQuerySettings:
    """Thresholds of :func:`slow_query` (keys ``slow_query.*``)."""

    section: ClassVar[str] = "slow_query"
    min_share: float = share(0.5, "share of the route's time outside pool waits in one query")
    min_call_ms: float = setting(20.0, "median duration of one call of the query", unit="ms")
    critical_share_of_latency: float = share(
        0.5, "share of the route's whole latency from which the finding is critical"
    )
    min_requests: int = setting(5, "requests of the route that ran the query", low=1)
    min_planned_call_ms: float = setting(
        1.0, "median call floor for a query whose plan has a critical insight", unit="ms"
    )
    critical_rows_read: float = setting(
        1_000_000.0, "rows its plan reads per call from which a critical plan is critical"
    )


DEFAULTS = SlowQuerySettings()


def slow_query(
    run: Run,
    settings: SlowQuerySettings = DEFAULTS,
    n_plus_one: NPlusOneSettings = N_PLUS_ONE,
    unexplained: UnexplainedTimeSettings = UNEXPLAINED,
) -> list[Finding]:
    """Slow queries; ``n_plus_one.min_calls`` per request and more is the N+1 detector's,
    and a wait inferred from timing is set aside on the routes ``unexplained_time`` reads
    as queued for a connection (the run's ``queued_routes``, with ``unexplained``)."""
    s = settings
    queued_routes(run, unexplained)  # made anew with these thresholds
    queued = run.table("queued_routes")
    parts, reqs, rq = run.table("parts"), run.table("requests"), run.table("request_queries")
    rows = run.con.execute(
        f"""
        WITH route_time AS (
            -- a wait for a connection that no span measures, inferred from the spans'
            -- timing (analysis.connection_queue), is a pool wait too on the routes
            -- unexplained_time reports as queued
            SELECT r.route, count(*) AS n, sum(r.duration_ms) AS total_ms,
                   sum(r.duration_ms - r.pool_ms) - coalesce(any_value(w.queued_ms), 0) * count(*)
                       AS busy_ms,
                   coalesce(any_value(w.queued_ms), 0) * count(*) AS queued_ms,
                   any_value(w.ceiling) AS ceiling, any_value(w.processes) AS processes
            FROM {reqs} r
            LEFT JOIN (SELECT route, queued_ms, ceiling, processes FROM {queued} WHERE queued) w
                ON w.route = r.route
            GROUP BY r.route
        ),
        per AS (
            SELECT r.route, q.fingerprint, count(*) AS requests, sum(q.calls) AS calls,
                   sum(q.db_ms) AS db_ms,
                   list(r.trace_id ORDER BY q.db_ms DESC, r.trace_id)[1:3] AS traces
            FROM {rq} q JOIN {reqs} r ON r.th = q.th AND r.rh = q.rh
            GROUP BY ALL
        ),
        call_ms AS (
            SELECT fingerprint, quantile_cont((end_ns - start_ns) / 1e6, 0.5) AS p50_ms,
                   quantile_cont((end_ns - start_ns) / 1e6, 0.95) AS p95_ms
            FROM {parts} WHERE category = 'db' GROUP BY fingerprint
        ),
        best_plan AS (
            SELECT fingerprint, plan_id FROM plans
            WHERE run_id = $run AND raw IS NOT NULL AND fingerprint IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY fingerprint
                ORDER BY link = 'traceparent' DESC, analyzed DESC NULLS LAST, plan_id DESC) = 1
        ),
        planned AS (
            SELECT b.fingerprint, bool_or(i.severity = 'critical') AS critical,
                   max(TRY_CAST(i.evidence->>'rows_read' AS DOUBLE)) AS rows_read
            FROM best_plan b JOIN plan_insights i USING (plan_id) GROUP BY b.fingerprint
        )
        SELECT p.route, p.fingerprint, p.requests, t.n, p.calls, p.db_ms,
               p.db_ms / nullif(t.busy_ms, 0) AS busy_share,
               p.db_ms / nullif(t.total_ms, 0) AS latency_share,
               c.p50_ms, c.p95_ms, t.total_ms / t.n AS route_mean_ms,
               t.busy_ms / t.n AS route_busy_ms, p.traces,
               coalesce(pl.critical, false) AS critical_plan, pl.rows_read,
               t.queued_ms / t.n AS queued_ms, t.ceiling, t.processes
        FROM per p JOIN route_time t USING (route) JOIN call_ms c USING (fingerprint)
        LEFT JOIN planned pl USING (fingerprint)
        WHERE p.calls < $max_calls * p.requests
          AND p.requests >= $min_requests
          AND p.db_ms >= $min_share * t.busy_ms
          AND (c.p50_ms >= $min_call_ms
               OR (coalesce(pl.critical, false) AND c.p50_ms >= $min_planned_call_ms))
        ORDER BY p.db_ms DESC, p.fingerprint, p.route
        """,
        {
            "max_calls": n_plus_one.min_calls,
            "min_requests": s.min_requests,
            "min_share": s.min_share,
            "min_call_ms": s.min_call_ms,
            "min_planned_call_ms": s.min_planned_call_ms,
            "run": run.run_id,
        },
    ).fetchall()
    if not rows:
        return []
    import pandas as pd

    queries = run.queries().set_index("fingerprint")
    found = []
    for (
        route, fp, n, route_n, calls, db_ms, busy_share, lat_share, p50, p95, mean, busy,
        traces, critical_plan, rows_read, queued_ms, ceiling, processes,
    ) in rows:  # fmt: skip
        q = queries.loc[fp] if fp in queries.index else None
        insights = list(q["insights"]) if q is not None else []
        fixes = list(q["suggestions"]) if q is not None else []
        listed = _field(q, "tables")
        tables = [] if listed is None else list(listed)
        table = tables[0] if tables else None
        system, verb = str(_field(q, "db_system") or "").strip().lower(), _field(q, "operation")
        if not system:  # no statement: the system and span name stand for it (``redis GET``)
            _, _, named, verb = untexted(fp)
            system = named or ""
        command = system in NOT_SQL_SYSTEMS  # a key-value or document store: no plan to capture
        if command:
            subject = f"the {system} command{f' {verb}' if verb else ''}"
        else:
            subject = f"the query on {table}" if table else "one query"
        refused = None if insights or command else _refusal(run, fp)
        # a statement that reads no table (``SELECT pg_sleep($1)``): no index shortens it
        called = None
        if not (tables or command or fixes) and q is not None:
            called = table_free_calls(str(q["normalized"]), system or None)
        why = (
            " Its plan: " + "; ".join(insights[:3]) + "."
            if insights
            else ""
            if command
            else f" Plan capture did not explain it: {refused}."
            if refused
            else " It reads no table, so its plan has nothing to say about it."
            if called is not None
            else " No plan is linked to it yet, so the cause is not known from the plan."
        )
        fixes = [_qualify(fix, tables) for fix in fixes]
        fix = (
            " ".join(fixes[:2])
            if fixes
            else _table_free_fix(called)
            if called is not None
            else (
                f"See what the command costs in {system} itself (Redis SLOWLOG and large keys, "
                "MongoDB explain() and an index on the filtered fields), fetch less per call, or "
                "keep what does not change per request in the process."
            )
            if command
            else (
                "Explain it by hand where running it is safe, or add the run's EXPLAIN output; "
                "then look for a scan that an index on the filtered columns would avoid, or for "
                "work the statement does on every call."
            )
            if refused
            else (
                f"Capture its plan (correlate plans capture --run {shlex.quote(run.name)} --dsn URL) or add "
                "the run's EXPLAIN output, then look for a scan that an index on the filtered "
                "columns would avoid."
            )
        )
        found.append(
            Finding(
                kind=FindingKind.SLOW_QUERY,
                severity=(
                    Severity.CRITICAL
                    if lat_share >= s.critical_share_of_latency
                    or (critical_plan and (rows_read or 0) >= s.critical_rows_read)
                    else Severity.WARNING
                ),
                title=f"Slow query in {route}: {subject}, median {ms(p50)} per call",
                route=route,
                fingerprint=fp,
                impact_ms=float(db_ms),
                evidence={
                    "requests": int(n),
                    "route_requests": int(route_n),
                    "calls": int(calls),
                    "db_ms": float(db_ms),
                    "share_of_time_outside_pool_wait": float(busy_share),
                    "share_of_latency": float(lat_share),
                    "p50_call_ms": float(p50),
                    "p95_call_ms": float(p95),
                    "route_mean_ms": float(mean),
                    "route_mean_outside_pool_wait_ms": float(busy),
                    "plan_id": None if q is None or pd.isna(q["plan_id"]) else int(q["plan_id"]),
                    "plan_insights": insights,
                    "critical_plan": bool(critical_plan),
                    "plan_rows_read_per_call": None if rows_read is None else float(rows_read),
                    "statement": None if q is None else q["normalized"],
                    **({"inferred_queue_ms": float(queued_ms)} if queued_ms >= 0.5 else {}),
                },
                trace_ids=tuple(traces),
                explanation=(
                    _share_sentence(
                        subject, route, busy_share, lat_share, db_ms, route_n, busy, mean
                    )
                    + _calls_sentence(n, route_n, db_ms, p50, p95)
                    + (
                        _queue_sentence(queued_ms, mean - busy, ceiling, processes)
                        if queued_ms >= 0.5
                        else ""
                    )
                    + why
                ),
                suggestion=fix,
                threshold=(
                    f"one fingerprint ≥ {pct(s.min_share)} of a route's time outside pool waits "
                    f"and median call ≥ {s.min_call_ms:.0f} ms (≥ {s.min_planned_call_ms:g} ms "
                    f"with a critical plan insight); critical from "
                    f"{pct(s.critical_share_of_latency)} of its whole latency or a critical "
                    f"plan reading ≥ {s.critical_rows_read:,.0f} rows per call"
                ),
                source="correlate; share of time as in pganalyze, plan rules as in PEV2 "
                "(docs/rules.md#slow_query)",
            )
        )
    return found


def _share_sentence(
    subject: str,
    route: str,
    busy_share: float,
    latency_share: float,
    db_ms: float,
    route_n: int,
    busy_ms: float,
    mean_ms: float,
) -> str:
    """The query's share, with the figures it is made of: all per request of the route
    (whether it ran the query or not), so the part is of the whole it is said to be of.

    >>> print(_share_sentence("one query", "/p", 0.5, 0.2, 100.0, 10, 20.0, 50.0))
    One query takes 50% of /p's time outside pool waits: 10.0 ms of the 20.0 ms a request of the
    route spends outside them on average, and 20% of its 50.0 ms average latency, 30.0 ms of
    which is pool waits.
    """
    waits = mean_ms - busy_ms
    return (
        f"{subject[0].upper() + subject[1:]} takes {pct(busy_share)} of {route}'s time "
        f"outside pool waits: {ms(db_ms / route_n)} of the {ms(busy_ms)} a request of the "
        f"route spends outside them on average, and {pct(latency_share)} of its "
        f"{ms(mean_ms)} average latency"
        + (f", {ms(waits)} of which is pool waits." if waits >= 0.5 else ".")
    )


def _calls_sentence(n: int, route_n: int, db_ms: float, p50: float, p95: float) -> str:
    """How many of the route's requests ran the query, and its time in each that did.

    >>> print(_calls_sentence(4, 10, 100.0, 20.0, 30.0).strip())
    4 of the route's 10 requests ran it, for 25.0 ms each (median call 20.0 ms, p95 30.0 ms).
    """
    calls = f"median call {ms(p50)}, p95 {ms(p95)}"
    if n >= route_n:
        return f" Every request of the route ran it ({calls})."
    return f" {n:,} of the route's {route_n:,} requests ran it, for {ms(db_ms / n)} each ({calls})."


def _queue_sentence(queued_ms: float, waits_ms: float, ceiling: int, processes: int) -> str:
    """The inferred wait set aside, said in full: the analysis may not hold the
    unexplained-time finding on its pool (a caller can run this detector alone)."""
    each = f" in each of its {processes} processes" if processes > 1 else ""
    whole = ms(queued_ms) == ms(waits_ms)  # no span measures any of the route's pool waits
    return (
        f" The waits {'are' if whole else 'include'} {ms(queued_ms)} per request that no "
        "span measures, spent before its first query while the service's connections were all held: a queue for a "
        f"connection read from the spans' timing, from a pool of about {ceiling}{each}."
    )


def _table_free_fix(calls: tuple[str, ...]) -> str:
    """What to do about a slow statement that reads no table: its time is what it calls.

    >>> print(_table_free_fix(("pg_sleep",)))
    Its time is the work of pg_sleep() itself (a sleep, or a server-side function), not a scan an index would avoid: see what pg_sleep() does on each call and whether the request must wait for it, then make it cheaper, call it less often or take it off the request's path.
    """
    if not calls:
        return (
            "It reads no table and calls no function, so its time is not its own work: "
            "the database or the network kept it waiting (a lock, a busy server). Compare "
            "its time in the database's own statistics (pg_stat_statements, "
            "performance_schema) with the spans'."
        )
    named = ", ".join(f"{name}()" for name in calls[:3]) + (" …" if len(calls) > 3 else "")
    return (
        f"Its time is the work of {named} itself (a sleep, or a server-side function), not "
        f"a scan an index would avoid: see what {named if len(calls) == 1 else 'each'} does "
        "on each call and whether the request must wait for it, then make it cheaper, call it "
        "less often or take it off the request's path."
    )


def _refusal(run: Run, fingerprint: str) -> str | None:
    """Why ``correlate plans capture`` explained no plan for ``fingerprint``, if it tried."""
    row = run.con.execute(
        """
        SELECT reason FROM plans
        WHERE run_id = $run AND fingerprint = $fp AND raw IS NULL AND reason IS NOT NULL
        ORDER BY plan_id DESC LIMIT 1
        """,
        {"run": run.run_id, "fp": fingerprint},
    ).fetchone()
    return None if row is None else str(row[0])


def _field(q: Any, key: str) -> Any:
    """A value of a row of ``Run.queries()``, or None (no row; NULL, read back as pandas' NA)."""
    import pandas as pd

    if q is None:
        return None
    value = q[key]
    return None if value is None or value is pd.NA else value


def _qualify(suggestion: str, tables: list[str]) -> str:
    """``CREATE INDEX ON orders (…)`` → ``… ON shop.orders (…)`` when the statement names
    the table with its schema (a plan without VERBOSE names the bare relation).

    >>> _qualify("CREATE INDEX ON orders (customer_id)", ["shop.orders"])
    'CREATE INDEX ON shop.orders (customer_id)'
    """
    for table in tables:
        schema, dot, name = table.rpartition(".")
        if dot and suggestion.startswith(f"CREATE INDEX ON {name} ("):
            return suggestion.replace(f"ON {name} (", f"ON {schema}.{name} (", 1)
    return suggestion
