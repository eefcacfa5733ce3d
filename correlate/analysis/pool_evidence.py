"""What the pool's metrics and the database's own view say about a pool under pressure.

Two pieces of evidence beside the checkout spans (rules: docs/rules.md#pool_leak):

- :func:`used_at_max_idle`: pool samples (OpenTelemetry pool metrics or
  ``correlate.instrument``) in which every connection was in use while no
  database span ran since the sample before: connections held, the database
  idle. Saturated pools run queries on their connections; a leak's do not.
- :func:`held_sessions`: from ``correlate watch``, the service's sessions that
  sat ``idle`` or ``idle in transaction`` far longer than any request took
  (a connection held by no running request), and how many were ``active``
  at once (saturation: the connections busy with queries).

And :func:`instrument_leaks`: the leak suspects ``correlate.instrument`` recorded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from correlate.analysis.findings import Finding
from correlate.routes import route_sql

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.run import Run


#: ``s(t, used, capacity)``: at every time any pool reported, the sum over every pool of
#: every process of its latest sample (processes export at times of their own: summing
#: only the samples taken at one instant would see one process at a time).
_LEVELS = """
    times AS (SELECT DISTINCT time_unix_nano AS t FROM pool_samples WHERE run_id = $run),
    series AS (SELECT DISTINCT pid, pool FROM pool_samples WHERE run_id = $run),
    s AS (
        SELECT times.t, sum(p.checked_out) AS {used}, sum(p.capacity) AS capacity
        FROM times CROSS JOIN series
        ASOF JOIN (SELECT * FROM pool_samples WHERE run_id = $run) p
          ON p.pid = series.pid AND p.pool = series.pool AND p.time_unix_nano <= times.t
        GROUP BY times.t
    )"""

#: ``ov_found(id, n)``: for each probe ``(id, lo, hi)`` of ``ov_probes`` (``lo <= hi``), how
#: many intervals ``(a, b)`` of ``ov_spans`` have ``a <= hi`` and ``b >= lo``. A sweep, not a
#: join: with ``a <= b``, those are the intervals begun by ``hi`` less those ended before
#: ``lo``, counted in one pass over the starts, ends and probes in time order (a probe at
#: ``lo`` reads the ends before it, one at ``hi`` the starts up to it). Intervals the wrong
#: way round (``a > b``: a span outside its request, clipped to it) are few and joined.
_OVERLAPS = """
    ov_events AS (
        SELECT a AS x, 0 AS k, 1 AS da, 0 AS db, CAST(NULL AS BIGINT) AS id, 0 AS side
        FROM ov_spans WHERE a <= b
        UNION ALL
        SELECT b AS x, 1 AS k, 0 AS da, 1 AS db, CAST(NULL AS BIGINT) AS id, 0 AS side
        FROM ov_spans WHERE a <= b
        UNION ALL SELECT lo AS x, 0 AS k, 0 AS da, 0 AS db, id, 1 AS side FROM ov_probes
        UNION ALL SELECT hi AS x, 1 AS k, 0 AS da, 0 AS db, id, 2 AS side FROM ov_probes
    ),
    ov_swept AS (
        SELECT id, side,
               sum(da) OVER (ORDER BY x, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS begun,
               sum(db) OVER (ORDER BY x, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                   AS ended
        FROM ov_events
    ),
    ov_counts AS (
        SELECT id,
               sum(CASE WHEN side = 2 THEN CAST(begun AS BIGINT) ELSE -CAST(ended AS BIGINT) END)
                   AS n
        FROM ov_swept WHERE side > 0 GROUP BY id
        UNION ALL
        SELECT p.id AS id, count(*) AS n
        FROM ov_probes p CROSS JOIN (SELECT a, b FROM ov_spans WHERE a > b) AS i
        WHERE i.a <= p.hi AND i.b >= p.lo
        GROUP BY p.id
    ),
    ov_found AS (SELECT id, sum(n) AS n FROM ov_counts GROUP BY id)"""


def used_at_max_idle(run: Run, s: PoolSettings) -> dict[str, Any] | None:
    """Samples with ``used`` at the pool's maximum and no DB span since the last sample.

    The maximum is the pool's capacity where the samples give it, else the most
    connections ever seen in use. Stretches are cut to the run's time (its requests).
    None without samples or without such a stretch.
    """
    parts = run.table("parts")
    rows = run.con.execute(
        f"""
        WITH {_LEVELS.format(used="used")},
        c AS (SELECT coalesce(max(capacity), max(used)) AS ceiling FROM s),
        w AS (SELECT t, used, lag(t) OVER (ORDER BY t) AS prev FROM s),
        ov_spans AS (SELECT a, b FROM {parts} WHERE category = 'db'),
        ov_probes AS (SELECT t AS id, prev AS lo, t AS hi FROM w WHERE prev IS NOT NULL),
        {_OVERLAPS}
        SELECT w.prev, w.t, w.used, c.ceiling, coalesce(o.n, 0) AS queries
        FROM w CROSS JOIN c LEFT JOIN ov_found o ON o.id = w.t
        WHERE w.prev IS NOT NULL ORDER BY w.t
        """,
        {"run": run.run_id},
    ).fetchall()
    if not rows or not rows[0][3]:
        return None
    ceiling = int(rows[0][3])
    stretches: list[tuple[int, int]] = []
    for prev, t, used, _, queries in rows:
        if used >= ceiling and queries == 0:
            if stretches and stretches[-1][1] == prev:
                stretches[-1] = (stretches[-1][0], t)
            else:
                stretches.append((prev, t))
    # metrics go on being exported before and after the load: only the run's time counts
    start, end = run.span
    stretches = [(max(a, start), min(b, end)) for a, b in stretches if min(b, end) > max(a, start)]
    if not stretches:
        return None
    total = sum(b - a for a, b in stretches) / 1e9
    longest = max(stretches, key=lambda ab: ab[1] - ab[0])
    if total < s.min_idle_at_max_s:
        return None
    return {
        "ceiling": ceiling,
        "seconds": total,
        "first_at_s": (stretches[0][0] - start) / 1e9,
        "longest_s": (longest[1] - longest[0]) / 1e9,
        "longest_from_s": (longest[0] - start) / 1e9,
        "stretches": len(stretches),
        "from_metrics": _from_metrics(run),
    }


def _from_metrics(run: Run) -> bool:
    (n,) = run.con.execute(
        "SELECT count(*) FROM pool_samples WHERE run_id = ? AND pool_class LIKE 'otel %'",
        [run.run_id],
    ).fetchone() or (0,)
    return bool(n)


def idle_at_max_sentence(e: dict[str, Any]) -> str:
    """The evidence of :func:`used_at_max_idle`, in words."""
    source = "the pool metrics" if e["from_metrics"] else "the pool samples"
    return (
        f"{source} show all {e['ceiling']} connections in use while no query ran anywhere "
        f"(the database idle) for {e['seconds']:.0f} s of the run, from {e['first_at_s']:.0f} s "
        f"on (longest stretch {e['longest_s']:.0f} s from {e['longest_from_s']:.0f} s)"
    )


def service_sessions_sql() -> str:
    """SQL condition on ``db_activity`` (takes ``$run``): the service's sessions, client
    backends of the watched database (the server may hold others) that ran one of the run's
    statements at some sample, where the samples can tell (a psql left in a transaction on
    the same database is not the service's)."""
    return """
        run_id = $run AND coalesce(backend_type, 'client backend') = 'client backend'
        AND (database IS NULL OR database IN (
            SELECT regexp_extract(url, '/([^/?]+)(\\?|$)', 1) FROM db_watch WHERE run_id = $run)
          OR NOT EXISTS (SELECT 1 FROM db_watch WHERE run_id = $run
                         AND regexp_extract(url, '/([^/?]+)(\\?|$)', 1) <> ''))
        AND (session_id IN (SELECT session_id FROM db_activity
                            WHERE run_id = $run AND fingerprint IN (
                                SELECT fingerprint FROM statements WHERE run_id = $run))
          OR NOT EXISTS (SELECT 1 FROM db_activity a JOIN statements t
                         ON t.run_id = $run AND t.fingerprint = a.fingerprint
                         WHERE a.run_id = $run))
    """


def held_floor_ns(run: Run, s: PoolSettings) -> int | None:
    """How long (ns) a session idle in transaction has sat to be held beyond every request:
    ``held_factor`` times the longest request, and ``min_held_s``. None without ``correlate
    watch`` samples in the run."""
    if not _watch_samples(run):
        return None
    return _floor(_longest_request_ms(run), s)


def _watch_samples(run: Run) -> int:
    (samples,) = run.con.execute(
        "SELECT count(*) FROM db_samples WHERE run_id = ? AND error IS NULL", [run.run_id]
    ).fetchone() or (0,)
    return int(samples)


def _longest_request_ms(run: Run) -> float:
    (longest,) = run.con.execute(
        f"SELECT coalesce(max(duration_ms), 0) FROM {run.table('requests')}"
    ).fetchone() or (0.0,)
    return float(longest)


def _floor(longest_request_ms: float, s: PoolSettings) -> int:
    return round(max(longest_request_ms * 1e6 * s.held_factor, s.min_held_s * 1e9))


def held_sessions(run: Run, s: PoolSettings) -> dict[str, Any] | None:
    """The database's sessions held idle beyond every request, and the most active at once.

    None without ``correlate watch`` samples in the run.
    """
    samples = _watch_samples(run)
    if not samples:
        return None
    longest_request_ms = _longest_request_ms(run)
    floor_ns = _floor(longest_request_ms, s)
    mine = service_sessions_sql()
    held = run.con.execute(
        f"""
        SELECT count(DISTINCT session_id), max(state_age_ns) / 1e9,
               string_agg(DISTINCT nullif(application, ''), ', '),
               string_agg(DISTINCT coalesce(regexp_replace(client, ':[0-9]+$', ''), 'a local socket'), ', '),
               (min(time_unix_nano) - $start) / 1e9
        FROM db_activity
        WHERE {mine} AND activity = 'idle_in_transaction' AND state_age_ns >= $floor
        """,
        {"run": run.run_id, "floor": floor_ns, "start": run.span[0]},
    ).fetchone() or (0, None, None, None, None)
    (active_max, active_mean) = run.con.execute(
        f"""
        SELECT max(n), avg(n) FROM (
            SELECT sample, count(*) FILTER (WHERE activity = 'active') AS n
            FROM db_activity WHERE {mine} GROUP BY sample)
        """,
        {"run": run.run_id},
    ).fetchone() or (0, 0.0)
    (kinds,) = run.con.execute(
        "SELECT string_agg(DISTINCT database, ',') FROM db_watch WHERE run_id = $run",
        {"run": run.run_id},
    ).fetchone() or (None,)
    return {
        "samples": int(samples),
        "database_kinds": kinds,
        "longest_request_s": float(longest_request_ms) / 1e3,
        "held_sessions": int(held[0] or 0),
        "longest_held_s": float(held[1] or 0.0),
        "held_applications": held[2],
        "held_clients": held[3],
        "first_held_at_s": held[4],
        "active_max": int(active_max or 0),
        "active_mean": float(active_mean or 0.0),
    }


def held_sentence(e: dict[str, Any]) -> str:
    """The leak's side of :func:`held_sessions`, in words."""
    n = e["held_sessions"]
    return (
        f"the database saw {n} session{'s' if n != 1 else ''} of the service sit idle in "
        f"transaction for up to {e['longest_held_s']:.0f} s, far longer than any request took "
        f"({e['longest_request_s']:.1f} s at most), from {e['first_held_at_s']:.0f} s into the "
        f"run on ({_who(e)})"
    )


def _who(e: dict[str, Any]) -> str:
    apps = e["held_applications"]
    if apps:
        return f"client {e['held_clients']}, application_name {apps}"
    if "postgresql" not in (e.get("database_kinds") or "postgresql"):
        return f"client {e['held_clients']}"  # MariaDB and MySQL have no application name
    return f"client {e['held_clients']}, no application_name set"


def active_sentence(e: dict[str, Any]) -> str:
    """The saturation's side of :func:`held_sessions`, in words."""
    head = (
        f"The database saw up to {e['active_max']} of the service's sessions active at once "
        f"({e['active_mean']:.1f} on average over {e['samples']} samples)"
    )
    n = e["held_sessions"]
    if not n:
        return (
            f"{head} and none held idle beyond a request: the connections were busy with queries."
        )
    # sessions held idle while the pool's capacity held: another client's, not this pool's
    return (
        f"{head}. {n} session{'s' if n != 1 else ''} of the database sat idle in transaction for "
        f"up to {e['longest_held_s']:.0f} s, longer than any request took ({_who(e)}), yet the "
        "pool shows no leak: these are not connections it lost; find what opened "
        f"{'them' if n != 1 else 'it'} (an idle transaction still holds its locks)."
    )


def cite_database_view(
    finding: Finding, idle: dict[str, Any] | None, held: dict[str, Any] | None
) -> Finding:
    """The leak finding, citing the pool metrics' and the database's decisive evidence."""
    said = []
    if idle:
        finding.evidence["used_at_max_while_database_idle"] = idle
        said.append(idle_at_max_sentence(idle))
    if held:
        finding.evidence["database_sessions"] = held
        said.append(held_sentence(held))
    if said:
        text = "; ".join(said)
        return replace(
            finding, explanation=f"{finding.explanation} Decisive: {text[0].upper()}{text[1:]}."
        )
    return finding


def orphans_in_samples(run: Run, s: PoolSettings) -> dict[str, Any] | None:
    """Connections checked out beyond the requests that could hold them, per pool sample."""
    reqs = run.table("requests")
    rows = run.con.execute(
        f"""
        WITH {_LEVELS.format(used="checked_out")},
        ov_spans AS (SELECT start_ns AS a, end_ns AS b FROM {reqs}),
        ov_probes AS (SELECT t AS id, t - $slack AS lo, t + $slack AS hi FROM s),
        {_OVERLAPS}
        SELECT s.t, s.checked_out, s.capacity, coalesce(o.n, 0) AS in_flight
        FROM s LEFT JOIN ov_found o ON o.id = s.t ORDER BY s.t
        """,
        {"run": run.run_id, "slack": round(s.sample_slack_s * 1e9)},
    ).fetchall()
    if not rows:
        return None
    orphaned = [max(co - fl, 0) for _, co, _, fl in rows]
    start = run.span[0]
    full_at = next(
        ((t - start) / 1e9 for t, co, cap, fl in rows if cap and co >= cap and fl < cap), None
    )
    return {
        "at_end": orphaned[-1],
        "max": max(orphaned),
        "checked_out_at_end": rows[-1][1],
        "in_flight_at_end": rows[-1][3],
        "capacity": rows[-1][2],
        "full_without_demand_at_s": full_at,
    }


def no_recovery(timeline: pd.DataFrame, s: PoolSettings) -> dict[str, float] | None:
    """Spans-only evidence: the load fell but the wait did not."""
    t = timeline[timeline.requests > 0]
    if len(t) < 6 or t.pool_ms.max() <= s.min_wait_ms:
        return None
    load = t.users if t.users.notna().any() else t.in_flight
    last = t.iloc[-(len(t) // 3) :]
    peak_load, last_load = float(load.max()), float(load.iloc[-(len(t) // 3) :].mean())
    peak_wait, last_wait = float(t.pool_ms.max()), float(last.pool_ms.mean())
    if last_load <= s.recovery_load * peak_load and last_wait >= s.recovery_wait * peak_wait:
        return {
            "peak_load": peak_load,
            "final_load": last_load,
            "peak_wait_ms": peak_wait,
            "final_wait_ms": last_wait,
        }
    return None


def instrument_leaks(run: Run) -> list[dict[str, Any]]:
    """The leak suspects ``correlate.instrument`` recorded, per route, code line and pool,
    with their requests' statuses, a few traces, and whether each connection came back."""
    reqs, tree = run.table("requests"), run.table("tree")
    rows = run.con.execute(
        f"""
        -- the route recorded is its request's http.route: named as the request's route is
        -- (correlate.analysis.requests), by the request span's scope and, in a run of
        -- several services, with its service; a request not in the run adds neither
        SELECT CASE WHEN r.rh IS NOT NULL
                         AND (SELECT count(DISTINCT service) FROM {reqs}) > 1
                    THEN coalesce(r.service, '?') || ' ' || {route_sql("l.route", "t.scope_name")}
                    ELSE {route_sql("l.route", "t.scope_name")} END AS route,
               l.location, l.pool, count(*) AS n,
               avg(l.held_ns) / 1e6 AS held_ms,
               list(DISTINCT r.http_status) FILTER (WHERE r.http_status IS NOT NULL) AS statuses,
               list(l.trace_id)[1:3] AS traces, min(l.detected_unix_nano) AS first_ns,
               -- whether the instrument saw the connection come back before the run ended
               count(*) FILTER (WHERE c.acquired_unix_nano IS NOT NULL
                                AND c.returned_unix_nano IS NULL) AS never_returned,
               count(c.acquired_unix_nano) AS tracked
        FROM pool_leaks l
        LEFT JOIN {reqs} r ON r.trace_id = l.trace_id AND r.request_id = l.request_span_id
        LEFT JOIN {tree} t ON t.th = r.th AND t.sh = r.rh
        LEFT JOIN pool_checkouts c
          ON c.run_id = l.run_id AND c.pid = l.pid AND c.pool = l.pool
         AND c.acquired_unix_nano = l.checked_out_unix_nano
        WHERE l.run_id = $run
        GROUP BY ALL ORDER BY n DESC
        """,
        {"run": run.run_id},
    ).fetchall()
    keys = (
        "route",
        "location",
        "pool",
        "count",
        "held_ms",
        "statuses",
        "traces",
        "first_ns",
        "never_returned",
        "tracked",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]
