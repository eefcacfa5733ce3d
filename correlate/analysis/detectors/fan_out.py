"""Fan-out: one span with more direct client calls than a request should make from one place.

Rule (docs/rules.md#fan_out): a span with more than ``max_children`` direct children that
are calls (database, HTTP, RPC, messaging CLIENT or PRODUCER spans), in at least
``min_request_share`` of its route's requests; ``critical`` above ``critical_children``.
perf-sentinel's thresholds (more than 20, critical above 60). Fan-out counts the round
trips whatever their shapes; when ``one_shape_share`` of them are one shape the calls
are an N+1, which the ``n_plus_one`` finding names with its severity, and the fan-out
is only info. Session statements (a new connection's setup: the server version, the
current schema, ``SET NAMES``; :mod:`correlate.fingerprint.session`) are not counted: a
pool's first connection runs them inside whichever request first uses it.
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
class FanOutSettings:
    """Thresholds of :func:`fan_out` (keys ``fan_out.*``)."""

    section: ClassVar[str] = "fan_out"
    max_children: int = setting(20, "direct client calls of one span above which it fans out")
    critical_children: int = setting(60, "direct client calls above which it is critical")
    min_request_share: float = share(
        0.05, "share of its route's requests below which the pattern is only info"
    )
    one_shape_share: float = share(
        0.8, "share of the calls in one shape from which the fan-out is an N+1's, only info"
    )
    projection_factor: float = setting(10.0, "load multiple the finding projects to", low=1.0)


DEFAULTS = FanOutSettings()

_SQL = """
-- a connection's session setup (the dialect's first-connect introspection) is not the
-- request's work, however many statements it takes
WITH calls AS (SELECT * FROM {calls} WHERE NOT session),
parents AS (
    -- direct children: the call's own parent, not the group parent
    SELECT g.th, g.rh, g.ph, any_value(p.name) AS parent_name, sum(g.n) AS calls,
           count(*) AS shapes, max(g.n) / sum(g.n) AS top_share,
           arg_max(g.shape, g.n) AS top_shape,
           -- the calls' time, overlaps counted once at most as far as their extent goes
           least(sum(g.busy), max(g.b) - min(g.a)) / 1e6 AS span_ms
    FROM (SELECT th, rh, ph, shape, count(*) AS n, sum(b - a) AS busy, min(a) AS a,
                 max(b) AS b
          FROM calls GROUP BY ALL) g
    LEFT JOIN {tree} p ON p.th = g.th AND p.sh = g.ph
    GROUP BY g.th, g.rh, g.ph HAVING sum(g.n) > $max_children
),
hits AS (
    SELECT r.route, p.parent_name, any_value(r.trace_id) AS trace_id,
           max(p.calls) AS calls, max(p.shapes) AS shapes, max(p.span_ms) AS span_ms,
           max(p.top_share) AS top_share, arg_max(p.top_shape, p.calls) AS top_shape,
           any_value(r.duration_ms) AS duration_ms
    FROM parents p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    GROUP BY r.th, r.rh, r.route, p.parent_name
)
SELECT route, count(*) AS requests,
       (SELECT count(*) FROM {reqs} r WHERE r.route = h.route) AS route_requests,
       avg(calls) AS calls, max(calls) AS max_calls, avg(span_ms) AS span_ms,
       sum(span_ms) AS total_ms, avg(duration_ms) AS duration_ms, parent_name,
       list(trace_id ORDER BY calls DESC, span_ms DESC, trace_id)[1:3] AS traces,
       avg(shapes) AS shapes, avg(top_share) AS top_share, mode(top_shape) AS top_shape
FROM hits h GROUP BY route, parent_name
ORDER BY max_calls DESC, route, parent_name
"""


def fan_out(run: Run, settings: FanOutSettings = DEFAULTS) -> list[Finding]:
    """Spans with more than ``max_children`` direct client calls."""
    s = settings
    found = []
    for p, (shapes, top_share, top_shape) in patterns(run, _SQL, max_children=s.max_children):
        scale, calls, route = p.scale(), p.calls, p.route
        one_shape = top_share >= s.one_shape_share
        name = p.parent or "one span"
        evidence = p.evidence(
            scale,
            s.projection_factor,
            "span_ms_per_request",
            shapes_per_request=float(shapes),
            share_in_one_shape=float(top_share),
            top_shape=top_shape,
        )
        found.append(
            p.finding(
                FindingKind.FAN_OUT,
                severity(
                    scale,
                    min_request_share=s.min_request_share,
                    warning=not one_shape,
                    critical=not one_shape and p.max_calls > s.critical_children,
                ),
                title=f"Fan-out in {route}: {name} makes {calls:.0f} calls per request",
                evidence=evidence,
                explanation=(
                    f"In {p.requests} of {p.route_requests} {route} requests "
                    f"({pct(scale.request_share)}), {name} makes {calls:.0f} client calls "
                    f"directly (at most {p.max_calls}, {shapes:.0f} distinct shapes), "
                    f"{ms(p.cost_ms)} of calls in a {ms(p.duration_ms)} request. "
                    + scale.projection(s.projection_factor, "calls")
                ).strip(),
                suggestion=(
                    "Batch the calls (one query or bulk request for all items), or bound "
                    "them: page the work, or move it off the request path."
                ),
                threshold=(
                    f"> {s.max_children} direct client calls of one span; critical above "
                    f"{s.critical_children}"
                ),
                source="perf-sentinel fan-out rule (docs/rules.md#fan_out)",
            )
        )
    return found
