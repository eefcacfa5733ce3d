"""The run over time, in windows sized to its length.

Each bucket row says what the service did (requests completed, their
latency and composition, errors, requests in flight), what the pool looked
like (``pool_samples`` from ``correlate.instrument``, when present) and what
the load generator offered (``client_requests``, when present; its own
samples of the users it ran, ``load_samples``, as ``users_sampled``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

#: Window widths to choose from, in seconds: the smallest giving at most
#: :data:`MAX_WINDOWS` windows is used.
WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_WINDOWS = 60


def window_width_s(seconds: float) -> int:
    """The bucket width for a run lasting ``seconds``.

    Past the widest listed width, whole days, as many as keep the count
    of windows at :data:`MAX_WINDOWS`, however long the run:

    >>> window_width_s(62), window_width_s(600), window_width_s(3 * 3600)
    (2, 10, 300)
    >>> window_width_s(200 * 365 * 86400) // 86400
    1217
    """
    for width in WIDTHS_S:
        if seconds / width <= MAX_WINDOWS:
            return width
    day = WIDTHS_S[-1]
    return day * max(1, math.ceil(seconds / MAX_WINDOWS / day))


def timeline(
    con: duckdb.DuckDBPyConnection, prefix: str, run_id: int, start_ns: int, end_ns: int
) -> pd.DataFrame:
    """One row per bucket from ``start_ns`` to ``end_ns``."""
    width = window_width_s((end_ns - start_ns) / 1e9)
    params = {"run": run_id, "t0": start_ns, "t1": end_ns, "w": width * 1_000_000_000}
    return con.execute(
        f"""
        WITH win AS (
            -- wide: the last window may end past the largest int64 time
            SELECT i AS bucket, $t0::HUGEINT + i * $w AS w0, $t0::HUGEINT + (i + 1) * $w AS w1
            FROM range(0, ($t1 - $t0) // $w + 1) t(i)
        ),
        done AS (
            SELECT ((end_ns - $t0) // $w) AS bucket, count(*) AS requests,
                   avg(error::INT) AS error_rate, sum(error::INT) AS errors,
                   quantile_cont(duration_ms, 0.50) AS p50_ms,
                   quantile_cont(duration_ms, 0.95) AS p95_ms,
                   avg(pool_ms) AS pool_ms, avg(db_ms) AS db_ms,
                   avg(downstream_ms) AS downstream_ms, avg(app_ms) AS app_ms
            FROM {prefix}_requests GROUP BY ALL
        ),
        flight AS (
            SELECT w.bucket,
                   sum(least(r.end_ns, w.w1) - greatest(r.start_ns, w.w0)) / $w AS in_flight
            FROM win w JOIN {prefix}_requests r ON r.start_ns < w.w1 AND r.end_ns > w.w0
            GROUP BY ALL
        ),
        offered AS (
            SELECT ((start_unix_nano - $t0) // $w) AS bucket, count(*) AS sent,
                   avg((NOT ok)::INT) AS client_error_rate
            FROM client_requests WHERE run_id = $run GROUP BY ALL
        ),
        -- a user counts in every bucket its requests overlap: one stuck in a
        -- slow request is still load, though it sends nothing new
        active AS (
            SELECT w.bucket, count(DISTINCT c."user") AS users
            FROM win w JOIN client_requests c
              ON c.run_id = $run AND c.start_unix_nano < w.w1
             AND c.start_unix_nano + c.duration_ns > w.w0
             -- user 0 on every request: the load generator did not say (k6 without its vu tag)
             AND (SELECT bool_or("user" <> 0) FROM client_requests WHERE run_id = $run)
            GROUP BY ALL
        ),
        -- the users the load generator said it ran (k6 vus, Locust user count), whole run only
        sampled AS (
            SELECT ((time_unix_nano - $t0) // $w) AS bucket, max(users) AS users_sampled
            FROM load_samples WHERE run_id = $run AND name IS NULL AND method IS NULL
            GROUP BY ALL
        ),
        pool_per AS (
            SELECT ((time_unix_nano - $t0) // $w) AS bucket, pid, pool,
                   max(checked_out) AS co_max, min(checked_out) AS co_min,
                   max(waiters) AS waiters, max(capacity) AS capacity,
                   max(timeouts_total) AS timeouts_total
            FROM pool_samples WHERE run_id = $run GROUP BY ALL
        ),
        pool AS (
            SELECT bucket, sum(co_max) AS checked_out_max, sum(co_min) AS checked_out_min,
                   sum(waiters) AS waiters_max, sum(capacity) AS pool_capacity,
                   sum(timeouts_total) AS timeouts_total
            FROM pool_per GROUP BY bucket
        )
        SELECT w.bucket, (w.w0 - $t0) / 1e9 AS t_s, $w / 1e9 AS width_s,
               coalesce(d.requests, 0) AS requests,
               coalesce(d.requests, 0) / ($w / 1e9) AS throughput_rps,
               coalesce(f.in_flight, 0) AS in_flight,
               d.p50_ms, d.p95_ms, d.error_rate, coalesce(d.errors, 0) AS errors,
               d.pool_ms, d.db_ms, d.downstream_ms, d.app_ms,
               o.sent / ($w / 1e9) AS offered_rps, a.users, o.client_error_rate,
               p.checked_out_max, p.checked_out_min, p.waiters_max, p.pool_capacity,
               -- new timeouts since the last window that had a sample
               p.timeouts_total - max(p.timeouts_total) OVER (
                   ORDER BY w.bucket ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
               ) AS timeouts,
               s.users_sampled
        FROM win w
        LEFT JOIN done d USING (bucket)
        LEFT JOIN flight f USING (bucket)
        LEFT JOIN offered o USING (bucket)
        LEFT JOIN active a USING (bucket)
        LEFT JOIN pool p USING (bucket)
        LEFT JOIN sampled s USING (bucket)
        WHERE w.w0 < $t1
        ORDER BY w.bucket
        """,
        params,
    ).df()


def route_timeline(
    con: duckdb.DuckDBPyConnection, prefix: str, start_ns: int, end_ns: int
) -> pd.DataFrame:
    """Per bucket and route: requests completed, p50 and p95 (long format)."""
    width = window_width_s((end_ns - start_ns) / 1e9)
    return con.execute(
        f"""
        SELECT ((end_ns - $t0) // $w) AS bucket, ((end_ns - $t0) // $w) * $w / 1e9 AS t_s,
               route, count(*) AS requests,
               quantile_cont(duration_ms, 0.50) AS p50_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms
        FROM {prefix}_requests GROUP BY ALL ORDER BY bucket, route
        """,
        {"t0": start_ns, "w": width * 1_000_000_000},
    ).df()
