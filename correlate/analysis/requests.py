"""Requests and their parts: every millisecond of a request given one cause.

A *request* is a SERVER span: a root, or the entry span of a service called by
another. Its work is every span below it down to the next SERVER span (which
is a request of its own, already covered in the caller by the CLIENT span that
called it). Each span of that work falls in one category:

``pool``
    waiting for a pooled connection: SQLAlchemy's ``connect`` spans, and the
    checkouts ``correlate.instrument`` recorded (``pool_checkouts``), which
    cover the same wait when both exist;
``db``
    a CLIENT span with a database system and a statement;
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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

#: Longest chain of non-SERVER spans followed below a request; a guard against
#: parent cycles in hostile input, far deeper than any real instrumentation.
MAX_DEPTH = 64

#: SQL deciding a span's category (NULL: neither; its time is the app's).
CATEGORY_SQL = """
CASE
    WHEN s.name = 'connect' AND s.db_statement IS NULL AND s.kind = 'CLIENT' THEN 'pool'
    WHEN s.db_system IS NOT NULL AND s.db_statement IS NOT NULL THEN 'db'
    WHEN s.kind IN ('CLIENT', 'PRODUCER') AND s.db_system IS NULL THEN 'downstream'
END
"""


def build(con: duckdb.DuckDBPyConnection, run_id: int, prefix: str) -> None:
    """Materialise the run's request tables.

    - ``<prefix>_requests``: one row per request (:data:`REQUEST_COLUMNS`);
    - ``<prefix>_owner``: (trace_id, span_id, request_id, depth) for every span
      that belongs to a request, the request's own span included;
    - ``<prefix>_request_queries``: per request and fingerprint, the calls and
      the DB time attributed to it.
    """
    params = {"run": run_id}
    con.execute(_FINGERPRINTS_SQL.format(p=prefix), params)
    con.execute(_OWNER_SQL.format(p=prefix, max_depth=MAX_DEPTH), params)
    con.execute(_PARTS_SQL.format(p=prefix, category=CATEGORY_SQL), params)
    con.execute(_SEGMENTS_SQL.format(p=prefix))
    con.execute(_REQUESTS_SQL.format(p=prefix), params)
    con.execute(_REQUEST_QUERIES_SQL.format(p=prefix))
    con.execute(f"DROP TABLE {prefix}_segments")


def unattributed(con: duckdb.DuckDBPyConnection, run_id: int, prefix: str) -> int:
    """How many spans of the run belong to no request."""
    row = con.execute(
        f"""
        SELECT count(*) FROM spans s
        WHERE s.run_id = $run
          AND NOT EXISTS (SELECT 1 FROM {prefix}_owner o
                          WHERE o.trace_id = s.trace_id AND o.span_id = s.span_id)
        """,
        {"run": run_id},
    ).fetchone()
    return int(row[0]) if row else 0


# Distinct texts first: with sqlcommenter every text is unique, but the key
# macro is then run once per text, never once per span and join.
_FINGERPRINTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_fingerprints AS
SELECT s.db_system, s.statement, st.fingerprint
FROM (SELECT DISTINCT db_system, db_statement AS statement
      FROM spans WHERE run_id = $run AND db_statement IS NOT NULL) s
JOIN statements st
  ON st.run_id = $run AND st.db_system IS NOT DISTINCT FROM s.db_system
 AND st.key = statement_key(s.statement)
"""

_OWNER_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_owner AS
WITH RECURSIVE
run_spans AS (
    SELECT trace_id, span_id, parent_id, kind, start_ns, end_ns
    FROM spans WHERE run_id = $run
),
servers AS (
    SELECT trace_id, span_id, start_ns, end_ns FROM run_spans WHERE kind = 'SERVER'
),
orphans AS (
    SELECT c.trace_id, c.span_id, c.start_ns
    FROM run_spans c
    WHERE c.kind IS DISTINCT FROM 'SERVER' AND c.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM run_spans p
                      WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_id)
),
orphan_owner AS (
    SELECT o.trace_id, o.span_id, s.span_id AS request_id
    FROM orphans o JOIN servers s USING (trace_id)
    QUALIFY row_number() OVER (
        PARTITION BY o.trace_id, o.span_id
        ORDER BY greatest(s.start_ns - o.start_ns, o.start_ns - s.end_ns, 0), s.start_ns DESC
    ) = 1
),
owner(trace_id, span_id, request_id, depth) AS (
    SELECT trace_id, span_id, span_id, 0 FROM servers
    UNION ALL
    SELECT trace_id, span_id, request_id, 1 FROM orphan_owner
    UNION ALL
    SELECT c.trace_id, c.span_id, o.request_id, o.depth + 1
    FROM run_spans c
    JOIN owner o ON c.trace_id = o.trace_id AND c.parent_id = o.span_id
    WHERE c.kind IS DISTINCT FROM 'SERVER' AND o.depth < {max_depth}
)
-- a span reached twice (a parent cycle) keeps its shallowest owner
SELECT trace_id, span_id, arg_min(request_id, depth) AS request_id, min(depth) AS depth
FROM owner GROUP BY trace_id, span_id
"""

_PARTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_parts AS
WITH req AS (
    SELECT trace_id, span_id AS request_id, start_ns AS r0, end_ns AS r1
    FROM spans WHERE run_id = $run AND kind = 'SERVER'
),
span_parts AS (
    SELECT o.trace_id, o.request_id, s.span_id, s.parent_id, {category} AS category,
           s.db_system, s.db_statement, s.start_ns, s.end_ns
    FROM {p}_owner o
    JOIN spans s ON s.run_id = $run AND s.trace_id = o.trace_id AND s.span_id = o.span_id
    WHERE o.depth > 0
),
checkout_parts AS (
    -- the wait correlate.instrument measured, for requests whose connect
    -- spans are missing or not instrumented
    SELECT c.trace_id, c.request_span_id AS request_id, NULL AS span_id, NULL AS parent_id,
           'pool' AS category, NULL AS db_system, NULL AS db_statement,
           c.start_unix_nano AS start_ns, c.start_unix_nano + c.wait_ns AS end_ns
    FROM pool_checkouts c
    WHERE c.run_id = $run AND c.request_span_id IS NOT NULL AND c.wait_ns > 0
)
SELECT p.trace_id, p.request_id, p.span_id, p.parent_id, p.category,
       CASE WHEN p.category = 'db' THEN coalesce(f.fingerprint, 'unknown') END AS fingerprint,
       p.start_ns, p.end_ns,
       greatest(p.start_ns, r.r0) AS a, least(p.end_ns, r.r1) AS b
FROM (SELECT * FROM span_parts UNION ALL SELECT * FROM checkout_parts) p
JOIN req r ON r.trace_id = p.trace_id AND r.request_id = p.request_id
LEFT JOIN {p}_fingerprints f
  ON p.category = 'db' AND f.db_system IS NOT DISTINCT FROM p.db_system
 AND f.statement = p.db_statement
WHERE p.category IS NOT NULL
"""

_SEGMENTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_segments AS
WITH events AS (
    SELECT trace_id, request_id, t,
           sum(CASE WHEN category = 'pool' THEN d ELSE 0 END) AS d_pool,
           sum(CASE WHEN category = 'db' THEN d ELSE 0 END) AS d_db,
           sum(CASE WHEN category = 'downstream' THEN d ELSE 0 END) AS d_down
    FROM (
        SELECT trace_id, request_id, category, a AS t, 1 AS d FROM {p}_parts WHERE b > a
        UNION ALL
        SELECT trace_id, request_id, category, b AS t, -1 AS d FROM {p}_parts WHERE b > a
    )
    GROUP BY trace_id, request_id, t
),
running AS (
    SELECT trace_id, request_id, t,
           lead(t) OVER w_next - t AS len,
           sum(d_pool) OVER w AS n_pool,
           sum(d_db) OVER w AS n_db,
           sum(d_down) OVER w AS n_down
    FROM events
    WINDOW w AS (PARTITION BY trace_id, request_id ORDER BY t ROWS UNBOUNDED PRECEDING),
           w_next AS (PARTITION BY trace_id, request_id ORDER BY t)
)
SELECT trace_id, request_id,
       sum(CASE WHEN n_pool > 0 THEN len ELSE 0 END) AS pool_ns,
       sum(CASE WHEN n_pool = 0 AND n_db > 0 THEN len ELSE 0 END) AS db_ns,
       sum(CASE WHEN n_pool = 0 AND n_db = 0 AND n_down > 0 THEN len ELSE 0 END) AS downstream_ns
FROM running
WHERE len > 0
GROUP BY trace_id, request_id
"""

_REQUESTS_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_requests AS
WITH counts AS (
    SELECT trace_id, request_id,
           count(*) FILTER (WHERE category = 'db') AS db_calls,
           count(*) FILTER (WHERE category = 'pool' AND span_id IS NOT NULL) AS connects
    FROM {p}_parts GROUP BY trace_id, request_id
)
SELECT s.trace_id, s.span_id AS request_id, s.service,
       coalesce(s.http_route, s.name) AS route,
       s.http_method AS method, s.http_status_code AS http_status,
       (s.status_code = 'ERROR' OR coalesce(s.http_status_code, 0) >= 500) AS error,
       s.start_ns, s.end_ns,
       s.duration_ns / 1e6 AS duration_ms,
       coalesce(g.pool_ns, 0) / 1e6 AS pool_ms,
       coalesce(g.db_ns, 0) / 1e6 AS db_ms,
       coalesce(g.downstream_ns, 0) / 1e6 AS downstream_ms,
       greatest(s.duration_ns - coalesce(g.pool_ns, 0) - coalesce(g.db_ns, 0)
                - coalesce(g.downstream_ns, 0), 0) / 1e6 AS app_ms,
       coalesce(c.db_calls, 0) AS db_calls,
       coalesce(c.connects, 0) AS connects
FROM spans s
LEFT JOIN {p}_segments g ON g.trace_id = s.trace_id AND g.request_id = s.span_id
LEFT JOIN counts c ON c.trace_id = s.trace_id AND c.request_id = s.span_id
WHERE s.run_id = $run AND s.kind = 'SERVER'
"""

# Each fingerprint's share of its request's DB time: its spans' clipped
# durations over all DB spans' clipped durations, times the union.
_REQUEST_QUERIES_SQL = """
CREATE OR REPLACE TEMP TABLE {p}_request_queries AS
WITH db AS (
    SELECT trace_id, request_id, a, b, end_ns - start_ns AS span_ns, fingerprint
    FROM {p}_parts WHERE category = 'db'
),
per_fp AS (
    SELECT trace_id, request_id, fingerprint, count(*) AS calls,
           sum(greatest(b - a, 0)) AS clipped_ns, sum(span_ns) AS span_ns
    FROM db GROUP BY ALL
)
SELECT f.trace_id, f.request_id, f.fingerprint, f.calls,
       f.span_ns / 1e6 AS span_ms,
       CASE WHEN sum(f.clipped_ns) OVER r > 0
            THEN q.db_ms * f.clipped_ns / sum(f.clipped_ns) OVER r ELSE 0 END AS db_ms
FROM per_fp f
JOIN {p}_requests q ON q.trace_id = f.trace_id AND q.request_id = f.request_id
WINDOW r AS (PARTITION BY f.trace_id, f.request_id)
"""
