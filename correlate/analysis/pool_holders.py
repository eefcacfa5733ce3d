"""Connections held while requests waited, counted where the spans are (SQL).

:mod:`correlate.analysis.pool_inference` reads a pool's story from the waits of
its checkout spans; what it needs from the spans is counted here, one bounded
result per question, so that the run's requests and spans stay in the store
(DuckDB, or ClickHouse through :mod:`correlate.clickhouse.engine`):

- :func:`wait_histogram`: per window of waits, how many saw each number of holders;
- :func:`wait_drops`: the waits after which the most holders seen now or later fell
  (one row per connection lost, at most), and how many waits saw that most;
- :func:`wait_moments`: the start of the ``j``-th wait, for a few ``j``;
- :func:`held_at_samples`: the holders at each pool sample (as many as samples);
- :func:`groups` and :func:`candidates`: requests per group, over all and per window
  in which holds ended, with a few example traces;
- :func:`idle_waits`: waits with no database span running anywhere.

Two readings of the holders are counted side by side: ``h1`` holds from the
first checkout to the request's end, less the later checkouts (which wait, not
hold); ``h2`` holds from each checkout to the last query before the next one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from correlate.semconv import NOT_SQL_SYSTEMS_SQL

if TYPE_CHECKING:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.run import Run

#: how far a child span may seem to end after its request and still be inside it (ns)
CLOCK_SLACK_NS = 2_000_000

#: one request that got a connection (``holders``), the later checkouts of each (``gaps``),
#: each checkout to its last query (``holds``), and the checkouts that waited (``waits``),
#: of the service ``$service``
#: the checkouts of the service ``$service``: its checkout spans; or, for a pool that makes
#: none, the waits that failed (analysis.pool_errors) and, beside them, each request's first
#: SQL call as the moment it had its connection
_CHECKOUTS = """
    co AS (
        SELECT p.th, p.rh, p.start_ns, p.end_ns, p.status_code, p.span_id IS NOT NULL AS spanned
        FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
        WHERE p.category = 'pool' AND (p.span_id IS NOT NULL OR p.status_code = 'ERROR')
          AND coalesce(r.service, '') = $service
        UNION ALL
        SELECT q.th, q.rh, min(q.a) AS start_ns, min(q.a) AS end_ns, NULL AS status_code,
               false AS spanned
        FROM {parts} q JOIN {reqs} r ON r.th = q.th AND r.rh = q.rh
        WHERE q.category = 'db' AND coalesce(r.service, '') = $service
          -- a cache's or a document store's call takes no connection from the SQL pool
          AND lower(trim(coalesce(q.db_system, ''))) NOT IN ({not_sql})
          AND EXISTS (SELECT 1 FROM {parts} e JOIN {reqs} er ON er.th = e.th AND er.rh = e.rh
                      WHERE e.category = 'pool' AND e.span_id IS NULL
                        AND e.status_code = 'ERROR' AND coalesce(er.service, '') = $service)
        GROUP BY q.th, q.rh
    )"""

_BASE = (
    _CHECKOUTS
    + """,
    got AS (
        SELECT th, rh, min(end_ns) AS acquired_ns
        FROM co
        WHERE status_code IS DISTINCT FROM 'ERROR'
        GROUP BY th, rh
    ),
    queried AS (
        SELECT th, rh, max(b) AS last_query_ns FROM {parts} WHERE category = 'db'
        GROUP BY th, rh
    ),
    holders AS (
        SELECT r.trace_id, r.request_id, r.route, r.method, r.http_status AS status, r.end_ns,
               least(g.acquired_ns, r.end_ns) AS acquired_ns,
               -- surely held until its last query: the lower bound of the hold
               greatest(least(g.acquired_ns, r.end_ns),
                        least(coalesce(q.last_query_ns, 0), r.end_ns)) AS queried_ns
        FROM {reqs} r
        JOIN got g ON g.th = r.th AND g.rh = r.rh
        LEFT JOIN queried q ON q.th = r.th AND q.rh = r.rh
        -- the JavaScript SDK stamps a span's start from Date.now(), a millisecond clock,
        -- and its end from a finer one offset by a fraction of a millisecond of its own: a
        -- quick request's checkout can seem to end just after the request does
        WHERE g.acquired_ns <= r.end_ns + $slack AND coalesce(r.service, '') = $service
    ),
    -- a request that checks out again (node-postgres's pool.query takes a client per
    -- statement) waits, not holds, during each later checkout: gaps in its upper reading
    gaps AS (
        SELECT p.start_ns AS start_ns, least(p.end_ns, r.end_ns) AS end_ns
        FROM co p
        JOIN got g ON g.th = p.th AND g.rh = p.rh
        JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
        WHERE p.start_ns >= g.acquired_ns AND p.start_ns < r.end_ns
    ),
    -- the lower reading: each checkout holds from its end to the last query that starts
    -- before the request's next checkout (between a pool.query and the next checkout it
    -- holds nothing; on a busy event loop that is long enough to count a connection twice)
    checkouts AS (
        SELECT th, rh, start_ns, end_ns, status_code,
               lead(start_ns) OVER (PARTITION BY th, rh ORDER BY start_ns, end_ns) AS next_ns
        FROM co
    ),
    holds AS (
        SELECT start_ns, end_ns FROM (
            SELECT c.end_ns AS start_ns, least(max(q.b), max(r.end_ns)) AS end_ns
            FROM checkouts c
            JOIN {reqs} r ON r.th = c.th AND r.rh = c.rh
            JOIN {parts} q ON q.th = c.th AND q.rh = c.rh AND q.category = 'db'
                 AND q.start_ns >= c.start_ns
                 AND q.start_ns < coalesce(c.next_ns, r.end_ns + 1)
            WHERE c.status_code IS DISTINCT FROM 'ERROR'
              AND coalesce(r.service, '') = $service
            GROUP BY c.th, c.rh, c.start_ns, c.end_ns
        ) AS h WHERE end_ns > start_ns
    ),
    waits AS (
        -- a pool's own error (no span) is read when it failed, the one moment the pool
        -- surely had no connection to give: psycopg2's opens new connections inside its
        -- lock, so a request may wait there while a holder has not yet run a query
        SELECT CASE WHEN NOT p.spanned AND p.status_code = 'ERROR' THEN p.end_ns
                    ELSE p.start_ns END AS t
        FROM co p
        WHERE p.end_ns - p.start_ns >= $min_wait OR p.status_code = 'ERROR'
    )"""
)

#: the holders by both readings at each moment of ``probes`` (``t``): a sweep over the
#: holds' starts and ends, each moment after the ends and starts at its own time
_HELD = """
    sweep AS (
        SELECT t, k,
               sum(d1) OVER (ORDER BY t, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS n1,
               sum(d2) OVER (ORDER BY t, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS n2
        FROM (
            SELECT acquired_ns AS t, 0 AS k, 1 AS d1, 0 AS d2 FROM holders
            UNION ALL SELECT end_ns AS t, 0 AS k, -1 AS d1, 0 AS d2 FROM holders
            UNION ALL SELECT start_ns AS t, 0 AS k, -1 AS d1, 0 AS d2 FROM gaps
            UNION ALL SELECT end_ns AS t, 0 AS k, 1 AS d1, 0 AS d2 FROM gaps
            UNION ALL SELECT start_ns AS t, 0 AS k, 0 AS d1, 1 AS d2 FROM holds
            UNION ALL SELECT end_ns AS t, 0 AS k, 0 AS d1, -1 AS d2 FROM holds
            UNION ALL SELECT t, 1 AS k, 0 AS d1, 0 AS d2 FROM probes
        ) AS e
    ),
    held AS (SELECT t, greatest(n1, 0) AS h1, n2 AS h2 FROM sweep WHERE k = 1)"""

#: per wait: the holders, the most seen now or later (``l1``, ``l2``), the waits so far
#: (ties included) and the most seen from the next wait on
_LEVELS = """
    probes AS (SELECT t FROM waits),
    {held},
    lv AS (
        SELECT t, h1, h2,
               max(h1) OVER (ORDER BY t ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS l1,
               max(h2) OVER (ORDER BY t ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS l2,
               sum(1) OVER (ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS upto
        FROM held
    ),
    nx AS (
        SELECT t, upto, l1, l2, lead(l1) OVER (ORDER BY t) AS m1, lead(l2) OVER (ORDER BY t) AS m2
        FROM lv
    )"""

#: each request that held a connection, with its group's exception
_GROUPED = """
    grouped AS (
        SELECT h.trace_id, h.route, h.method, h.status, h.end_ns, h.queried_ns,
               (list_filter(s.events, lambda e: e.name = 'exception')[1]).attributes
                   ->>'$."exception.type"' AS exception
        FROM holders h
        JOIN spans s ON s.run_id = $run AND s.trace_id = h.trace_id AND s.span_id = h.request_id
    )"""


def _steps(base: str) -> list[tuple[str, str]]:
    """The named steps of ``base`` (``name AS (…)``, comments between them left out)."""
    marks = list(re.finditer(r"(?m)^    (\w+) AS \(", base))
    steps = []
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        lines = base[mark.start() : after.start() if after else len(base)].rstrip().splitlines()
        while lines[-1].strip().startswith("--"):
            lines.pop()
        steps.append((mark.group(1), "\n".join(lines).rstrip().rstrip(",")))
    return steps


_BASE_STEPS = _steps(_BASE)


def _base(run: Run, service: str, s: PoolSettings) -> str:
    """The steps of :data:`_BASE` for ``service``, each read from a table of the run's:
    made on first use, once per service and ``min_wait`` (a pool's story asks the spans a
    dozen questions, each of which recomputed them all)."""
    min_wait = round(s.min_wait_ms * 1e6)
    key = hashlib.sha1(f"{service}\n{min_wait}".encode()).hexdigest()[:16]
    tables = [(name, run.table(f"pool_{key}_{name}")) for name, _ in _BASE_STEPS]
    read = [f"{name} AS (SELECT * FROM {table})" for name, table in tables]
    made = run.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
        [tables[-1][1]],
    ).fetchone()
    if not made or not made[0]:
        given = {"run": run.run_id, "slack": CLOCK_SLACK_NS, "service": service,
                 "min_wait": min_wait}  # fmt: skip
        for i, (name, step) in enumerate(_BASE_STEPS):
            sql = ("WITH " + ", ".join([*read[:i], step]) + f"\nSELECT * FROM {name}").format(
                parts=run.table("parts"), reqs=run.table("requests"), not_sql=NOT_SQL_SYSTEMS_SQL
            )
            used = {k: v for k, v in given.items() if re.search(rf"\${k}\b", sql)}
            run.con.execute(f"CREATE OR REPLACE TEMP TABLE {tables[i][1]} AS {sql}", used)
    return ", ".join(read)


def _query(run: Run, ctes: str, select: str, service: str, s: PoolSettings, **params: Any) -> Any:
    """Rows of ``WITH <the base>, <ctes> <select>`` for ``service``."""
    sql = "WITH " + _base(run, service, s) + (", " + ctes if ctes else "") + "\n" + select
    sql = sql.format(
        parts=run.table("parts"),
        reqs=run.table("requests"),
        held=_HELD,
        not_sql=NOT_SQL_SYSTEMS_SQL,
    )
    given = {
        "run": run.run_id,
        "slack": CLOCK_SLACK_NS,
        "service": service,
        "min_wait": round(s.min_wait_ms * 1e6),
        **params,
    }
    used = {k: v for k, v in given.items() if re.search(rf"\${k}\b", sql)}
    return run.con.execute(sql, used).fetchall()


def services(run: Run, s: PoolSettings) -> list[tuple[str, int]]:
    """(service, checkouts that waited) for every service with checkout spans."""
    reqs, parts = run.table("requests"), run.table("parts")
    rows = run.con.execute(
        f"""
        SELECT svc, count(*) FILTER (WHERE waited) AS waits FROM (
            SELECT coalesce(r.service, '') AS svc,
                   p.end_ns - p.start_ns >= $min_wait OR p.status_code = 'ERROR' AS waited
            FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
            WHERE p.category = 'pool' AND (p.span_id IS NOT NULL OR p.status_code = 'ERROR')
        ) AS c
        GROUP BY svc ORDER BY svc
        """,
        {"min_wait": round(s.min_wait_ms * 1e6)},
    ).fetchall()
    return sorted((str(name), int(n)) for name, n in rows)


def wait_histogram(
    run: Run, service: str, s: PoolSettings, run_start: int
) -> list[tuple[int, int, int, int]]:
    """(reading, window, holders, waits): how many waits of each window saw so many holders.

    Windows are ``s.window_s`` wide from ``run_start`` (numbered from 0; a wait before the
    start falls in a negative one).
    """
    width = max(round(s.window_s * 1e9), 1)
    bucket = """CASE WHEN t >= $start THEN (t - $start) // $width
                     ELSE -(($start - t + $width - 1) // $width) END"""
    rows = _query(
        run,
        _LEVELS,
        f"""
        SELECT 1 AS reading, {bucket} AS w, h1 AS h, count(*) AS n FROM lv GROUP BY w, h1
        UNION ALL
        SELECT 2 AS reading, {bucket} AS w, h2 AS h, count(*) AS n FROM lv GROUP BY w, h2
        """,
        service,
        s,
        start=run_start,
        width=width,
    )
    return sorted((int(r), int(w), int(h), int(n)) for r, w, h, n in rows)


def wait_drops(
    run: Run, service: str, s: PoolSettings
) -> tuple[list[tuple[int, int, int, int, int]], dict[int, int]]:
    """The drops of the most holders seen now or later, and the waits that saw that most.

    Returns ``[(reading, index, moment, from, to)]`` — ``index`` of the last wait at the
    old level among the waits in time order — and ``{reading: waits at the level}``.
    """
    rows = _query(
        run,
        _LEVELS,
        """
        SELECT 1 AS reading, upto - 1 AS i, t, l1 AS a, m1 AS b FROM nx WHERE m1 < l1
        UNION ALL
        SELECT 2 AS reading, upto - 1 AS i, t, l2 AS a, m2 AS b FROM nx WHERE m2 < l2
        UNION ALL
        SELECT 0 AS reading, count(*) FILTER (WHERE h1 = l1) AS i,
               count(*) FILTER (WHERE h2 = l2) AS t, 0 AS a, 0 AS b FROM lv
        """,
        service,
        s,
    )
    drops = sorted(
        (int(r), int(i), int(t), int(a), int(b)) for r, i, t, a, b in rows if int(r) != 0
    )
    ((_, at1, at2, _, _),) = [row for row in rows if int(row[0]) == 0]
    return drops, {1: int(at1), 2: int(at2)}


def wait_moments(run: Run, service: str, s: PoolSettings, at: Sequence[int]) -> dict[int, int]:
    """The start of the ``j``-th wait in time order, for each ``j`` of ``at``."""
    wanted = sorted({int(j) for j in at})
    if not wanted:
        return {}
    columns = ", ".join(f"min(t) FILTER (WHERE upto > {j}) AS at{j}" for j in wanted)
    (row,) = _query(run, _LEVELS, f"SELECT {columns} FROM lv", service, s)
    return {j: int(t) for j, t in zip(wanted, row, strict=True) if t is not None}


def held_at_samples(run: Run, service: str, s: PoolSettings) -> dict[int, tuple[int, int]]:
    """``{sample time: (h1, h2)}`` at each time a pool reported from OpenTelemetry metrics.

    As many rows as samples: they grow with the run's length, not with its requests.
    """
    probes = """
        probes AS (
            SELECT DISTINCT CAST(time_unix_nano AS BIGINT) AS t FROM pool_samples
            WHERE run_id = $run AND pool_class LIKE 'otel %'
        ),
        {held}"""
    rows = _query(run, probes, "SELECT t, h1, h2 FROM held", service, s)
    return {int(t): (int(h1), int(h2)) for t, h1, h2 in rows}


def groups(run: Run, service: str, s: PoolSettings) -> dict[tuple[Any, ...], int]:
    """Requests that held a connection, per (route, method, status, exception)."""
    rows = _query(
        run,
        _GROUPED,
        """
        SELECT route, method, status, exception, count(*) AS n FROM grouped
        GROUP BY route, method, status, exception
        """,
        service,
        s,
    )
    return {_key(row[:4]): int(row[4]) for row in rows}


#: example traces kept per window and group
EXAMPLES = 3


def candidates(
    run: Run, service: str, s: PoolSettings, windows: Sequence[tuple[int, int, int]]
) -> dict[int, dict[tuple[Any, ...], tuple[int, tuple[str, ...]]]]:
    """Per window ``(reading, after, before)`` (by its index in ``windows``): the requests
    whose hold ended in ``(after, before]``, as ``{group: (count, example traces)}``.

    The hold ends at the request's end by reading 1, at its last query by reading 2;
    the examples are the first :data:`EXAMPLES` by when the hold ended.
    """
    if not windows:
        return {}
    listed = "\n            UNION ALL ".join(
        f"SELECT CAST({k} AS BIGINT) AS k, CAST({int(r)} AS BIGINT) AS reading, "
        f"CAST({int(a)} AS BIGINT) AS lo, CAST({int(b)} AS BIGINT) AS hi"
        for k, (r, a, b) in enumerate(windows)
    )
    rows = _query(
        run,
        _GROUPED
        + f""",
        win AS ({listed}),
        ended AS (
            SELECT w.k AS k, w.lo AS lo, w.hi AS hi, g.trace_id AS trace_id, g.route AS route,
                   g.method AS method, g.status AS status, g.exception AS exception,
                   g.end_ns AS end_ns,
                   CASE WHEN w.reading = 1 THEN g.end_ns ELSE g.queried_ns END AS released
            FROM grouped g CROSS JOIN win w
        )""",
        f"""
        SELECT k, route, method, status, exception, count(*) AS n,
               list(trace_id ORDER BY released, end_ns, trace_id)[1:{EXAMPLES}] AS traces
        FROM ended WHERE released > lo AND released <= hi
        GROUP BY k, route, method, status, exception
        """,
        service,
        s,
    )
    out: dict[int, dict[tuple[Any, ...], tuple[int, tuple[str, ...]]]] = {}
    for k, route, method, status, exception, n, traces in rows:
        key = _key((route, method, status, exception))
        out.setdefault(int(k), {})[key] = (int(n), tuple(str(t) for t in traces or ()))
    return out


#: the stretches of the run during which some database span ran (each ``[a, b)``): the
#: union of the DB parts' intervals, so that a moment lies in one exactly when a span ran
_DB_ISLANDS_SQL = """
SELECT min(a) AS a, max(b) AS b FROM (
    SELECT a, b, sum(new) OVER (ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS island
    FROM (SELECT a, b,
                 CASE WHEN a <= max(b) OVER (ORDER BY a, b ROWS BETWEEN UNBOUNDED PRECEDING
                                                                AND 1 PRECEDING)
                      THEN 0 ELSE 1 END AS new
          FROM {parts} WHERE category = 'db' AND b > a) AS d
) AS i
GROUP BY island
"""


def _db_islands(run: Run) -> str:
    """The run's table of :data:`_DB_ISLANDS_SQL`, made on first use: the same for every
    service, and a few rows where the spans are many."""
    name = run.table("db_islands")
    made = run.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
    ).fetchone()
    if not made or not made[0]:
        run.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS "
            + _DB_ISLANDS_SQL.format(parts=run.table("parts"))
        )
    return name


def idle_waits(
    run: Run, service: str, s: PoolSettings, *, after_ns: int | None, from_index: int
) -> tuple[int, int]:
    """(waits, waits with no database span running anywhere) among the waits that start
    after ``after_ns`` (any, if None) and are ``from_index``-th or later in time order."""
    islands = _db_islands(run)
    probes = f"""
        dbs AS (SELECT a, b FROM {islands}),
        ordered AS (
            SELECT t, row_number() OVER (ORDER BY t) - 1 AS i FROM waits
        ),
        running AS (
            SELECT t, k, i,
                   sum(d) OVER (ORDER BY t, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       AS n
            FROM (
                SELECT a AS t, 0 AS k, -1 AS i, 1 AS d FROM dbs
                UNION ALL SELECT b AS t, 0 AS k, -1 AS i, -1 AS d FROM dbs
                UNION ALL SELECT t, 1 AS k, i, 0 AS d FROM ordered
            ) AS e
        )"""
    after = "" if after_ns is None else "AND t > $after"
    (row,) = _query(
        run,
        probes,
        f"""
        SELECT count(*), count(*) FILTER (WHERE n <= 0) FROM running
        WHERE k = 1 AND i >= $from_index {after}
        """,
        service,
        s,
        from_index=from_index,
        **({} if after_ns is None else {"after": after_ns}),
    )
    return int(row[0] or 0), int(row[1] or 0)


def emptied(run: Run, service: str, s: PoolSettings) -> tuple[int, int, int]:
    """(waits that are a pool's own errors rather than checkout spans, the most requests
    that surely held a connection at once before the first wait — from their first query,
    all a pool without checkout spans shows of a checkout, to their last: a request past
    giving its connection back is not counted to its end — and the requests that had one
    after it)."""
    probes = """
        first AS (SELECT min(t) AS t0 FROM waits),
        probes AS (
            SELECT acquired_ns AS t FROM holders WHERE acquired_ns < (SELECT t0 FROM first)
        ),
        {held}"""
    (row,) = _query(
        run,
        probes,
        """
        SELECT (SELECT count(*) FROM co WHERE status_code = 'ERROR' AND NOT spanned),
               (SELECT max(h2) FROM held),
               (SELECT count(*) FROM holders WHERE acquired_ns > (SELECT t0 FROM first))
        """,
        service,
        s,
    )
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def drained(run: Run, service: str, s: PoolSettings) -> tuple[int, int, int, int]:
    """(waits after the last request that got a connection, the windows they fall in, the
    seconds they span, the most requests that surely held a connection at once before them,
    as :func:`emptied` counts them)."""
    probes = """
        last AS (SELECT max(acquired_ns) AS t1 FROM holders),
        probes AS (SELECT acquired_ns AS t FROM holders),
        {held},
        tail AS (SELECT t FROM waits WHERE t > (SELECT t1 FROM last))"""
    (row,) = _query(
        run,
        probes,
        """
        SELECT (SELECT count(*) FROM tail),
               (SELECT count(DISTINCT t // $width) FROM tail),
               (SELECT max(t) - min(t) FROM tail),
               (SELECT max(h2) FROM held)
        """,
        service,
        s,
        width=max(round(s.window_s * 1e9), 1),
    )
    return int(row[0] or 0), int(row[1] or 0), round((row[2] or 0) / 1e9), int(row[3] or 0)


def _key(values: Sequence[Any]) -> tuple[Hashable, ...]:
    route, method, status, exception = values
    return (
        str(route),
        None if method is None else str(method),
        None if status is None else int(status),
        None if exception is None else str(exception),
    )
