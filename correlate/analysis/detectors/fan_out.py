"""Fan-out: one span with more direct client calls than a request should make from one place.

Rule (docs/rules.md#fan_out): a span with more than ``max_children`` direct children that
are calls (database, HTTP, RPC, messaging CLIENT or PRODUCER spans), in at least
``min_request_share`` of its route's requests; ``critical`` above ``critical_children``.
perf-sentinel's thresholds (more than 20, critical above 60). Fan-out counts the round
trips whatever their shapes; when ``one_shape_share`` of them are one shape the calls
are an N+1, which the ``n_plus_one`` finding names with its severity, and the fan-out
is only info.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.detectors.calls import Scale, calls_table
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

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
WITH calls AS (SELECT * FROM {calls}),
parents AS (
    -- direct children: the call's own parent, not the group parent
    SELECT g.th, g.rh, g.ph, any_value(p.name) AS parent_name, sum(g.n) AS calls,
           count(*) AS shapes, max(g.n) / sum(g.n) AS top_share,
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
           max(p.top_share) AS top_share,
           any_value(r.duration_ms) AS duration_ms
    FROM parents p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
    GROUP BY r.th, r.rh, r.route, p.parent_name
)
SELECT route, parent_name, count(*) AS requests,
       (SELECT count(*) FROM {reqs} r WHERE r.route = h.route) AS route_requests,
       avg(calls) AS calls, max(calls) AS max_calls, avg(shapes) AS shapes,
       avg(span_ms) AS span_ms, sum(span_ms) AS total_ms, avg(duration_ms) AS duration_ms,
       list(trace_id ORDER BY calls DESC, span_ms DESC, trace_id)[1:3] AS traces,
       avg(top_share) AS top_share
FROM hits h GROUP BY route, parent_name
ORDER BY max_calls DESC, route, parent_name
"""


def fan_out(run: Run, settings: FanOutSettings = DEFAULTS) -> list[Finding]:
    """Spans with more than ``max_children`` direct client calls."""
    s = settings
    sql = _SQL.format(
        calls=calls_table(run),
        tree=run.table("tree"),
        reqs=run.table("requests"),
    )
    rows = run.con.execute(sql, {"max_children": s.max_children}).fetchall()
    seconds = run.seconds
    found = []
    for (
        route, parent, n, route_n, calls, max_calls, shapes, span_ms, total_ms, duration_ms,
        traces, top_share,
    ) in rows:  # fmt: skip
        scale = Scale(int(n), int(route_n), float(calls), float(span_ms), float(duration_ms),
                      seconds)  # fmt: skip
        if scale.request_share < s.min_request_share or top_share >= s.one_shape_share:
            severity = Severity.INFO
        elif max_calls > s.critical_children:
            severity = Severity.CRITICAL
        else:
            severity = Severity.WARNING
        name = parent or "one span"
        found.append(
            Finding(
                kind=FindingKind.FAN_OUT,
                severity=severity,
                title=f"Fan-out in {route}: {name} makes {calls:.0f} calls per request",
                route=route,
                impact_ms=float(total_ms),
                evidence={
                    "requests": int(n),
                    "route_requests": int(route_n),
                    "share_of_requests": scale.request_share,
                    "calls_per_request": float(calls),
                    "max_calls": int(max_calls),
                    "shapes_per_request": float(shapes),
                    "share_in_one_shape": float(top_share),
                    "span_ms_per_request": float(span_ms),
                    "mean_request_ms": float(duration_ms),
                    "parent": parent,
                    **scale.evidence(s.projection_factor),
                },
                trace_ids=tuple(traces),
                explanation=(
                    f"In {n} of {route_n} {route} requests ({pct(scale.request_share)}), "
                    f"{name} makes {calls:.0f} client calls directly (at most {max_calls}, "
                    f"{shapes:.0f} distinct shapes), {ms(span_ms)} of calls in a "
                    f"{ms(duration_ms)} request. " + scale.projection(s.projection_factor, "calls")
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
