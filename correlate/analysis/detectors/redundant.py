"""Redundant calls: the very same call made more than once in one request.

Rule (docs/rules.md#redundant_calls): one call identity
(:mod:`~correlate.analysis.detectors.calls`: a read statement's text with its literal
values, or a GET's full URL) at least ``min_calls`` times under one group parent in one
request. Calls that failed are left out, so a retry after an error is not redundant; a
statement whose parameters are bound shows no values and is never called redundant (its
calls may differ). The answer was already in hand: keep it, or ask once.

Severity: ``warning`` from ``warning_calls`` identical calls per request or when the
repeats take ``min_time_share`` of the request; ``info`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.detectors.pattern import patterns, severity
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class RedundantCallsSettings:
    """Thresholds of :func:`redundant_calls` (keys ``redundant_calls.*``)."""

    section: ClassVar[str] = "redundant_calls"
    min_calls: int = setting(2, "identical calls under one parent in one request", low=2)
    warning_calls: int = setting(5, "identical calls per request from which it is a warning")
    min_time_share: float = share(
        0.1, "share of the request's time in the repeats from which it is a warning"
    )
    projection_factor: float = setting(10.0, "load multiple the finding projects to", low=1.0)


DEFAULTS = RedundantCallsSettings()

_SQL = """
WITH calls AS (SELECT * FROM {calls}),
groups AS (
    SELECT th, rh, gph, family, identity, any_value(shape) AS shape,
           any_value(parent_name) AS parent_name, count(*) AS calls,
           -- the repeats: every call after the first
           (sum(b - a) - min(b - a)) / 1e6 AS repeat_ms
    FROM calls WHERE identity IS NOT NULL AND NOT error
    GROUP BY ALL HAVING count(*) >= $min_calls
),
hits AS (
    SELECT r.route, g.family, g.identity, any_value(g.shape) AS shape,
           any_value(r.trace_id) AS trace_id, sum(g.calls) AS calls,
           sum(g.repeat_ms) AS repeat_ms, any_value(r.duration_ms) AS duration_ms,
           mode(g.parent_name) AS parent_name
    FROM groups g JOIN {reqs} r ON r.th = g.th AND r.rh = g.rh
    GROUP BY r.th, r.rh, r.route, g.family, g.identity
)
-- one finding per route and shape: the same author read twice, whichever author
SELECT route, count(*) AS requests,
       (SELECT count(*) FROM {reqs} r WHERE r.route = h.route) AS route_requests,
       avg(calls) AS calls, max(calls) AS max_calls, avg(repeat_ms) AS repeat_ms,
       sum(repeat_ms) AS total_ms, avg(duration_ms) AS duration_ms,
       mode(parent_name) AS parent_name,
       list(trace_id ORDER BY repeat_ms DESC, trace_id)[1:3] AS traces,
       family, shape, min(identity) AS example  -- one example, the same in every engine
FROM hits h GROUP BY route, family, shape
ORDER BY total_ms DESC, route, shape
"""


def redundant_calls(run: Run, settings: RedundantCallsSettings = DEFAULTS) -> list[Finding]:
    """The same statement with the same values, or the same URL, repeated in one request."""
    s = settings
    found = []
    for p, (family, shape, example) in patterns(run, _SQL, min_calls=s.min_calls):
        calls, route = p.calls, p.route
        repeats = calls - 1
        scale = p.scale(calls=repeats)
        db = family == "db"
        what = "the same query with the same values" if db else f"the same {example}"
        where = f" under {p.parent}" if p.parent else ""
        evidence = p.evidence(
            scale,
            s.projection_factor,
            "repeat_ms_per_request",
            family=family,
            shape=shape,
            example=example,
        )
        found.append(
            p.finding(
                FindingKind.REDUNDANT_CALLS,
                severity(
                    scale,
                    min_request_share=0.0,
                    warning=calls >= s.warning_calls or scale.time_share >= s.min_time_share,
                ),
                title=f"Redundant {'queries' if db else 'calls'} in {route}: {what} "
                f"{calls:.0f}× per request",
                fingerprint=shape if db else None,
                evidence=evidence,
                explanation=(
                    f"{p.requests} of {p.route_requests} {route} requests make {what} "
                    f"{calls:.0f} times{where} ({example}); the {repeats:.0f} repeats take "
                    f"{ms(p.cost_ms)} of a {ms(p.duration_ms)} request "
                    f"({pct(scale.time_share)}) and return what the first call returned. "
                    + scale.projection(s.projection_factor, "repeated calls")
                ).strip(),
                suggestion=(
                    "Keep the first result for the rest of the request (pass it down, or a "
                    "request-scoped cache), or load it once before the loop that asks again."
                ),
                threshold=(
                    f"≥ {s.min_calls} identical successful calls under one parent in one "
                    f"request; a warning from {s.warning_calls} or "
                    f"{pct(s.min_time_share)} of the request"
                ),
                source="perf-sentinel redundant-call rule, retries left out "
                "(docs/rules.md#redundant_calls)",
            )
        )
    return found
