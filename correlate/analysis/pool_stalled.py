"""Connections held by queries that never returned: a hang, which empties a pool as a leak does.

When the database stops answering (a lock nobody releases, a stalled disk, a network
partition that closes nothing), every query in flight waits for good. A query's span ends
only when it returns, so these never reach the trace; what does is the request around
them. On Node, a client that gives up closes its socket and the request's span ends then,
its status unset or 200; on a synchronous server the request never ends at all. Either
way the connections stay checked out, and every later checkout waits and times out with
no query running anywhere: the signature :mod:`correlate.analysis.pool_inference` reads
as a leak (the capacity seen while waiting fell to nothing and did not come back).

What tells them apart is what the requests did last. A leaking path answers its request:
its queries end, then it returns without giving the connection back. A hung one took a
connection, and after that nothing ended until the request itself did, seconds later, when
its client gave up: its last checkout succeeded, and after the last query, checkout or
outgoing call that ended comes a silence of at least ``min_stall_ms``
(``pool_exhaustion.min_stall_ms``) until the request's end. When such
requests account for the pool's whole capacity, silent all at one moment, took their
connections before the pool ran dry, and none answered with an error status (a leak's early
return does), while no query the service sent after they went quiet returned (the database
answered nobody), :func:`stalled_holds` says so, and the pool finding names a hang, not a
leak. Silence alone is not enough: a path that works on after its last query (an
uninstrumented call, a render) is silent too, leak or not.

A request whose trace never ends is not a request here (it has no SERVER span); its
checkout is in the run's spans that belong to no request, which this does not read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.pool_inference import PoolInference
    from correlate.analysis.run import Run

TITLE = (
    "Connection pool held by queries that never returned: the database or the network "
    "hung, not a leak"
)
SUGGESTION = (
    "Find what the database was waiting on at that moment: a lock another session held "
    "(pg_locks and pg_blocking_pids(), SHOW PROCESSLIST), a stalled disk, or the network "
    "between the service and the database (a partition, a firewall that drops packets). Give "
    "queries a timeout (PostgreSQL's statement_timeout, node-postgres's query_timeout, the "
    "driver's read timeout) so that a hung query fails and gives its connection back."
)

_STALLED_SQL = """
WITH checkouts AS (
    -- each request's checkout spans; the last one by start is the one that decides
    SELECT th, rh, start_ns, end_ns, status_code,
           row_number() OVER (PARTITION BY th, rh ORDER BY start_ns DESC, end_ns DESC) AS k
    FROM {parts} WHERE category = 'pool' AND span_id IS NOT NULL
),
activity AS (
    -- when the last thing the request started that touches the database, or another
    -- service, reported back
    SELECT th, rh, max(end_ns) AS last_ns FROM {parts}
    WHERE category IN ('pool', 'db', 'downstream') GROUP BY th, rh
),
stalled AS (
    SELECT r.trace_id, r.route, c.end_ns AS got_ns, a.last_ns AS quiet_ns, r.end_ns,
           r.end_ns - a.last_ns AS silent_ns
    FROM checkouts c
    JOIN {reqs} r ON r.th = c.th AND r.rh = c.rh
    JOIN activity a ON a.th = c.th AND a.rh = c.rh
    -- it got its connection, and nothing it did after ended before the request did; nor
    -- did it answer with an error of its own (a leak's early return: 402, 409, 500), where
    -- a request its client gave up on ends with what it had (Node's 200) or never
    WHERE c.k = 1 AND c.status_code IS DISTINCT FROM 'ERROR'
      AND coalesce(r.http_status, 0) < 400
      AND coalesce(r.service, '') = $service
      AND r.end_ns - a.last_ns >= $min_stall
),
failed AS (
    SELECT min(p.end_ns) AS first_ns, count(*) AS n
    FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    WHERE p.category = 'pool' AND p.status_code = 'ERROR'
      AND coalesce(r.service, '') = $service
),
held AS (
    -- those that took their connection before the pool ran dry
    SELECT * FROM stalled
    WHERE got_ns < coalesce((SELECT first_ns FROM failed), 9000000000000000000)
),
edges AS (
    SELECT quiet_ns AS t, 1 AS d FROM held UNION ALL SELECT end_ns AS t, -1 AS d FROM held
),
together AS (
    -- the most of them silent at one moment: a hang stops them all at once, while a
    -- path that leaks and then works on for a while does so one request at a time
    SELECT max(n) AS n FROM (
        SELECT sum(d) OVER (ORDER BY t, d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n
        FROM edges
    )
),
answered AS (
    -- queries of the service sent well after the first of them went quiet (half the
    -- silence asked for: a statement sent just before the database stopped may have been
    -- answered) that still returned before any of them ended: the database was answering
    SELECT count(*) AS n FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    WHERE p.category = 'db' AND coalesce(r.service, '') = $service
      AND p.start_ns > (SELECT min(quiet_ns) FROM held) + $grace
      AND p.end_ns < (SELECT min(end_ns) FROM held)
)
SELECT count(*), min(got_ns), max(got_ns), quantile_cont(silent_ns, 0.5),
       count(*) FILTER (WHERE got_ns < coalesce((SELECT first_ns FROM failed), 9000000000000000000)),
       (SELECT first_ns FROM failed), (SELECT n FROM failed),
       list(trace_id ORDER BY got_ns, trace_id)[1:3],
       list(DISTINCT route ORDER BY route),
       (SELECT n FROM together), (SELECT n FROM answered)
FROM stalled
"""


@dataclass(frozen=True)
class Stalled:
    """Requests whose last checkout was followed by nothing that ended."""

    #: how many, and of them, those that took their connection before the first
    #: checkout failed
    requests: int
    before_failures: int = 0
    #: when the first and last of them got their connection (ns)
    first_ns: int | None = None
    last_ns: int | None = None
    #: the median silence from the checkout to the request's end (ns)
    silent_ns: int = 0
    #: when the first checkout failed (ns), and how many did
    first_failure_ns: int | None = None
    failures: int = 0
    traces: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    #: the most of those taken before the first failure that were silent at one moment
    at_once: int = 0
    #: queries sent after they went quiet that returned while they were silent
    answered: int = 0
    #: the rule, in the finding's words (set by :func:`hung`)
    rule: str = ""
    title: str = TITLE
    suggestion: str = SUGGESTION

    def explains(self, capacity: int, slack: int, at_least: int) -> bool:
        """Whether these holds are where the pool's connections went: taken before the
        first checkout failed, silent all at one moment, as many as its ``capacity``
        (within ``slack``) and at least ``at_least`` (the whole pool when it is smaller),
        and no more than it could hold (more silent requests than connections are a path
        that works on after its queries, not queries that never returned)."""
        need = max(min(at_least, capacity), capacity - slack, 2)
        return (
            self.first_failure_ns is not None
            and self.answered == 0
            and self.at_once >= need
            and self.before_failures <= capacity + slack
        )

    def evidence(self, run_start: int) -> dict[str, Any]:
        """The hung requests as plain values for a finding's evidence."""
        return {
            "requests": self.requests,
            "took_their_connection_before_the_first_failure": self.before_failures,
            "from_s": ((self.first_ns or run_start) - run_start) / 1e9,
            "to_s": ((self.last_ns or run_start) - run_start) / 1e9,
            "silent_at_once": self.at_once,
            "median_silence_s": self.silent_ns / 1e9,
            "failed_checkouts": self.failures,
            "routes": list(self.routes),
            "traces": list(self.traces),
        }

    def sentence(self, run_start: int) -> str:
        """Where the connections went, with the figures that show it (a sentence of its
        own, without its full stop)."""
        at = ((self.first_ns or run_start) - run_start) / 1e9
        until = ((self.last_ns or run_start) - run_start) / 1e9
        when = (
            f"At {at:.0f} s" if round(until) == round(at) else f"From {at:.0f} s to {until:.0f} s"
        )
        n = self.before_failures
        return (
            f"{when}, {n} request{'s' if n != 1 else ''} took a connection and went silent, "
            f"{self.at_once} of them at once: after the last query, checkout or call of "
            "theirs that reported back, nothing else did, and the requests themselves ended "
            f"a median {self.silent_ns / 1e9:.1f} s later, as when a client gives up waiting "
            "for an answer. That is how queries that never return look: their connections "
            "are not given back, and these were as many as the pool held; the "
            f"{self.failures} checkout{'s' if self.failures != 1 else ''} that failed came "
            "after. A leak empties a pool the same way (connections out, no query running), "
            "but its requests answer soon after their last query, one at a time"
        )


def hung(run: Run, s: PoolSettings, inferred: PoolInference) -> Stalled | None:
    """The hung requests, when they are where the pool's connections went; else None."""
    if inferred.verdict == "saturation":
        return None  # the pool came back: its connections were given back, not hung
    capacity = max(inferred.capacity_first, inferred.emptied_from)
    found = stalled_holds(run, inferred.service or "", s.min_stall_ms)
    if not found.explains(capacity, s.full_slack, s.min_stalled):
        return None
    return replace(
        found,
        rule=f"a hang when as many requests as the pool held (within {s.full_slack}; at least "
        f"{s.min_stalled}, or the whole pool when smaller, and never fewer than 2) took a "
        "connection before any checkout failed and were silent at once, each for "
        f"≥ {s.min_stall_ms:,.0f} ms after its last query, checkout or call ended, and no more "
        "such requests than the pool could hold, none answering with an error status, and "
        "no query sent after they went quiet returning; never when the pool came back",
    )


def stalled_holds(run: Run, service: str, min_stall_ms: float) -> Stalled:
    """The requests of ``service`` (``''``: the one without a name) that took a connection
    and went silent for at least ``min_stall_ms`` until they ended."""
    row = run.con.execute(
        _STALLED_SQL.format(parts=run.table("parts"), reqs=run.table("requests")),
        {
            "service": service,
            "min_stall": int(min_stall_ms * 1e6),
            "grace": int(min_stall_ms * 5e5),
        },
    ).fetchone()
    if row is None or not row[0]:
        return Stalled(0)
    n, first, last, silent, before, first_failure, failures, traces, routes, together, answered = (
        row
    )
    return Stalled(
        int(n), int(before), int(first), int(last), int(silent),
        int(first_failure) if first_failure is not None else None, int(failures or 0),
        tuple(traces or ()), tuple(r for r in routes or () if r is not None),
        int(together or 0), int(answered or 0),
    )  # fmt: skip
