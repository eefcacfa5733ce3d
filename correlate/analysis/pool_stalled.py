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

A request that never ends (a synchronous worker blocked in the query until the run
stopped) has no request span: what of it ended, its checkout and earlier queries, is in a
trace with no request. Such a trace counts too when its last checkout succeeded, was taken
once the run's requests had begun, under a parent span that never ended, and nothing of
it ended in the run's last ``min_stall_ms``: its silence runs to the run's end. A leaking
path's checkout is in a request that ended, and a background job's spans hang under a
root of their own that ended with it (or are roots themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from correlate.analysis.findings import ms
from correlate.analysis.requests import CATEGORY_SQL
from correlate.kinds import FindingKind

if TYPE_CHECKING:
    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.findings import Finding
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

#: SQL: each request's checkout spans of ``{parts}``, numbered ``k`` from its last by start
#: (``k = 1``: the one that decides whether it held a connection when it went quiet).
CHECKOUTS_SQL = """
    SELECT th, rh, start_ns, end_ns, status_code,
           row_number() OVER (PARTITION BY th, rh ORDER BY start_ns DESC, end_ns DESC) AS k
    FROM {parts} WHERE category = 'pool' AND span_id IS NOT NULL"""

_STALLED_SQL = (
    """
WITH checkouts AS ("""
    + CHECKOUTS_SQL
    + """
),
activity AS (
    -- when the last thing the request started that touches the database, or another
    -- service, reported back
    SELECT th, rh, max(end_ns) AS last_ns FROM {parts}
    WHERE category IN ('pool', 'db', 'downstream') GROUP BY th, rh
),
stalled AS (
    SELECT r.trace_id, r.route, c.end_ns AS got_ns, a.last_ns AS quiet_ns, r.end_ns,
           r.end_ns - a.last_ns AS silent_ns, true AS ended
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
orphaned AS (
    -- the spans of the traces with no request
    SELECT th, sh, ph, parent_id, end_ns FROM {tree} WHERE th NOT IN (SELECT th FROM {owner})
),
parented AS (
    SELECT c.sh FROM orphaned c JOIN orphaned p ON p.th = c.th AND p.sh = c.ph
),
unowned AS (
    -- a checkout in a trace with no request, under a span that never ended: its
    -- request (a synchronous worker still blocked in the query when the run stopped),
    -- of which only what ended was exported; the last checkout by start decides
    SELECT s.th, s.trace_id, s.start_ns, s.end_ns, s.status_code, s.parent_id,
           s.sh NOT IN (SELECT sh FROM parented) AS unparented,
           row_number() OVER (PARTITION BY s.th ORDER BY s.start_ns DESC, s.end_ns DESC) AS k
    FROM {tree} s
    WHERE ({category}) = 'pool' AND coalesce(s.service, '') = $service
      AND s.th IN (SELECT th FROM orphaned)
),
unended AS (
    -- when anything of such a trace last reported back
    SELECT th, max(end_ns) AS last_ns FROM orphaned GROUP BY th
),
bounds AS (
    SELECT (SELECT min(start_ns) FROM {reqs} WHERE coalesce(service, '') = $service) AS first_ns,
           (SELECT max(end_ns) FROM {tree}) AS end_ns
),
never_ended AS (
    -- it got its connection once the load ran, and nothing of it reported back from
    -- then on until the run ended: its silence is at least that long
    SELECT u.trace_id, CAST(NULL AS VARCHAR) AS route, u.end_ns AS got_ns,
           e.last_ns AS quiet_ns, b.end_ns, b.end_ns - e.last_ns AS silent_ns, false AS ended
    FROM unowned u JOIN unended e ON e.th = u.th CROSS JOIN bounds b
    WHERE u.k = 1 AND u.status_code IS DISTINCT FROM 'ERROR'
      AND u.parent_id IS NOT NULL AND u.unparented
      AND u.start_ns >= b.first_ns AND b.end_ns - e.last_ns >= $min_stall
),
silent AS (
    SELECT * FROM stalled UNION ALL SELECT * FROM never_ended
),
failed AS (
    SELECT min(p.end_ns) AS first_ns, count(*) AS n
    FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    WHERE p.category = 'pool' AND p.status_code = 'ERROR'
      AND coalesce(r.service, '') = $service
),
held AS (
    -- those that took their connection before the pool ran dry
    SELECT * FROM silent
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
       list(DISTINCT route ORDER BY route) FILTER (WHERE route IS NOT NULL),
       (SELECT n FROM together), (SELECT n FROM answered),
       count(*) FILTER (WHERE NOT ended)
FROM silent
"""
)


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
    #: of them, those whose request never ended (no request span: only the spans of it
    #: that ended were exported), their silence counted to the run's end
    unended: int = 0
    #: the rule, in the finding's words (set by :func:`hung`)
    rule: str = ""

    def explains(self, capacity: int, slack: int, at_least: int) -> bool:
        """Whether these holds are where the pool's connections went: taken before the
        first checkout failed, silent all at one moment, as many as its ``capacity``
        (within ``slack``) and at least ``at_least`` (the whole pool when it is smaller),
        and no more than it could hold (more silent requests than connections are a path
        that works on after its queries, not queries that never returned). A pool whose
        size the spans do not show (no running request held a connection while others
        waited) asks ``at_least`` (and 2) alone."""
        if capacity <= 0:  # the spans show no holder to size the pool by: the floor alone
            need, most = max(at_least, 2), self.before_failures
        else:
            need, most = max(min(at_least, capacity), capacity - slack, 2), capacity + slack
        return (
            self.first_failure_ns is not None
            and self.answered == 0
            and self.at_once >= need
            and self.before_failures <= most
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
            "never_ended": self.unended,
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
            f"theirs that reported back, nothing else did, and {self._after()}. That is how queries that never return look: their connections "
            "are not given back, and these were as many as the pool held; the "
            f"{self.failures} checkout{'s' if self.failures != 1 else ''} that failed came "
            "after. A leak empties a pool the same way (connections out, no query running), "
            "but its requests answer soon after their last query, one at a time"
        )

    def _after(self) -> str:
        silent = f"{self.silent_ns / 1e9:.1f} s"
        if not self.unended:
            return (
                f"the requests themselves ended a median {silent} later, as when a client "
                "gives up waiting for an answer"
            )
        never = (
            "none of them ever ended"
            if self.unended == self.requests
            else f"{self.unended} of them never ended"
        )
        return (
            f"{never}: the run stopped with their workers still waiting, {silent} later "
            "(their median), and a request that never ends leaves no request span, only the "
            "checkout and the queries of it that did (a synchronous server gives up on no "
            "request when its client does)"
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
        "no query sent after they went quiet returning; never when the pool came back (a "
        "request that never ended counts as its checkout in a trace with no request, silent "
        "until the run ended)",
    )


def with_tables(sql: str, run: Run) -> str:
    """``sql`` reading the run's ``{parts}``, ``{reqs}``, ``{tree}`` and ``{owner}`` tables
    (and ``{category}``, a tree span's part category)."""
    return sql.format(
        parts=run.table("parts"),
        reqs=run.table("requests"),
        tree=run.table("tree"),
        owner=run.table("owner"),
        category=CATEGORY_SQL,
    )


def stalled_holds(run: Run, service: str, min_stall_ms: float) -> Stalled:
    """The requests of ``service`` (``''``: the one without a name) that took a connection
    and went silent for at least ``min_stall_ms`` until they ended, and those that never
    ended: a successful last checkout, taken once the run's requests began, in a trace
    with no request, of which nothing ended in the last ``min_stall_ms`` of the run."""
    row = run.con.execute(
        with_tables(_STALLED_SQL, run),
        {
            "service": service,
            "min_stall": int(min_stall_ms * 1e6),
            "grace": int(min_stall_ms * 5e5),
        },
    ).fetchone()
    if row is None or not row[0]:
        return Stalled(0)
    (n, first, last, silent, before, first_failure, failures, traces, routes, together,
     answered, unended) = row  # fmt: skip
    return Stalled(
        int(n), int(before), int(first), int(last), int(silent),
        int(first_failure) if first_failure is not None else None, int(failures or 0),
        tuple(traces or ()), tuple(r for r in routes or () if r is not None),
        int(together or 0), int(answered or 0), int(unended or 0),
    )  # fmt: skip


#: Evidence of a leak that a hang cannot leave: checkout spans read, connections held after
#: their request, leak suspects, pool samples.
_LEAK_SEEN = frozenset({"checkout_spans", "leak_suspects", "leaks", "pool_samples"})


def told_by_waits_alone(f: Finding) -> bool:
    """Whether pool finding ``f`` could not tell a hang from a leak: undecided, or a leak
    read from the waits alone (no checkout span, holder, suspect or sample)."""
    if f.kind == FindingKind.POOL_EXHAUSTED:
        return "hung_requests" not in f.evidence
    return f.kind == FindingKind.POOL_LEAK and not _LEAK_SEEN & f.evidence.keys()


def as_hang(f: Finding, stall: Finding) -> Finding:
    """Pool finding ``f`` (:func:`told_by_waits_alone`) told as the hang ``stall`` (a
    ``database_stall`` of its service) explains: its calls held the connections."""
    failed = f.evidence.get("requests_without_a_connection") or 0
    return replace(
        f,
        kind=FindingKind.POOL_EXHAUSTED,
        title=TITLE,
        evidence={**f.evidence, "cause": str(stall.kind)},
        suggestion=stall.suggestion,
        threshold=stall.threshold,
        source=stall.source,
        explanation=(
            f"Requests spent {ms(f.evidence.get('pool_wait_ms') or 0.0)} waiting for a "
            "database connection"
            + (f", and {failed:,} found none to take" if failed else "")
            + ". The pool's connections were held by calls the database never answered "
            f"(“{stall.title}”): none came back because none was answered, which reads as a "
            "leak; no request is seen keeping one after it ended."
        ),
    )
