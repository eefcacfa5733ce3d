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

Pools that make no checkout span (psycopg2's and psycopg's, HikariCP, knex, Prisma,
…) still fail a request in recognisable words when they run dry: for a service without
checkout spans, :mod:`correlate.analysis.pool_errors` makes each such failure a failed
checkout, and each request's first SQL call stands in for the moment it had its
connection. A wait that ended with a connection leaves no trace there, so only the
failures are waits. (Go's database/sql blocks without failing: its runs need pool
metrics or ``correlate.instrument``-style telemetry.)

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

When a pool's own errors say it was empty at every failure while no running request
held a connection, and requests held some before the first, the connections were taken
and not given back: a leak with no drop to name. (A failed checkout *span* with no holder
stays undecided: the span may cover more than the pool, a new connection or a proxy.)

When the data cannot decide, :func:`infer` says so and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from correlate.analysis import pool_holders as holders
from correlate.analysis.pool_holders import CLOCK_SLACK_NS
from correlate.analysis.pool_leaked import (
    Window,
    attribute,
    leaked_windows,
    more_sure,
    used_series,
)

if TYPE_CHECKING:
    import numpy as np

    from correlate.analysis.detectors.pool import PoolSettings
    from correlate.analysis.run import Run

#: Span names that cover a checkout from a connection pool (see the table above).
CHECKOUT_SPAN_NAMES = ("connect", "pg-pool.connect", "generic-pool.acquire", "generic-pool.aquire")

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
    #: the candidates: requests whose hold ended in the drop's window, how many per group
    candidates: dict[Group, int] = field(default_factory=dict)
    #: a few of the candidates' trace ids, per group
    examples: dict[Group, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        """How many candidates."""
        return sum(self.candidates.values())


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
    #: a pool's own errors said it was empty while no running request held a connection:
    #: the most that held one at once before the first of them (0: not so)
    emptied_from: int = 0
    #: of those errors, the ones after the last request that got a connection, when the
    #: pool refused for good (0: it emptied before its first error, or not at all)
    emptied_tail: int = 0

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
            "held_before_the_pool_emptied": self.emptied_from or None,
            "failed_after_the_last_connection": self.emptied_tail or None,
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

    With several services, the one whose requests waited most is read. The spans
    are read where they are stored: only counts per window, per drop and per group
    come back (analysis.pool_holders).
    """
    found = holders.services(run, settings)
    if not found:
        return None
    series = used_series(run)
    best: PoolInference | None = None
    for service, waits in [(name, n) for name, n in found if n] or [("", 0)]:
        got = _infer_service(run, service, waits, settings, run.span[0], series)
        if best is None or got.waits > best.waits:
            best = got
    return best


def _infer_service(
    run: Run,
    service: str,
    n: int,
    s: PoolSettings,
    run_start: int,
    series: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> PoolInference:
    name = service or None
    if n < s.min_waits:
        return PoolInference(
            "undecided",
            f"only {n} checkout{'s' if n != 1 else ''} waited (at least {s.min_waits} are "
            "needed to follow the pool's capacity over the run)",
            name,
            n,
        )
    # the holders seen at each wait, by both readings of the hold: the connection may go
    # back before the request ends, so the holders from each checkout to its last query
    # are the lower bound, and a pool full by either count is full
    seen = holders.wait_histogram(run, service, s, run_start)
    levels = _levels(seen, 1, s)
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
    final = _median(values[-max(len(values) // 3, 1) :])
    full = _at_least(seen, 1, peak - s.full_slack) / n
    surely_peak = max((v for _, v in _levels(seen, 2, s)), default=0)
    surely_full = _at_least(seen, 2, surely_peak - s.full_slack) / n
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
        errors, before, after = holders.emptied(run, service, s)
        tail, windows, span_s, most = (
            holders.drained(run, service, s) if errors == n and after else (0,) * 4
        )
        if tail and _drained(tail, windows, n, s):
            # a fail-fast pool also refuses while its holders have not run their first
            # query, so connections came back after the first failure; but after the last
            # one given, the pool refused for good with no running request holding one
            base.verdict = "leak"
            base.emptied_from = base.capacity_first = most
            base.emptied_tail = tail
            base.reason = (
                f"after the last request that got a connection, the pool refused all {tail} "
                f"checkouts of the last {span_s} s while no running request held one"
            )
            base.final_waits, base.idle_waits = holders.idle_waits(
                run, service, s, after_ns=None, from_index=0
            )
            return base
        if errors == n and before and after:
            # connections came back: the pool was not emptied for good, and a request may
            # take its connection long before its first query (held over other work)
            base.reason = (
                "no request held a connection by its queries while others waited, yet "
                f"{after} request{'s' if after != 1 else ''} had one after the first checkout "
                "failed: a pool that makes no checkout span shows a connection only from the "
                "first query, and the holders may have taken theirs before it"
            )
            return base
        if errors == n and before:
            # the pool said it had no connection to give, and no running request had one:
            # every connection was out with none of the requests that took them
            base.verdict = "leak"
            base.emptied_from = before
            base.capacity_first = before
            base.reason = (
                f"before the first checkout failed, up to {before} "
                f"request{'s' if before != 1 else ''} held a connection at once; when each of "
                f"the {n} failed, the pool had none to give and no running request held one"
            )
            base.final_waits, base.idle_waits = holders.idle_waits(
                run, service, s, after_ns=None, from_index=0
            )
            return base
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
        _steps(run, service, base, s, series)
        _idle(run, service, base, s)
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


def _levels(
    seen: list[tuple[int, int, int, int]], reading: int, s: PoolSettings
) -> list[tuple[float, int]]:
    """Per window with enough waits: a high quantile of the holders seen while waiting.

    ``seen`` is (reading, window, holders, waits), sorted; the quantile is numpy's
    ``quantile(…, 0.9, method="higher")`` of the waits' holders.
    """
    out = []
    windows: dict[int, list[tuple[int, int]]] = {}
    for r, w, h, count in seen:
        if r == reading:
            windows.setdefault(w, []).append((h, count))
    for w, counts in sorted(windows.items()):
        m = sum(c for _, c in counts)
        if m < s.min_window_waits:
            continue
        index, below = min(math.ceil((m - 1) * 0.9), m - 1), 0
        for h, c in counts:  # sorted by holders
            below += c
            if below > index:
                out.append((float(w * s.window_s), h))
                break
    return out


def _at_least(seen: list[tuple[int, int, int, int]], reading: int, floor: int) -> int:
    """Waits that saw at least ``floor`` holders by ``reading``."""
    return sum(c for r, _, h, c in seen if r == reading and h >= floor)


def _median(values: list[int]) -> int:
    """numpy's median of ``values``, as an int (the mean of the middle two, truncated)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return int((ordered[mid - 1] + ordered[mid]) / 2)


def _steps(
    run: Run,
    service: str,
    inf: PoolInference,
    s: PoolSettings,
    series: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> None:
    """The drops of the capacity seen while waiting, their candidates and the culprit.

    The drops are read from the holders seen at each wait, once per reading of the hold
    (until the request ends; until its last query); their candidates are the requests
    whose hold, by the same reading, ended in the drop's window. The reading whose drops
    name a group with more confidence is kept, its chance doubled for having tried both.
    With the pool's metrics (``series``), the drops the metrics show are read too, by both
    readings at the sample times (analysis.pool_leaked).
    """
    n = inf.waits
    drops, at_level = holders.wait_drops(run, service, s)
    found: dict[int, list[tuple[int, int, int, int]]] = {1: [], 2: []}
    for reading, i, t0, before, after in drops:
        if n - i - 1 < s.min_waits_after_drop:
            continue  # too few waits after it to say the capacity stayed down
        found[reading].append((i, t0, before, after))
    reach = {r: _reach(at_level[r] / n) for r in found}
    ends = holders.wait_moments(
        run, service, s, [min(i + reach[r], n - 1) for r in found for i, *_ in found[r]]
    )
    # the requests whose hold ended between the last wait at the old level and the point
    # by which a wait would have seen that level again: the one that kept its connection
    # is among them
    windows = [
        (r, t0, ends[min(i + reach[r], n - 1)], before, after)
        for r in found
        for i, t0, before, after in found[r]
    ]
    metric = _metric_windows(run, service, s, series) if series is not None else []
    listed = [(r, t0, t1) for r, t0, t1, *_ in windows] + [
        (r, w.after_ns, w.before_ns) for r, w in metric
    ]
    cands = holders.candidates(run, service, s, listed)
    totals = {Group(*key): count for key, count in holders.groups(run, service, s).items()}

    def pick(k: int) -> tuple[dict[Group, int], dict[Group, tuple[str, ...]]]:
        got = {Group(*key): v for key, v in cands.get(k, {}).items()}
        return {g: c for g, (c, _) in got.items()}, {g: ex for g, (_, ex) in got.items()}

    spans: list[list[Step]] = [[], []]
    for k, (r, t0, t1, before, after) in enumerate(windows):
        spans[r - 1].append(Step(t0, t1, before, after, *pick(k)))
    per_reading: list[list[Window]] = [[], []]
    for k, (r, w) in enumerate(metric, start=len(windows)):
        counted, examples = pick(k)
        per_reading[r - 1].append(replace(w, candidates=counted, examples=examples))
    metrics = per_reading if series is not None else []
    trials = len(spans) + len(metrics)  # a group's chance is multiplied by all readings
    chosen: tuple[list[Step], Culprit | None, list[Group]] | None = None
    for steps in spans:
        chosen = more_sure(chosen, (steps, *_culprit(totals, steps, s, readings=trials)))
    for got in metrics:
        attributed, tried = attribute(totals, got, trials=trials)
        culprit = None
        if (
            attributed
            and attributed.p_value <= s.max_p_value
            and attributed.followed >= s.min_drops
        ):
            assert isinstance(attributed.group, Group)
            culprit = Culprit(
                attributed.group,
                attributed.followed,
                attributed.lost,
                attributed.share,
                attributed.p_value,
            )
        steps = [
            Step(w.after_ns, w.before_ns, w.capacity_before - i, w.capacity_before - i - 1,
                 dict(w.candidates), dict(w.examples))
            for w in got
            for i in range(w.lost)
        ]  # fmt: skip
        was = chosen
        chosen = more_sure(chosen, (steps, culprit, tried))
        if chosen is not was:
            inf.drops_from = "pool metrics"
    assert chosen is not None
    inf.steps, inf.culprit, inf.candidates = chosen
    if inf.culprit:
        g = inf.culprit.group
        inf.traces = tuple(t for step in inf.steps for t in step.examples.get(g, ()))[:3]


def _metric_windows(
    run: Run, service: str, s: PoolSettings, series: tuple[np.ndarray, np.ndarray, int]
) -> list[tuple[int, Window]]:
    """(reading, window) of the connections lost between pool samples, by both readings."""
    import numpy as np

    times, used, capacity = series
    at = holders.held_at_samples(run, service, s)
    out = []
    for reading in (1, 2):
        held = np.array([at.get(int(t), (0, 0))[reading - 1] for t in times], dtype=np.int64)
        out += [
            (reading, w) for w in leaked_windows(np, times, used, held, capacity, CLOCK_SLACK_NS)
        ]
    return out


#: how sure the window of a capacity drop must be to hold the drop (see :func:`_reach`)
DROP_COVERAGE = 0.95


def _reach(p: float) -> int:
    """How many waits after the last one at the old level a drop's window spans.

    Not every checkout that took long found the pool full: a busy event loop or a new
    connection slows one down while connections sit idle, and such a wait sees fewer
    holders than the pool's level. When only a share ``p`` of the waits see the level,
    the drop happened after the last wait that saw the old one but perhaps well before
    the next wait that sees the new one; the window reaches as far as a wait would have
    seen the old level again with :data:`DROP_COVERAGE` odds. With clean data (every
    wait sees a full pool) it is the next wait.
    """
    if p >= 1.0:
        return 1
    return max(1, math.ceil(math.log(1 - DROP_COVERAGE) / math.log(1 - max(p, 1e-3))))


def _culprit(
    totals: dict[Group, int], steps: list[Step], s: PoolSettings, *, readings: int = 1
) -> tuple[Culprit | None, list[Group]]:
    everyone = sum(totals.values())
    if not steps or not everyone:
        return None, []
    per_step = [{g for g, c in step.candidates.items() if c} for step in steps]
    tried = sorted(
        set().union(*per_step),
        key=lambda g: (g.route, g.method or "", g.status or 0, g.exception or ""),
    )
    best: Culprit | None = None
    for g in tried:
        q = totals.get(g, 0) / everyone
        followed = sum(g in seen for seen in per_step)
        chances = [1 - (1 - q) ** step.size for step in steps]
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


def _idle(run: Run, service: str, inf: PoolInference, s: PoolSettings) -> None:
    """Waits after the last drop (else the last third) with no database span running."""
    if inf.steps:
        after, first = inf.steps[-1].after_ns, 0
    else:
        after, first = None, inf.waits - max(inf.waits // 3, 1)
    inf.final_waits, inf.idle_waits = holders.idle_waits(
        run, service, s, after_ns=after, from_index=first
    )


def _drained(tail: int, windows: int, waits: int, s: PoolSettings) -> bool:
    """Whether the failures after the last connection given are the run's story: most of
    its failures, enough of them, over enough windows (a saturated pool keeps giving
    connections to the end, so few fail after the last one)."""
    return tail >= max(s.min_waits, waits / 2) and windows >= s.min_windows


def _share(x: float) -> str:
    return f"{x * 100:.0f}%" if x >= 0.01 or x == 0 else f"{x * 100:.1f}%"


def _p(p: float) -> str:
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"
