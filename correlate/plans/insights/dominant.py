"""The one node that holds most of a plan's time (or cost)."""

from __future__ import annotations

from correlate.plans.insights.base import Insight, InsightContext, label
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

#: share of the plan's time (or cost) in one node → severity (PEV2's bands)
DOMINANT_BANDS: tuple[tuple[float, Severity], ...] = (
    (0.9, Severity.CRITICAL),
    (0.4, Severity.WARNING),
)
#: nodes that collect the rows of parallel workers: their own time is waiting on them
GATHER_TYPES = frozenset({"Gather", "Gather Merge"})
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

    A ``Gather`` or ``Gather Merge`` does no work of its own: its exclusive time
    is the leader waiting on its workers and merging their rows. When one holds
    the most time, the insight looks through it: the parallel part (the Gather's
    total) is what takes the share, and the node under it with the most
    exclusive time (per process, PEV2's per-worker reading) is named as its work.
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
    evidence: dict[str, object] = {}
    subject, parts = top.label, ""
    if measured and top.node_type in GATHER_TYPES:
        work = _work_under(plan, top)
        if work is not None:
            # The Gather's own time is its leader waiting on the workers and merging what
            # they send: the time of the parallel part. Name the part and its real work.
            value = top.total_time or value
            subject = f"{work.label}, run in parallel under {top.label},"
            parts = (
                f": {work.self_time or 0.0:,.2f} ms in {work.node_type} per process, "
                f"{top.self_time or 0.0:,.2f} ms in {top.node_type} waiting and merging"
            )
            evidence = {"gather": top.label, "gather_self": top.self_time}
            top = work
    share = min(1.0, value / total)
    for band, band_severity in DOMINANT_BANDS:
        if share > band:
            severity = band_severity if measured else Severity.INFO
            what = f"{value:,.2f} ms of {total:,.2f} ms{parts}" if measured else "of the total cost"
            return [
                Insight(
                    rule="dominant_node",
                    severity=severity,
                    node_id=top.node_id,
                    relation=top.relation,
                    message=f"{label(measured)}: {subject} takes {share:.0%} ({what})",
                    suggestion=None,
                    evidence={"share": share, "self": value, "total": total, **evidence},
                    measured=measured,
                )
            ]
    return []


def _work_under(plan: Plan, gather: PlanNode) -> PlanNode | None:
    """The node under ``gather`` with the most exclusive time, Gathers left out."""
    below: list[PlanNode] = []
    stack = plan.children(gather)
    while stack:
        node = stack.pop()
        stack.extend(plan.children(node))
        if node.node_type not in GATHER_TYPES and node.self_time is not None:
            below.append(node)
    return max(below, key=lambda n: n.self_time or 0.0, default=None)
