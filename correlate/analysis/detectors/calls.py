"""Client calls of a request, for the repeated-calls family (N+1, redundant calls, fan-out).

A *call* is a database, HTTP, RPC or messaging CLIENT (or PRODUCER) span of a request:
a ``db`` or ``downstream`` part of :mod:`correlate.analysis.requests`. :func:`calls_sql`
gives one row per call with what the detectors group by:

``gph``
    the call's *group parent*: its parent span, except when that parent is a wrapper —
    not the request's SERVER span, and with this call as its only child span (a
    repository or DAO method around one statement, as Spring Data and Hibernate
    record them) — in which case it is the wrapper's parent. One level only, so a loop
    of ``findByOrderId`` spans, one statement each, shows under the method that loops.
``family``
    ``db``, ``http``, ``rpc``, ``messaging``, or ``call`` (a client span of no known
    protocol);
``shape``
    what repeats: the statement's fingerprint for ``db``; for HTTP the method, the
    callee and the route template it reached (the span's ``http_target_template``, filled
    at ingest: the callee's ``http.route`` when the trace holds it, else the URL's path
    with ids folded; :mod:`correlate.ingest.callees`); the service and method for
    RPC; the destination for messaging;
``session``
    whether the call is a database session statement (``select pg_catalog.version()``,
    ``SET NAMES``: :mod:`correlate.fingerprint.session`), a connection's setup and not the
    request's work;
``identity``
    the exact call, when it can be seen: a read statement's text with its literal values,
    or with its bound values when the span records them (``db.query.parameter.<key>``;
    ``NULL`` otherwise: the text alone does not show them), a key-value or document
    store's read command with its keys (``GET user:1``; not ``GET ?``), or
    the method and full URL of a GET or HEAD. Two calls with one identity are the same
    call made twice.

:func:`unions_sql` folds overlapping calls into their union;
:mod:`~correlate.analysis.detectors.pattern` turns what the detectors measure into
findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.analysis.pool_pressure import CONNECT_ATTEMPT_NAMES
from correlate.fingerprint.session import NOT_SESSION_STATEMENT, SESSION_STATEMENT
from correlate.routes import path_template_sql
from correlate.semconv import NOT_SQL_SYSTEMS, NOT_SQL_SYSTEMS_SQL

if TYPE_CHECKING:
    from correlate.analysis.run import Run

#: The attribute prefix under which a span records a statement's bound values (OpenTelemetry
#: database semantic conventions: ``db.query.parameter.<key>``).
PARAMETER_PREFIX = "db.query.parameter."

#: Commands of key-value and document stores that only read (Redis, MongoDB).
_COMMAND_READS = (
    "get|mget|getrange|strlen|exists|hget|hmget|hgetall|hexists|hkeys|hvals|hlen|lrange|"
    "lindex|llen|smembers|sismember|scard|zrange|zrangebyscore|zscore|zcard|ttl|pttl|type|"
    "find|count|distinct"
)

# a placeholder in a statement: ?, $1, :name (not ::cast), @name, %s, %(name)s
_PLACEHOLDER = r"\?|\$[0-9]+|(^|[^:]):[A-Za-z_]|@[A-Za-z_]|%s|%\("


def _attr(alias: str, *keys: str) -> str:
    return "coalesce(" + ", ".join(f"{alias}.attributes->>'{k}'" for k in keys) + ")"


_IDS_SQL = """
    WITH
    children AS (SELECT th, ph, count(*) AS n FROM {tree} WHERE ph IS NOT NULL GROUP BY ALL),
    callee AS (
        SELECT th, ph, any_value(service) AS service
        FROM {tree} WHERE kind = 'SERVER' AND ph IS NOT NULL GROUP BY ALL
    )
    SELECT c.th, c.rh, c.trace_id, c.span_id, hash(c.span_id) AS sh, c.ph, c.category,
           c.fingerprint, c.status_code, c.a, c.b,
           CASE WHEN w.sh IS NOT NULL AND w.sh <> c.rh AND w.kind IS DISTINCT FROM 'SERVER'
                     AND w.ph IS NOT NULL AND ch.n = 1
                THEN w.ph ELSE c.ph END AS gph,
           ce.service AS callee_service
    FROM {parts} c
    LEFT JOIN {tree} w ON w.th = c.th AND w.sh = c.ph
    LEFT JOIN children ch ON ch.th = c.th AND ch.ph = c.ph
    LEFT JOIN callee ce ON ce.th = c.th AND ce.ph = hash(c.span_id)
    WHERE c.category IN ('db', 'downstream') AND c.span_id IS NOT NULL
"""


def call_ids_sql(run: Run) -> str:
    """A query of the run's client calls on hashed ids, one row each, that :func:`calls_sql`
    reads from the table ``run.table("call_ids")``: ``th, rh, trace_id, span_id, sh, ph,
    category, fingerprint, status_code, a, b, gph, callee_service`` (``gph`` and
    ``callee_service`` as :func:`calls_sql` says)."""
    return _IDS_SQL.format(parts=run.table("parts"), tree=run.table("tree"))


def calls_sql(run: Run) -> str:
    """A query (``$run`` bound to the run id, ``$connects`` to the names of spans that open a
    connection, ``$session`` and ``$not_session`` to
    :mod:`correlate.fingerprint.session`'s ``SESSION_STATEMENT`` and ``NOT_SESSION_STATEMENT``,
    ``$commands`` to :data:`~correlate.semconv.NOT_SQL_SYSTEMS`) of the run's client calls, one
    row each: ``th, rh, trace_id, sh, ph, gph, parent_name, family, shape, target, session,
    identity, error, a, b`` (``a``/``b``: the call clipped to its request, in ns; a call made after its
    request ended, fire-and-forget, has ``b = a``: none of its time is the request's)."""
    ids, tree = run.table("call_ids"), run.table("tree")
    # SQL expressions (no values): the HTTP method and URL under old and new names, ...
    method = f"coalesce(s.http_method, {_attr('s', 'http.request.method', 'http.method')})"
    url = (
        f"coalesce({_attr('s', 'url.full', 'http.url')}, "
        f"s.url_path || coalesce('?' || {_attr('s', 'url.query')}, ''), "
        f"{_attr('s', 'http.target', 'url.path')})"
    )
    # bound values recorded as db.query.parameter.<key> attributes, in key order
    params = (
        "nullif(array_to_string(list_transform(list_sort(list_filter(json_keys(s.attributes), "
        f"lambda k: starts_with(k, '{PARAMETER_PREFIX}'))), lambda k: k || '=' || "
        "coalesce(json_extract_string(s.attributes, '$.\"' || k || '\"'), '')), ','), '')"
    )
    # ... whom the call reached, what repeats, and the exact call when it shows
    target = (
        f"coalesce(callee_service, server_address, {_attr('raw', 'peer.service')}, "
        "nullif(regexp_extract(url, '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]*)', 1), ''))"
    )
    shape = f"""CASE family
        WHEN 'db' THEN fingerprint
        WHEN 'http' THEN concat_ws(' ', upper(method), target, template)
        WHEN 'rpc' THEN coalesce({_attr("typed", "rpc.service")} || '/'
                                 || {_attr("typed", "rpc.method")}, name)
        WHEN 'messaging' THEN coalesce(
            {_attr("typed", "messaging.destination.name", "messaging.destination")}, name)
        ELSE concat_ws(' ', target, name) END"""
    # the exact call from its statement's text alone (``fixed``), or with its bound values
    # when the text has placeholders (``bound``): read once per distinct text
    fixed = f"""CASE
        WHEN lower(trim(db_system)) IN ({NOT_SQL_SYSTEMS_SQL}) THEN CASE
            -- a command's keys are in its text (`user:1` is no bind variable); `?`: not shown
            WHEN regexp_matches(statement, '^\\s*(\\{{\\s*"?)?({_COMMAND_READS})\\b', 'i')
                 AND statement NOT LIKE '%?%' THEN statement END
        WHEN NOT regexp_matches(statement, '^\\s*(select|with)\\b', 'i') THEN NULL
        WHEN NOT regexp_matches(statement, '{_PLACEHOLDER}') THEN statement END"""
    bound = f"""CASE
        WHEN lower(trim(db_system)) IN ({NOT_SQL_SYSTEMS_SQL})
             OR NOT regexp_matches(statement, '^\\s*(select|with)\\b', 'i') THEN false
        ELSE regexp_matches(statement, '{_PLACEHOLDER}') END"""
    # a request's name may hold its ids (Brave's "http:/authors/61/books"): folded
    parent = f"CASE WHEN g.kind = 'SERVER' THEN {path_template_sql('g.name')} ELSE g.name END"
    return f"""
    WITH
    -- matched once per statement shape, not once per span
    -- a key-value store's command is never one (Redis's `SET cart:7 3`)
    session AS (
        SELECT DISTINCT fingerprint FROM statements
        WHERE run_id = $run AND regexp_matches(text, $session)
          AND NOT regexp_matches(text, $not_session)
          AND NOT list_contains($commands, coalesce(lower(trim(db_system)), ''))
    ),
    texts AS (
        SELECT db_system, text, statement, {fixed} AS fixed, {bound} AS bound
        FROM (SELECT db_system, text,
                     CASE WHEN text LIKE '%/*%'
                          THEN regexp_replace(text, '/\\*.*?\\*/', '', 'gs')
                          ELSE text END AS statement
              FROM (SELECT DISTINCT db_system, db_statement AS text FROM spans
                    WHERE run_id = $run AND db_statement IS NOT NULL) d) t
    ),
    raw AS (
        SELECT c.th, c.rh, c.trace_id, c.sh, c.ph, c.category, c.fingerprint, c.a, c.b, c.gph,
               coalesce(c.status_code = 'ERROR' OR s.http_status_code >= 500, false) AS error,
               s.kind, s.name, s.server_address, s.attributes, s.db_system,
               s.db_statement AS text,
               -- attributes are parsed only where they can matter
               CASE WHEN c.category = 'downstream' THEN {method} END AS method,
               CASE WHEN c.category = 'downstream' THEN {url} END AS url,
               CASE WHEN c.category = 'downstream' THEN s.http_target_template END AS template,
               CASE WHEN c.category = 'db' AND CAST(s.attributes AS VARCHAR) LIKE '%db.query.parameter.%'
                    THEN {params} END AS params,
               c.callee_service
        FROM {ids} c
        JOIN spans s ON s.run_id = $run AND s.trace_id = c.trace_id AND s.span_id = c.span_id
        -- opening a connection is no query (node-postgres's pg.connect, retried under one
        -- pg-pool.connect while the database is out of reach)
        WHERE NOT (s.db_statement IS NULL AND list_contains($connects, s.name))
    ),
    -- the group parents' names, each folded once (not every span of the run's)
    parents AS (
        SELECT g.th, g.sh, {parent} AS parent_name
        FROM {tree} g JOIN (SELECT DISTINCT th, gph FROM {ids}) u ON u.th = g.th AND u.gph = g.sh
    ),
    typed AS (
        SELECT *,
               CASE WHEN category = 'db' THEN 'db'
                    WHEN method IS NOT NULL OR url IS NOT NULL THEN 'http'
                    WHEN attributes->>'rpc.system' IS NOT NULL THEN 'rpc'
                    WHEN attributes->>'messaging.system' IS NOT NULL OR kind = 'PRODUCER'
                        THEN 'messaging'
                    ELSE 'call' END AS family,
               CASE WHEN category = 'db' THEN coalesce(server_address, callee_service)
                    ELSE {target} END AS target
        FROM raw
    )
    SELECT th, rh, trace_id, sh, ph, gph,
           (SELECT g.parent_name FROM parents g WHERE g.th = typed.th AND g.sh = typed.gph)
               AS parent_name,
           family, {shape} AS shape, target,
           family = 'db' AND fingerprint IN (SELECT fingerprint FROM session) AS session,
           -- the exact call: an HTTP GET's or HEAD's method and full URL; a statement's
           -- text, with its bound values where it has placeholders
           CASE WHEN family = 'http' THEN CASE
                    WHEN upper(coalesce(method, 'GET')) IN ('GET', 'HEAD') AND url LIKE '%://%'
                    THEN upper(coalesce(method, 'GET')) || ' ' || url END
                WHEN family <> 'db' THEN NULL
                WHEN x.bound
                    THEN CASE WHEN params IS NOT NULL THEN x.statement || ' -- ' || params END
                ELSE x.fixed END AS identity,
           error, a, greatest(a, b) AS b
    FROM typed
    LEFT JOIN texts x ON x.db_system IS NOT DISTINCT FROM typed.db_system AND x.text = typed.text
    """


def calls_table(run: Run) -> str:
    """The name of a temporary table holding :func:`calls_sql` for ``run``, made on first
    use and shared by the family's detectors (``Run.close`` drops it)."""
    name = run.table("calls")
    exists = run.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
    ).fetchone()
    if not exists or not exists[0]:
        # in two steps: made in one, DuckDB (misjudging how many parts are calls) builds its
        # hash tables on the calls joined to their spans, texts and attributes and all, and
        # runs out of memory at a million spans; the narrow table's exact size makes it
        # the side the spans are matched against
        ids = run.table("call_ids")
        run.con.execute(f"CREATE TEMP TABLE {ids} AS {call_ids_sql(run)}")
        try:
            run.con.execute(
                f"CREATE TEMP TABLE {name} AS {calls_sql(run)}",
                {
                    "run": run.run_id,
                    "session": SESSION_STATEMENT,
                    "not_session": NOT_SESSION_STATEMENT,
                    "commands": sorted(NOT_SQL_SYSTEMS),
                    "connects": list(CONNECT_ATTEMPT_NAMES),
                },
            )
        finally:
            run.con.execute(f"DROP TABLE {ids}")
    return name


_UNIONS_SQL = """
    SELECT {keys}, island, any_value(parent_name) AS parent_name,
           any_value(target) AS target, count(*) AS calls, count(identity) AS visible,
           list(DISTINCT identity) FILTER (WHERE identity IS NOT NULL) AS idents,
           min(a) AS a, max(b) AS b
    FROM (
        SELECT *, sum(new_island) OVER (PARTITION BY {keys}
                                        ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS island
        FROM (
            SELECT *, CASE WHEN a > max(b) OVER (
                PARTITION BY {keys}
                ORDER BY a, b ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 1 ELSE 0 END AS new_island
            FROM {source}
        )
    )
    GROUP BY ALL
"""


def unions_sql(source: str, keys: str) -> str:
    """SQL: the calls of ``source`` (a table or subquery of :func:`calls_sql` rows) folded
    per ``keys`` (a column list) into *islands* of overlapping calls, one row each:
    ``keys, island, parent_name, target, calls, visible, idents, a, b``. Summing ``b - a``
    over a key's islands gives the union of its calls' intervals, so calls made three at
    a time count once."""
    return _UNIONS_SQL.format(source=source, keys=keys)


__all__ = ["PARAMETER_PREFIX", "call_ids_sql", "calls_sql", "calls_table", "unions_sql"]
