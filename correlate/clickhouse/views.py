"""The local store's canonical tables as ClickHouse views over the exporter's tables.

:func:`create_canonical_views` makes, in a work database, a view ``spans`` with the
columns of :data:`correlate.schema.SPAN_COLUMNS` (``run_id`` 1, ``file_id`` 0) over
``otel_traces``, and ``pool_samples`` over ``otel_metrics_*``. Each derived column
is computed by the SQL local ingest uses (:mod:`correlate.ingest.canonical`,
:mod:`correlate.routes`, the tables of :mod:`correlate.semconv`), transpiled by
:mod:`correlate.clickhouse.derive`; only reading the exporter's columns is written
here. A window and services go into the view's ``WHERE`` on ``Timestamp`` and
``ServiceName``, the exporter's partition and order keys, so ClickHouse prunes; a
window keeps whole traces, those whose first span started in it
(:func:`~correlate.clickhouse.window.window_condition`).

What cannot be equal to a local ingest of the same spans, and why:

- ``attributes``, ``resource`` and events' attributes hold every value as a string
  (the exporter's maps are ``Map(String, String)``);
- ``mapped_from`` is an empty array where the store has NULL (ClickHouse has no
  NULL array);
- with a window, a client span whose callee is not among the spans read (another
  service's, or later than the window's slack) keeps its own route (the local link
  step sees the whole run).

The fingerprint side (:func:`fingerprint_statements`, from
:mod:`correlate.clickhouse.statements`) and ``pool_samples``
(:mod:`correlate.clickhouse.pool_view`) are re-exported here.
"""

from __future__ import annotations

from correlate.clickhouse.connection import Connection, Source
from correlate.clickhouse.derive import clickhouse_expr
from correlate.clickhouse.otel_schema import OtelTables, map_get, quote_identifier, quote_string
from correlate.clickhouse.pool_view import pool_samples_sql
from correlate.clickhouse.statements import (
    db_spans_sql,
    fingerprint_statements,
    statement_key_sql,
    strip_sqlcommenter_sql,
)
from correlate.clickhouse.window import window_condition
from correlate.routes import route_sql
from correlate.schema import SPAN_COLUMN_NAMES

__all__ = [
    "callee_routes_sql",
    "create_canonical_views",
    "db_spans_sql",
    "fingerprint_statements",
    "pool_samples_sql",
    "spans_sql",
    "statement_key_sql",
    "strip_sqlcommenter_sql",
]

#: Attributes an older exporter put into ``SpanAttributes`` for the scope (no ``ScopeName``).
_SCOPE_ATTRIBUTES = ("otel.scope.name", "otel.scope.version")


def _enum(expr: str, prefix: str) -> str:
    """``Server``/``SPAN_KIND_SERVER`` → ``SERVER``; empty → NULL."""
    return f"nullIf(upper(replaceRegexpOne({expr}, '^(?i){prefix}', '')), '')"


def _id(expr: str, digits: int) -> str:
    from correlate.ingest.canonical import stable_id

    return clickhouse_expr(stable_id(expr, digits))


def spans_sql(
    source_table: str,
    columns: dict[str, str],
    *,
    window: tuple[int, int] | None = None,
    services: tuple[str, ...] = (),
) -> str:
    """ClickHouse SELECT giving canonical span rows from the exporter's traces table."""
    from correlate.ingest.canonical import derived_sql, semantic_columns, semantic_paths
    from correlate.semconv import ERROR_ATTRIBUTE, SERVICE_NAME

    has_scope = "ScopeName" in columns
    attrs = "SpanAttributes"
    if not has_scope:
        dropped = ", ".join(quote_string(k) for k in _SCOPE_ATTRIBUTES)
        attrs = f"mapFilter((k, v) -> k NOT IN ({dropped}), SpanAttributes)"
    scope = "nullIf(ScopeName, '')" if has_scope else map_get("SpanAttributes", "otel.scope.name")
    paths = semantic_paths()
    index = {key: i + 1 for i, key in enumerate(paths)}
    sem = ", ".join(map_get("_attrs", k) for k in paths)
    mapped = ",\n       ".join(
        f"{clickhouse_expr(v)} AS {c}" for c, v in semantic_columns(index).items()
    )
    helper_sql, *derived = derived_sql(index, error_present="_has_error")
    db_system, status, template, mapped_from = (clickhouse_expr(e) for e in derived)
    helpers = ", ".join(f"{clickhouse_expr(sql)} AS {name}" for name, sql in helper_sql.items())
    where = _where(source_table, window, services)
    events = (
        "arrayMap((t, n, a) -> CAST(tuple(toUnixTimestamp64Nano(t), n, toJSONString(a)), "
        "'Tuple(time_ns Int64, name Nullable(String), attributes String)'), "
        "`Events.Timestamp`, `Events.Name`, `Events.Attributes`)"
    )
    links = (
        "arrayMap((t, s, a) -> CAST(tuple("
        f"{_id('t', 32)}, {_id('s', 16)}, toJSONString(a)), "
        "'Tuple(trace_id Nullable(String), span_id Nullable(String), attributes String)'), "
        "`Links.TraceId`, `Links.SpanId`, `Links.Attributes`)"
    )
    final = {
        "run_id": "toInt32(1)",
        "file_id": "toInt32(0)",
        "attributes": "toJSONString(_attrs)",
        "resource": "toJSONString(ResourceAttributes)",
        "events": events,
        "links": links,
        "db_system": "_db_system",
        "status_code": "_status_code",
        "http_target_template": "_template",
        "mapped_from": "CAST(_mapped_from, 'Array(String)')",
    }
    select = ",\n       ".join(f"{final.get(c, c)} AS {c}" for c in SPAN_COLUMN_NAMES)
    service = map_get("ResourceAttributes", SERVICE_NAME)
    return f"""SELECT {select}
FROM (
    SELECT *, {db_system} AS _db_system, {status} AS _status_code,
           {template} AS _template,
           {mapped_from} AS _mapped_from
    FROM (
        SELECT *, {helpers}
        FROM (
            SELECT *, {mapped}
            FROM (
                SELECT *, [{sem}] AS _sem, mapContains(_attrs, {quote_string(ERROR_ATTRIBUTE)}) AS _has_error
                FROM (
                    SELECT {_id("TraceId", 32)} AS trace_id,
                           {_id("SpanId", 16)} AS span_id,
                           {_id("ParentSpanId", 16)} AS parent_id,
                           nullIf(toString(SpanName), '') AS name,
                           {_enum("toString(SpanKind)", "SPAN_KIND_")} AS kind,
                           coalesce(nullIf(toString(ServiceName), ''), {service}) AS service,
                           {scope} AS scope_name,
                           toUnixTimestamp64Nano(Timestamp) AS start_ns,
                           toInt64(Duration) AS duration_ns,
                           start_ns + duration_ns AS end_ns,
                           coalesce({_enum("toString(StatusCode)", "STATUS_CODE_")}, 'UNSET')
                               AS status_code,
                           nullIf(StatusMessage, '') AS status_message,
                           {attrs} AS _attrs,
                           ResourceAttributes,
                           `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
                           `Links.TraceId`, `Links.SpanId`, `Links.Attributes`
                    FROM {source_table}
                    {where}
                )
            )
        )
    )
)"""


def _where(table: str, window: tuple[int, int] | None, services: tuple[str, ...]) -> str:
    """``WHERE`` on the exporter's partition and order keys: the window's traces
    (:func:`~correlate.clickhouse.window.window_condition`), the services' spans."""
    condition = window_condition(table, window, services)
    return f"WHERE {condition}" if condition else ""


def callee_routes_sql(own: str) -> str:
    """ClickHouse SELECT over the spans view ``own`` giving client spans their callee's route.

    The step :func:`correlate.ingest.callees.link_callee_routes` runs after a local
    ingest, as a join: an HTTP client span whose child SERVER span (same trace)
    names a route takes that route as its template (``mapped_from`` says
    ``http_target_template<-callee``), unless the callee's template is itself only
    a folded path.
    """
    from correlate.ingest.callees import CALLEE_MAPPING

    prefix = CALLEE_MAPPING.split("<-", 1)[0] + "<-"
    linked = (
        "(c.kind = 'CLIENT' AND c.http_target_template IS NOT NULL "
        "AND s.callee_template IS NOT NULL AND c.http_target_template != s.callee_template)"
    )
    replaced = {
        "http_target_template": f"if({linked}, s.callee_template, c.http_target_template)",
        "mapped_from": (
            f"if({linked}, arrayPushBack(arrayFilter(m -> NOT startsWith(m, "
            f"{quote_string(prefix)}), c.mapped_from), {quote_string(CALLEE_MAPPING)}), "
            "c.mapped_from)"
        ),
    }
    select = ",\n       ".join(
        f"{replaced.get(column, f'c.{column}')} AS {column}" for column in SPAN_COLUMN_NAMES
    )
    folded = quote_string(f"{prefix}url_path")
    # a route a framework names without its leading slash gets one, as a request's does
    callee = clickhouse_expr(route_sql("http_target_template", "scope_name"))
    return f"""SELECT {select}
FROM {own} AS c
LEFT JOIN (
    SELECT trace_id, parent_id, any({callee}) AS callee_template
    FROM {own}
    WHERE kind = 'SERVER' AND parent_id IS NOT NULL AND http_target_template IS NOT NULL
      AND NOT has(mapped_from, {folded})
    GROUP BY trace_id, parent_id
) AS s ON s.trace_id = c.trace_id AND s.parent_id = c.span_id"""


def create_canonical_views(
    conn: Connection,
    source: Source | OtelTables | None = None,
    work_db: str = "correlate_work",
    *,
    window: tuple[int, int] | None = None,
    services: tuple[str, ...] = (),
    callee_routes: bool = True,
) -> None:
    """Create views ``spans`` and ``pool_samples`` in ``work_db`` over the exporter's tables.

    ``source`` names the exporter's tables (default: the ones ``conn`` was opened
    for); ``window`` is (start_ns, end_ns), inclusive, on the start of each span's
    trace (its first span of ``services``); ``services`` keeps the spans of those
    services only; pool samples are read up to the window's end. ``spans_own`` holds each
    span's own columns; ``spans`` adds the callee's route to HTTP client spans (a
    join of the view with itself; ``callee_routes=False`` leaves it out, and
    ``spans`` is then ``spans_own``'s columns).
    """
    if source is not None:
        conn = conn.using(source.tables if isinstance(source, Source) else source)
    columns = conn.require_traces()
    database = quote_identifier(work_db)
    conn.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    own = spans_sql(conn.source.tables.traces_table, columns, window=window, services=services)
    if callee_routes:
        conn.command(f"CREATE OR REPLACE VIEW {database}.spans_own AS {own}")
        spans = callee_routes_sql(f"{database}.spans_own")
    else:
        conn.command(f"DROP VIEW IF EXISTS {database}.spans_own")
        spans = own
    conn.command(f"CREATE OR REPLACE VIEW {database}.spans AS {spans}")
    pool = pool_samples_sql(conn, window)
    conn.command(f"CREATE OR REPLACE VIEW {database}.pool_samples AS {pool}")
