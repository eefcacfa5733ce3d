"""The load generator's view against the server's: time outside the server, requests lost.

When client requests carried a W3C ``traceparent`` (the demo's Locust file, k6
with a trace id, Locust ``--otel``, whose CLIENT spans are read as the client's
requests when no request log exists), each one joins its server span exactly:
the server span's parent is the client's span id. The difference of their
durations is time outside the server's own span — network, the accept queue, a
worker pool that is full, the client itself. A client request whose trace has
no server span never reached the service (or its span was lost).

Without trace context there is nothing to join, and routes are compared by
their medians (``match = 'route'``).

A client request is named by the server's ``http.route`` as the load generator
knows it, without the slash Django leaves off and without a service. It is named
as the route of the requests that name reached is: given its slash by their
instrumentation scope and, in a run of several services, their service before it
(:mod:`correlate.routes`, docs/tags.md#route-names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.routes import route_sql

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.run import Run

# Locust names its spans "METHOD name"
_WITHOUT_METHOD = "regexp_replace(t.name, '^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) ', '')"


def client_vs_server(run: Run) -> pd.DataFrame:
    """Per route: client requests, how many reached the server, and latency on both sides."""
    reqs, tree = run.table("requests"), run.table("tree")
    return run.con.execute(
        f"""
        WITH logged AS (
            -- the name is the server span's http.route (raw), named below as the route of
            -- the requests it reached
            SELECT c.trace_id, c.span_id, c.name AS raw, NULL::VARCHAR AS route,
                   c.duration_ns, c.ok, c.status_code,
                   r.duration_ms AS server_ms, r.service, t.scope_name
            FROM client_requests c
            LEFT JOIN {tree} t
              ON t.th = hash(c.trace_id) AND t.ph = hash(c.span_id) AND t.kind = 'SERVER'
            LEFT JOIN {reqs} r ON r.th = t.th AND r.rh = t.sh
            WHERE c.run_id = $run
        ),
        -- the load generator's own CLIENT spans (Locust --otel): roots that are not DB
        -- calls; read only when it logged no requests, so nothing counts twice
        spanned AS (
            SELECT t.trace_id, t.span_id, {_WITHOUT_METHOD} AS raw, r.route,
                   t.duration_ns,
                   t.status_code IS DISTINCT FROM 'ERROR'
                       AND coalesce(t.http_status_code, 0) < 400 AS ok,
                   coalesce(t.http_status_code, 0) AS status_code,
                   r.duration_ms AS server_ms, r.service, s.scope_name
            FROM {tree} t
            LEFT JOIN {tree} s ON s.th = t.th AND s.ph = t.sh AND s.kind = 'SERVER'
            LEFT JOIN {reqs} r ON r.th = s.th AND r.rh = s.sh
            WHERE t.kind = 'CLIENT' AND t.parent_id IS NULL AND t.db_system IS NULL
              AND NOT EXISTS (SELECT 1 FROM client_requests WHERE run_id = $run)
        ),
        sent AS (SELECT * FROM logged UNION ALL SELECT * FROM spanned),
        -- the one service and instrumentation scope a name's requests reached, if one
        served AS (
            SELECT raw, min(service) AS service, min(scope_name) AS scope
            FROM sent WHERE server_ms IS NOT NULL GROUP BY raw
            HAVING count(DISTINCT coalesce(service, '?')) = 1
               AND count(DISTINCT coalesce(scope_name, '')) = 1
        ),
        -- a name is given its slash as those requests' routes are (by their scope), and in
        -- a run of several services their service, so its route reads as theirs; a name
        -- that reached none, or several services, keeps its own
        c AS (
            SELECT trace_id, span_id, duration_ns, ok, status_code, server_ms,
                   coalesce(route, CASE
                       WHEN v.raw IS NOT NULL AND (SELECT count(DISTINCT service) FROM {reqs}) > 1
                       THEN coalesce(v.service, '?') || ' ' || {route_sql("sent.raw", "v.scope")}
                       ELSE {route_sql("sent.raw", "v.scope")} END) AS name
            FROM sent LEFT JOIN served v ON v.raw = sent.raw
        ),
        exact AS (SELECT count(server_ms) > 0 AS has_exact FROM c)
        SELECT name AS route,
               CASE WHEN (SELECT has_exact FROM exact) THEN 'traceparent' ELSE 'route' END AS match,
               count(*) AS client_requests,
               count(server_ms) AS reached_server,
               -- only a request that carried trace context can be missed by the server
               count(trace_id) - count(server_ms) AS never_reached,
               count(*) - count(trace_id) AS without_trace_context,
               count(*) FILTER (WHERE NOT ok) AS client_failures,
               count(*) FILTER (WHERE status_code = 0) AS no_response,
               quantile_cont(duration_ns / 1e6, 0.5) AS client_p50_ms,
               quantile_cont(duration_ns / 1e6, 0.95) AS client_p95_ms,
               quantile_cont(server_ms, 0.5) AS server_p50_ms,
               quantile_cont(server_ms, 0.95) AS server_p95_ms,
               quantile_cont(duration_ns / 1e6 - server_ms, 0.5) AS outside_p50_ms,
               quantile_cont(duration_ns / 1e6 - server_ms, 0.95) AS outside_p95_ms
        FROM c GROUP BY name ORDER BY client_requests DESC, route
        """,
        {"run": run.run_id},
    ).df()
