"""Section contention: requests that queue behind each other on one section of application code.

Rule (docs/rules.md#section_contention): the sibling of ``lock_contention`` for a
lock in the application rather than in the database: a mutex, a ``synchronized``
block, an advisory lock taken in code, seen as the spans of one name in one service
(below a request, and neither a database, pool nor outbound call) whose critical
parts never overlap although many requests are in flight
(:mod:`~correlate.analysis.detectors.section_queue`). It fires when at least
``min_contended`` executions had another request's execution in flight when they
started (or were handed the section as the one before ended), at least
``min_queued_share`` of those queued (their ends kept a critical part's distance
from every other execution they overlapped, or they were handed over), and their
median wait is at least ``min_wait_ms`` and at least ``growth_ratio - 1`` times
the section's uncontended duration: waits that grow with the number waiting.

A section whose waits were spent in database calls or pool waits inside it queues on
a row lock or a connection pool and is left to ``lock_contention`` and the pool
detector. Code that merely overlaps (threads interleaving under an interpreter lock every few
milliseconds, I/O waits) ends closer together than its own duration and is not
reported; neither is a section that is slow with nobody else in it.

Severity from the share of the requests' time outside pool waits lost waiting, as
for ``lock_contention``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.detectors.section_queue import (
    Section,
    busy,
    inside,
    sections,
)
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class SectionContentionSettings:
    """Thresholds of :func:`section_contention` (keys ``section_contention.*``)."""

    section: ClassVar[str] = "section_contention"
    min_contended: int = setting(
        10, "executions with another request's execution in flight or handed over", low=1
    )
    min_queued_share: float = share(
        0.8, "share of those whose critical parts overlapped no other's"
    )
    spacing: float = share(
        0.8, "share of the uncontended duration two overlapping ends must keep apart"
    )
    handoff_ms: float = setting(
        2.0,
        "gap from one execution's end to the next one's start that is a hand-over",
        unit="ms",
    )
    growth_ratio: float = setting(
        1.25, "one plus the median wait over the uncontended duration", low=1.0
    )
    min_wait_ms: float = setting(2.0, "median wait of the queued executions", unit="ms")
    min_share: float = share(
        0.01, "share of the requests' time lost waiting below which it is not reported"
    )
    warning_share: float = share(
        0.05, "share of the requests' time lost waiting from which it is a warning"
    )
    critical_share: float = share(0.25, "share lost waiting from which it is critical")
    tolerance_ms: float = setting(1.0, "slack when comparing ends and starts", unit="ms")
    min_uncontended: int = setting(
        5, "uncontended executions needed to take their median as the baseline", low=1
    )


DEFAULTS = SectionContentionSettings()

_AHEAD = {"0": "none", "1": "one", "2": "two", "3+": "three or more"}

_SOURCE = (
    "Java Flight Recorder 'Java Monitor Blocked'; async-profiler lock profiling; "
    "Go's mutex profile; queueing: waits grow with the number waiting "
    "(docs/rules.md#section_contention)"
)


def section_contention(run: Run, settings: SectionContentionSettings = DEFAULTS) -> list[Finding]:
    """Sections of application code whose executions queue behind each other."""
    s = settings
    found = []
    for section in sections(
        run, tolerance_ms=s.tolerance_ms, handoff_ms=s.handoff_ms, spacing=s.spacing,
        min_uncontended=s.min_uncontended, min_executions=s.min_contended,
    ):  # fmt: skip
        finding = _contended(run, section, s)
        if finding is not None:
            found.append(finding)
    return found


def _contended(run: Run, section: Section, s: SectionContentionSettings) -> Finding | None:
    contended, queued = section.contended, section.queued
    if contended < s.min_contended or queued < s.min_queued_share * contended:
        return None
    if not queued:
        return None
    median_wait = section.median_wait_ms
    base = section.baseline_ms
    if median_wait < s.min_wait_ms or median_wait < (s.growth_ratio - 1) * base:
        return None
    if _waits_in_the_database(run, section):
        return None
    busy(run, section)
    lost = section.lost_ms
    lost_share = lost / section.busy_ms if section.busy_ms > 0 else 0.0
    if lost_share < s.min_share:
        return None
    severity = (
        Severity.CRITICAL
        if lost_share >= s.critical_share
        else Severity.WARNING
        if lost_share >= s.warning_share
        else Severity.INFO
    )
    routes = section.routes
    top_route = routes[0][0] if routes else "?"
    covers_wait = section.handoffs * 2 < queued
    how = (
        f"{queued} of those ended a critical part's length apart from every other "
        "execution they overlapped: they ran one at a time"
        if covers_wait
        else f"{section.handoffs} of them started as another request's execution ended, "
        "while their own request was already waiting: the section passed from one "
        "request to the next"
    )
    growth = (
        "Its median time grows with the number ahead of it: "
        + ", ".join(f"{ms(v)} with {_AHEAD.get(k, k)} ahead" for k, v in section.by_ahead.items())
        + "."
        if covers_wait
        else f"The requests' median time before it grew from {ms(section.baseline_before_ms)} "
        f"to {ms(section.median_before_ms)}."
    )
    calls = inside(run, section)
    spent = section.spent_ms
    subject = f"the section {section.name!r} in {section.service}"
    explanation = (
        f"{subject[0].upper() + subject[1:]} ran {section.executions} times in "
        f"{section.requests} requests; {contended} of them met another request's "
        f"execution of it, and {how}. {growth} Its uncontended time is {ms(base)}; "
        f"waiting cost {ms(lost)} in all, {pct(lost_share)} of the time of the requests "
        f"that run it (outside pool waits). Most of it in {_route_list(routes)}."
        + _inside_sentence(calls, spent)
    )
    return Finding(
        kind=FindingKind.SECTION_CONTENTION,
        severity=severity,
        title=f"Section contention in {top_route}: {section.name!r} runs one request at a time",
        route=top_route,
        impact_ms=lost,
        evidence={
            "service": section.service,
            "section": section.name,
            "span_covers_wait": covers_wait,
            "lost_ms": lost,
            "share_of_time_outside_pool_wait": lost_share,
            "uncontended_median_ms": base,
            "uncontended_before_median_ms": section.baseline_before_ms,
            "median_wait_ms": median_wait,
            "contended": contended,
            "queued": queued,
            "handoffs": section.handoffs,
            "executions": section.executions,
            "requests": section.requests,
            "median_ms_by_ahead": dict(section.by_ahead),
            "inside": {c: {"calls": n, "total_ms": v} for c, (n, v) in calls.items()},
            "routes": [{"route": r, "executions": n, "wait_total_ms": tot} for r, n, tot in routes],
        },
        trace_ids=section.waited_traces,
        explanation=explanation,
        suggestion=(
            f"Find what {section.name!r} locks and hold it for less: move work that does "
            "not need the lock (I/O, calls, formatting) out of the locked part, split one "
            "lock into finer ones (per key, per shard), or use a structure that does not "
            "need one (an atomic, a concurrent map, a queue drained by one worker). A lock "
            "profile (JFR 'Java Monitor Blocked', async-profiler -e lock, Go's mutex "
            "profile) names the lock. On a single-threaded event loop (Node.js, asyncio) "
            "the loop itself is the lock: move the work to a worker thread or process."
        ),
        threshold=(
            f"≥ {s.min_contended} executions of one section meeting another request's, "
            f"≥ {pct(s.min_queued_share)} of them queued (ends ≥ {s.spacing:g}× the "
            f"uncontended time apart, or handed over within {s.handoff_ms:g} ms), median "
            f"wait ≥ {s.min_wait_ms:g} ms and ≥ {s.growth_ratio - 1:g}× the uncontended "
            f"time, ≥ {pct(s.min_share)} of the requests' time lost; warning from "
            f"{pct(s.warning_share)}, critical from {pct(s.critical_share)}"
        ),
        source=_SOURCE,
    )


def _waits_in_the_database(run: Run, section: Section) -> bool:
    """Whether the queued executions' waits were spent in database calls or pool waits
    inside the section: a row lock or a connection pool queues them, not the section
    (``lock_contention`` and ``pool_exhaustion`` report those)."""
    if not section.queued_overlaps:
        return False

    def held(which: str) -> float:
        calls = inside(run, section, which)
        return sum(calls.get(c, (0, 0.0))[1] for c in ("db", "pool"))

    usual = held("free") / section.free if section.free else 0.0
    extra = held("queued_overlaps") - usual * section.queued_overlaps
    return extra >= 0.5 * section.queued_overlaps_wait_ns / 1e6


def _route_list(routes: list[tuple[str, int, float]]) -> str:
    shown = [f"{r} ({ms(tot)} waited over {n} executions)" for r, n, tot in routes[:2]]
    return " and ".join(shown) or "no route"


_WHAT = {"db": "database calls", "downstream": "outbound calls", "pool": "connection waits"}


def _inside_sentence(calls: dict[str, tuple[int, float]], spent_ms: float) -> str:
    """What the section's executions call, when they call anything."""
    shown = [
        f"{_WHAT.get(c, c)} ({n} calls, {pct(v / spent_ms) if spent_ms > 0 else '0%'} of its time)"
        for c, (n, v) in sorted(calls.items(), key=lambda kv: -kv[1][1])
        if v > 0
    ]
    if not shown:
        return (
            " It makes no traced call: what it does holding the lock is the application's own code."
        )
    hint = (
        " Its waits were not spent in them: it queues on a lock of its own."
        if "db" in calls or "pool" in calls
        else ""
    )
    return " Inside it, requests spend time on " + " and ".join(shown) + "." + hint
