"""The one node that holds most of a plan's time (or cost)."""

from __future__ import annotations

from correlate.plans.insights.base import Insight, InsightContext, label
from correlate.plans.model import Plan
from correlate.severity import Severity

#: share of the plan's time (or cost) in one node → severity (PEV2's bands)
DOMINANT_BANDS: tuple[tuple[float, Severity], ...] = (
    (0.9, Severity.CRITICAL),
    (0.4, Severity.WARNING),
)
#: a plan with fewer nodes has nowhere else for the time to go: no finding
DOMINANT_MIN_NODES = 3
#: below this measured execution time a dominant node is not worth a finding
DOMINANT_MIN_MS = 10.0


def dominant_node(plan: Plan, context: InsightContext) -> list[Insight]:
    """The node holding most of the exclusive time, or of the cost when not measured.

    Sources: PEV2's exclusive duration/cost bands >10/>40/>90 %, pgAdmin's
    EXPLAIN analysis colours, pganalyze's older "Expensive" insight. Reports one
    node, only above the lowest band in ``DOMINANT_BANDS``.

    Deviation from PEV2, whose bands colour a tree for a reader: as a finding
    it needs a plan of at least ``DOMINANT_MIN_NODES`` nodes (in a one-node plan
    that node trivially holds everything) and, when measured, at least
    ``DOMINANT_MIN_MS`` of execution. Cost shares are estimates in planner units,
    not time, so an estimate-only dominant node is ``info`` at most.
    """
    if len(plan.nodes) < DOMINANT_MIN_NODES:
        return []
    timed = [n for n in plan.nodes if n.self_time is not None]
    measured = bool(timed)
    if measured:
        total = plan.execution_time or max((n.total_time or 0.0) for n in timed)
        top = max(timed, key=lambda n: n.self_time or 0.0)
        value = top.self_time or 0.0
    else:
        costed = [n for n in plan.nodes if n.self_cost is not None]
        if not costed:
            return []
        total = max(n.total_cost or 0.0 for n in costed)
        top = max(costed, key=lambda n: n.self_cost or 0.0)
        value = top.self_cost or 0.0
    if total <= 0 or (measured and total < DOMINANT_MIN_MS):
        return []
    share = min(1.0, value / total)
    for band, band_severity in DOMINANT_BANDS:
        if share > band:
            severity = band_severity if measured else Severity.INFO
            what = f"{value:,.2f} ms of {total:,.2f} ms" if measured else "of the total cost"
            return [
                Insight(
                    rule="dominant_node",
                    severity=severity,
                    node_id=top.node_id,
                    relation=top.relation,
                    message=f"{label(measured)}: {top.label} takes {share:.0%} ({what})",
                    suggestion=None,
                    evidence={"share": share, "self": value, "total": total},
                    measured=measured,
                )
            ]
    return []
