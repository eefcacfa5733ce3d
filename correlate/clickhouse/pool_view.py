"""``pool_samples`` as a ClickHouse view over the exporter's metrics tables.

The instruments and attributes are :mod:`correlate.ingest.poolmetrics`' own tables of
names; the rules are its rules, as SQL: a delta sum becomes a running total, levels of
several series of one field at one time add up, and a field not reported at a time
keeps its last level. The ``correlate.pool.*`` gauges and the ``correlate.pool.class``
attribute that :mod:`correlate.clickhouse.export` writes give back what only
``correlate.instrument`` knows.
"""

from __future__ import annotations

from correlate.clickhouse.connection import Connection
from correlate.clickhouse.export import EXTRA_POOL_METRICS, POOL_CLASS_ATTRIBUTE
from correlate.clickhouse.otel_schema import map_get, quote_string

__all__ = ["pool_samples_sql"]


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
        if not conn.columns(tables.metrics(kind)):
            continue  # a Collector without a metrics pipeline: no pool samples from it
        columns = conn.require_metrics(kind)
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
    pool = "coalesce(" + ", ".join(map_get("Attributes", k) for k in _POOL_KEYS) + ", 'default')"
    state = "coalesce(" + ", ".join(map_get("Attributes", k) for k in _STATE_KEYS) + ")"
    pid_text = "ResourceAttributes['process.pid']"
    pid = f"if(match({pid_text}, '^[0-9]{{1,19}}$'), toInt64OrZero({pid_text}), 0)"
    instance = map_get("ResourceAttributes", "service.instance.id")
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

    pool_class = map_get("Attributes", POOL_CLASS_ATTRIBUTE)
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
