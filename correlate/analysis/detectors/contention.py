"""Lock contention: requests that queue behind each other on one locking statement.

Rule (docs/rules.md#lock_contention): a locking statement (``UPDATE``, ``DELETE``,
``SELECT … FOR UPDATE``, an upsert, an advisory lock;
:data:`~correlate.analysis.detectors.lock_queue.LOCKING_PATTERN`) whose executions
queue: at least ``min_contended`` of them started while the same statement in
another request still held its lock (:mod:`~correlate.analysis.detectors.lock_queue`),
at least ``min_queued_share`` of those ended only once every one ahead of them had
let go, and they then took at least ``growth_ratio`` times (and ``min_wait_ms``
more than) the statement's uncontended duration: durations that grow with the
number waiting, as in a single-server queue, rather than a statement that is slow
by itself (``slow_query``) or requests waiting for a pooled connection (``pool``,
which is waited for before the statement starts, not inside it).

Severity from the share of the holding requests' time outside pool waits lost
waiting: ``critical_share`` and more is critical, ``warning_share`` a warning, less
is info. What the requests did while holding the lock (an HTTP call inside the
transaction, other statements, their own code) is measured from the spans inside
each hold; ``correlate watch`` output (``db_lock_waits``), when the run has it,
confirms the wait from the database: blocked and blocking sessions, relation,
lock mode and the statement holding it.

A statement that holds its lock across an outbound call (HTTP, RPC, messaging)
of at least ``min_held_call_ms`` median in at least ``min_requests`` requests,
without measured queueing, is reported as info: it will queue once two requests
meet on the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.detectors.lock_queue import (
    Activity,
    LockWaits,
    Queue,
    held_activities,
    lock_waits,
    queues,
)
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class LockContentionSettings:
    """Thresholds of :func:`lock_contention` (keys ``lock_contention.*``)."""

    section: ClassVar[str] = "lock_contention"
    min_contended: int = setting(
        10, "executions that started while another request held the lock", low=1
    )
    min_queued_share: float = share(
        0.8, "share of those that ended only after every holder ahead had let go"
    )
    growth_ratio: float = setting(
        2.0, "median contended duration over the uncontended duration", low=1.0
    )
    min_wait_ms: float = setting(
        2.0, "median contended duration beyond the uncontended one", unit="ms"
    )
    min_share: float = share(
        0.01, "share of the holding requests' time lost waiting below which it is not reported"
    )
    warning_share: float = share(
        0.05, "share of the holding requests' time lost waiting from which it is a warning"
    )
    critical_share: float = share(0.25, "share lost waiting from which it is critical")
    tolerance_ms: float = setting(
        1.0, "slack when telling whether an execution ended after its holders", unit="ms"
    )
    min_uncontended: int = setting(
        5,
        "uncontended executions needed to take their median as the baseline "
        "(fewer: the fastest tenth, or the median of those that waited for nobody if less)",
        low=1,
    )
    min_requests: int = setting(
        5, "requests holding the lock across a call before that alone is reported", low=1
    )
    min_held_call_ms: float = setting(
        10.0, "median outbound call inside the hold reported without queueing", unit="ms"
    )


DEFAULTS = LockContentionSettings()

_AHEAD = {"0": "none", "1": "one", "2": "two", "3+": "three or more"}

_SOURCE = (
    "PostgreSQL explicit locking and pg_locks; pganalyze lock monitoring; "
    "queueing: waits grow with the number waiting (docs/rules.md#lock_contention)"
)


def lock_contention(run: Run, settings: LockContentionSettings = DEFAULTS) -> list[Finding]:
    """Locking statements whose executions queue behind each other."""
    s = settings
    found = []
    swept = queues(run, s.tolerance_ms, s.min_uncontended)
    held = held_activities(run) if swept else {}
    for queue in swept:
        activities = held.get(queue.fingerprint, [])
        finding = _contended(run, queue, activities, s) or _held_across_call(queue, activities, s)
        if finding is not None:
            found.append(finding)
    return found


def _contended(
    run: Run, queue: Queue, activities: list[Activity], s: LockContentionSettings
) -> Finding | None:
    contended, queued = queue.contended, queue.queued
    if contended < s.min_contended or queued < s.min_queued_share * contended:
        return None
    median_contended = queue.contended_median_ms
    base = queue.baseline_ms
    if median_contended < s.growth_ratio * base or median_contended - base < s.min_wait_ms:
        return None
    lost = queue.lost_ms
    lost_share = lost / queue.busy_ms if queue.busy_ms > 0 else 0.0
    if lost_share < s.min_share:  # it queues, but too briefly to matter
        return None
    severity = (
        Severity.CRITICAL
        if lost_share >= s.critical_share
        else Severity.WARNING
        if lost_share >= s.warning_share
        else Severity.INFO
    )
    db = lock_waits(run, queue.fingerprint)
    routes = queue.routes
    subject = _subject(queue)
    top_route = routes[0][0] if routes else "?"
    doing = _doing(activities)
    growth = ", ".join(f"{ms(v)} with {_AHEAD.get(k, k)} ahead" for k, v in queue.by_ahead.items())
    explanation = (
        f"{subject[0].upper() + subject[1:]} ran {queue.executions} times in {queue.requests} requests; "
        f"{contended} of them started while the same statement in another request "
        f"still held its lock, and {queued} of those got it only as another request "
        f"let go of it: they queue. Its median time grows with the number "
        f"ahead of it: {growth}. Waiting "
        f"cost {ms(lost)} in all, {pct(lost_share)} of the time of the requests that run "
        f"it (outside pool waits). The lock is held longest by {_route_list(routes)}"
        + (f", which {doing}." if doing else ".")
        + _db_sentence(db)
    )
    call = next((a for a in activities if a.category == "downstream"), None)
    return Finding(
        kind=FindingKind.LOCK_CONTENTION,
        severity=severity,
        title=(
            f"Lock contention in {top_route}: {subject} queues, "
            + (f"held across {_a(call.label)}" if call else f"{ms(lost)} lost waiting")
        ),
        route=top_route,
        fingerprint=queue.fingerprint,
        impact_ms=lost,
        evidence={
            "lost_ms": lost,
            "share_of_time_outside_pool_wait": lost_share,
            "uncontended_median_ms": base,
            "contended_median_ms": median_contended,
            "contended": contended,
            "queued": queued,
            "executions": queue.executions,
            "requests": queue.requests,
            "median_ms_by_ahead": dict(queue.by_ahead),
            "hold_median_ms": queue.hold_median_ms,
            "routes": [
                {"route": r, "executions": n, "hold_median_ms": med, "hold_total_ms": tot}
                for r, n, med, tot in routes
            ],
            "held_doing": [_activity(a) for a in activities],
            "statement": queue.statement,
            **(db.evidence() if db else {}),
        },
        trace_ids=queue.waited_traces,
        explanation=explanation,
        suggestion=_fix(queue, call),
        threshold=(
            f"≥ {s.min_contended} executions of one locking statement started while "
            f"another request held it, ≥ {pct(s.min_queued_share)} of them granted only as "
            f"another let go, median ≥ {s.growth_ratio:g}× and ≥ {s.min_wait_ms:g} ms over "
            f"the uncontended one, ≥ {pct(s.min_share)} of the requests' time lost waiting; "
            f"warning from {pct(s.warning_share)}, critical from {pct(s.critical_share)}"
        ),
        source=_SOURCE,
    )


def _held_across_call(
    queue: Queue, activities: list[Activity], s: LockContentionSettings
) -> Finding | None:
    if queue.holding_requests < s.min_requests:
        return None
    call = next((a for a in activities if a.category == "downstream"), None)
    if call is None or call.calls < s.min_requests or call.median_ms < s.min_held_call_ms:
        return None
    routes = queue.routes
    top_route = routes[0][0] if routes else "?"
    subject = _subject(queue)
    return Finding(
        kind=FindingKind.LOCK_CONTENTION,
        severity=Severity.INFO,
        title=f"Lock held across a call in {top_route}: {subject}, then {_a(call.label)}",
        route=top_route,
        fingerprint=queue.fingerprint,
        impact_ms=0.0,
        evidence={
            "executions": queue.executions,
            "requests": queue.requests,
            "contended": queue.contended,
            "hold_median_ms": queue.holding_median_ms,
            "held_doing": [_activity(call)],
            "statement": queue.statement,
        },
        trace_ids=queue.holding_traces,
        explanation=(
            f"In {call.calls} requests, {top_route} runs {subject} and then, before its "
            f"transaction ends, {_a(call.label)} ({ms(call.median_ms)} median). Nothing queued "
            "on it in this run, but two requests on the same rows will wait for each "
            "other for as long as that call takes."
        ),
        suggestion=_fix(queue, call),
        threshold=(
            f"a locking statement held across an outbound call of ≥ {s.min_held_call_ms:g} "
            f"ms median in ≥ {s.min_requests} requests, without queueing: info"
        ),
        source=_SOURCE,
    )


#: Functions that take an advisory lock, as a statement names them (lower case).
_ADVISORY = ("pg_advisory_xact_lock", "pg_advisory_lock", "get_lock")


def _subject(queue: Queue) -> str:
    lowered = queue.statement.lower()
    advisory = next((f for f in _ADVISORY if f + "(" in lowered.replace(" ", "")), None)
    if advisory:  # a SELECT only in form: the lock is what it takes
        return f"the advisory lock {advisory}()"
    verb = queue.statement.split(None, 1)[0].upper() if queue.statement.strip() else "statement"
    table = queue.tables[0] if queue.tables else None
    return f"the {verb} on {table}" if table else f"the {verb}"


def _route_list(routes: list[tuple[str, int, float, float]]) -> str:
    shown = [f"{r} ({ms(med)} median per hold, {n} holds)" for r, n, med, _ in routes[:2]]
    return " and ".join(shown) or "no route"


def _doing(activities: list[Activity]) -> str:
    calls = [a for a in activities if a.category != "app" and a.total_ms > 0]
    if not calls:
        return ""
    top = calls[0]
    where = "inside the transaction" if top.category == "downstream" else "before committing"
    what = _a(top.label) if top.category == "downstream" else top.label
    return f"spends it on {what} {where} ({ms(top.median_ms)} median, {top.calls} calls)"


def _db_sentence(db: LockWaits | None) -> str:
    if db is None:
        return ""
    what = f" on {db.relation}" if db.relation else ""
    mode = f" ({db.lock_mode})" if db.lock_mode else ""
    idle = (
        f"; the blocking session was idle in transaction in {pct(db.blocking_idle_in_transaction)}"
        " of them: the application held the transaction open doing something else"
        if db.blocking_idle_in_transaction
        else ""
    )
    holder = f"; the statement holding it: {db.blocking_query}" if db.blocking_query else ""
    return (
        f" The database confirms it: correlate watch saw {db.blocked_sessions} session(s) "
        f"blocked on this statement{what}{mode} in {db.samples} sample(s){holder}{idle}."
    )


def _fix(queue: Queue, call: Activity | None) -> str:
    first = (
        f"Make the {call.label} before the transaction takes the lock (or after it commits), "
        "and run the locking statement as the last one before COMMIT, so the lock is held "
        "for milliseconds, not for a round trip."
        if call
        else "Shorten the transaction that holds the lock: run the locking statement as "
        "late as possible, right before COMMIT."
    )
    return (
        first + " If every request must touch the same row, spread it (several counter rows "
        "summed on read), update it conditionally in one statement at commit time, or batch "
        "the updates off the request path."
    )


def _activity(a: Activity) -> dict[str, object]:
    return {"doing": a.label, "category": a.category, "calls": a.calls,
            "total_ms": a.total_ms, "median_ms": a.median_ms}  # fmt: skip


def _a(label: str) -> str:
    """``HTTP call …`` → ``an HTTP call …``; ``call to …`` → ``a call to …``."""
    article = "an" if label[:1] in "AEIOUaeiou" or label.startswith("HTTP") else "a"
    return f"{article} {label}"
