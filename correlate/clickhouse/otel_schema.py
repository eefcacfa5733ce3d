"""The tables the OpenTelemetry Collector's ``clickhouseexporter`` writes, as it creates them.

Verified against opentelemetry-collector-contrib ``exporter/clickhouseexporter``
(https://github.com/open-telemetry/opentelemetry-collector-contrib):
``internal/sqltemplates/traces_table.sql`` (commit f92a5763),
``traces_id_ts_lookup_table.sql``/``_mv.sql`` and ``metrics_{gauge,sum,histogram}_table.sql``
(commits 61540ced, e3bd2d1d, 8090d3c8), and ``exporter_traces.go``, which writes one row
per span with:

- ``Timestamp`` the span's start (``DateTime64(9)``), ``Duration`` end minus start in
  nanoseconds (``UInt64``; ``Int64`` before the templates moved to ``internal/sqltemplates``);
- ids as lowercase hex, the empty string for an absent parent;
- ``SpanKind`` as ``ptrace.SpanKind.String()`` (``Server``, ``Client``, ``Internal``,
  ``Producer``, ``Consumer``, ``Unspecified``) and ``StatusCode`` as
  ``ptrace.StatusCode.String()`` (``Unset``, ``Ok``, ``Error``); exporters before that
  wrote the proto names through ``traceutil.SpanKindStr``/``StatusCodeStr``
  (``SPAN_KIND_SERVER``, ``STATUS_CODE_ERROR``), which :mod:`correlate.clickhouse.views`
  reads too;
- ``ServiceName`` from the resource's ``service.name``; ``ScopeName``/``ScopeVersion``
  columns (older exporters put them in ``SpanAttributes`` as ``otel.scope.name`` and
  ``otel.scope.version`` and had no such columns);
- every attribute value as ``pcommon.Value.AsString()``: strings as they are, ints in
  decimal, booleans ``true``/``false``, doubles in the shortest form that reads back
  (JSON number style), arrays and maps as JSON text, bytes as base64;
- events and links as the ``Nested`` columns ``Events.Timestamp``, ``Events.Name``,
  ``Events.Attributes``, ``Links.TraceId``, ``Links.SpanId``, ``Links.TraceState``,
  ``Links.Attributes``.

The DDL below is written from those facts (types, order keys, partitions); the
bloom-filter skip indexes are kept since a server's copy of the table has them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_METRICS_PREFIX",
    "DEFAULT_TRACES_TABLE",
    "HISTOGRAM_COLUMNS",
    "NUMBER_COLUMNS",
    "TRACE_COLUMNS",
    "OtelTables",
    "map_get",
    "quote_identifier",
    "quote_string",
]

#: The exporter's defaults (its ``database``, ``traces_table_name`` and metrics tables).
DEFAULT_DATABASE = "default"
DEFAULT_TRACES_TABLE = "otel_traces"
DEFAULT_METRICS_PREFIX = "otel_metrics"

#: Columns of ``otel_traces`` the canonical spans are read from. ``ScopeName`` is
#: optional (absent before the exporter had it); the rest are in every version read.
TRACE_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.Attributes",
)
OPTIONAL_TRACE_COLUMNS: tuple[str, ...] = ("ScopeName",)

#: Columns of ``otel_metrics_gauge``/``_sum`` read for pool samples.
NUMBER_COLUMNS: tuple[str, ...] = (
    "ResourceAttributes",
    "ServiceName",
    "MetricName",
    "Attributes",
    "TimeUnix",
    "Value",
)
#: Columns of ``otel_metrics_histogram`` read for pool samples.
HISTOGRAM_COLUMNS: tuple[str, ...] = (
    "ResourceAttributes",
    "ServiceName",
    "MetricName",
    "Attributes",
    "TimeUnix",
    "Count",
    "AggregationTemporality",
)


def quote_identifier(name: str) -> str:
    """``name`` as a ClickHouse identifier in backquotes, backslashes and backquotes escaped.

    >>> quote_identifier("otel_traces"), quote_identifier("a`b")
    ('`otel_traces`', '`a\\\\`b`')
    """
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(text: str) -> str:
    """``text`` as a ClickHouse string literal: backslashes and quotes escaped.

    ClickHouse reads C-style escapes in literals, so a backslash must be doubled as
    well as the quote (a standard-SQL literal would be misread).

    >>> quote_string("it's \\\\d")
    "'it\\\\'s \\\\\\\\d'"
    """
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def map_get(map_expr: str, key: str) -> str:
    """ClickHouse: the value at ``key``, NULL when absent (a map gives '' for a missing key)."""
    k = quote_string(key)
    return f"if(mapContains({map_expr}, {k}), {map_expr}[{k}], NULL)"


@dataclass(frozen=True)
class OtelTables:
    """Where the exporter's tables are: its ``database``, traces table and metrics tables."""

    database: str = DEFAULT_DATABASE
    traces: str = DEFAULT_TRACES_TABLE
    metrics_prefix: str = DEFAULT_METRICS_PREFIX

    def qualified(self, table: str) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(table)}"

    @property
    def traces_table(self) -> str:
        return self.qualified(self.traces)

    def metrics(self, kind: str) -> str:
        """Name of the ``gauge``, ``sum`` or ``histogram`` table (not quoted)."""
        return f"{self.metrics_prefix}_{kind}"

    def traces_ddl(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for the traces table, as the exporter creates it."""
        return f"""CREATE TABLE IF NOT EXISTS {self.traces_table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""

    def trace_id_ts_ddl(self) -> tuple[str, str]:
        """The trace-id lookup table and the materialized view that fills it, as the exporter's."""
        lookup = self.qualified(f"{self.traces}_trace_id_ts")
        view = self.qualified(f"{self.traces}_trace_id_ts_mv")
        table = f"""CREATE TABLE IF NOT EXISTS {lookup} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""
        mv = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {lookup}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {self.traces_table}
WHERE TraceId != ''
GROUP BY TraceId"""
        return table, mv

    def metrics_ddl(self, kind: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for the ``gauge``, ``sum`` or ``histogram`` table."""
        if kind == "histogram":
            value = """    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),"""
        elif kind in ("gauge", "sum"):
            value = "    Value Float64 CODEC(ZSTD(1)),\n    Flags UInt32 CODEC(ZSTD(1)),"
        else:
            raise ValueError(f"no exporter metrics table of kind {kind!r}")
        tail = {
            "gauge": "",
            "sum": "    AggregationTemporality Int32 CODEC(ZSTD(1)),\n"
            "    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),\n",
            "histogram": "    Flags UInt32 CODEC(ZSTD(1)),\n    Min Float64 CODEC(ZSTD(1)),\n"
            "    Max Float64 CODEC(ZSTD(1)),\n"
            "    AggregationTemporality Int32 CODEC(ZSTD(1)),\n",
        }[kind]
        indexes = ",\n".join(
            f"    INDEX idx_{name}_{part} map{fn}({column}) TYPE bloom_filter(0.01) GRANULARITY 1"
            for name, column in (
                ("res_attr", "ResourceAttributes"),
                ("scope_attr", "ScopeAttributes"),
                ("attr", "Attributes"),
            )
            for part, fn in (("key", "Keys"), ("value", "Values"))
        )
        return f"""CREATE TABLE IF NOT EXISTS {self.qualified(self.metrics(kind))} (
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
{value}
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),
{tail}{indexes}
) ENGINE = MergeTree
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""

    def all_ddl(self) -> list[str]:
        """Every statement creating the database and the exporter's tables, in order."""
        lookup, mv = self.trace_id_ts_ddl()
        return [
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}",
            self.traces_ddl(),
            lookup,
            mv,
            *(self.metrics_ddl(k) for k in ("gauge", "sum", "histogram")),
        ]
