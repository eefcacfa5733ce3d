"""Leak or saturation, from spans alone: the pool's capacity inferred from who waited.

No pool telemetry is needed, only spans that cover a checkout from the pool:

=====================================  ==========================  =========================
instrumentation                        span                        kind
=====================================  ==========================  =========================
opentelemetry-instrumentation-         ``connect`` around          CLIENT, with ``db.system``
sqlalchemy (Python)                    ``Engine.connect()``
@opentelemetry/instrumentation-pg      ``pg-pool.connect`` around  CLIENT
(Node.js, ``pg.Pool``)                 ``pool.connect()``
@opentelemetry/instrumentation-        ``generic-pool.acquire``    INTERNAL
generic-pool (Node.js)                 (``generic-pool.aquire``
                                       before 0.39)
=====================================  ==========================  =========================

(JDBC pools — HikariCP, c3p0 — and Go's database/sql report pool use as metrics,
not spans; their runs need ``correlate.instrument``-style telemetry.)

A checkout span tells when a request asked for a connection and when it got
one. From the run's requests, at every moment a request was *waiting* (a
checkout lasting at least ``min_wait_ms``, or one that failed) count the
*holders*: requests that had got a connection and were still running. While
someone waits the pool is full, so the holders are its capacity minus the
connections nobody running holds — the leaked ones.

- **Saturation**: requests wait only while the holders are at the pool's
  capacity, and that capacity stays the same over the run.
- **Leak**: the capacity seen while requests wait falls in steps and does not
  come back: waiters pile up while fewer and fewer requests hold a connection,
  until requests time out with the database idle.

Each step (the holders seen while waiting drop for good) happened when a
request that held a connection ended without giving it back: the requests
that had a connection and ended between the last wait at the old level and
the first at the new one are its candidates. The (route, method, status, exception) found among the
candidates of more steps than its share of all requests explains is named,
with a binomial tail probability (Bonferroni-corrected over the groups
tried) as its confidence.

When the data cannot decide, :func:`infer` says so and why.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from correlate.analysis.pool_leaked import (
    attribute,
    leaked_windows,
    more_sure,
    used_series,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.run import Run

#: Span names that cover a checkout from a connection pool (see the table above).
CHECKOUT_SPAN_NAMES = ("connect", "pg-pool.connect", "generic-pool.acquire", "generic-pool.aquire")

#: how far a child span may seem to end after its request and still be inside it (ns)
CLOCK_SLACK_NS = 2_000_000

Verdict = Literal["leak", "saturation", "undecided"]


@dataclass(frozen=True)
class Group:
    """Requests alike for attribution: what a leak on one code path has in common."""

    route: str
    method: str | None
    status: int | None
    exception: str | None

    def describe(self) -> str:
        """``'POST /orders that answered 409'``."""
        what = f"{self.method} {self.route}" if self.method else self.route
        tail = []
        if self.status is not None:
            tail.append(f"answered {self.status}")
        if self.exception:
            tail.append(f"raised {self.exception}")
        return what + (" that " + " and ".join(tail) if tail else "")


@dataclass(frozen=True)
class Step:
    """One drop of the capacity seen while requests waited."""

    #: the last moment at the old level and the first at the new one (ns)
    after_ns: int
    before_ns: int
    from_connections: int
    to_connections: int
    #: indexes (into the requests that held a connection) of the candidates
    candidates: tuple[int, ...]


@dataclass(frozen=True)
class Culprit:
    group: Group
    steps_followed: int
    steps: int
    share_of_requests: float
    p_value: float

    def sentence(self) -> str:
        return (
            f"{self.steps_followed} of {self.steps} capacity drops follow a "
            f"{self.group.describe()}; {_share(self.share_of_requests)} of all requests that "
            f"held a connection are such (chance of this by luck: {_p(self.p_value)})"
        )


@dataclass
class PoolInference:
    """What the checkout spans of one service say about its pool."""

    verdict: Verdict
    #: why, in one sentence, for the finding's text
    reason: str
    service: str | None
    waits: int
    capacity_first: int = 0
    capacity_last: int = 0
    at_capacity_share: float = 0.0
    #: per window with waits: (seconds from the run's start, connections held while waiting)
    levels: list[tuple[float, int]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    culprit: Culprit | None = None
    #: waits after the last drop with no database span running anywhere, and how many
    idle_waits: int = 0
    final_waits: int = 0
    candidates: list[Group] = field(default_factory=list)
    #: example trace ids of requests of the culprit group just before a drop
    traces: tuple[str, ...] = ()
    #: where the drops were read: the waits of the checkout spans, or the pool's metrics
    drops_from: str = "checkout spans"

    def evidence(self) -> dict[str, Any]:
        """The inference as plain values for a finding's evidence."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "service": self.service,
            "waiting_checkouts": self.waits,
            "capacity_first": self.capacity_first,
            "capacity_last": self.capacity_last,
            "waits_at_capacity_share": self.at_capacity_share,
            "connections_held_while_waiting": [[t, n] for t, n in self.levels],
            "capacity_drops": len(self.steps),
            "drops_from": self.drops_from,
            "waits_with_database_idle": self.idle_waits,
            "waits_after_last_drop": self.final_waits,
        }
        if self.culprit:
            c = self.culprit
            out["culprit"] = {
                "route": c.group.route,
                "method": c.group.method,
                "status": c.group.status,
                "exception": c.group.exception,
                "drops_followed": c.steps_followed,
                "drops": c.steps,
                "share_of_requests": c.share_of_requests,
                "p_value": c.p_value,
            }
        return out

    def levels_text(self) -> str:
        step = max(len(self.levels) // 8, 1)
        shown = self.levels[::step]
        if self.levels and shown[-1] != self.levels[-1]:
            shown.append(self.levels[-1])
        return " → ".join(str(n) for _, n in shown)


def infer(run: Run, settings: PoolSettings) -> PoolInference | None:
    """The pool's story from the run's checkout spans, or None without any.

    With several services, the one whose requests waited most is read.
    """
    data = _load(run, settings)
    if data is None:
        return None
    holders, waits, db, gaps, holds = data
    series = used_series(run)
    best: PoolInference | None = None
    for service in sorted(set(waits.service)) or [""]:
        got = _infer_service(
            holders[holders.service == service],
            gaps[gaps.service == service],
            holds[holds.service == service],
            waits.start_ns[waits.service == service].to_numpy(),
            db,
            service,
            settings,
            run.span[0],
            series,
        )
        if best is None or got.waits > best.waits:
            best = got
    return best


def _load(
    run: Run, s: PoolSettings
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    reqs, parts = run.table("requests"), run.table("parts")
    (checkouts,) = run.con.execute(
        f"SELECT count(*) FROM {parts} WHERE category = 'pool' AND span_id IS NOT NULL"
    ).fetchone() or (0,)
    if not checkouts:
        return None
    # one row per request that got a connection, with when it first did, by end time
    holders = run.con.execute(
        f"""
        WITH got AS (
            SELECT th, rh, min(end_ns) AS acquired_ns
            FROM {parts}
            WHERE category = 'pool' AND span_id IS NOT NULL
              AND status_code IS DISTINCT FROM 'ERROR'
            GROUP BY th, rh
        ),
        queried AS (
            SELECT th, rh, max(b) AS last_query_ns FROM {parts} WHERE category = 'db'
            GROUP BY th, rh
        )
        SELECT coalesce(r.service, '') AS service, r.route, r.method,
               r.http_status AS status,
               (list_filter(s.events, lambda e: e.name = 'exception')[1]).attributes
                   ->>'$."exception.type"' AS exception,
               r.trace_id, r.end_ns, least(g.acquired_ns, r.end_ns) AS acquired_ns,
               -- surely held until its last query: the lower bound of the hold
               greatest(least(g.acquired_ns, r.end_ns),
                        least(coalesce(q.last_query_ns, 0), r.end_ns)) AS queried_ns
        FROM {reqs} r
        JOIN got g USING (th, rh)
        LEFT JOIN queried q USING (th, rh)
        JOIN spans s ON s.run_id = $run AND s.trace_id = r.trace_id AND s.span_id = r.request_id
        -- the JavaScript SDK stamps a span's start from Date.now(), a millisecond clock,
        -- and its end from a finer one offset by a fraction of a millisecond of its own: a
        -- quick request's checkout can seem to end just after the request does
        WHERE g.acquired_ns <= r.end_ns + $slack
        ORDER BY r.end_ns
        """,
        {"run": run.run_id, "slack": CLOCK_SLACK_NS},
    ).df()
    # A request that checks out again (node-postgres's pool.query takes a client per
    # statement) waits, not holds, during each later checkout: gaps in its upper reading.
    gaps = run.con.execute(
        f"""
        WITH got AS (
            SELECT th, rh, min(end_ns) AS acquired_ns
            FROM {parts}
            WHERE category = 'pool' AND span_id IS NOT NULL
              AND status_code IS DISTINCT FROM 'ERROR'
            GROUP BY th, rh
        )
        SELECT coalesce(r.service, '') AS service, p.start_ns,
               least(p.end_ns, r.end_ns) AS end_ns
        FROM {parts} p
        JOIN got g USING (th, rh)
        JOIN {reqs} r USING (th, rh)
        WHERE p.category = 'pool' AND p.span_id IS NOT NULL
          AND p.start_ns >= g.acquired_ns AND p.start_ns < r.end_ns
        """
    ).df()
    # The lower reading: each checkout holds from its end to the last query that starts
    # before the request's next checkout (between a pool.query and the next checkout it
    # holds nothing; on a busy event loop that is long enough to count a connection twice).
    holds = run.con.execute(
        f"""
        WITH checkouts AS (
            SELECT th, rh, start_ns, end_ns, status_code,
                   lead(start_ns) OVER (PARTITION BY th, rh ORDER BY start_ns, end_ns)
                       AS next_ns
            FROM {parts}
            WHERE category = 'pool' AND span_id IS NOT NULL
        )
        SELECT service, start_ns, end_ns FROM (
            SELECT coalesce(r.service, '') AS service, c.end_ns AS start_ns,
                   least(max(q.b), max(r.end_ns)) AS end_ns
            FROM checkouts c
            JOIN {reqs} r USING (th, rh)
            JOIN {parts} q ON q.th = c.th AND q.rh = c.rh AND q.category = 'db'
                 AND q.start_ns >= c.start_ns
                 AND q.start_ns < coalesce(c.next_ns, r.end_ns + 1)
            WHERE c.status_code IS DISTINCT FROM 'ERROR'
            GROUP BY c.th, c.rh, c.start_ns, c.end_ns, r.service
        ) WHERE end_ns > start_ns
        """
    ).df()
    waits = run.con.execute(
        f"""
        SELECT coalesce(r.service, '') AS service, p.start_ns
        FROM {parts} p JOIN {reqs} r USING (th, rh)
        WHERE p.category = 'pool' AND p.span_id IS NOT NULL
          AND (p.end_ns - p.start_ns >= $min_wait OR p.status_code = 'ERROR')
        ORDER BY p.start_ns
        """,
        {"min_wait": round(s.min_wait_ms * 1e6)},
    ).df()
    db = run.con.execute(
        f"SELECT a, b FROM {parts} WHERE category = 'db' AND b > a ORDER BY a"
    ).df()
    return holders, waits, db, gaps, holds


def _infer_service(
    rows: pd.DataFrame,
    gaps: pd.DataFrame,
    holds: pd.DataFrame,
    moments: np.ndarray,
    db: pd.DataFrame,
    service: str,
    s: PoolSettings,
    run_start: int,
    series: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> PoolInference:
    import numpy as np

    name = service or None
    n = len(moments)
    if n < s.min_waits:
        return PoolInference(
            "undecided",
            f"only {n} checkout{'s' if n != 1 else ''} waited (at least {s.min_waits} are "
            "needed to follow the pool's capacity over the run)",
            name,
            n,
        )
    moments = moments.astype(np.int64)
    holders = _covering_holds(np, rows, gaps, moments)
    # the connection may go back before the request ends: the holders from each checkout
    # to its last query are the lower bound, and a pool full by either count is full
    surely = _covering(np, holds, moments)
    levels = _levels(np, moments, holders, s, run_start)
    if len(levels) < s.min_windows:
        return PoolInference(
            "undecided",
            f"requests waited in only {len(levels)} window{'s' if len(levels) != 1 else ''} of "
            f"{s.window_s:.0f} s (at least {s.min_windows} are needed to see whether the "
            "capacity holds or falls)",
            name,
            n,
            levels=levels,
        )
    values = [v for _, v in levels]
    peak = max(values)
    final = int(np.median(values[-max(len(values) // 3, 1) :]))
    full = int(np.count_nonzero(holders >= peak - s.full_slack)) / n
    surely_peak = max((v for _, v in _levels(np, moments, surely, s, run_start)), default=0)
    surely_full = int(np.count_nonzero(surely >= surely_peak - s.full_slack)) / n
    full_peak = peak
    if surely_peak and surely_full > full:
        full_peak, full = surely_peak, surely_full
    base = PoolInference(
        "undecided",
        "",
        name,
        n,
        capacity_first=max(values[: max(len(values) // 3, 1)]),
        capacity_last=final,
        at_capacity_share=full,
        levels=levels,
    )
    if peak == 0:
        base.reason = (
            "no request held a connection while others waited: the checkout spans may cover "
            "more than the pool (connection setup, a proxy) or the holders are not traced"
        )
        return base
    if final <= (1 - s.capacity_loss) * peak:
        base.verdict = "leak"
        base.reason = (
            f"while requests waited, the connections held by running requests fell from "
            f"{peak} to {final} and did not come back"
        )
        readings = [
            (holders, rows.end_ns.to_numpy(dtype=np.int64)),
            (surely, rows.queried_ns.to_numpy(dtype=np.int64)),
        ]
        # with the pool's metrics, the drops are known to the export interval: connections in
        # use that no running request holds (analysis.pool_leaked), by both readings
        metric = (
            []
            if series is None
            else [
                (_covering_holds(np, rows, gaps, series[0]), rows.end_ns.to_numpy(dtype=np.int64)),
                (_covering(np, holds, series[0]), rows.queried_ns.to_numpy(dtype=np.int64)),
            ]
        )
        _steps(np, base, moments, readings, rows, s, series, metric)
        _idle(np, base, db, moments)
        return base
    if full >= s.saturated_share:
        base.verdict = "saturation"
        base.reason = (
            f"requests waited only while running requests held all {full_peak} connections "
            f"(within {s.full_slack}; {_share(full)} of waits), and that capacity held to the "
            "end of the run"
        )
        return base
    base.reason = (
        f"the connections held by running requests while others waited varied below their "
        f"peak of {full_peak} ({_share(1 - full)} of waits saw fewer) without falling for good: "
        "connections may go back to the pool well before their requests end, or something "
        "these traces do not show (another service, a background job, untraced code) holds some"
    )
    return base


def _covering_holds(np: Any, rows: pd.DataFrame, gaps: pd.DataFrame, moments: np.ndarray) -> Any:
    """Requests holding a connection at each moment: got one, not ended, not checking out."""
    acquired = np.sort(rows.acquired_ns.to_numpy(dtype=np.int64))
    ended = rows.end_ns.to_numpy(dtype=np.int64)  # sorted by the query
    held = (
        np.searchsorted(acquired, moments, side="right")
        - np.searchsorted(ended, moments, side="right")
        - _covering(np, gaps, moments)
    )
    return np.maximum(held, 0)


def _covering(np: Any, spans: pd.DataFrame, moments: np.ndarray) -> np.ndarray:
    """How many of ``spans`` (start_ns, end_ns) are under way at each moment."""
    starts = np.sort(spans.start_ns.to_numpy(dtype=np.int64))
    ends = np.sort(spans.end_ns.to_numpy(dtype=np.int64))
    return np.searchsorted(starts, moments, side="right") - np.searchsorted(
        ends, moments, side="right"
    )


def _levels(
    np: Any, moments: np.ndarray, holders: np.ndarray, s: PoolSettings, run_start: int
) -> list[tuple[float, int]]:
    """Per window with enough waits: a high quantile of the holders seen while waiting."""
    width = max(round(s.window_s * 1e9), 1)
    bucket = (moments - run_start) // width
    out = []
    for b in np.unique(bucket):
        seen = holders[bucket == b]
        if len(seen) >= s.min_window_waits:
            out.append((float(b * s.window_s), int(np.quantile(seen, 0.9, method="higher"))))
    return out


def _steps(
    np: Any,
    inf: PoolInference,
    moments: np.ndarray,
    counts: list[tuple[np.ndarray, np.ndarray]],
    rows: pd.DataFrame,
    s: PoolSettings,
    series: tuple[np.ndarray, np.ndarray, int] | None = None,
    metric: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """The drops of the capacity seen while waiting, their candidates and the culprit.

    ``counts`` holds the holders seen at each wait and when each request's hold ends,
    once per reading of the hold (until the request ends; until its last query). The
    reading whose drops name a group with more confidence is kept, its chance doubled
    for having tried both. With the pool's metrics (``series``), ``metric`` holds the
    two readings at the sample times, for the drops the metrics show (analysis.pool_leaked).
    """
    groups = [
        Group(
            str(route),
            None if method is None or method != method else str(method),
            None if status is None or status != status else int(status),
            None if exc is None or exc != exc else str(exc),
        )
        for route, method, status, exc in zip(
            rows.route, rows.method, rows.status, rows.exception, strict=True
        )
    ]
    spans: list[list[Step]] = []
    for holders, released in counts:
        order = np.argsort(released, kind="stable")
        released = released[order]
        level = np.maximum.accumulate(holders[::-1])[::-1]  # the most held now or later
        reach = _reach(np, holders, level)
        steps = []
        for i in np.flatnonzero(level[:-1] > level[1:]):
            if len(moments) - i - 1 < s.min_waits_after_drop:
                continue  # too few waits after it to say the capacity stayed down
            t0, t1 = int(moments[i]), int(moments[min(i + reach, len(moments) - 1)])
            # the requests whose hold ended between the last wait at the old level and the
            # point by which a wait would have seen that level again: the one that kept its
            # connection is among them
            lo, hi = np.searchsorted(released, [t0, t1], side="right")
            held = tuple(int(j) for j in order[lo:hi])
            steps.append(Step(t0, t1, int(level[i]), int(level[i + 1]), held))
        spans.append(steps)
    metrics = (
        [
            leaked_windows(np, series[0], series[1], at, end, series[2], CLOCK_SLACK_NS)
            for at, end in metric or ()
        ]
        if series
        else []
    )
    trials = len(spans) + len(metrics)  # a group's chance is multiplied by all readings
    chosen: tuple[list[Step], Culprit | None, list[Group]] | None = None
    for steps in spans:
        chosen = more_sure(chosen, (steps, *_culprit(groups, steps, s, readings=trials)))
    for windows in metrics:
        found, tried = attribute(groups, windows, trials=trials)
        culprit = None
        if found and found.p_value <= s.max_p_value and found.followed >= s.min_drops:
            assert isinstance(found.group, Group)
            culprit = Culprit(found.group, found.followed, found.lost, found.share, found.p_value)
        steps = [
            Step(w.after_ns, w.before_ns, w.capacity_before - i, w.capacity_before - i - 1,
                 w.candidates)
            for w in windows
            for i in range(w.lost)
        ]  # fmt: skip
        before = chosen
        chosen = more_sure(chosen, (steps, culprit, tried))
        if chosen is not before:
            inf.drops_from = "pool metrics"
    assert chosen is not None
    inf.steps, inf.culprit, inf.candidates = chosen
    if inf.culprit:
        g = inf.culprit.group
        traces = rows.trace_id.to_numpy()
        inf.traces = tuple(
            str(traces[j]) for step in inf.steps for j in step.candidates if groups[j] == g
        )[:3]


#: how sure the window of a capacity drop must be to hold the drop (see :func:`_reach`)
DROP_COVERAGE = 0.95


def _reach(np: Any, holders: np.ndarray, level: np.ndarray) -> int:
    """How many waits after the last one at the old level a drop's window spans.

    Not every checkout that took long found the pool full: a busy event loop or a new
    connection slows one down while connections sit idle, and such a wait sees fewer
    holders than the pool's level. When only a share ``p`` of the waits see the level,
    the drop happened after the last wait that saw the old one but perhaps well before
    the next wait that sees the new one; the window reaches as far as a wait would have
    seen the old level again with :data:`DROP_COVERAGE` odds. With clean data (every
    wait sees a full pool) it is the next wait.
    """
    p = float(np.mean(holders == level)) if len(holders) else 1.0
    if p >= 1.0:
        return 1
    return max(1, math.ceil(math.log(1 - DROP_COVERAGE) / math.log(1 - max(p, 1e-3))))


def _culprit(
    groups: list[Group], steps: list[Step], s: PoolSettings, *, readings: int = 1
) -> tuple[Culprit | None, list[Group]]:
    if not steps or not groups:
        return None, []
    counts = Counter(groups)
    per_step = [{groups[j] for j in step.candidates} for step in steps]
    tried = sorted(
        set().union(*per_step),
        key=lambda g: (g.route, g.method or "", g.status or 0, g.exception or ""),
    )
    best: Culprit | None = None
    for g in tried:
        q = counts[g] / len(groups)
        followed = sum(g in seen for seen in per_step)
        chances = [1 - (1 - q) ** len(step.candidates) for step in steps]
        p = min(1.0, _tail(chances, followed) * len(tried) * readings)
        c = Culprit(g, followed, len(steps), q, p)
        if best is None or (c.p_value, -c.steps_followed) < (best.p_value, -best.steps_followed):
            best = c
    if best is None or best.p_value > s.max_p_value or best.steps_followed < s.min_drops:
        return None, tried
    return best, tried


def _tail(chances: list[float], k: int) -> float:
    """P(at least ``k`` successes) of independent trials with these chances."""
    dist = [1.0]
    for p in chances:
        nxt = [0.0] * (len(dist) + 1)
        for i, v in enumerate(dist):
            nxt[i] += v * (1 - p)
            nxt[i + 1] += v * p
        dist = nxt
    return float(min(1.0, max(0.0, math.fsum(dist[k:]))))


def _idle(np: Any, inf: PoolInference, db: pd.DataFrame, moments: np.ndarray) -> None:
    """Waits after the last drop with no database span running anywhere."""
    after = (
        moments[moments > inf.steps[-1].after_ns]
        if inf.steps
        else moments[-max(len(moments) // 3, 1) :]
    )
    starts = db.a.to_numpy(dtype=np.int64)
    ends = np.sort(db.b.to_numpy(dtype=np.int64))
    running = np.searchsorted(starts, after, side="right") - np.searchsorted(
        ends, after, side="right"
    )
    inf.final_waits = len(after)
    inf.idle_waits = int(np.count_nonzero(running <= 0))


def _share(x: float) -> str:
    return f"{x * 100:.0f}%" if x >= 0.01 or x == 0 else f"{x * 100:.1f}%"


def _p(p: float) -> str:
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"
