"""Requests and their parts: every millisecond of a request given one cause.

A *request* is a SERVER span: a root, or the entry span of a service called by
another; or a CONSUMER span, a worker's processing of one message (its DB calls are the
worker's, after the request that published the message may have ended, so they are
never the publisher's time: the PRODUCER span is), the innermost where a "receive"
CONSUMER span wraps a "process" one. Older tracers (OpenTracing-era Zipkin and Jaeger
clients) may leave a request's root without a kind: a root whose kind is absent or UNSPECIFIED, or
INTERNAL with HTTP attributes, is a request too (:data:`REQUEST_SQL`), and the
tables below call it SERVER. A route is ``http.route``, else the span's route
template (``http_target_template``: ids in its path folded), else its name. Its work is every span below it down to the next SERVER span (which
is a request of its own, already covered in the caller by the CLIENT span that
called it). Each span of that work falls in one category:

``pool``
    waiting for a pooled connection: SQLAlchemy's ``connect`` spans (and the other
    checkout spans :mod:`correlate.analysis.pool_inference` lists), and the
    checkouts ``correlate.instrument`` recorded (``pool_checkouts``), which
    cover the same wait when both exist;
``db``
    a CLIENT span with a database system and a statement; of a call two
    instrumentations record (an ORM's span over the driver's), one record only, the
    driver's: a database span with another of its database system below it is a wrapper,
    and its time beyond that call the application's;
``downstream``
    any other CLIENT or PRODUCER span (HTTP calls, messaging, caches);

and what no such span covers is the application's own time, ``app``.

Intervals are clipped to their request, so a clock-skewed child never counts
outside it, and a moment covered by several categories counts once, for the
first of pool > db > downstream (a connection being waited for blocks the
query; a query running beside an HTTP call is the database's time). So the
parts of a request add up to its duration exactly, and none is ever negative.
Within ``db``, each fingerprint gets the share of the union its own spans'
durations make up, which is exact for sequential queries.

A span whose parent is missing from the run (lost, or sampled away) is
attached with its subtree to the SERVER span of its trace that contains its
start, or else the nearest one; spans in no trace with a SERVER span belong to
no request and are counted in :func:`unattributed`.

The whole computation is SQL over the canonical tables, materialised once per
run as temporary tables named ``<prefix>_…`` (they work on a read-only store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from correlate.analysis import pool_errors
from correlate.routes import route_sql

if TYPE_CHECKING:
    import duckdb

#: Longest chain of non-SERVER spans followed below a request; a guard against
#: parent cycles in hostile input, far deeper than any real instrumentation.
MAX_DEPTH = 64

#: How far past the span recording it a second record of one statement may end (its
#: instrumentation read the clock a little later): 0.1 ms, and at most a tenth of the
#: second record's own duration, so a quick query never reaches into the next one.
DOUBLED_SLACK_NS = 100_000

#: SQL deciding a span's category (NULL: neither; its time is the app's).
CATEGORY_SQL = """
CASE
    -- a checkout from a pool (analysis.pool_inference.CHECKOUT_SPAN_NAMES)
    WHEN NOT s.has_statement AND (s.name = 'connect' AND s.kind = 'CLIENT'
         OR s.name IN ('pg-pool.connect', 'generic-pool.acquire', 'generic-pool.aquire'))
        THEN 'pool'
    -- a database call without a statement (Redis, MongoDB, capture turned off) is still
    -- the database's time
    WHEN s.db_system IS NOT NULL AND (s.has_statement OR s.kind = 'CLIENT') THEN 'db'
    WHEN s.kind IN ('CLIENT', 'PRODUCER') AND s.db_system IS NULL THEN 'downstream'
END
"""


def build(con: duckdb.DuckDBPyConnection, run_id: int, prefix: str) -> None:
    """Materialise the run's request tables.

    - ``<prefix>_requests``: one row per request (its ids, route, status, and
      its duration and parts in milliseconds);
    - ``<prefix>_parts``: every categorised span (and recorded pool wait) of a
      request, with its database system, clipped to it as ``a``/``b``;
    - ``<prefix>_request_queries``: per request and fingerprint, the calls and
      the DB time attributed to it;
    - ``<prefix>_tree`` and ``<prefix>_owner``: the run's spans by hashed ids,
      and the request each belongs to.

    Joins go through 64-bit hashes of the ids (``th``, ``sh``, ``rh``: trace,
    span, request), several times faster than joining the hex strings; a
    wrong match needs two ids of different spans to collide in both trace and
    span hash at once, which at millions of spans is vanishingly unlikely.
    """
    params = {"run": run_id, "pattern": pool_errors.PATTERN}
    for sql in (
        _TREE_SQL,
        _FINGERPRINTS_SQL,
        _OWNER_SQL,
        _WRAPPERS_SQL,
        _COVERED_SQL,
        _DOUBLED_SQL,
        _PARTS_SQL,
    ):
        text = sql.format(
            p=prefix,
            max_depth=MAX_DEPTH,
            category=CATEGORY_SQL,
            slack=DOUBLED_SLACK_NS,
            pool_errors=pool_errors.PARTS_SQL.format(p=prefix),
            lanes=_LANES_SQL.format(src="db" if sql is _COVERED_SQL else f"{prefix}_covered"),
            family=family_sql("s.db_system"),
        )
        used = {k: v for k, v in params.items() if f"${k}" in text}
        con.execute(text, used or None)
    con.execute(_SEGMENTS_SQL.format(p=prefix))
    con.execute(_REQUESTS_SQL.format(p=prefix))
    con.execute(_REQUEST_QUERIES_SQL.format(p=prefix))
    con.execute(f"DROP TABLE {prefix}_segments")
    con.execute(f"DROP TABLE {prefix}_covered")
    con.execute(f"DROP TABLE {prefix}_wrappers")


#: The run's tables, dropped by ``Run.close``; ``calls`` is made on first use by the
#: repeated-calls detectors (:func:`correlate.analysis.detectors.calls.calls_table`),
#: ``locks`` and ``sections`` by the contention detectors
#: (:func:`correlate.analysis.detectors.lock_queue.queues`,
#: :func:`correlate.analysis.detectors.section_queue.sections`), ``lead_waits`` and
#: ``queued_routes`` by :mod:`correlate.analysis.connection_queue`.
TABLES = (
    "tree", "fingerprints", "owner", "doubled", "parts", "requests", "request_queries", "calls",
    "locks", "sections", "lead_waits", "queued_routes",
)  # fmt: skip


def doubled(con: duckdb.DuckDBPyConnection, prefix: str) -> int:
    """How many DB spans of the run record a call another span records too (an ORM's
    instrumentation and the driver's both on: SQLAlchemy's and psycopg's, knex's and pg's),
    left out of the requests' parts so the call counts once."""
    row = con.execute(f"SELECT count(*) FROM {prefix}_doubled").fetchone()
    return int(row[0]) if row else 0


def unattributed(con: duckdb.DuckDBPyConnection, run_id: int, prefix: str) -> int:
    """How many spans of the run belong to no request (a load generator's root CLIENT
    span that a request hangs under is the client's side, and a root CONSUMER span
    receiving the messages whose processing hangs under it their way in: not counted)."""
    row = con.execute(
        f"""
        SELECT count(*) FROM {prefix}_tree t ANTI JOIN {prefix}_owner o USING (th, sh)
        -- a load generator's root CLIENT span above a request is the client's side
        WHERE NOT (t.kind IN ('CLIENT', 'CONSUMER') AND t.parent_id IS NULL AND EXISTS (
            SELECT 1 FROM {prefix}_tree s WHERE s.th = t.th AND s.ph = t.sh AND s.kind = 'SERVER'))
        """
    ).fetchone()
    return int(row[0]) if row else 0


#: SQL: whether a span of ``spans`` is a request (see the module docstring); a CONSUMER
#: span is one unless its children are all CONSUMER spans of its service (``wraps_consumer``:
#: older messaging conventions wrap the processing of a message in a "receive" span; the
#: innermost is the request). A worker handing a message on to another service, or a task
#: running another in its own process (Celery's apply) among work of its own, stays one.
REQUEST_SQL = """(kind = 'SERVER' OR (kind = 'CONSUMER' AND NOT wraps_consumer)
    OR (parent_id IS NULL AND (
    coalesce(kind, 'UNSPECIFIED') = 'UNSPECIFIED'
    OR (kind = 'INTERNAL' AND (http_route IS NOT NULL OR http_method IS NOT NULL
                               OR url_path IS NOT NULL OR http_status_code IS NOT NULL)))))"""

_TREE_SQL = (
    """
CREATE OR REPLACE TEMP TABLE {p}_tree AS
SELECT hash(trace_id) AS th, hash(span_id) AS sh, hash(parent_id) AS ph,
       trace_id, span_id, parent_id,
       CASE WHEN """
    + REQUEST_SQL.replace("{", "{{").replace("}", "}}")
    + """ THEN 'SERVER' ELSE kind END AS kind,
       -- a request that is a worker's processing of one message, not a web request
       -- (a cast: ClickHouse would make a comparison of its LowCardinality kind one too)
       coalesce(CAST(kind AS VARCHAR) = 'CONSUMER', false) AS consumer,
       name, service, scope_name,
       """
    + route_sql("coalesce(http_route, http_target_template)", "scope_name")
    + """ AS http_route,
       http_method,
       http_status_code, status_code, db_system,
       db_statement IS NOT NULL AS has_statement,
       -- the ASGI message an opentelemetry-instrumentation-asgi span sends or receives
       -- (asgi.event.type; "type" before the attribute was renamed in 2024, a name common
       -- enough that it counts only on a span named as the instrumentation names them)
       CASE WHEN coalesce(kind, 'INTERNAL') IN ('INTERNAL', 'UNSPECIFIED') THEN coalesce(
           attributes->>'asgi.event.type',
           CASE WHEN regexp_matches(attributes->>'type',
                    '^(http\\.(request|disconnect|response\\.[a-z_.]+)|websocket\\.[a-z_.]+)$')
                 AND regexp_matches(name, ' (http|websocket) (send|receive)$')
                THEN attributes->>'type' END) END AS asgi_event,
       CASE WHEN db_statement IS NOT NULL THEN hash(db_statement) END AS qh,
       -- a span ending before it starts (a clock step, a broken exporter) lasts nothing
       start_ns, greatest(end_ns, start_ns) AS end_ns, greatest(duration_ns, 0) AS duration_ns
FROM (
    SELECT s.*, w.parent IS NOT NULL AS wraps_consumer
    FROM spans s
    -- the spans whose children are all CONSUMER spans of one service
    LEFT JOIN (SELECT trace_id AS trace, parent_id AS parent, min(service) AS by
               FROM spans
               WHERE run_id = $run AND parent_id IN (  -- only a CONSUMER's children: cheap
                   SELECT span_id FROM spans WHERE run_id = $run AND kind = 'CONSUMER')
               GROUP BY trace_id, parent_id
               HAVING bool_and(coalesce(kind = 'CONSUMER', false))
                  AND min(coalesce(service, '')) = max(coalesce(service, ''))) w
      ON w.trace = s.trace_id AND w.parent = s.span_id AND w.by IS NOT DISTINCT FROM s.service
    WHERE s.run_id = $run
)
"""
)

# Distinct texts first: with sqlcommenter every text is unique, but the key
# macro is then run once per text, never once per span and join.
_FINGERPRINTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_fingerprints AS
SELECT s.db_system, hash(s.statement) AS qh, any_value(st.fingerprint) AS fingerprint
FROM (SELECT DISTINCT db_system, db_statement AS statement
      FROM spans WHERE run_id = $run AND db_statement IS NOT NULL) s
JOIN statements st
  ON st.run_id = $run AND st.db_system IS NOT DISTINCT FROM s.db_system
 AND st.key = statement_key(s.db_system, s.statement)
GROUP BY ALL
"""

_OWNER_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_owner AS
WITH RECURSIVE
servers AS (
    SELECT th, sh, start_ns, end_ns FROM {p}_tree WHERE kind = 'SERVER'
),
orphans AS (
    SELECT c.th, c.sh, c.start_ns
    FROM {p}_tree c
    WHERE c.kind IS DISTINCT FROM 'SERVER' AND c.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {p}_tree p WHERE p.th = c.th AND p.sh = c.ph)
),
orphan_owner AS (
    SELECT o.th, o.sh, s.sh AS rh
    FROM orphans o JOIN servers s USING (th)
    QUALIFY row_number() OVER (
        PARTITION BY o.th, o.sh
        ORDER BY greatest(s.start_ns - o.start_ns, o.start_ns - s.end_ns, 0), s.start_ns DESC
    ) = 1
),
owner(th, sh, rh, depth) AS (
    SELECT th, sh, sh, 0 FROM servers
    UNION ALL
    SELECT th, sh, rh, 1 FROM orphan_owner
    UNION ALL
    SELECT c.th, c.sh, o.rh, o.depth + 1
    FROM {p}_tree c
    JOIN owner o ON c.th = o.th AND c.ph = o.sh
    WHERE c.kind IS DISTINCT FROM 'SERVER' AND o.depth < {max_depth}
)
-- a span reached twice (a parent cycle) keeps its shallowest owner
SELECT th, sh, arg_min(rh, depth) AS rh, min(depth) AS depth
FROM owner GROUP BY th, sh
"""

# One execution recorded twice: an ORM's or query builder's instrumentation and the
# driver's (SQLAlchemy and psycopg, PyMySQL through the DB-API integration, or asyncpg;
# knex, Sequelize or TypeORM and pg or mysql2; Hibernate and JDBC), both on under
# auto-instrumentation, each record the call.
#
# A database call with a call of the same database system below it (its child, or deeper)
# is a wrapper of that call, not a call of its own: the innermost record is the call, with
# its time and its statement (the driver's text, what the server sees and plans), and the
# wrapper's time beyond it is the ORM's own work, the application's. A statement-less
# record below one with a statement (pg's connect span) is no record of that call.
_WRAPPERS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_wrappers AS
WITH RECURSIVE
calls AS (
    SELECT s.th, s.sh, {family} AS family, s.has_statement FROM {p}_tree s
    WHERE s.kind IS DISTINCT FROM 'SERVER' AND ({category}) = 'db'
),
below(th, top, sh, depth) AS (
    SELECT c.th, w.sh, c.sh, 1
    FROM calls w JOIN {p}_tree c ON c.th = w.th AND c.ph = w.sh
    WHERE c.kind IS DISTINCT FROM 'SERVER'
    UNION ALL
    SELECT c.th, b.top, c.sh, b.depth + 1
    FROM below b JOIN {p}_tree c ON c.th = b.th AND c.ph = b.sh
    WHERE c.kind IS DISTINCT FROM 'SERVER' AND b.depth < {max_depth}
)
SELECT DISTINCT w.th, w.sh
FROM below b
JOIN calls w ON w.th = b.th AND w.sh = b.top
JOIN calls i ON i.th = b.th AND i.sh = b.sh
WHERE i.family = w.family AND (i.has_statement OR NOT w.has_statement)
"""


def family_sql(column: str) -> str:
    """SQL: the database language ``column`` (a span's db.system) names, whatever its
    instrumentation calls it (TypeORM's ``postgres`` over pg's ``postgresql``, MariaDB's
    and MySQL's one protocol), else its lowercased value."""
    from correlate.dialects import DIALECTS
    from correlate.ingest.jsonschema import sql_string

    value = f"lower(trim({column}))"
    whens = " ".join(
        f"WHEN {value} IN ({', '.join(sql_string(n.lower()) for n in (d.name, *d.db_systems))}) "
        f"THEN {sql_string(d.sqlglot or d.name)}"
        for d in DIALECTS.values()
    )
    return f"CASE {whens} ELSE {value} END"


# Some drivers' records are the ORM's siblings instead (SQLAlchemy's instrumentation does
# not make its span the current one, so psycopg's or asyncpg's is its sibling): a second
# record is then a DB span of the same fingerprint as a sibling from another
# instrumentation scope, lying within it: starting no earlier, ending no later (give or
# take a little slack), and the outer one stays. Queries awaited together are siblings of
# one scope, so never collapsed.
#
# Siblings are compared in one ordered pass, never pair by pair (a request may run one
# statement thousands of times): in the order start, end descending, span, a span's
# earlier siblings are exactly those that may hold it, and one of them does if the latest
# end among them reaches the span's own end. Only siblings of another scope count, so the
# pass runs once per scope of the group ("lane"): a span takes the latest end of the
# other scopes' spans before it in its own scope's lane. Only a group of siblings (trace,
# parent, fingerprint) recorded by several scopes has lanes: in any other, no span has
# another scope's sibling to hold it, and nearly all groups skip the pass.
_LANES_SQL = """
SELECT DISTINCT a.th, a.ph, a.fingerprint, a.scope AS lane
FROM {src} a
JOIN (SELECT th, ph, fingerprint FROM {src} WHERE scope IS NOT NULL
      GROUP BY th, ph, fingerprint HAVING min(hash(scope)) <> max(hash(scope))) m
  ON m.th = a.th AND m.ph = a.ph AND m.fingerprint = a.fingerprint
WHERE a.scope IS NOT NULL
"""

_COVERED_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_covered AS
WITH db AS (
    SELECT t.th, t.sh, t.ph, t.scope_name AS scope, t.start_ns, t.end_ns, f.fingerprint,
           -- the end a record holding this one must reach
           t.end_ns - least({slack}, (t.end_ns - t.start_ns) // 10) AS reach
    FROM {p}_tree t
    JOIN {p}_fingerprints f ON f.db_system IS NOT DISTINCT FROM t.db_system AND f.qh = t.qh
    WHERE t.kind IS DISTINCT FROM 'SERVER'
),
lanes AS (
    SELECT d.*, l.lane,
           max(CASE WHEN d.scope <> l.lane THEN d.end_ns END) OVER (
               PARTITION BY d.th, d.ph, d.fingerprint, l.lane
               ORDER BY d.start_ns, d.end_ns DESC, d.sh
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS sibling_end
    FROM db d
    JOIN ({lanes}) l ON l.th = d.th AND l.ph = d.ph AND l.fingerprint = d.fingerprint
)
SELECT d.th, d.sh, d.ph, d.scope, d.start_ns, d.end_ns, d.reach, d.fingerprint,
       coalesce(s.sibling_end >= d.reach, false) AS covered
FROM db d
LEFT JOIN lanes s ON s.th = d.th AND s.sh = d.sh AND s.lane = d.scope
"""

# A span within another that is itself within a third counts against the outermost only:
# under asyncio.gather a driver's span may happen to lie within another query's record.
# So the same pass again, over the records no other holds; and the wrappers.
_DOUBLED_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_doubled AS
WITH lanes AS (
    SELECT d.th, d.sh, d.scope, d.lane,
           max(CASE WHEN d.scope <> d.lane AND NOT d.covered THEN d.end_ns END) OVER (
               PARTITION BY d.th, d.ph, d.fingerprint, d.lane
               ORDER BY d.start_ns, d.end_ns DESC, d.sh
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS sibling_end
    FROM (SELECT c.*, l.lane FROM {p}_covered c
          JOIN ({lanes}) l ON l.th = c.th AND l.ph = c.ph AND l.fingerprint = c.fingerprint) d
)
SELECT DISTINCT c.th, c.sh
FROM {p}_covered c
JOIN lanes s ON s.th = c.th AND s.sh = c.sh AND s.lane = c.scope
WHERE s.sibling_end >= c.reach
UNION
SELECT th, sh FROM {p}_wrappers
"""

_PARTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_parts AS
WITH req AS (
    SELECT th, sh AS rh, trace_id, span_id AS request_id, service, start_ns AS r0,
           end_ns AS r1
    FROM {p}_tree WHERE kind = 'SERVER'
),
span_parts AS (
    SELECT o.th, o.rh, s.trace_id, s.span_id, s.ph, {category} AS category,
           s.db_system, s.qh, s.name, s.status_code, s.start_ns, s.end_ns
    FROM {p}_owner o
    JOIN {p}_tree s USING (th, sh)
    WHERE o.depth > 0
      AND NOT EXISTS (SELECT 1 FROM {p}_doubled d WHERE d.th = s.th AND d.sh = s.sh)
),
checkout_parts AS (
    -- the wait correlate.instrument measured, for requests whose connect
    -- spans are missing or not instrumented
    SELECT hash(c.trace_id) AS th, hash(c.request_span_id) AS rh, c.trace_id,
           NULL AS span_id, NULL AS ph, 'pool' AS category, NULL AS db_system, NULL AS qh,
           NULL AS name, NULL AS status_code,
           c.start_unix_nano AS start_ns, c.start_unix_nano + c.wait_ns AS end_ns
    FROM pool_checkouts c
    WHERE c.run_id = $run AND c.request_span_id IS NOT NULL AND c.wait_ns > 0
),
{pool_errors}
SELECT p.th, p.rh, p.trace_id, r.request_id, p.span_id, p.ph, p.category, p.status_code,
       p.db_system,
       CASE WHEN p.category = 'db'
            -- no statement to fingerprint: the system and the span's name stand in
            THEN coalesce(f.fingerprint, CASE WHEN p.qh IS NULL
                                              THEN coalesce(p.db_system, 'db') || ' ' || p.name
                                         END, 'unknown') END AS fingerprint,
       p.start_ns, p.end_ns,
       greatest(p.start_ns, r.r0) AS a, least(p.end_ns, r.r1) AS b
FROM (SELECT * FROM span_parts WHERE category IS NOT NULL
      UNION ALL SELECT * FROM checkout_parts
      UNION ALL SELECT * FROM error_parts) p
JOIN req r USING (th, rh)
LEFT JOIN {p}_fingerprints f
  ON p.category = 'db' AND f.db_system IS NOT DISTINCT FROM p.db_system AND f.qh = p.qh
"""

_SEGMENTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_segments AS
WITH events AS (
    SELECT th, rh, t,
           sum(CASE WHEN category = 'pool' THEN d ELSE 0 END) AS d_pool,
           sum(CASE WHEN category = 'db' THEN d ELSE 0 END) AS d_db,
           sum(CASE WHEN category = 'downstream' THEN d ELSE 0 END) AS d_down
    FROM (
        SELECT th, rh, category, a AS t, 1 AS d FROM {p}_parts WHERE b > a
        UNION ALL
        SELECT th, rh, category, b AS t, -1 AS d FROM {p}_parts WHERE b > a
    )
    GROUP BY th, rh, t
),
running AS (
    SELECT th, rh, t,
           lead(t) OVER w_next - t AS len,
           sum(d_pool) OVER w AS n_pool,
           sum(d_db) OVER w AS n_db,
           sum(d_down) OVER w AS n_down
    FROM events
    WINDOW w AS (PARTITION BY th, rh ORDER BY t ROWS UNBOUNDED PRECEDING),
           w_next AS (PARTITION BY th, rh ORDER BY t)
)
SELECT th, rh,
       sum(CASE WHEN n_pool > 0 THEN len ELSE 0 END) AS pool_ns,
       sum(CASE WHEN n_pool = 0 AND n_db > 0 THEN len ELSE 0 END) AS db_ns,
       sum(CASE WHEN n_pool = 0 AND n_db = 0 AND n_down > 0 THEN len ELSE 0 END) AS downstream_ns
FROM running
WHERE len > 0
GROUP BY th, rh
"""

_REQUESTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_requests AS
WITH counts AS (
    SELECT th, rh,
           count(*) FILTER (WHERE category = 'db') AS db_calls,
           count(*) FILTER (WHERE category = 'pool' AND span_id IS NOT NULL) AS connects
    FROM {p}_parts GROUP BY th, rh
)
SELECT s.trace_id, s.span_id AS request_id, s.service,
       -- with several services, a route is named with its service (two /health differ)
       CASE WHEN (SELECT count(DISTINCT service) FROM {p}_tree WHERE kind = 'SERVER') > 1
            THEN coalesce(s.service, '?') || ' ' || coalesce(s.http_route, s.name)
            ELSE coalesce(s.http_route, s.name) END AS route,
       s.http_method AS method, s.http_status_code AS http_status, s.consumer AS message,
       coalesce(s.status_code = 'ERROR' OR s.http_status_code >= 500, false) AS error,
       s.start_ns, s.end_ns,
       s.duration_ns / 1e6 AS duration_ms,
       coalesce(g.pool_ns, 0) / 1e6 AS pool_ms,
       coalesce(g.db_ns, 0) / 1e6 AS db_ms,
       coalesce(g.downstream_ns, 0) / 1e6 AS downstream_ms,
       greatest(s.duration_ns - coalesce(g.pool_ns, 0) - coalesce(g.db_ns, 0)
                - coalesce(g.downstream_ns, 0), 0) / 1e6 AS app_ms,
       coalesce(c.db_calls, 0) AS db_calls,
       coalesce(c.connects, 0) AS connects,
       s.th, s.sh AS rh
FROM {p}_tree s
LEFT JOIN {p}_segments g ON g.th = s.th AND g.rh = s.sh
LEFT JOIN counts c ON c.th = s.th AND c.rh = s.sh
WHERE s.kind = 'SERVER'
"""

# Each fingerprint's share of its request's DB time: its spans' clipped
# durations over all DB spans' clipped durations, times the union.
_REQUEST_QUERIES_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_request_queries AS
WITH per_fp AS (
    SELECT th, rh, fingerprint, count(*) AS calls,
           sum(greatest(b - a, 0)) AS clipped_ns, sum(end_ns - start_ns) AS span_ns
    FROM {p}_parts WHERE category = 'db' GROUP BY ALL
)
SELECT q.trace_id, q.request_id, f.fingerprint, f.calls,
       f.span_ns / 1e6 AS span_ms,
       CASE WHEN sum(f.clipped_ns) OVER r > 0
            THEN q.db_ms * f.clipped_ns / sum(f.clipped_ns) OVER r ELSE 0 END AS db_ms,
       f.th, f.rh
FROM per_fp f
JOIN {p}_requests q USING (th, rh)
WINDOW r AS (PARTITION BY f.th, f.rh)
"""


def staged(con: Any, table: str, stages: list[str], params: dict[str, Any]) -> None:
    """Make the temporary table ``table`` from ``stages``: SQL queries, each reading the
    one before it as ``{prev}`` (the first reads what it names itself), each stage kept
    as a table of its own until the last is made.

    One query of many ``WITH`` steps would do in DuckDB, but ClickHouse expands a
    ``WITH`` step wherever it is named, so a deep chain of steps named more than once
    grows past what it will plan, and recomputes each; a table per stage stops that.
    """
    made: list[str] = []
    try:
        for i, sql in enumerate(stages):
            name = table if i == len(stages) - 1 else f"{table}_{i}"
            query = sql.format(prev=made[-1] if made else "")
            used = {k: v for k, v in params.items() if f"${k}" in query}
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}", used or None)
            made.append(name)
    finally:
        for name in made[:-1] if made and made[-1] == table else made:
            con.execute(f"DROP TABLE IF EXISTS {name}")
