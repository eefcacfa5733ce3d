"""Which requests left a connection held, for pools that make no checkout span.

A pool that makes no span (psycopg2's, knex, HikariCP, …) shows when it ran dry
(:mod:`correlate.analysis.pool_errors`), not who kept its connections. Two signals the
standard data already holds name them (rules: docs/rules.md#pool_leak):

- :func:`unended_transactions`: a request that began a transaction (``BEGIN``, ``START
  TRANSACTION``) and ended with no ``COMMIT`` or ``ROLLBACK`` after it left its connection
  checked out, its transaction open and its locks held. The statements are the stock
  database spans of any language; each is counted once, by the innermost span recording it
  (knex wraps the driver's span in one of its own).
- :func:`matched_sessions`: ``correlate watch`` saw a session of the service sit idle in
  transaction beyond every request; its last statement began at a known moment, on the
  server's clock, and the database span of the same statement that began then (within
  ``match_ms``) is the request that left it so.

Either names a request group (route, method, status, exception) as the leak's
(:class:`Suspects`), with its traces; :func:`suspects` reads the database's sessions first
(a session held is the leak itself), then the transactions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from correlate.analysis.findings import ms
from correlate.analysis.pool_evidence import held_floor_ns, service_sessions_sql
from correlate.analysis.pool_inference import Group
from correlate.analysis.pool_pressure import LOST_CONNECTION, lost_connection_sql
from correlate.analysis.requests import family_sql

if TYPE_CHECKING:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.run import Run

#: A statement that begins a transaction (normalised text, upper case): ``BEGIN``,
#: ``BEGIN TRANSACTION``/``TRAN``/``WORK``, ``BEGIN ISOLATION LEVEL …``, SQLite's ``BEGIN
#: IMMEDIATE``, ``START TRANSACTION`` (and MySQL's ``… WITH CONSISTENT SNAPSHOT``). Not a
#: PL/SQL ``BEGIN … END`` block; not ``XA START`` (a distributed branch is not this
#: connection's to end).
BEGIN_RE = (
    r"^(BEGIN|START TRANSACTION)"
    r"( (WORK|TRANSACTION|TRAN|ISOLATION|READ|DEFERRABLE|NOT|DEFERRED|IMMEDIATE|EXCLUSIVE"
    r"|DISTRIBUTED|WITH)\b[^;]*)?;?$"
)
#: A statement that ends it and frees the connection: ``COMMIT``, ``ROLLBACK`` (``END`` and
#: ``ABORT`` normalise to these), with ``WORK``/``TRANSACTION`` or ``AND [NO] CHAIN``, and
#: PostgreSQL's ``PREPARE TRANSACTION`` (two-phase: the prepared transaction leaves the
#: session). Not ``ROLLBACK TO SAVEPOINT`` nor ``RELEASE``: a savepoint ends nothing.
END_RE = (
    r"^((COMMIT|ROLLBACK)( (WORK|TRANSACTION|TRAN))?( AND (NO )?CHAIN)?"
    r"|PREPARE TRANSACTION\b.*);?$"
)

#: example traces kept
EXAMPLES = 3


@dataclass(frozen=True)
class Suspects:
    """Requests that left their connection held, and the group most of them are."""

    #: ``"unended transactions"`` or ``"database sessions"``
    source: str
    service: str | None
    #: the group most suspects are, when they concentrate on one route (else None)
    group: Group | None
    #: suspects in ``group``, and in all
    count: int
    total: int
    traces: tuple[str, ...] = ()
    #: the source's own numbers, for the finding's evidence
    detail: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        g = self.group
        return {
            "source": self.source,
            "service": self.service,
            "route": g.route if g else None,
            "method": g.method if g else None,
            "status": g.status if g else None,
            "exception": g.exception if g else None,
            "suspects": self.total,
            "of_the_route": self.count,
            **self.detail,
        }

    def sentence(self) -> str:
        """``'3 requests began a transaction and ended without …: all 3 POST /checkout …'``."""
        who = self.group.describe() if self.group else ""
        which = (
            "no one route holds most of them"
            if self.group is None
            else f"{self.count} of them are {who}"
            if self.count < self.total
            else f"it is {who}"
            if self.total == 1
            else f"both are {who}"
            if self.total == 2
            else f"all {self.total} are {who}"
        )
        if self.source == "database sessions":
            n = self.detail["held"]
            return (
                f"of the {n} session{'s' if n != 1 else ''} the database saw held idle in "
                f"transaction, {self.total} last ran a statement that a request began at the "
                f"same moment (within {self.detail['tolerance_ms']:.0f} ms), and {which}"
            )
        n = self.total
        return (
            f"{n} request{'s' if n != 1 else ''} began a database transaction and ended "
            f"without committing or rolling it back, leaving {'their' if n != 1 else 'its'} "
            f"connection checked out with the transaction open (of {self.detail['began']} "
            f"requests that began one), and {which}"
        )


def suspects(run: Run, s: PoolSettings) -> Suspects | None:
    """The database's held sessions matched to requests, else the unended transactions,
    whichever names a group; None when neither does."""
    found = [matched_sessions(run, s), unended_transactions(run, s)]
    return next((f for f in found if f is not None and f.group is not None), None)


def decisive(
    run: Run, found: Suspects | None, s: PoolSettings
) -> tuple[bool, tuple[float, float] | None]:
    """Whether ``found`` makes the pool's story a leak, and the latency rise that lets it
    stand alone (no pool wait seen: a pool without checkout spans hides its waits in
    application time).

    Sessions the database held, matched to one route, are the leak itself; unended
    transactions count from ``min_unended``. Alone, they need the service's median latency
    to have risen ``latency_rise`` times from the run's first third to its last.
    """
    if found is None or found.group is None:
        return False, None
    if found.source == "unended transactions" and found.total < s.min_unended:
        return False, None
    rise = latency_rise(run, found.service)
    if rise is None or rise[1] < s.latency_rise * rise[0]:
        return True, None
    return True, rise


def rise_sentence(rise: tuple[float, float]) -> str:
    """What the leak cost where no pool wait is seen, in words."""
    return (
        "No span covers the wait for a connection, so it counts as application time: the "
        f"median request took {ms(rise[0])} in the run's first third and {ms(rise[1])} in its "
        "last, while the leaked connections stayed out of the pool"
    )


def unended_transactions(run: Run, s: PoolSettings) -> Suspects | None:
    """Requests whose last transaction began and never ended, in the service with most.

    A transaction counts as ended by a ``COMMIT``/``ROLLBACK`` in the same trace and
    service after the ``BEGIN``, whoever ran it (a span outside the request, or one that
    outlived it). Not suspects: requests ending within ``end_grace_s`` of the run's end (cut
    by it); requests cut short by a database that stopped answering (for their last
    ``min_stall_ms`` no call of theirs nor of their service to that database ended: the
    statement they sent after the ``BEGIN`` never came back, docs/rules.md#database_stall),
    unless they answered an error status of their own; and any in a service
    whose spans show no transaction ending at all (its driver records ``BEGIN`` but not how
    it ends). No group when the service recorded as many ends
    where no transaction began (in a request beyond its begins, or in none): those are
    other requests' ends. None without a suspect.
    """
    tree, owner, reqs = run.table("tree"), run.table("owner"), run.table("requests")
    parts = run.table("parts")
    fps = run.table("fingerprints")
    rows = run.con.execute(
        f"""
        WITH shapes AS (
            -- each statement shape read once, not once per span
            SELECT fingerprint,
                   CASE WHEN regexp_matches(n, $begin) THEN 1
                        WHEN regexp_matches(n, $end) THEN -1 END AS kind
            FROM (SELECT DISTINCT fingerprint, upper(trim(normalized)) AS n
                  FROM statements WHERE run_id = $run) AS st
        ),
        marks AS (
            SELECT t.th, t.sh, t.service, t.start_ns, k.kind,
                   {family_sql("t.db_system")} AS family
            FROM {tree} t
            JOIN {fps} f ON f.db_system IS NOT DISTINCT FROM t.db_system AND f.qh = t.qh
            JOIN shapes k ON k.fingerprint = f.fingerprint AND k.kind IS NOT NULL
            -- the innermost record of the statement: a wrapper's span holds the driver's
            WHERE NOT EXISTS (SELECT 1 FROM {tree} c
                              WHERE c.th = t.th AND c.ph = t.sh AND c.has_statement)
        ),
        began AS (
            SELECT o.th, o.rh, max(m.start_ns) AS last_begin,
                   coalesce(arg_max(m.family, m.start_ns), '') AS family
            FROM marks m JOIN {owner} o ON o.th = m.th AND o.sh = m.sh
            WHERE m.kind = 1 GROUP BY o.th, o.rh
        ),
        last_answer AS (
            -- each such request's last call that ended (query, checkout or outgoing call)
            SELECT b.th, b.rh, coalesce(r.service, '') AS svc, b.family, r.end_ns,
                   max(p.end_ns) AS last_ns
            FROM began b JOIN {reqs} r ON r.th = b.th AND r.rh = b.rh
            JOIN {parts} p ON p.th = b.th AND p.rh = b.rh
            WHERE p.span_id IS NOT NULL AND p.category IN ('db', 'pool', 'downstream')
              -- its own answer (an error status: 402, 409, 500), not its client giving
              -- up (Node's 200, or none): a leak's early return, as pool_stalled reads it
              AND coalesce(r.http_status, 0) < 400
            GROUP BY b.th, b.rh, r.service, b.family, r.end_ns
        ),
        answered AS (
            -- the calls of the service to the transaction's database that ended: Redis
            -- answering tells nothing of a PostgreSQL that stopped
            SELECT p.th, p.rh, coalesce(r.service, '') AS svc,
                   coalesce({family_sql("p.db_system")}, '') AS family, p.end_ns
            FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
            WHERE p.category = 'db' AND p.span_id IS NOT NULL
        ),
        heard AS (
            -- when the service last heard from that database, at each such request's end:
            -- one ordered pass (an ASOF join here is planned as a nested loop on a low
            -- estimate of its requests, and takes the square of the run's time)
            SELECT th, rh, kind, t_ns, last_ns,
                   max(CASE WHEN kind = 0 THEN t_ns END) OVER (
                       PARTITION BY svc, family ORDER BY t_ns, kind
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS answered_ns
            FROM (SELECT th, rh, svc, family, end_ns AS t_ns, 1 AS kind, last_ns
                  FROM last_answer
                  UNION ALL
                  SELECT th, rh, svc, family, end_ns, 0, end_ns FROM answered) AS e
        ),
        hung AS (
            -- cut short by a database that stopped answering, not left open: for its last
            -- min_stall it waited for a call that never ended (the statement it sent next,
            -- its COMMIT among them), and no call of its service to that database ended
            SELECT th, rh FROM heard
            WHERE kind = 1
              AND t_ns - greatest(last_ns, coalesce(answered_ns, last_ns)) >= $min_stall
        ),
        per AS (
            SELECT r.service, r.trace_id, r.request_id, r.route, r.method, r.http_status,
                   r.end_ns,
                   NOT EXISTS (SELECT 1 FROM marks e
                               WHERE e.th = b.th AND e.kind = -1
                                 -- a service name never NULL here: ClickHouse's
                                 -- correlated subquery matches no row to an outer NULL
                                 AND coalesce(e.service, '') = r.svc
                                 AND e.start_ns >= b.last_begin)
                   -- a statement after the BEGIN whose connection broke: the pool discards
                   -- that connection, no ROLLBACK can follow, and nothing is held
                   AND NOT EXISTS (SELECT 1 FROM spans x
                                   WHERE x.run_id = $run AND x.trace_id = r.trace_id
                                     AND x.start_ns >= b.last_begin
                                     AND {lost_connection_sql("x")})
                   AND h.th IS NULL AS open
            FROM began b
            JOIN (SELECT *, coalesce(service, '') AS svc FROM {reqs}) AS r
              ON r.th = b.th AND r.rh = b.rh
            LEFT JOIN hung h ON h.th = b.th AND h.rh = b.rh
        ),
        ended AS (
            SELECT coalesce(service, '') AS svc, count(*) AS n FROM marks WHERE kind = -1
            GROUP BY 1
        ),
        counted AS (
            SELECT m.service, o.th, o.rh,
                   CAST(sum(CASE WHEN m.kind = 1 THEN 1 ELSE 0 END) AS BIGINT) AS begins,
                   CAST(sum(CASE WHEN m.kind = -1 THEN 1 ELSE 0 END) AS BIGINT) AS ends
            FROM marks m LEFT JOIN {owner} o ON o.th = m.th AND o.sh = m.sh
            GROUP BY m.service, o.th, o.rh
        ),
        stray AS (
            -- ends beyond a request's begins, or in no request: another request's
            SELECT coalesce(service, '') AS svc,
                   sum(CASE WHEN rh IS NULL THEN ends WHEN ends > begins THEN ends - begins
                            ELSE CAST(0 AS BIGINT) END) AS n
            FROM counted GROUP BY 1
        )
        SELECT p.service, p.trace_id, p.route, p.method, p.http_status,
               (list_filter(s.events, lambda e: e.name = 'exception')[1]).attributes
                   ->>'$."exception.type"' AS exception,
               p.open AND p.end_ns <= $cut AS suspect, coalesce(e.n, 0) AS ends,
               coalesce(x.n, 0) AS stray
        FROM per p
        LEFT JOIN ended e ON e.svc = coalesce(p.service, '')
        LEFT JOIN stray x ON x.svc = coalesce(p.service, '')
        LEFT JOIN spans s ON s.run_id = $run AND s.trace_id = p.trace_id
             AND s.span_id = p.request_id
        ORDER BY p.end_ns
        """,
        {
            "run": run.run_id,
            "begin": BEGIN_RE,
            "end": END_RE,
            "lost": LOST_CONNECTION,
            "cut": run.span[1] - round(s.end_grace_s * 1e9),
            "min_stall": round(s.min_stall_ms * 1e6),
        },
    ).fetchall()
    began: Counter[str | None] = Counter(r[0] for r in rows)
    cands = [r for r in rows if r[6] and r[7] > 0]
    if not cands:
        return None
    service = Counter(r[0] for r in cands).most_common(1)[0][0]
    mine = [(Group(str(r[2]), r[3], r[4], r[5]), r[1]) for r in cands if r[0] == service]
    group, count = _concentrated([g for g, _ in mine], s)
    if len(mine) > s.max_unended_share * began[service]:
        group = None  # most transactions never end: the ends are not recorded, not leaked
    stray = int(next(r[8] for r in cands if r[0] == service))
    if stray >= len(mine):
        # as many ends recorded where no transaction began (a pool that runs a queued
        # caller's statements in the releasing request's trace): each may be a suspect's
        group = None
    return Suspects(
        "unended transactions",
        service,
        group,
        count,
        len(mine),
        tuple(t for g, t in mine if group is None or _within(g, group))[:EXAMPLES],
        {"began": began[service], "ended_elsewhere": stray},
    )


def matched_sessions(run: Run, s: PoolSettings) -> Suspects | None:
    """The service's sessions held idle in transaction, each matched to the request that
    began its last statement; None without ``correlate watch`` sessions held.

    The statement began at ``query_start`` on the server's clock; the sample says how the
    server's clock stood against the watcher's (``time_unix_nano`` and
    ``server_time_unix_nano`` of one moment), and the watcher's clock is the service's on
    one host. A session matches when one request's database span of the same statement
    began within ``match_ms`` of that moment and every other request's such span began at
    least four times further from it.
    """
    floor = held_floor_ns(run, s)
    if floor is None:
        return None
    tol = round(s.match_ms * 1e6)
    parts, reqs = run.table("parts"), run.table("requests")
    rows = run.con.execute(
        f"""
        WITH held AS (
            SELECT session_id,
                   arg_max(query_start_unix_nano + (time_unix_nano - server_time_unix_nano),
                           time_unix_nano) AS at_ns,
                   arg_max(fingerprint, time_unix_nano) AS fingerprint
            FROM db_activity
            WHERE {service_sessions_sql()} AND activity = 'idle_in_transaction'
              AND state_age_ns >= $floor
            GROUP BY session_id
        ),
        near AS (
            SELECT h.session_id, p.th, p.rh, min(abs(p.start_ns - h.at_ns)) AS gap
            FROM held h JOIN {parts} p
              ON p.category = 'db' AND p.fingerprint = h.fingerprint
             AND p.start_ns BETWEEN h.at_ns - 4 * $tol AND h.at_ns + 4 * $tol
            WHERE h.at_ns IS NOT NULL
            GROUP BY h.session_id, p.th, p.rh
        ),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY gap, th, rh) AS k
            FROM near
        )
        SELECT h.session_id, a.gap, b.gap, r.service, r.trace_id, r.route, r.method,
               r.http_status,
               (list_filter(s.events, lambda e: e.name = 'exception')[1]).attributes
                   ->>'$."exception.type"' AS exception
        FROM held h
        LEFT JOIN ranked a ON a.session_id = h.session_id AND a.k = 1
        LEFT JOIN ranked b ON b.session_id = h.session_id AND b.k = 2
        LEFT JOIN {reqs} r ON r.th = a.th AND r.rh = a.rh
        LEFT JOIN spans s ON s.run_id = $run AND s.trace_id = r.trace_id
             AND s.span_id = r.request_id
        ORDER BY h.session_id
        """,
        {"run": run.run_id, "floor": floor, "tol": tol},
    ).fetchall()
    if not rows:
        return None
    matched = [
        r
        for r in rows
        if r[1] is not None
        and r[1] <= tol
        and r[4] is not None
        and (r[2] is None or r[2] >= 4 * max(r[1], 1))
    ]
    matches = [
        {"session": int(r[0]), "trace_id": r[4], "gap_ms": r[1] / 1e6, "route": r[5],
         "method": r[6], "status": r[7], "exception": r[8]}
        for r in matched
    ]  # fmt: skip
    detail = {"held": len(rows), "tolerance_ms": s.match_ms, "matches": matches}
    if not matched:
        return Suspects("database sessions", None, None, 0, 0, (), detail)
    service = Counter(r[3] for r in matched).most_common(1)[0][0]
    mine = [(Group(str(r[5]), r[6], r[7], r[8]), r[4]) for r in matched if r[3] == service]
    group, count = _concentrated([g for g, _ in mine], s)
    traces = tuple(t for g, t in mine if group is None or _within(g, group))[:EXAMPLES]
    return Suspects("database sessions", service, group, count, len(mine), traces, detail)


def _concentrated(groups: list[Group], s: PoolSettings) -> tuple[Group | None, int]:
    """The route (method and route) holding at least ``route_share`` of ``groups``, with
    the status and exception all its suspects share (else None); and how many it holds."""
    if not groups:
        return None, 0
    (route, method), n = Counter((g.route, g.method) for g in groups).most_common(1)[0]
    if n < s.route_share * len(groups):
        return None, n
    of = [g for g in groups if (g.route, g.method) == (route, method)]
    statuses = {g.status for g in of}
    exceptions = {g.exception for g in of}
    return (
        Group(
            route,
            method,
            statuses.pop() if len(statuses) == 1 else None,
            exceptions.pop() if len(exceptions) == 1 else None,
        ),
        n,
    )


def _within(g: Group, group: Group) -> bool:
    """Whether ``g`` is one of ``group`` (whose status or exception may be left open)."""
    return (
        (g.route, g.method) == (group.route, group.method)
        and group.status in (None, g.status)
        and group.exception in (None, g.exception)
    )


def latency_rise(run: Run, service: str | None) -> tuple[float, float] | None:
    """The service's median request duration (ms) in the run's first and last thirds."""
    start, end = run.span
    third = (end - start) // 3
    row = run.con.execute(
        f"""
        SELECT median(duration_ms) FILTER (WHERE start_ns < $a),
               median(duration_ms) FILTER (WHERE start_ns >= $b)
        FROM {run.table("requests")} WHERE coalesce(service, '') = $service
        """,
        {"a": start + third, "b": end - third, "service": service or ""},
    ).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return None
    return float(row[0]), float(row[1])
