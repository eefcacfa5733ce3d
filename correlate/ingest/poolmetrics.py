"""Connection-pool metrics into the pool samples ``correlate.instrument`` writes.

OpenTelemetry's database client conventions name the pool instruments in two
generations (semantic-conventions ``docs/db/database-metrics.md``; the old
names are v1.24's and earlier, still what opentelemetry-instrumentation-
sqlalchemy and the Java agent's HikariCP instrumentation emit):

=================================  =========================================  ===================
what                               old (``pool.name``, ``state``)             new (``db.client.connection.pool.name``, ``db.client.connection.state``)
=================================  =========================================  ===================
connections by state (used/idle)   ``db.client.connections.usage``            ``db.client.connection.count``
most connections allowed           ``db.client.connections.max``              ``db.client.connection.max``
idle connections allowed, most     ``db.client.connections.idle.max``         ``db.client.connection.idle.max``
idle connections kept, least       ``db.client.connections.idle.min``         ``db.client.connection.idle.min``
requests waiting for a connection  ``db.client.connections.pending_requests`` ``db.client.connection.pending_requests``
checkouts that timed out           ``db.client.connections.timeouts``         ``db.client.connection.timeouts``
time to get / use / create one     ``….wait_time``, ``.use_time``, ``.create_time`` (histograms)
=================================  =========================================  ===================

Each pool of each process (``process.pid``, else ``service.instance.id``)
becomes one series of ``pool_samples`` rows, one per point in time a pool
metric was reported: ``checked_out`` is the ``used`` count, ``checked_in`` the
``idle`` count, ``capacity`` the max, ``waiters`` the pending requests,
``timeouts_total`` the timeouts counter, ``checkouts_total`` the count of the
wait-time histogram (one observation per checkout). A count the metrics do
not give stays NULL; a value not reported at a time is the last one reported
(an up-down counter keeps its level). Delta temporality is summed up to a
running total first. ``pool_class`` says where the sample came from
(``otel db.client.connections`` or ``otel db.client.connection``), so the
analysis can tell these from ``correlate.instrument``'s own.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from correlate.ingest.otlp_metrics import DELTA, Point

__all__ = ["OTEL_POOL_CLASS", "PoolSeries", "pool_samples"]

#: ``pool_class`` of samples from metrics starts with this.
OTEL_POOL_CLASS = "otel"

_OLD, _NEW = "db.client.connections", "db.client.connection"
#: instrument suffix → field of a sample
_FIELDS = {
    "usage": "count",
    "count": "count",
    "max": "max",
    "idle.max": "idle_max",
    "idle.min": "idle_min",
    "pending_requests": "pending",
    "timeouts": "timeouts",
    "wait_time": "wait_count",
    "use_time": "use_count",
    "create_time": "create_count",
}
#: the largest level a sample's INTEGER columns hold; BIGINT counters hold more
_INT32_MAX, _INT64_MAX = 2**31 - 1, 2**63 - 1
_BIGINT_FIELDS = frozenset({"timeouts", "wait_count"})
_POOL_KEYS = ("db.client.connection.pool.name", "pool.name")
_STATE_KEYS = ("db.client.connection.state", "state")


@dataclass
class PoolSeries:
    """One pool of one process, as its metrics described it."""

    pid: int
    pool: str
    generation: str
    #: field → [(time, series key, level)]
    levels: dict[str, list[tuple[int, tuple[Any, ...], float]]] = field(
        default_factory=lambda: defaultdict(list)
    )


def instrument_field(name: str) -> tuple[str, str] | None:
    """(generation, sample field) of a pool instrument's name; None for any other metric.

    >>> instrument_field("db.client.connections.usage")
    ('db.client.connections', 'count')
    >>> instrument_field("db.client.connection.wait_time")
    ('db.client.connection', 'wait_count')
    >>> instrument_field("db.client.operation.duration") is None
    True
    """
    for generation in (_OLD, _NEW):
        prefix = generation + "."
        if name.startswith(prefix) and name[len(prefix) :] in _FIELDS:
            return generation, _FIELDS[name[len(prefix) :]]
    return None


def pool_samples(points: Iterable[Point]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """``pool_samples`` rows (without run and file ids) from ``points``, and notes.

    A note says what could not become a sample (a pool without a connection count).
    """
    pools: dict[tuple[int, str], PoolSeries] = {}
    unreadable: Counter[tuple[str, int, str]] = Counter()
    for point in points:
        found = instrument_field(point.name)
        if found is None:
            continue
        generation, what = found
        pid, pool = _identity(point)
        series = pools.setdefault((pid, pool), PoolSeries(pid, pool, generation))
        state = _first(point.attributes, _STATE_KEYS)
        if what == "count":
            if state not in ("used", "idle"):
                continue
            what = state
        level = float(point.count) if point.count is not None else point.value
        if not _countable(level, what, point.temporality == DELTA):
            unreadable[(pool, pid, point.name)] += 1
            continue
        key = (point.temporality, tuple(sorted((k, str(v)) for k, v in point.attributes.items())))
        series.levels[what].append((point.time_unix_nano, key, level))
    rows: list[tuple[Any, ...]] = []
    notes = [
        f"pool {pool!r} (pid {pid}): {n} point(s) of {name!r} skipped: not a count "
        "(NaN, infinite, negative or too large)"
        for (pool, pid, name), n in unreadable.items()
    ]
    for series in pools.values():
        if "used" not in series.levels:
            notes.append(
                f"pool {series.pool!r} (pid {series.pid}): no used-connection count among its "
                "metrics, so no pool samples"
            )
            continue
        rows.extend(_rows(series))
    return rows, notes


def _identity(point: Point) -> tuple[int, str]:
    pool = str(_first(point.attributes, _POOL_KEYS) or "default")
    pid = point.resource.get("process.pid")
    if isinstance(pid, int | str) and str(pid).isdigit() and int(pid) <= _INT64_MAX:
        return int(pid), pool
    instance = point.resource.get("service.instance.id")
    return 0, f"{pool} ({instance})" if instance else pool


def _countable(level: float, what: str, delta: bool) -> bool:
    """Whether a reported level can be a count: finite, and (a level, not a change) in range."""
    limit = _INT64_MAX if what in _BIGINT_FIELDS else _INT32_MAX
    return math.isfinite(level) and (delta or 0 <= level <= limit)


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in attributes:
            return attributes[key]
    return None


def _rows(series: PoolSeries) -> list[tuple[Any, ...]]:
    # each field: its level at every time it was reported, summed over its series
    filled: dict[str, dict[int, float]] = {}
    for what, reports in series.levels.items():
        per_key: dict[tuple[Any, ...], list[tuple[int, float]]] = defaultdict(list)
        for t, key, level in sorted(reports, key=lambda r: r[0]):
            runs = per_key[key]
            if key[0] == DELTA:  # a change since the last report: keep a running total
                level += runs[-1][1] if runs else 0.0
            runs.append((t, level))
        filled[what] = _sum_forward(per_key.values())
    times = sorted({t for levels in filled.values() for t in levels})
    last: dict[str, float | None] = dict.fromkeys(filled)
    rows = []
    for t in times:
        for what, levels in filled.items():
            if t in levels:
                last[what] = levels[t]
        used = _int(last["used"])
        if used is None:
            continue
        rows.append(
            (
                t,
                series.pid,
                series.pool,
                f"{OTEL_POOL_CLASS} {series.generation}",
                None,  # size: pool_size is SQLAlchemy's word; metrics give only the max
                None,  # max_overflow
                _int(last.get("max")),
                used,
                _int(last.get("idle")),
                None,  # overflow
                _int(last.get("pending")),
                _int(last.get("timeouts"), _INT64_MAX),
                _int(last.get("wait_count"), _INT64_MAX),
                None,  # leak suspects: only correlate.instrument watches for them
            )
        )
    return rows


def _sum_forward(runs: Iterable[list[tuple[int, float]]]) -> dict[int, float]:
    """At every time any series reported, the sum of each series' latest level."""
    runs = [r for r in runs if r]
    times = sorted({t for r in runs for t, _ in r})
    out: dict[int, float] = {}
    at = [0] * len(runs)
    for t in times:
        total = 0.0
        for i, r in enumerate(runs):
            while at[i] < len(r) and r[at[i]][0] <= t:
                at[i] += 1
            if at[i]:
                total += r[at[i] - 1][1]
        out[t] = total
    return out


def _int(value: float | None, limit: int = _INT32_MAX) -> int | None:
    # a sum over several series may pass what a column holds: unknown, not an overflow
    if value is None or not math.isfinite(value) or not 0 <= value <= limit:
        return None
    return round(value)
