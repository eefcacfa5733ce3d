"""The local store's canonical tables as ClickHouse views over the exporter's tables.

:func:`create_canonical_views` makes, in a work database, a view ``spans`` with the
columns of :data:`correlate.schema.SPAN_COLUMNS` (``run_id`` 1, ``file_id`` 0) over
``otel_traces``, and ``pool_samples`` over ``otel_metrics_*``. Each derived column
is computed by the SQL local ingest uses (:mod:`correlate.ingest.canonical`,
:mod:`correlate.routes`, the tables of :mod:`correlate.semconv`), transpiled by
:mod:`correlate.clickhouse.derive`; only reading the exporter's columns is written
here. A window and services go into the view's ``WHERE`` on ``Timestamp`` and
``ServiceName``, the exporter's partition and order keys, so ClickHouse prunes.

What cannot be equal to a local ingest of the same spans, and why:

- ``attributes``, ``resource`` and events' attributes hold every value as a string
  (the exporter's maps are ``Map(String, String)``);
- ``mapped_from`` is an empty array where the store has NULL (ClickHouse has no
  NULL array).

:func:`fingerprint_statements` is the fingerprint side: one text per distinct
(``db_system``, statement key) comes back, is fingerprinted in Python as local
ingest does, and goes into a ``statements`` table in the work database.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from correlate.clickhouse.derive import clickhouse_expr
from correlate.clickhouse.export import EXTRA_POOL_METRICS, POOL_CLASS_ATTRIBUTE
from correlate.clickhouse.otel_schema import quote_identifier, quote_string
from correlate.schema import SPAN_COLUMN_NAMES

if TYPE_CHECKING:
    from correlate.clickhouse.connection import Connection

__all__ = [
    "create_canonical_views",
    "fingerprint_statements",
    "pool_samples_sql",
    "spans_sql",
    "statement_key_sql",
]

#: Attributes an older exporter put into ``SpanAttributes`` for the scope (no ``ScopeName``).
_SCOPE_ATTRIBUTES = ("otel.scope.name", "otel.scope.version")


def _map_get(map_expr: str, key: str) -> str:
    """ClickHouse: the value at ``key``, NULL when absent (a map gives '' for a missing key)."""
    k = quote_string(key)
    return f"if(mapContains({map_expr}, {k}), {map_expr}[{k}], NULL)"


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
    scope = "nullIf(ScopeName, '')" if has_scope else _map_get("SpanAttributes", "otel.scope.name")
    paths = semantic_paths()
    index = {key: i + 1 for i, key in enumerate(paths)}
    sem = ", ".join(_map_get("_attrs", k) for k in paths)
    mapped = ",\n       ".join(
        f"{clickhouse_expr(v)} AS {c}" for c, v in semantic_columns(index).items()
    )
    helpers, db_system, status, template, mapped_from = (
        clickhouse_expr(e) if i else e
        for i, e in enumerate(derived_sql(index, error_present="_has_error"))
    )
    helpers = ", ".join(
        f"{clickhouse_expr(expr)} AS {name}"
        for expr, name in re.findall(r"(.+?) AS (_\w+)(?:, |$)", helpers)
    )
    where = _where(window, services)
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
        "mapped_from": "_mapped_from",
    }
    select = ",\n       ".join(f"{final.get(c, c)} AS {c}" for c in SPAN_COLUMN_NAMES)
    service = _map_get("ResourceAttributes", SERVICE_NAME)
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


def _where(window: tuple[int, int] | None, services: tuple[str, ...]) -> str:
    """``WHERE`` on the exporter's partition and order keys (span start in the window)."""
    conditions = []
    if window is not None:
        start, end = (int(t) for t in window)
        conditions.append(
            f"Timestamp >= fromUnixTimestamp64Nano(toInt64({start})) "
            f"AND Timestamp <= fromUnixTimestamp64Nano(toInt64({end}))"
        )
    if services:
        listed = ", ".join(quote_string(s) for s in services)
        conditions.append(f"ServiceName IN ({listed})")
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def pool_samples_sql(conn: Connection, window: tuple[int, int] | None = None) -> str:
    """ClickHouse SELECT giving ``pool_samples`` rows from the exporter's metrics tables.

    Reads the instruments :mod:`correlate.ingest.poolmetrics` reads, by its own
    tables of names; a delta sum is summed to a running total, levels of several
    series of one field at one time are added, and a field not reported at a time
    keeps its last level, as there.
    """
    from correlate.ingest.poolmetrics import (
        _FIELDS,
        _NEW,
        _OLD,
        _POOL_KEYS,
        _STATE_KEYS,
        OTEL_POOL_CLASS,
    )

    tables = conn.source.tables
    names = [f"{g}.{suffix}" for g in (_OLD, _NEW) for suffix in _FIELDS]
    names += list(EXTRA_POOL_METRICS.values())
    listed = ", ".join(quote_string(n) for n in names)
    parts = []
    for kind in ("gauge", "sum", "histogram"):
        columns = conn.columns(tables.metrics(kind))
        if not columns:
            continue
        value = "toFloat64(Count)" if kind == "histogram" else "Value"
        temporality = "AggregationTemporality" if "AggregationTemporality" in columns else "0"
        time_filter = ""
        if window is not None:
            time_filter = f" AND TimeUnix <= fromUnixTimestamp64Nano(toInt64({int(window[1])}))"
        parts.append(
            f"SELECT toUnixTimestamp64Nano(TimeUnix) AS t, MetricName AS metric, Attributes, "
            f"ResourceAttributes, {value} AS level, {temporality} AS temporality "
            f"FROM {tables.qualified(tables.metrics(kind))} WHERE MetricName IN ({listed})"
            f"{time_filter}"
        )
    if not parts:
        return _empty_pool_samples()
    field_of = " ".join(
        f"WHEN {quote_string(f'{g}.{suffix}')} THEN {quote_string(what)}"
        for g in (_OLD, _NEW)
        for suffix, what in _FIELDS.items()
    )
    field_of += " " + " ".join(
        f"WHEN {quote_string(name)} THEN {quote_string(column)}"
        for column, name in EXTRA_POOL_METRICS.items()
    )
    new_prefix = quote_string(_NEW + ".")
    generation = f"if(startsWith(metric, {new_prefix}), {quote_string(_NEW)}, {quote_string(_OLD)})"
    pool = "coalesce(" + ", ".join(_map_get("Attributes", k) for k in _POOL_KEYS) + ", 'default')"
    state = "coalesce(" + ", ".join(_map_get("Attributes", k) for k in _STATE_KEYS) + ")"
    pid_text = "ResourceAttributes['process.pid']"
    pid = f"if(match({pid_text}, '^[0-9]{{1,19}}$'), toInt64OrZero({pid_text}), 0)"
    instance = _map_get("ResourceAttributes", "service.instance.id")
    named_pool = (
        f"if({pid} = 0 AND {instance} IS NOT NULL, concat({pool}, ' (', {instance}, ')'), {pool})"
    )
    fields = ("used", "idle", "max", "pending", "timeouts", "wait_count", *EXTRA_POOL_METRICS)
    summed = ",\n               ".join(
        f"if(countIf(what = {quote_string(w)}) > 0, sumIf(level, what = {quote_string(w)}), NULL)"
        f" AS s_{w}"
        for w in fields
    )
    filled = ",\n           ".join(
        f"last_value(s_{w}) OVER (PARTITION BY pid, pool ORDER BY t "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS f_{w}"
        for w in fields
    )
    int32, int64 = 2**31 - 1, 2**63 - 1

    def count(what: str, bits: int = 32) -> str:
        v, limit = f"f_{what}", int32 if bits == 32 else int64
        return (
            f"if({v} IS NULL OR NOT isFinite({v}) OR {v} < 0 OR {v} > {limit}, NULL, "
            f"toInt{bits}(round({v})))"
        )

    pool_class = _map_get("Attributes", POOL_CLASS_ATTRIBUTE)
    since = "" if window is None else f"AND time_unix_nano >= {int(window[0])}"
    return f"""SELECT toInt32(1) AS run_id, toInt32(0) AS file_id, t AS time_unix_nano, pid, pool,
       pool_class,
       {count("size")} AS size,
       {count("max_overflow")} AS max_overflow,
       {count("max")} AS capacity,
       {count("used")} AS checked_out,
       {count("idle")} AS checked_in,
       {count("overflow")} AS overflow,
       {count("pending")} AS waiters,
       {count("timeouts", 64)} AS timeouts_total,
       {count("wait_count", 64)} AS checkouts_total,
       {count("leak_suspects_open")} AS leak_suspects_open
FROM (
    SELECT t, pid, pool, pool_class,
           {filled}
    FROM (
        SELECT t, pid, pool,
               coalesce(any(class), concat('{OTEL_POOL_CLASS} ', any(generation))) AS pool_class,
               {summed}
        FROM (
            SELECT t, pid, pool, what, generation, class,
                   if(temporality = 1,
                      sum(raw_level) OVER (PARTITION BY pid, pool, metric, Attributes
                                           ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING
                                           AND CURRENT ROW),
                      raw_level) AS level
            FROM (
                SELECT t, metric, Attributes, temporality, level AS raw_level,
                       {pid} AS pid, {named_pool} AS pool, {generation} AS generation,
                       {pool_class} AS class,
                       CASE metric {field_of} END AS field,
                       if(field = 'count', if({state} IN ('used', 'idle'), {state}, NULL), field)
                           AS what
                FROM ({" UNION ALL ".join(parts)})
            )
            WHERE what IS NOT NULL
        )
        GROUP BY t, pid, pool
    )
)
WHERE checked_out IS NOT NULL {since}
ORDER BY pid, pool, time_unix_nano"""


def _empty_pool_samples() -> str:
    return (
        "SELECT toInt32(1) AS run_id, toInt32(0) AS file_id, toInt64(0) AS time_unix_nano, "
        "toInt64(0) AS pid, '' AS pool, '' AS pool_class, CAST(NULL, 'Nullable(Int32)') AS size, "
        "CAST(NULL, 'Nullable(Int32)') AS max_overflow, CAST(NULL, 'Nullable(Int32)') AS capacity, "
        "toInt32(0) AS checked_out, CAST(NULL, 'Nullable(Int32)') AS checked_in, "
        "CAST(NULL, 'Nullable(Int32)') AS overflow, CAST(NULL, 'Nullable(Int32)') AS waiters, "
        "CAST(NULL, 'Nullable(Int64)') AS timeouts_total, "
        "CAST(NULL, 'Nullable(Int64)') AS checkouts_total, "
        "CAST(NULL, 'Nullable(Int32)') AS leak_suspects_open WHERE 0"
    )


def statement_key_sql(expr: str) -> str:
    """ClickHouse SQL for the store's ``statement_key(expr)`` macro (same regexes)."""
    return clickhouse_expr(_macro("statement_key", expr))


def strip_sqlcommenter_sql(expr: str) -> str:
    """ClickHouse SQL for the store's ``strip_sqlcommenter(expr)`` macro."""
    return clickhouse_expr(_macro("strip_sqlcommenter", expr))


def _macro(name: str, argument: str) -> str:
    """The DuckDB body of one of the schema's statement macros, applied to ``argument``."""
    from correlate.schema import _STATEMENT_KEY_DDL

    bodies = dict(
        (m.group(1), (m.group(2), m.group(3)))
        for m in re.finditer(
            r"CREATE MACRO (\w+)\((\w+)\) AS\s+(.*?);\s*$", _STATEMENT_KEY_DDL, re.S | re.M
        )
    )
    parameter, body = bodies[name]
    for other in bodies:
        if other != name and f"{other}(" in body:
            body = body.replace(f"{other}({parameter})", f"({_macro(other, parameter)})")
    return re.sub(rf"\b{parameter}\b", f"({argument})", body)


def create_canonical_views(
    conn: Connection,
    source: object = None,
    work_db: str = "correlate_work",
    *,
    window: tuple[int, int] | None = None,
    services: tuple[str, ...] = (),
) -> None:
    """Create views ``spans`` and ``pool_samples`` in ``work_db`` over the exporter's tables.

    ``source`` is accepted for symmetry with the engine (the connection already
    knows its tables); ``window`` is (start_ns, end_ns), inclusive; ``services``
    keeps the spans of those services only.
    """
    columns = conn.require_traces()
    database = quote_identifier(work_db)
    conn.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    spans = spans_sql(conn.source.tables.traces_table, columns, window=window, services=services)
    conn.command(f"CREATE OR REPLACE VIEW {database}.spans AS {spans}")
    pool = pool_samples_sql(conn, window)
    conn.command(f"CREATE OR REPLACE VIEW {database}.pool_samples AS {pool}")


def fingerprint_statements(conn: Connection, work_db: str = "correlate_work") -> tuple[int, int]:
    """Fingerprint each distinct statement shape of the ``spans`` view into ``work_db.statements``.

    One representative text per distinct (``db_system``, key) leaves ClickHouse,
    never one per span; each is fingerprinted by :func:`correlate.fingerprint.fingerprint_many`
    as local ingest does. Returns (distinct keys, DB spans).
    """
    import pyarrow as pa

    from correlate.fingerprint import fingerprint_many

    database = quote_identifier(work_db)
    key = statement_key_sql("db_statement")
    strip = strip_sqlcommenter_sql("db_statement")
    result = conn.query_arrow(
        f"""SELECT db_system, {key} AS key, any({strip}) AS text, count() AS spans
FROM (SELECT db_system, db_statement FROM {database}.spans WHERE db_statement IS NOT NULL)
GROUP BY db_system, key"""
    )
    systems = result.column("db_system").to_pylist()
    keys = result.column("key").to_pylist()
    texts = result.column("text").to_pylist()
    found = fingerprint_many(zip(texts, systems, strict=True))
    rows = [found[(text, system)] for text, system in zip(texts, systems, strict=True)]
    table = pa.table(
        {
            "run_id": pa.array([1] * len(rows), pa.int32()),
            "db_system": pa.array(systems, pa.string()),
            "key": pa.array(keys, pa.string()),
            "text": pa.array(texts, pa.string()),
            "fingerprint": pa.array([f.id for f in rows], pa.string()),
            "normalized": pa.array([f.normalized for f in rows], pa.string()),
            "method": pa.array([f.method for f in rows], pa.string()),
            "operation": pa.array([f.operation or None for f in rows], pa.string()),
            "tables": pa.array([list(f.tables) for f in rows], pa.list_(pa.string())),
        }
    )
    conn.command(f"DROP TABLE IF EXISTS {database}.statements")
    conn.command(
        f"""CREATE TABLE {database}.statements (
    run_id Int32, db_system Nullable(String), key String, text String, fingerprint String,
    normalized String, method String, operation Nullable(String), tables Array(String)
) ENGINE = MergeTree ORDER BY key"""
    )
    if rows:
        conn.insert_arrow(f"{database}.statements", table)
    spans = sum(result.column("spans").to_pylist())
    return len(rows), spans
