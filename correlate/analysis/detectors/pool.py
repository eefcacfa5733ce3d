"""Connection-pool exhaustion, and whether it is a leak or plain saturation.

Rules: docs/rules.md#pool_leak and #pool_saturation. Pressure first: requests
spend at least ``min_wait_share`` of their time and ``min_wait_ms`` per request
waiting for a connection, or checkouts time out, or ``correlate.instrument``
saw a connection outlive its request.

Then the diagnosis, from the strongest evidence available:

1. *leak suspects* recorded by ``correlate.instrument`` (a connection still
   checked out :data:`leak grace <correlate.instrument>` after its request
   ended, with the route and code line that took it) — HikariCP's
   ``leakDetectionThreshold`` idea, tied to the request;
2. *orphaned connections* in the pool samples: more connections checked out
   than requests in flight around that moment, still so at the end of the run;
3. with spans alone: pool wait that does not fall when the load does
   (``recovery_load`` and ``recovery_wait``).

A leak is pressure that load does not explain; saturation is pressure that
tracks load and recovers, and its fix is shorter holds or a bigger pool, sized
here by Little's law (connections needed ≈ checkouts per second × mean hold).
A database out of reach is neither, and no pool finding: its failures say a connection
was refused or lost (analysis.pool_pressure.unreachable), which a pool that ran dry never does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from correlate.analysis import stack
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.pool_evidence import (
    active_sentence,
    cite_database_view,
    held_sessions,
    instrument_leaks,
    no_recovery,
    orphans_in_samples,
    used_at_max_idle,
)
from correlate.analysis.pool_inference import infer
from correlate.analysis.pool_pressure import Pressure, unreachable
from correlate.analysis.pool_pressure import pressure as read_pressure
from correlate.analysis.pool_stalled import SUGGESTION, TITLE, Stalled, hung
from correlate.analysis.pool_suspects import decisive, rise_sentence
from correlate.analysis.pool_suspects import suspects as read_suspects
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.pool_inference import PoolInference
    from correlate.analysis.pool_suspects import Suspects
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class PoolSettings:
    """Thresholds of :func:`pool_exhaustion` (keys ``pool_exhaustion.*``)."""

    section: ClassVar[str] = "pool_exhaustion"
    #: a finding below critical_wait_share is a warning: min_wait_share above it leaves none
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("min_wait_share", "critical_wait_share"),)
    min_wait_share: float = share(0.10, "share of all request time spent waiting for a connection")
    min_wait_ms: float = setting(10.0, "pool wait per request", unit="ms")
    critical_wait_share: float = share(
        0.25, "share of request time in pool wait from which it is critical (or any timeout)"
    )
    recovery_load: float = share(
        0.75, "spans only: load in the run's last third at most this share of its peak…"
    )
    recovery_wait: float = share(0.5, "…while pool wait stays at least this share of its peak")
    sample_slack_s: float = setting(
        1.0,
        "slack around a pool sample when counting requests that could hold a connection",
        unit="s",
    )
    tracks_load: float = share(
        0.5, "correlation of wait and requests in flight from which saturation tracks load"
    )
    # spans only: the pool's capacity inferred from checkout spans (analysis.pool_inference)
    min_waits: int = setting(20, "spans only: checkouts that waited, at least, to decide", low=1)
    window_s: float = setting(
        5.0, "spans only: window for the capacity seen while waiting", unit="s"
    )
    min_windows: int = setting(3, "spans only: windows with waits, at least, to decide", low=1)
    min_window_waits: int = setting(3, "spans only: waits in a window for it to count", low=1)
    capacity_loss: float = share(
        0.3, "spans only: leak when the capacity seen at the end is this share below its peak"
    )
    full_slack: int = setting(1, "spans only: connections below the peak still counted as full")
    saturated_share: float = share(
        0.8, "spans only: saturation when this share of waits saw the pool full"
    )
    min_waits_after_drop: int = setting(
        3, "spans only: waits after a capacity drop for it to count as a step", low=1
    )
    max_p_value: float = share(0.01, "spans only: a route is named as the leak's below this p")
    min_drops: int = setting(2, "spans only: capacity drops a named route must precede", low=1)
    min_idle_at_max_s: float = setting(
        3.0, "pool samples: all connections in use with no query running, at least", unit="s"
    )
    held_factor: float = setting(
        2.0, "correlate watch: a session idle this many times the longest request is held"
    )
    min_held_s: float = setting(5.0, "correlate watch: …and idle at least this long", unit="s")
    # the route of a leak for pools that make no checkout span (analysis.pool_suspects)
    match_ms: float = setting(
        50.0, "correlate watch: a held session's last statement matches a span this near", unit="ms"
    )
    min_unended: int = setting(
        2, "transactions never ended, at least, for a leak finding of their own", low=1
    )
    max_unended_share: float = share(
        0.5, "…at most this share of the requests that began one (else the ends are unrecorded)"
    )
    route_share: float = share(0.67, "share of the suspects on one route to name it")
    end_grace_s: float = setting(
        2.0, "a request ending this near the run's end may have been cut by it", unit="s"
    )
    latency_rise: float = setting(
        1.5, "…with no pool wait seen: median latency of the last third over the first's", low=1.0
    )
    min_lost_connections: int = setting(
        3,
        "failed requests that lost their database connection or could not open one, at "
        "least, for the database's outage to explain the pool's failures",
        low=1,
    )
    min_stall_ms: float = setting(
        1000.0, "a request silent this long after its last checkout or call hung", unit="ms"
    )
    min_stalled: int = setting(3, "spans only: hung requests, at least, to explain the pool", low=1)


DEFAULTS = PoolSettings()

_SOURCE = (
    "correlate; leak suspects as HikariCP leakDetectionThreshold tied to the request, "
    "saturation as k6 throughput limit (docs/rules.md#{anchor})"
)
_UNDECIDED = "Connection pool exhausted: leak or saturation cannot be told apart"


def pool_exhaustion(run: Run, settings: PoolSettings = DEFAULTS) -> list[Finding]:
    s = settings
    pressure = read_pressure(run)
    leaks = instrument_leaks(run)
    # without correlate.instrument's telemetry, requests that left a connection held
    telemetry = _has_telemetry(run)
    named = None if telemetry else read_suspects(run, s)
    sure, rise = decisive(run, named, s)
    if not leaks and not _under_pressure(pressure, s) and rise is None:
        return []
    # a database out of reach fails checkouts in the pool's words too (a new connection
    # that timed out), and leaves connections taken by no running request; but a pool that
    # ran dry opens no connection, so none of its failures says one was lost or refused
    lost = unreachable(run)
    if not leaks and lost.explains(s.min_lost_connections, int(s.window_s * 1e9)):
        return []
    timeline = run.timeline()
    orphans = orphans_in_samples(run, s)
    stuck = no_recovery(timeline, s)
    severity = (
        Severity.CRITICAL
        if pressure.timeouts or pressure.share >= s.critical_wait_share
        else Severity.WARNING
    )
    # without correlate.instrument's telemetry, the checkout spans are the evidence
    inferred = None if telemetry else infer(run, s)
    # queries that never returned hold connections as a leak does: the pool is their victim
    if inferred is not None and not leaks and (hang := hung(run, s, inferred)) is not None:
        return [_undecided_finding(run, s, pressure, timeline, severity, inferred, hang)]
    verdict = inferred.verdict if inferred else None
    if verdict == "saturation":
        stuck = None  # holders at capacity whenever anyone waited: the load explains the wait
    # the database's side: connections held while nothing ran, sessions idle beyond requests
    idle = used_at_max_idle(run, s)
    sessions = held_sessions(run, s)
    held = sessions if sessions and sessions["held_sessions"] else None
    if (
        leaks
        or (orphans and orphans["at_end"] >= 1)
        or stuck
        or verdict == "leak"
        or (verdict == "undecided" and (idle or held))
        or sure
    ):
        finding = _leak_finding(
            run, s, pressure, leaks, orphans, stuck, timeline, severity, inferred, named, rise
        )
        return [cite_database_view(finding, idle, held)]
    if inferred is not None and inferred.verdict == "undecided":
        return [_undecided_finding(run, s, pressure, timeline, severity, inferred)]
    finding = _saturation_finding(run, s, pressure, timeline, severity, inferred)
    if sessions and sessions["active_max"]:
        finding.evidence["database_sessions"] = sessions
        finding = replace(finding, explanation=f"{finding.explanation} {active_sentence(sessions)}")
    return [finding]


def _has_telemetry(run: Run) -> bool:
    """Whether correlate.instrument recorded the pool (samples, checkouts or leak suspects).

    Pool samples read from OpenTelemetry metrics do not count: they say how many
    connections were in use, not which request held them, so the checkout spans
    are still read.
    """
    (n,) = run.con.execute(
        """
        SELECT (SELECT count(*) FROM pool_samples
                WHERE run_id = $run AND pool_class NOT LIKE 'otel %')
             + (SELECT count(*) FROM pool_checkouts WHERE run_id = $run)
             + (SELECT count(*) FROM pool_leaks WHERE run_id = $run)
        """,
        {"run": run.run_id},
    ).fetchone() or (0,)
    return bool(n)


def _under_pressure(p: Pressure, s: PoolSettings) -> bool:
    """Checkouts time out, or requests wait long enough for the pool to matter."""
    return bool(p.timeouts) or (
        p.share >= s.min_wait_share and p.wait_ms / max(p.requests, 1) >= s.min_wait_ms
    )


def _load_correlation(busy: pd.DataFrame) -> float | None:
    """Pearson correlation of pool wait and requests in flight across windows."""
    if len(busy) < 4 or busy.pool_ms.std() == 0 or busy.in_flight.std() == 0:
        return None
    value = busy.pool_ms.corr(busy.in_flight)
    return None if value != value else float(value)


def _common(pressure: Pressure, run: Run) -> dict[str, Any]:
    return {
        "pool_wait_ms": pressure.wait_ms,
        "share_of_request_time": pressure.share,
        "requests_that_waited": pressure.waited,
        "requests": pressure.requests,
        "timeouts": pressure.timeouts,
        "requests_failed_by_timeout": pressure.timeout_errors,
        "timeout_exception": pressure.exception,
        # the three above count every failed checkout, timed out or refused at once
        "checkouts_timed_out": pressure.timed_out,
        "requests_without_a_connection": pressure.pool_errors,
        "pool_error_of": pressure.pool,
        "wait_ms_per_request_by_route": dict(pressure.routes),
    }


def _wait_series(timeline: pd.DataFrame) -> str:
    t = timeline[timeline.requests > 0]
    step = max(len(t) // 6, 1)
    points = t.iloc[::step]
    return " → ".join(ms(float(v)) for v in points.pool_ms.fillna(0))


def _leak_finding(
    run: Run,
    s: PoolSettings,
    pressure: Pressure,
    leaks: list[dict[str, Any]],
    orphans: dict[str, Any] | None,
    stuck: dict[str, float] | None,
    timeline: pd.DataFrame,
    severity: Severity,
    inferred: PoolInference | None = None,
    suspects: Suspects | None = None,
    rise: tuple[float, float] | None = None,
) -> Finding:
    evidence = _common(pressure, run)
    evidence["wait_per_request_over_time"] = _wait_series(timeline)
    lang = stack.language(run, inferred.service if inferred else None)
    said: list[str] = []
    route = location = None
    traces: tuple[str, ...] = ()
    named = ""
    if inferred is not None and inferred.verdict == "leak":
        evidence["checkout_spans"] = inferred.evidence()
        said.append(_inferred_leak(inferred, s.window_s))
        if inferred.culprit and not leaks:
            group = inferred.culprit.group
            route, traces = group.route, inferred.traces
            named = group.describe()
    if suspects and not leaks:
        # the requests that left a connection held: a transaction never ended, a session
        evidence["leak_suspects"] = suspects.evidence()
        said.append(suspects.sentence())
        if suspects.group and not named:
            route, traces = suspects.group.route, suspects.traces
            named = suspects.group.describe()
    if rise is not None and not _under_pressure(pressure, s):
        evidence["pool_wait_unseen"] = True  # waits for a connection count as app time
    if leaks:
        top = leaks[0]
        route, location = top["route"], top["location"]
        total = sum(leak["count"] for leak in leaks)
        statuses = sorted({s for leak in leaks for s in (leak["statuses"] or [])})
        traces = tuple(t for leak in leaks for t in leak["traces"])[:3]
        evidence["leaked_connections"] = total
        evidence["leaks"] = [
            {k: v for k, v in leak.items() if k not in ("traces", "first_ns", "tracked")}
            for leak in leaks
        ]
        where = f" at {location}" if location else ""
        on = f" (its requests answered HTTP {', '.join(map(str, statuses))})" if statuses else ""
        never = sum(leak["never_returned"] for leak in leaks)
        tracked = sum(leak["tracked"] for leak in leaks)
        evidence["never_returned"] = never if tracked else None
        back = ""  # without their checkouts, whether they came back is not known
        if tracked:
            back = (
                ", and never came back"
                if never == total
                else f"; {never} of them never came back"
                if never
                else ", and came back only later"
            )
        said.append(
            f"{total} connection{'s' if total != 1 else ''} checked out by {route}{where} "
            f"{'were' if total != 1 else 'was'} still held after "
            f"{'their requests' if total != 1 else 'its request'} had ended{on}{back}"
        )
    if orphans:
        evidence["pool_samples"] = orphans
        if orphans["at_end"] >= 1:
            said.append(
                f"at the end of the run {orphans['checked_out_at_end']}"
                + (f" of {orphans['capacity']}" if orphans["capacity"] else "")
                + f" connections were checked out with {orphans['in_flight_at_end']} "
                + ("request" if orphans["in_flight_at_end"] == 1 else "requests")
                + " in flight"
            )
    if stuck:
        evidence["no_recovery"] = stuck
        said.append(
            f"pool wait stayed at {ms(stuck['final_wait_ms'])} per request after the load fell "
            f"from {stuck['peak_load']:.0f} to {stuck['final_load']:.0f}"
        )
    if pressure.timeouts:
        said.append(pressure.failures_sentence())
    routes = len(pressure.routes)
    title = (
        f"Connection-pool leak in {named or route}"
        + (f" ({location.split(' in ')[0]})" if location else "")
        if route
        else "Connection-pool leak: connections are not returned"
    )
    fix_at = f" at {location}" if location else ""
    return Finding(
        kind=FindingKind.POOL_LEAK,
        severity=severity,
        title=title,
        route=route,
        # without pressure the waits are ordinary checkouts, not the leak's doing
        impact_ms=pressure.wait_ms if _under_pressure(pressure, s) else 0.0,
        evidence=evidence,
        trace_ids=traces,
        explanation=(
            (
                f"Requests spent {pct(pressure.share)} of their time waiting for a database "
                f"connection ({ms(pressure.wait_ms / max(pressure.requests, 1))} per request, "
                f"across {routes} route{'s' if routes != 1 else ''}; "
                f"{evidence['wait_per_request_over_time']} over the run), not because the "
                "database was slow but because connections were taken and not given back: "
                + "; ".join(said)
                + ". Load does not explain it: it is a leak, and every route pays for it."
            )
            if _under_pressure(pressure, s)
            else (
                "Connections are taken and not given back: "
                + "; ".join(said)
                + (
                    f". {rise_sentence(rise)}. Every leaked connection shrinks the pool for good"
                    if rise is not None
                    else ". The pool has absorbed it so far (requests waited "
                    f"{ms(pressure.wait_ms / max(pressure.requests, 1))} per request for a "
                    "connection, no checkout timed out), but every leaked connection shrinks "
                    "it for good"
                )
                + ": a longer or busier run "
                "ends with the pool empty and every route waiting."
            )
        ),
        suggestion=(
            (
                "End the transaction on every path: commit or roll it back in a `finally`, or "
                "run it in the library's transaction block, which ends it when the block "
                f"returns or throws{_block(run, pressure, lang)}, so its connection goes back "
                "to the pool"
                if suspects is not None and suspects.source == "unended transactions"
                else f"Return the connection on every path{fix_at}: "
                + stack.give_back(pressure.pool, lang)
            )
            + ", including early returns and error responses."
            + (
                f" Start with the path of every {named}; follow the traces listed."
                if named
                else " The leaking requests are the ones listed; follow their traces."
                if traces
                else f" {stack.name_the_leak(lang, watched=stack.watched(run))}"
            )
        ),
        threshold=(
            f"pool wait ≥ {pct(s.min_wait_share)} of request time and ≥ {s.min_wait_ms:.0f} ms "
            f"per request, or {pressure.failures_word}, or leak suspects; leak when connections "
            "outlive their requests, the capacity seen while waiting falls for good, wait does "
            "not recover as load falls, or requests left transactions open or sessions held "
            f"(with latency up {s.latency_rise:g}× when no wait is seen); critical with "
            f"{pressure.failures_word} or "
            f"≥ {pct(s.critical_wait_share)} of request time"
        ),
        source=_SOURCE.format(anchor=FindingKind.POOL_LEAK),
    )


def _block(run: Run, pressure: Pressure, lang: str | None) -> str:
    """The data library's transaction block, named by the pool's error or the spans."""
    return stack.transaction_block(pressure.pool or stack.library(run), lang)


def _opening(pressure: Pressure) -> str:
    """The pool's toll in a sentence: the wait, and the checkouts that failed."""
    text = (
        f"Requests spent {pct(pressure.share)} of their time waiting for a database "
        f"connection ({ms(pressure.wait_ms / max(pressure.requests, 1))} per request)"
    )
    if pressure.timeouts:
        text += f", and {pressure.failures_sentence()}"
    return text + "."


def _inferred_leak(inf: PoolInference, window_s: float) -> str:
    """The checkout spans' case for a leak, in words."""
    idle = f", and no query was running at {inf.idle_waits}" if inf.idle_waits else ""
    if inf.emptied_tail:
        return (
            f"up to {inf.emptied_from} request{'s' if inf.emptied_from != 1 else ''} held a "
            f"connection at once; after the last request that got one, the pool refused all "
            f"{inf.emptied_tail} later checkouts (of {inf.waits} that failed) while no running "
            f"request held one{idle}: the connections were taken and not given back (or "
            "something these traces do not show holds them)"
        )
    if inf.emptied_from:
        return (
            f"up to {inf.emptied_from} request{'s' if inf.emptied_from != 1 else ''} held a "
            "connection at once before the first checkout failed; none did when any of the "
            f"{inf.waits} failed checkouts found the pool empty{idle}: the connections were "
            "taken and not given back (or something these traces do not show holds them)"
        )
    text = (
        f"while requests waited for a connection, the connections held by running requests "
        f"fell from {max(n for _, n in inf.levels)} to {inf.capacity_last} "
        f"({inf.levels_text()} per {window_s:.0f} s window with waits) and did not come back"
    )
    if inf.culprit:
        text += f"; {inf.culprit.sentence()}"
    elif inf.steps:
        text += (
            f"; no route stands out among the requests that ended just before the "
            f"{len(inf.steps)} capacity drops"
        )
    if inf.steps and inf.drops_from == "pool metrics":
        text += (
            "; the drops were read from the pool metrics: connections in use that no running "
            "request held"
        )
    if inf.final_waits and inf.idle_waits:
        text += (
            f"; after the last drop {inf.idle_waits} of {inf.final_waits} waiting requests "
            "found no query running anywhere (the database was idle)"
        )
    return text


def _undecided_finding(
    run: Run,
    s: PoolSettings,
    pressure: Pressure,
    timeline: pd.DataFrame,
    severity: Severity,
    inferred: PoolInference,
    hang: Stalled | None = None,
) -> Finding:
    evidence = _common(pressure, run)
    evidence["wait_per_request_over_time"] = _wait_series(timeline)
    evidence["checkout_spans"] = inferred.evidence()
    if hang is not None:  # neither leak nor saturation: queries that never returned
        evidence["hung_requests"] = hang.evidence(run.span[0])
    return Finding(
        kind=FindingKind.POOL_EXHAUSTED,
        severity=severity,
        title=TITLE if hang else _UNDECIDED,
        impact_ms=pressure.wait_ms,
        evidence=evidence,
        trace_ids=hang.traces if hang else (),
        explanation=_opening(pressure)
        + (
            f" {hang.sentence(run.span[0])}."
            if hang
            else " Whether connections leak or the pool is too small for the load cannot be "
            f"told from these spans, because {inferred.reason}."
        ),
        suggestion=SUGGESTION
        if hang
        else (
            (
                "Record the run with correlate.instrument (pool samples and checkouts name a "
                "leak and its code line)"
                if stack.language(run, inferred.service) == "python"
                else "Run `correlate watch --dsn URL --out RUN` beside the next load (sessions "
                "left idle in a transaction name the requests that took them)"
            )
            + ", or run longer at steady load so the pool's capacity can be followed; "
            "meanwhile check that every path returns its connection."
        ),
        threshold=hang.rule
        if hang
        else (
            f"pool wait ≥ {pct(s.min_wait_share)} of request time and ≥ {s.min_wait_ms:.0f} ms "
            f"per request, or {pressure.failures_word}; undecided with fewer than "
            f"{s.min_waits} waits, "
            f"{s.min_windows} windows with waits, or a capacity that neither holds nor falls"
        ),
        source=_SOURCE.format(anchor=FindingKind.POOL_EXHAUSTED),
    )


def _saturation_finding(
    run: Run,
    s: PoolSettings,
    pressure: Pressure,
    timeline: pd.DataFrame,
    severity: Severity,
    inferred: PoolInference | None = None,
) -> Finding:
    evidence = _common(pressure, run)
    evidence["wait_per_request_over_time"] = _wait_series(timeline)
    if inferred is not None:
        evidence["checkout_spans"] = inferred.evidence()
    hold = run.con.execute(
        """
        SELECT count(*) / nullif((max(start_unix_nano) - min(start_unix_nano)) / 1e9, 0),
               avg(hold_ns) / 1e6, max(capacity)
        FROM pool_checkouts c
        LEFT JOIN (SELECT run_id, max(capacity) AS capacity FROM pool_samples GROUP BY run_id) s
          USING (run_id)
        WHERE c.run_id = ? AND c.hold_ns IS NOT NULL
        """,
        [run.run_id],
    ).fetchone()
    sizing = ""
    if hold and hold[0] and hold[1]:
        needed = hold[0] * hold[1] / 1000
        evidence["littles_law_connections"] = needed
        evidence["pool_capacity"] = hold[2]
        sizing = (
            f" At {hold[0]:.1f} checkouts/s held {ms(hold[1])} each, the service needs about "
            f"{needed:.1f} connections on average (Little's law)"
            + (f" against a pool of {hold[2]}." if hold[2] else ".")
        )
    (recorded,) = run.con.execute(
        "SELECT count(*) FROM pool_checkouts WHERE run_id = ?", [run.run_id]
    ).fetchone() or (0,)
    kept = (
        " correlate.instrument saw no connection outlive its request, and the wait does not "
        "stay up when the load falls. "
        if recorded
        else f" It is no leak: {inferred.reason}. "
        if inferred is not None
        else " The wait does not stay up when the load falls, and the pool samples show no "
        "connection held beyond the requests in flight. "
    )
    busy = timeline[timeline.requests > 0]
    tracking = _load_correlation(busy)
    evidence["wait_load_correlation"] = tracking
    peak = busy.loc[busy.pool_ms.fillna(0).idxmax()] if len(busy) else None
    when = ""
    if peak is not None:
        when = (
            f" It peaked at {ms(float(peak.pool_ms))} per request with {peak.in_flight:.0f} "
            "requests in flight"
        )
        when += (
            f"; across the run it follows the requests in flight (correlation {tracking:.2f})."
            if tracking is not None and tracking >= s.tracks_load
            else "."
        )
    return Finding(
        kind=FindingKind.POOL_SATURATION,
        severity=severity,
        title="Connection pool saturated under load",
        impact_ms=pressure.wait_ms,
        evidence=evidence,
        explanation=(
            _opening(pressure)
            + kept
            + "The pool is too small for this concurrency, or connections are held too long."
            + when
            + sizing
        ),
        suggestion=(
            "Hold connections for less time (no slow work while a connection or transaction "
            "is open; fix the slowest queries first), or raise "
            + ("the pool's size" if pressure.pool_errors else "pool_size / max_overflow")
            + " to the concurrency you need and check the database can take it."
        ),
        threshold=(
            f"pool wait ≥ {pct(s.min_wait_share)} of request time and ≥ {s.min_wait_ms:.0f} ms "
            f"per request, or {pressure.failures_word}; saturation when the wait tracks load "
            "and recovers"
        ),
        source=_SOURCE.format(anchor=FindingKind.POOL_SATURATION),
    )
