"""Per-route and per-fingerprint aggregates over a run's requests (SQL; pandas only on the result)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

#: Typical requests are those between these duration quantiles of their route…
TYPICAL_BAND = (0.40, 0.60)
#: …and the tail those at or above this one.
TAIL_QUANTILE = 0.95


def routes(con: duckdb.DuckDBPyConnection, prefix: str, seconds: float) -> pd.DataFrame:
    """One row per (service, route), the busiest in total time first."""
    return con.execute(
        f"""
        SELECT service, route,
               count(*) AS requests,
               count(*) / $seconds AS throughput_rps,
               avg(error::INT) AS error_rate,
               quantile_cont(duration_ms, 0.50) AS p50_ms,
               quantile_cont(duration_ms, 0.90) AS p90_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms,
               max(duration_ms) AS max_ms,
               avg(duration_ms) AS mean_ms,
               avg(pool_ms) AS pool_ms,
               avg(db_ms) AS db_ms,
               avg(downstream_ms) AS downstream_ms,
               avg(app_ms) AS app_ms,
               avg(db_calls) AS db_calls,
               sum(duration_ms) AS total_ms
        FROM {prefix}_requests
        GROUP BY service, route
        ORDER BY total_ms DESC, route
        """,
        # a run with no extent (one zero-length request) has no rate
        {"seconds": seconds if seconds > 0 else None},
    ).df()


def breakdown(con: duckdb.DuckDBPyConnection, prefix: str, route: str) -> pd.DataFrame:
    """Typical against tail requests of one route, component by component.

    One row per component — ``pool``, ``db`` per fingerprint, ``downstream``,
    ``app`` — with the mean milliseconds it takes in a typical request (between
    the route's p40 and p60) and in a slow one (p95 and above), and the
    difference: what the tail is made of, not only what is average.
    """
    lo, hi = TYPICAL_BAND
    return (
        con.execute(
            f"""
        WITH r AS (SELECT * FROM {prefix}_requests WHERE route = $route),
        q AS (
            SELECT quantile_cont(duration_ms, {lo}) AS lo, quantile_cont(duration_ms, {hi}) AS hi,
                   quantile_cont(duration_ms, {TAIL_QUANTILE}) AS tail
            FROM r
        ),
        grouped AS (
            SELECT r.*,
                   CASE WHEN duration_ms >= q.tail THEN 'tail'
                        WHEN duration_ms BETWEEN q.lo AND q.hi THEN 'typical' END AS band
            FROM r, q
        ),
        sizes AS (
            SELECT count(*) FILTER (WHERE band = 'typical') AS n_typical,
                   count(*) FILTER (WHERE band = 'tail') AS n_tail
            FROM grouped
        ),
        parts AS (
            -- one row per component (plain UNION ALL: the same in every engine)
            SELECT band, 'pool' AS component, NULL AS fingerprint, pool_ms AS ms
            FROM grouped WHERE band IS NOT NULL
            UNION ALL
            SELECT band, 'downstream', NULL, downstream_ms FROM grouped WHERE band IS NOT NULL
            UNION ALL
            SELECT band, 'app', NULL, app_ms FROM grouped WHERE band IS NOT NULL
            UNION ALL
            SELECT g.band, 'db', rq.fingerprint, rq.db_ms
            FROM grouped g
            JOIN {prefix}_request_queries rq
              ON rq.th = g.th AND rq.rh = g.rh
            WHERE g.band IS NOT NULL
        )
        SELECT component, fingerprint,
               coalesce(sum(ms) FILTER (WHERE band = 'typical'), 0)
                   / greatest(any_value(n_typical), 1) AS typical_ms,
               coalesce(sum(ms) FILTER (WHERE band = 'tail'), 0)
                   / greatest(any_value(n_tail), 1) AS tail_ms,
               any_value(n_typical) AS typical_requests,
               any_value(n_tail) AS tail_requests
        FROM parts, sizes
        GROUP BY component, fingerprint
        ORDER BY tail_ms - typical_ms DESC, component, fingerprint
        """,
            {"route": route},
        )
        .df()
        .assign(delta_ms=lambda f: f.tail_ms - f.typical_ms)
    )


def queries(con: duckdb.DuckDBPyConnection, prefix: str, run_id: int) -> pd.DataFrame:
    """One row per fingerprint, the most total time first.

    ``share_of_route`` is the share of its busiest route's total latency that
    this fingerprint's DB time makes up; ``plan_id`` and ``insights`` come from
    the best plan linked to it (exact traceparent links first, then measured).
    """
    return con.execute(
        f"""
        WITH calls AS (
            SELECT fingerprint, end_ns - start_ns AS ns, th, rh
            FROM {prefix}_parts WHERE category = 'db'
        ),
        per_fp AS (
            SELECT fingerprint,
                   count(*) AS calls,
                   count(DISTINCT (th, rh)) AS requests,
                   sum(ns) / 1e6 AS total_ms,
                   quantile_cont(ns, 0.50) / 1e6 AS p50_ms,
                   quantile_cont(ns, 0.95) / 1e6 AS p95_ms,
                   max(ns) / 1e6 AS max_ms
            FROM calls GROUP BY fingerprint
        ),
        per_route AS (
            SELECT rq.fingerprint, r.route, sum(rq.db_ms) AS db_ms
            FROM {prefix}_request_queries rq
            JOIN {prefix}_requests r ON r.th = rq.th AND r.rh = rq.rh
            GROUP BY ALL
        ),
        route_total AS (
            SELECT route, sum(duration_ms) AS total_ms FROM {prefix}_requests GROUP BY route
        ),
        top_route AS (
            SELECT p.fingerprint, arg_max(p.route, p.db_ms) AS route,
                   arg_max(p.db_ms / nullif(t.total_ms, 0), p.db_ms) AS share_of_route,
                   list(DISTINCT p.route ORDER BY p.route) AS routes
            FROM per_route p JOIN route_total t USING (route)
            GROUP BY p.fingerprint
        ),
        text AS (
            SELECT fingerprint, any_value(normalized) AS normalized,
                   any_value(operation) AS operation, any_value(tables) AS tables,
                   any_value(db_system) AS db_system
            FROM statements WHERE run_id = $run GROUP BY fingerprint
        ),
        best_plan AS (
            SELECT fingerprint, plan_id FROM plans
            WHERE run_id = $run AND raw IS NOT NULL AND fingerprint IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY fingerprint
                ORDER BY link = 'traceparent' DESC, analyzed DESC NULLS LAST, plan_id DESC) = 1
        ),
        insights AS (
            SELECT b.fingerprint, b.plan_id,
                   list(i.message ORDER BY i.severity = 'critical' DESC, i.rule)
                       FILTER (WHERE i.message IS NOT NULL) AS insights,
                   list(i.suggestion ORDER BY i.severity = 'critical' DESC, i.rule)
                       FILTER (WHERE i.suggestion IS NOT NULL) AS suggestions
            FROM best_plan b LEFT JOIN plan_insights i USING (plan_id)
            GROUP BY ALL
        )
        -- a call without statement text is named by its system and span name (its
        -- fingerprint): show that, never an empty or NaN statement
        SELECT f.fingerprint, t.db_system, t.operation, t.tables,
               coalesce(t.normalized, f.fingerprint) AS normalized,
               f.calls, f.requests, f.calls / f.requests AS calls_per_request,
               f.total_ms, f.p50_ms, f.p95_ms, f.max_ms,
               r.route, r.share_of_route, r.routes,
               i.plan_id, coalesce(i.insights, []) AS insights,
               coalesce(i.suggestions, []) AS suggestions
        FROM per_fp f
        LEFT JOIN text t USING (fingerprint)
        LEFT JOIN top_route r USING (fingerprint)
        LEFT JOIN insights i USING (fingerprint)
        ORDER BY f.total_ms DESC, f.fingerprint
        """,
        {"run": run_id},
    ).df()
