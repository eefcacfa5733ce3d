"""A local run pushed into the exporter's tables, as the Collector would have written it.

Spans become ``otel_traces`` rows (:mod:`correlate.clickhouse.otel_schema` says what
each column holds); the run's ``pool_samples`` become the OpenTelemetry pool metrics
:mod:`correlate.ingest.poolmetrics` reads (``db.client.connection.*``, with
``db.client.connection.pool.name`` and ``db.client.connection.state``), so
:func:`correlate.clickhouse.views.create_canonical_views` gives the same samples back.
Samples written by ``correlate.instrument`` know more than those metrics say (pool
size, overflow, leak suspects, the pool's class): that is kept in gauges named
``correlate.pool.*`` and the point attribute ``correlate.pool.class``.

Every table is built as Arrow by DuckDB, in batches, and inserted in bulk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.clickhouse.connection import Connection, Source, connect
from correlate.semconv import ERROR_ATTRIBUTE

if TYPE_CHECKING:
    import pyarrow as pa

    from correlate.ingest.progress import Progress
    from correlate.store import Store

__all__ = [
    "EXTRA_POOL_METRICS",
    "POOL_CLASS_ATTRIBUTE",
    "ExportReport",
    "export",
    "resource_json_sql",
]

#: ``ptrace.SpanKind.String()`` and ``ptrace.StatusCode.String()``: what the exporter writes.
SPAN_KINDS = {
    "UNSPECIFIED": "Unspecified",
    "INTERNAL": "Internal",
    "SERVER": "Server",
    "CLIENT": "Client",
    "PRODUCER": "Producer",
    "CONSUMER": "Consumer",
}
STATUS_CODES = {"UNSET": "Unset", "OK": "Ok", "ERROR": "Error"}

#: The point attribute holding a sample's ``pool_class`` when it is not OpenTelemetry's.
POOL_CLASS_ATTRIBUTE = "correlate.pool.class"
#: ``pool_samples`` columns the OpenTelemetry pool metrics have no instrument for.
EXTRA_POOL_METRICS = {
    "size": "correlate.pool.size",
    "max_overflow": "correlate.pool.max_overflow",
    "overflow": "correlate.pool.overflow",
    "leak_suspects_open": "correlate.pool.leak_suspects_open",
}
#: The two generations of pool instrument names (see :mod:`correlate.ingest.poolmetrics`):
#: (prefix, suffix of the connection count, pool attribute, state attribute).
_NEW = (
    "db.client.connection",
    "count",
    "db.client.connection.pool.name",
    "db.client.connection.state",
)
_OLD = ("db.client.connections", "usage", "pool.name", "state")
#: (pool_samples column, instrument suffix (None: the count), kind, state attribute or None)
_POOL_METRICS = (
    ("checked_out", None, "sum", "used"),
    ("checked_in", None, "sum", "idle"),
    ("capacity", "max", "sum", None),
    ("waiters", "pending_requests", "sum", None),
    ("timeouts_total", "timeouts", "sum", None),
    ("checkouts_total", "wait_time", "histogram", None),
)
_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export` wrote, and where."""

    run: str
    url: str
    spans: int
    metric_points: int

    def summary(self) -> str:
        return (
            f"exported run {self.run!r} to {self.url}: {self.spans:,} spans, "
            f"{self.metric_points:,} pool metric points"
        )


def resource_json_sql(alias: str = "s") -> str:
    """SQL for a span's resource as a JSON object text, over the spans row ``alias``.

    The one place export reads a span's resource: where the store keeps it may change.
    """
    return f"{alias}.resource"


def _string_map_sql(json_expr: str) -> str:
    """SQL: a JSON object as ``MAP(VARCHAR, VARCHAR)``, values as ``Value.AsString()`` gives them.

    Strings as they are, JSON null as the empty string, anything else (numbers,
    booleans, arrays, objects) as its JSON text. NULL for an object with a key twice
    (a DuckDB map cannot hold it): :func:`_with_duplicate_keys` fills those in.
    """
    return (
        f"map_from_entries(list_transform(map_entries(TRY_CAST(coalesce({json_expr}, '{{}}')::JSON "
        "AS MAP(VARCHAR, JSON))), lambda e: {'key': e.key, 'value': CASE "
        "WHEN e.value IS NULL OR json_type(e.value) = 'NULL' THEN '' "
        "WHEN json_type(e.value) = 'VARCHAR' THEN e.value->>'$' "
        "ELSE CAST(e.value AS VARCHAR) END}))"
    )


def _enum_sql(expr: str, names: dict[str, str]) -> str:
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in names.items())
    return f"CASE {expr} {cases} ELSE coalesce({expr}, '') END"


def _traces_sql(run_id: int) -> str:
    # The status the span carried: local ingest may have set ERROR from an `error`
    # attribute (mapped_from says so), which a reader of the row derives again.
    status = (
        f"CASE WHEN list_contains(coalesce(s.mapped_from, []), 'status_code<-{ERROR_ATTRIBUTE}') "
        f"THEN 'Unset' ELSE {_enum_sql('s.status_code', STATUS_CODES)} END"
    )
    return f"""
SELECT s.start_ns AS "Timestamp",
       s.trace_id AS "TraceId",
       s.span_id AS "SpanId",
       coalesce(s.parent_id, '') AS "ParentSpanId",
       '' AS "TraceState",
       coalesce(s.name, '') AS "SpanName",
       {_enum_sql("s.kind", SPAN_KINDS)} AS "SpanKind",
       coalesce(s.service, '') AS "ServiceName",
       {_string_map_sql(resource_json_sql("s"))} AS "ResourceAttributes",
       coalesce(s.scope_name, '') AS "ScopeName",
       '' AS "ScopeVersion",
       {_string_map_sql("s.attributes")} AS "SpanAttributes",
       s.duration_ns AS "Duration",
       {status} AS "StatusCode",
       coalesce(s.status_message, '') AS "StatusMessage",
       list_transform(s.events, lambda e: e.time_ns) AS "Events.Timestamp",
       list_transform(s.events, lambda e: coalesce(e.name, '')) AS "Events.Name",
       list_transform(s.events, lambda e: {_string_map_sql("e.attributes")}) AS "Events.Attributes",
       list_transform(s.links, lambda l: l.trace_id) AS "Links.TraceId",
       list_transform(s.links, lambda l: l.span_id) AS "Links.SpanId",
       list_transform(s.links, lambda l: '') AS "Links.TraceState",
       list_transform(s.links, lambda l: {_string_map_sql("l.attributes")}) AS "Links.Attributes",
       {resource_json_sql("s")} AS _resource,
       s.attributes AS _attributes,
       list_transform(s.events, lambda e: e.attributes) AS _events,
       list_transform(s.links, lambda l: l.attributes) AS _links,
       s.service AS _service, s.name AS _name, s.start_ns AS _start
FROM spans s
WHERE s.run_id = {int(run_id)}
"""


def _traces_with_fallback_sql(run_id: int) -> str:
    """:func:`_traces_sql` with, where a map could not be built, the JSON text it came from."""
    return f"""
SELECT * EXCLUDE (_resource, _attributes, _events, _links, _service, _name, _start),
       {_fallback("ResourceAttributes", "_resource")},
       {_fallback("SpanAttributes", "_attributes")},
       {_fallback("Events.Attributes", "_events", many=True)},
       {_fallback("Links.Attributes", "_links", many=True)}
FROM ({_traces_sql(run_id)})
ORDER BY _service, _name, _start
"""


def _fallback(column: str, text: str, *, many: bool = False) -> str:
    """SQL: the JSON text ``text`` where the map ``column`` (or one of a list of them) is NULL."""
    if many:
        broken = f'list_bool_or(list_transform("{column}", lambda m: m IS NULL))'
    else:
        broken = f'"{column}" IS NULL'
    return f'CASE WHEN {broken} THEN {text} END AS "{_FALLBACK}{column}"'


def _metrics_sql(run_id: int, kind: str) -> str:
    """SQL: one data point per sample and pool metric of ``kind``, in the exporter's columns.

    A sample read from the older instrument names is written back with those names.
    """
    # imported here, not at the top: `import correlate` must not load the ingest package
    from correlate.ingest.poolmetrics import OTEL_POOL_CLASS

    old = f"p.pool_class = '{OTEL_POOL_CLASS} {_OLD[0]}'"
    metrics: list[tuple[str, str, str | None]] = []
    for column, suffix, metric_kind, state in _POOL_METRICS:
        if metric_kind == kind:
            new_name = f"{_NEW[0]}.{suffix or _NEW[1]}"
            old_name = f"{_OLD[0]}.{suffix or _OLD[1]}"
            metrics.append(
                (column, f"CASE WHEN {old} THEN '{old_name}' ELSE '{new_name}' END", state)
            )
    if kind == "gauge":
        metrics.extend((column, f"'{name}'", None) for column, name in EXTRA_POOL_METRICS.items())
    selects = []
    for column, metric, state in metrics:
        entries = [
            f"{{'key': CASE WHEN {old} THEN '{_OLD[2]}' ELSE '{_NEW[2]}' END, 'value': p.pool}}",
            f"{{'key': '{POOL_CLASS_ATTRIBUTE}', 'value': CASE WHEN p.pool_class LIKE "
            f"'{OTEL_POOL_CLASS} %' THEN NULL ELSE p.pool_class END}}",
        ]
        if state is not None:
            entries.insert(
                1,
                f"{{'key': CASE WHEN {old} THEN '{_OLD[3]}' ELSE '{_NEW[3]}' END, "
                f"'value': '{state}'}}",
            )
        attrs = (
            f"map_from_entries(list_filter([{', '.join(entries)}], lambda e: e.value IS NOT NULL))"
        )
        resource = (
            "CASE WHEN p.pid > 0 THEN MAP {'process.pid': CAST(p.pid AS VARCHAR)} "
            "ELSE MAP {}::MAP(VARCHAR, VARCHAR) END"
        )
        if kind == "histogram":
            value = (
                f'CAST(p.{column} AS UBIGINT) AS "Count", 0.0 AS "Sum", '
                '[]::UBIGINT[] AS "BucketCounts", []::DOUBLE[] AS "ExplicitBounds", '
                '0 AS "Flags", 0.0 AS "Min", 0.0 AS "Max", 2 AS "AggregationTemporality"'
            )
        else:
            value = f'CAST(p.{column} AS DOUBLE) AS "Value", 0 AS "Flags"'
        if kind == "sum":
            monotonic = "true" if column == "timeouts_total" else "false"
            value += f', 2 AS "AggregationTemporality", {monotonic} AS "IsMonotonic"'
        selects.append(
            f"""SELECT {resource} AS "ResourceAttributes", '' AS "ServiceName",
       'correlate' AS "ScopeName", {metric} AS "MetricName", {attrs} AS "Attributes",
       p.time_unix_nano AS "TimeUnix", {value}
FROM pool_samples p WHERE p.run_id = {int(run_id)} AND p.{column} IS NOT NULL"""
        )
    return "\nUNION ALL\n".join(selects)


def export(
    run: str,
    *,
    store: Store,
    to: str | Source | Connection,
    progress: Progress | None = None,
) -> ExportReport:
    """Write run ``run`` of ``store`` into the exporter's tables at ``to`` (a URL or connection).

    The database and tables are created with the exporter's DDL when missing; rows are
    appended (exporting a run twice writes its spans twice, as two Collectors would).
    A connection passed in stays open.
    """
    run_id = store.run_id(run)
    if isinstance(to, Connection):
        return _export(store, to, run, run_id, progress)
    with connect(to) as conn:
        return _export(store, conn, run, run_id, progress)


def _export(
    store: Store, conn: Connection, run: str, run_id: int, progress: Progress | None
) -> ExportReport:
    for ddl in conn.source.tables.all_ddl():
        conn.command(ddl)
    conn.require_traces()
    total = int(store.sql(f"SELECT count(*) AS n FROM spans WHERE run_id = {run_id}")["n"][0])
    if progress is not None:
        progress.start(total)
        progress.file(Path(run))
    spans = 0
    for batch in _batches(store, _traces_with_fallback_sql(run_id)):
        rows = _with_times(_with_duplicate_keys(batch))
        conn.insert_arrow(conn.source.tables.traces_table, rows)
        spans += batch.num_rows
        if progress is not None:
            progress.advance(batch.num_rows)
    points = _export_metrics(store, conn, run_id)
    if progress is not None:
        progress.finish()
    return ExportReport(run, conn.source.display, spans, points)


def _export_metrics(store: Store, conn: Connection, run_id: int) -> int:
    points = 0
    for kind in ("gauge", "sum", "histogram"):
        sql = _metrics_sql(run_id, kind)
        for batch in _batches(store, sql):
            table = conn.source.tables.qualified(conn.source.tables.metrics(kind))
            conn.insert_arrow(table, _with_times(batch))
            points += batch.num_rows
    return points


def _batches(store: Store, sql: str) -> Iterator[pa.Table]:
    import pyarrow as pa

    reader = store.con.sql(sql).to_arrow_reader(_BATCH_ROWS)
    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


_TIME_COLUMNS = ("Timestamp", "Events.Timestamp", "TimeUnix")
#: Prefix of the columns holding JSON text a map could not be built from in DuckDB.
_FALLBACK = "_json."


def _with_duplicate_keys(table: pa.Table) -> pa.Table:
    """Fill in, from their JSON text, the maps of objects with a key twice; drop that text.

    OpenTelemetry attributes should have unique keys, but a tracer may send one twice
    and local ingest keeps both; a ClickHouse map keeps both too, in order. Rare, so
    done row by row in Python.
    """
    import pyarrow as pa

    for name in [n for n in table.column_names if n.startswith(_FALLBACK)]:
        target = name[len(_FALLBACK) :]
        texts = table.column(name)
        table = table.drop_columns([name])
        if texts.null_count == len(texts):
            continue
        column = table.column(target)
        values = column.to_pylist()
        for i, text in enumerate(texts.to_pylist()):
            if isinstance(text, list):
                values[i] = [
                    m if m is not None else _pairs(t) for m, t in zip(values[i], text, strict=True)
                ]
            elif text is not None:
                values[i] = _pairs(text)
        index = table.column_names.index(target)
        table = table.set_column(index, target, pa.array(values, type=column.type))
    return table


def _pairs(text: str | None) -> list[tuple[str, str]]:
    """A JSON object's entries in order, duplicates kept, values as the exporter's strings."""
    import json

    def string(value: object) -> str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    entries = json.loads(text or "{}", object_pairs_hook=lambda pairs: pairs)
    return [(key, string(dict(v) if _is_object(v) else v)) for key, v in entries]


def _is_object(value: object) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value)
        and bool(value)
    )


def _with_times(table: pa.Table) -> pa.Table:
    """Integer nanoseconds since the epoch as Arrow timestamps (UTC), for ``DateTime64(9)``."""
    import pyarrow as pa

    for name in _TIME_COLUMNS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if pa.types.is_list(column.type):
            target: pa.DataType = pa.list_(pa.timestamp("ns", tz="UTC"))
        else:
            target = pa.timestamp("ns", tz="UTC")
        index = table.column_names.index(name)
        table = table.set_column(index, name, column.cast(target))
    return table
