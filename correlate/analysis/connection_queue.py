"""Waits for a connection read from the spans' timing, when no span measures them.

Some drivers' pools make no span and no metric for a checkout (Node's ``mysql2`` pool; any
pool whose instrumentation only wraps the statement). A request that queued for a
connection then shows a gap before its first query that no span covers, and
:mod:`correlate.analysis.requests` counts it, as it must, as application time. The spans
still carry two facts about that gap:

- it lies *before the request's first query*: a request's queries start only once it has a
  connection;
- while it passed, the service's other requests were *holding* connections (between their own
  first and last query) at the most that ever held at once in the run: the ceiling a
  pool of that size imposes.

Where a span measured the wait (``pool_ms``), nothing is inferred. This module measures
both, per request, in the run's table ``lead_waits``: the lead (request start to first
query) and the part of it during which the holders were at their ceiling without a break
until that query, but for the moments a connection was being handed over (a wait ends
when one is handed over: a request that let a free one pass was not waiting for one; and
a pool short of its ceiling for most of that time, in gaps each as short as a hand-over,
was idle between calls while its callers queued for a thread), less the route's quickest
lead: the work every request of the route does before its first query (authentication,
parsing, a sleep) is its own, however busy the pool was meanwhile, and a lead that never
varies waited for nothing. It
infers, it does not measure: a lead spent in CPU work while the pool happened to be busy
counts too, so readers say the figure is read from timing and only use it when most of a
route's uncovered time is such a lead: :func:`queued_routes` makes the one table of the
routes so read, which ``unexplained_time`` reports (one finding per pool) and ``slow_query``
sets aside.

A pool belongs to a process and a database: holders are counted per process of a service
(``service.instance.id``, else ``host.name`` and ``process.pid``, either of them when the
other is missing), so two replicas with a pool of two each are two pools of two, not one of
four; and per pool the database spans name (``db.client.connection.pool.name`` or
``pool.name``, else server address, port and ``db.namespace``), so a reporting database's
small pool is not sized by the main one's holders, nor a primary's by a replica's that has
the same database name. A host name is read in any case, and a pool named on some of a
database's spans only is the pool of all of them (when they name one). Two pools of one
process on one database that the spans do not name apart are counted as one.

Only SQL calls take a connection from the pool: a cache lookup (Redis) before the first
query neither holds one nor ends the lead. A message's handling (a CONSUMER request) is
never read as queued: a batch listener opens the spans of all of a batch's messages at once
and handles them in turn, which looks, from timing alone, like a pool of one.

A request holding its connection between two queries is counted as a holder, which is
right for a connection taken once per request (``getConnection`` … ``release``) and
overcounts a pool that takes one per statement; the ceiling is then higher than the pool
and the at-ceiling share lower, so the inference errs towards saying nothing. A request
counts as one holder even when its calls overlap: calls run together (``asyncio.gather``,
``Promise.all``) do hold a connection each, but the spans of one connection's calls in turn
overlap too (Node's mysql2 instrumentation ends a span up to milliseconds after the next
call starts), so the ceiling counts requests and names too small a pool for gathered
calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.analysis.pool_holders import CLOCK_SLACK_NS
from correlate.semconv import NOT_SQL_SYSTEMS_SQL

if TYPE_CHECKING:
    from correlate.analysis.detectors.unexplained import UnexplainedTimeSettings
    from correlate.analysis.run import Run

#: How long a pool may be one connection short of its ceiling and still be handing one
#: over to a queued caller rather than free (ns): a loaded Node event loop resumes the
#: next caller milliseconds after the release (5 ms typical, 14 ms seen, examples/node-mysql)
HANDOFF_NS = 25_000_000

#: The tables' names among the run's tables (``Run.table``); dropped by ``Run.close``.
TABLE = "lead_waits"
HOLDS_TABLE = "lead_holds"
QUEUED_TABLE = "queued_routes"

#: SQL: each request's holds on a connection, a table of their own: the rest of the
#: statement reads them a dozen times over, and ClickHouse, which runs a common table
#: expression again wherever it is named, would join the spans each time (3.7 s of a
#: 10 s analysis of the 6,845 spans of sample_traces/checkout-blackfriday; 0.2 s this way).
_HOLDS_SQL = """
CREATE OR REPLACE TEMP TABLE {holds} AS
WITH sql_calls AS (
    -- the requests' SQL calls (a cache or document store's take no connection from the
    -- SQL pool), with what their spans say of the database (a host name has no case)
    SELECT q.th, q.rh, q.trace_id, q.request_id, coalesce(q.service, '') AS service, q.route,
           q.start_ns AS r0, q.app_ms, q.pool_ms, p.a, p.b, d.server_address, d.server_port,
           d.db_namespace, d.pool_name
    FROM {parts} p
    JOIN {requests} q ON q.th = p.th AND q.rh = p.rh
    LEFT JOIN (
        -- (on hashed ids, as the run's tables are joined: analysis.requests)
        SELECT hash(trace_id) AS th, hash(span_id) AS sh, lower(server_address) AS server_address,
               server_port, db_namespace,
               -- the attributes parsed only where they name a pool
               CASE WHEN CAST(attributes AS VARCHAR) LIKE '%pool.name%'
                    THEN coalesce(attributes->>'db.client.connection.pool.name',
                                  attributes->>'pool.name') END AS pool_name
        FROM spans WHERE run_id = $run AND kind = 'CLIENT' AND db_system IS NOT NULL
    ) d ON d.th = p.th AND d.sh = hash(p.span_id)
    WHERE p.category = 'db' AND p.span_id IS NOT NULL
      AND lower(coalesce(p.db_system, '')) NOT IN ({not_sql})
),
names AS (
    SELECT service, server_address, server_port, db_namespace,
           min(pool_name) AS one_name, max(pool_name) AS last_name
    FROM sql_calls GROUP BY service, server_address, server_port, db_namespace
),
named AS (
    -- a service's spans to one database that name one pool, some of them only, all
    -- come from that pool
    SELECT s.*,
           coalesce(s.pool_name, CASE WHEN n.one_name = n.last_name THEN n.one_name END) AS pool
    FROM sql_calls s
    JOIN names n
      ON n.service = s.service AND n.server_address IS NOT DISTINCT FROM s.server_address
     AND n.server_port IS NOT DISTINCT FROM s.server_port
     AND n.db_namespace IS NOT DISTINCT FROM s.db_namespace
),
calls AS (
    SELECT th, rh, trace_id, request_id, service, route, r0, app_ms, pool_ms, a, b,
           -- the pool the call's connection came from: named, or one per database
           coalesce(pool, '') || '|' || coalesce(server_address, '') || '|'
               || coalesce(CAST(server_port AS VARCHAR), '') || '|'
               || coalesce(db_namespace, '') AS target,
           coalesce(pool, db_namespace, server_address, '') AS database,
           -- where it is, to tell apart two pools of one database name
           -- (an IPv6 address in brackets; a port alone said as one)
           CASE WHEN server_address LIKE '%:%' THEN '[' || server_address || ']'
                WHEN server_address IS NOT NULL THEN server_address
                WHEN server_port IS NOT NULL THEN 'port ' END
               || coalesce(CASE WHEN server_address IS NOT NULL THEN ':' END
                           || CAST(server_port AS VARCHAR), '') AS server
    FROM named
),
holds AS (
    -- a request's hold on a connection of one pool: from its first SQL call's start to
    -- its last's end there, on the pool of its service's process that served it (each
    -- replica has its own) for that database
    SELECT c.th, c.rh, c.service, c.route, c.r0, c.app_ms, c.pool_ms,
           -- (a plain boolean: ClickHouse keeps no table of a low-cardinality one)
           CAST(coalesce(s.consumer, false) AS BOOLEAN) AS consumer,
           coalesce(s.process, '') AS process,
           c.database, c.target, c.server,
           c.service || ' ' || coalesce(s.process, '') || ' ' || c.target AS pool, c.h0, c.h1
    FROM (SELECT th, rh, trace_id, request_id, service, route, r0, app_ms, pool_ms, target,
                 database, server, min(a) AS h0, max(b) AS h1
          FROM calls
          GROUP BY th, rh, trace_id, request_id, service, route, r0, app_ms, pool_ms, target,
                   database, server) c
    LEFT JOIN (
        -- the spans a request can be (analysis.requests.REQUEST_SQL), not their children
        SELECT trace_id, span_id, kind = 'CONSUMER' AS consumer,
               -- (either of host and process id alone tells replicas apart too)
               coalesce(resource->>'service.instance.id',
                        coalesce(resource->>'host.name', '') || ':'
                            || coalesce(resource->>'process.pid', '')) AS process
        FROM spans
        WHERE run_id = $run AND (kind IN ('SERVER', 'CONSUMER') OR parent_id IS NULL)
    ) s ON s.trace_id = c.trace_id AND s.span_id = c.request_id
)
SELECT * FROM holds
"""

_LEAD_WAITS_SQL = """
CREATE OR REPLACE TEMP TABLE {lead_waits} AS
WITH held AS (
    -- a request waits, before its first SQL call, for the pool that call's connection
    -- comes from
    SELECT th, rh, service, route, r0, app_ms, pool_ms, consumer, process,
           arg_min(database, h0) AS database, arg_min(target, h0) AS target,
           arg_min(server, h0) AS server, arg_min(pool, h0) AS pool, min(h0) AS h0
    FROM {holds}
    GROUP BY th, rh, service, route, r0, app_ms, pool_ms, consumer, process
),
covered AS (
    -- the lead's time in spans (an outgoing call, a cache lookup): no wait that no span
    -- measures (calls run together are counted each, erring towards less of a wait)
    SELECT h.th, h.rh,
           sum(greatest(least(p.b, h.h0) - greatest(p.a, h.r0), 0)) / 1e6 AS covered_ms
    FROM held h JOIN {parts} p ON p.th = h.th AND p.rh = h.rh AND p.a < h.h0 AND p.b > h.r0
    GROUP BY h.th, h.rh
),
events AS (
    -- a release and a take at the same instant net out (the connection changes hands);
    -- a release counts {slack} ns early, as a span's clock may put the next take before it
    SELECT pool, t, sum(d) AS d
    FROM (SELECT pool, h0 AS t, 1 AS d FROM {holds} WHERE h1 > h0
          UNION ALL
          SELECT pool, greatest(h1 - {slack}, h0 + 1) AS t, -1 AS d
          FROM {holds} WHERE h1 > h0) e
    GROUP BY pool, t
),
levels AS (
    SELECT pool, t AS s0, lead(t) OVER (PARTITION BY pool ORDER BY t) AS s1,
           sum(d) OVER (PARTITION BY pool ORDER BY t ROWS UNBOUNDED PRECEDING) AS holders
    FROM events
),
ceilings AS (
    -- the most holders for longer than the clock's slack in all: short holds trimmed to
    -- an instant can still meet at one
    SELECT pool, max(holders) AS ceiling
    FROM (SELECT pool, holders, sum(s1 - s0) AS spent FROM levels GROUP BY pool, holders)
    -- (at least one: a service whose holds all shrank to an instant, as queries a skewed
    -- clock puts after their requests do, shows no pool at all, not a pool of none)
    WHERE spent >= {slack} AND holders > 0
    GROUP BY pool
),
full_levels AS (
    SELECT l.pool, l.s0, l.s1
    FROM levels l JOIN ceilings c ON c.pool = l.pool
    WHERE l.holders >= c.ceiling AND l.s1 > l.s0
),
islands AS (
    -- a connection handed from one request to the next leaves the pool one short for
    -- an instant (the release counted early, the event loop between the two): stretches
    -- at the ceiling that close gaps this short are one
    SELECT pool, s0, s1,
           sum(CASE WHEN s0 - prev_s1 <= 2 * {slack} THEN 0 ELSE 1 END)
               OVER (PARTITION BY pool ORDER BY s0 ROWS UNBOUNDED PRECEDING) AS island
    FROM (SELECT pool, s0, s1,
                 lag(s1) OVER (PARTITION BY pool ORDER BY s0) AS prev_s1
          FROM full_levels) g
),
stretches AS (
    SELECT pool, min(s0) AS s0, max(s1) AS s1 FROM islands GROUP BY pool, island
),
at_ceiling AS (
    -- stretches a queued caller waited through in one spell: a pool one short for less
    -- than {handoff} ns was handing a connection over (a busy event loop takes
    -- milliseconds to resume the next caller), not free
    SELECT pool, s0, s1,
           sum(CASE WHEN s0 - prev_s1 <= {handoff} THEN 0 ELSE 1 END)
               OVER (PARTITION BY pool ORDER BY s0 ROWS UNBOUNDED PRECEDING) AS spell
    FROM (SELECT pool, s0, s1,
                 lag(s1) OVER (PARTITION BY pool ORDER BY s0) AS prev_s1
          FROM stretches) g
),
spells AS (
    SELECT pool, min(s0) AS s0, max(s1) AS s1 FROM at_ceiling GROUP BY pool, spell
)
SELECT th, rh, route, service, process, database, target, server, ceiling, lead_ms,
       -- the route's quickest way to its first query is its own work (authentication,
       -- parsing, a sleep), not a wait: a fixed lead under steady load, always at the
       -- ceiling, is none; nor is the part of the lead in spans. A message's span may
       -- open before it can be handled (a batch listener opens all of a batch's at once):
       -- its lead is no sign of a pool.
       CASE WHEN consumer THEN 0.0
            ELSE greatest(least(overlap_ms, open_ms - min(open_ms) OVER (PARTITION BY service,
                                                                       route)), 0)
       END AS queued_ms
FROM (
    SELECT s.th, s.rh, s.route, s.service, s.process, s.database, s.target, s.server,
           s.ceiling, s.consumer, greatest(s.h0 - s.r0, 0) / 1e6 AS lead_ms,
           greatest(greatest(s.h0 - s.r0, 0) / 1e6 - coalesce(v.covered_ms, 0), 0) AS open_ms,
           -- no more than the uncovered time; nothing where a span measured a pool wait,
           -- nor where the pool spent most of that spell short of its ceiling: gaps a
           -- hand-over could take, one after another, are a pool idle between calls (its
           -- callers were busy, or queued for something else, such as a thread)
           CASE WHEN s.pool_ms > 0 OR s.w0 IS NULL THEN 0.0
                WHEN 2 * coalesce(sum(CASE WHEN t.s0 IS NOT NULL
                                           THEN greatest(least(s.w1, t.s1)
                                                         - greatest(s.w0, t.s0), 0) END),
                                  0) < s.w1 - s.w0 THEN 0.0
                ELSE least(greatest(s.w1 - s.w0, 0) / 1e6, s.app_ms) END AS overlap_ms
    FROM (
        -- the part of the lead in the spell that lasts, handing connections over, until
        -- the first query (one at most): a wait for a connection ends when one is handed
        -- over, and one that was free for longer before then was not waited for
        SELECT h.th, h.rh, h.route, h.service, h.process, h.database, h.target, h.server,
               h.pool, c.ceiling, h.consumer, h.r0, h.h0, h.app_ms, h.pool_ms,
               -- (DuckDB's least/greatest skip a NULL: no spell, no bounds)
               CASE WHEN f.s0 IS NOT NULL THEN greatest(h.r0, f.s0) END AS w0,
               CASE WHEN f.s0 IS NOT NULL THEN least(h.h0, f.s1) END AS w1
        FROM held h
        JOIN ceilings c ON c.pool = h.pool
        LEFT JOIN spells f ON f.pool = h.pool AND f.s0 < h.h0 AND f.s1 > h.r0
                          AND f.s1 >= h.h0 - {handoff}
    ) s
    LEFT JOIN covered v ON v.th = s.th AND v.rh = s.rh
    -- the stretches at the ceiling within it
    LEFT JOIN stretches t ON t.pool = s.pool AND t.s0 < s.w1 AND t.s1 > s.w0
    GROUP BY s.th, s.rh, s.route, s.service, s.process, s.database, s.target, s.server,
             s.ceiling, s.consumer, s.h0, s.r0, s.app_ms, s.pool_ms, s.w0, s.w1, v.covered_ms
) w
"""


def lead_waits(run: Run) -> str:
    """The name of the run's ``lead_waits`` table, made on first use: one row per request
    with a SQL query — ``th``, ``rh``, ``route``, ``service``, ``process``, ``database``
    (the pool its first SQL call's spans name, or ``''``), ``target`` (that pool's key:
    its name, server address, port and database), ``server`` (its ``host:port``, as far
    as the spans say), ``ceiling`` (the most requests of its
    service's process that held a connection of that pool at once), ``lead_ms`` (request
    start to first SQL query) and ``queued_ms`` (the part of the lead with the holders at
    that ceiling, at most the request's application time and its lead outside spans less
    its route's quickest; 0 for a message, and where a span or ``correlate.instrument``
    measured the request's pool wait)."""
    name = run.table(TABLE)
    exists = run.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
    ).fetchone()
    if not exists or not exists[0]:
        holds = run.table(HOLDS_TABLE)
        run.con.execute(
            _HOLDS_SQL.format(
                holds=holds,
                parts=run.table("parts"),
                requests=run.table("requests"),
                not_sql=NOT_SQL_SYSTEMS_SQL,
            ),
            {"run": run.run_id},
        )
        run.con.execute(
            _LEAD_WAITS_SQL.format(
                lead_waits=name,
                holds=holds,
                parts=run.table("parts"),
                slack=CLOCK_SLACK_NS,
                handoff=HANDOFF_NS,
            )
        )
        run.con.execute(f"DROP TABLE {holds}")
    return name


_QUEUED_ROUTES_SQL = """
CREATE OR REPLACE TEMP TABLE {queued} AS
WITH routes AS (
    -- the routes unexplained_time reports: mostly uncovered time, and enough of it
    SELECT r.route, count(*) AS requests, avg(r.duration_ms) AS mean_ms,
           avg(r.app_ms) AS app_ms, sum(r.app_ms) AS total_app_ms,
           quantile_cont(r.app_ms, 0.5) AS p50_app_ms,
           list(r.trace_id ORDER BY r.app_ms DESC, r.trace_id)[1:3] AS traces,
           avg(coalesce(w.queued_ms, 0)) AS queued_ms,
           list(r.trace_id ORDER BY coalesce(w.queued_ms, 0) DESC, r.trace_id)[1:3]
               AS queued_traces
    FROM {requests} r LEFT JOIN {lead_waits} w ON w.th = r.th AND w.rh = r.rh
    GROUP BY r.route
    HAVING count(*) >= $min_requests AND avg(r.app_ms) >= $min_app_ms
       AND avg(r.app_ms) >= $min_share * avg(r.duration_ms)
),
waited AS (
    -- the pool (a service's, for one database or pool name) each route waited for longest
    SELECT route, service, target, database, server
    FROM (SELECT route, service, target, any_value(database) AS database,
                 any_value(server) AS server, sum(queued_ms) AS waited
          FROM {lead_waits} GROUP BY route, service, target) g
    QUALIFY row_number() OVER (
        PARTITION BY route ORDER BY waited DESC, service, target) = 1
),
pools AS (
    -- its size read in each process that waited for it: the most holders of any
    SELECT service, target, max(ceiling) AS ceiling, count(DISTINCT process) AS processes
    FROM {lead_waits} WHERE queued_ms > 0 GROUP BY service, target
)
SELECT r.route AS route, r.requests AS requests, r.mean_ms AS mean_ms, r.app_ms AS app_ms,
       r.total_app_ms AS total_app_ms, r.p50_app_ms AS p50_app_ms, r.traces AS traces,
       r.queued_ms AS queued_ms, r.queued_traces AS queued_traces, w.service AS service,
       w.database AS database, p.ceiling AS ceiling, p.processes AS processes,
       w.target AS pool, w.server AS server,
       coalesce(p.ceiling IS NOT NULL AND r.queued_ms > 0
                AND r.queued_ms >= $queue_share * r.app_ms, false) AS queued
FROM routes r
LEFT JOIN waited w ON w.route = r.route
LEFT JOIN pools p ON p.service = w.service AND p.target = w.target
"""


def queued_routes(run: Run, settings: UnexplainedTimeSettings) -> str:
    """The name of the run's ``queued_routes`` table, made anew with ``settings``: one row
    per route that ``unexplained_time`` reports — ``route``, ``requests``, ``mean_ms``,
    ``app_ms``, ``total_app_ms``, ``p50_app_ms``, ``traces``, ``queued_ms`` (mean per
    request), ``queued_traces``, the pool it waited for longest (``service``,
    ``database``, ``ceiling``: the most holders in any of its ``processes``, ``pool``: its
    key, which two pools with one database name differ in, ``server``: its ``host:port``)
    and
    ``queued``: whether that wait is at least ``queue_share`` of its uncovered time, and
    so read as a queue for a connection.

    ``unexplained_time`` tells the queued routes' pools and ``slow_query`` sets their
    waits aside from this one table, so neither calls a wait a queue the other does not."""
    name = run.table(QUEUED_TABLE)
    run.con.execute(
        _QUEUED_ROUTES_SQL.format(
            queued=name, requests=run.table("requests"), lead_waits=lead_waits(run)
        ),
        {
            "min_requests": settings.min_requests,
            "min_app_ms": settings.min_app_ms,
            "min_share": settings.min_share,
            "queue_share": settings.queue_share,
        },
    )
    return name
