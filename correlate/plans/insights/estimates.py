"""Row estimates the planner got badly wrong."""

from __future__ import annotations

from correlate.plans.conditions import has_final_limit
from correlate.plans.insights.base import Insight, InsightContext, count
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

#: estimate factor bands → severity (PEV2 and pgAdmin: >10 / >100 / >1000)
MISESTIMATE_BANDS: tuple[tuple[float, Severity], ...] = (
    (1000.0, Severity.CRITICAL),
    (100.0, Severity.WARNING),
    (10.0, Severity.INFO),
)


def row_misestimate(plan: Plan, context: InsightContext) -> list[Insight]:
    """Estimated vs actual rows per loop differ by more than 10×, 100×, 1000×.

    Sources: pganalyze EXPLAIN insight "Mis-Estimate", PEV2's planner estimate
    factor and pgAdmin's EXPLAIN analysis colours. Measured plans only.
    """
    found = []
    for node in plan.nodes:
        est, act = node.estimated_rows, node.actual_rows
        if est is None or act is None or node.actual_loops == 0:
            continue
        if plan.source in ("mysql", "mariadb") and node.estimated_rows_examined is not None:
            est = node.estimated_rows_examined  # MariaDB r_rows and rows both count rows read
            act = act + (node.rows_removed_by_filter or 0.0)
        if act < est and _under_limit(plan, node):
            continue  # a LIMIT above stops the node early: fewer rows than planned is expected
        factor = max(est, 1.0) / max(act, 1.0)
        factor = max(factor, 1.0 / factor)
        for band, severity in MISESTIMATE_BANDS:
            if factor > band:
                direction = "under" if act > est else "over"
                found.append(
                    Insight(
                        rule="row_misestimate",
                        severity=severity,
                        node_id=node.node_id,
                        relation=node.relation,
                        message=(
                            f"measured: {node.label} {direction}-estimated rows {factor:,.0f}× "
                            f"(planned {count(est)}, got {count(act)} per loop)"
                        ),
                        suggestion=(
                            f"ANALYZE {node.relation}" if node.relation else "refresh statistics"
                        ),
                        evidence={"estimated_rows": est, "actual_rows": act, "factor": factor},
                        measured=True,
                    )
                )
                break
    return found


def _under_limit(plan: Plan, node: PlanNode) -> bool:
    parent = plan.parent(node)
    while parent is not None:
        if parent.operation == "limit":
            return True
        parent = plan.parent(parent)
    # MariaDB's and MySQL's classic JSON plans have no LIMIT node: the statement has it
    return plan.source in ("mysql", "mariadb") and has_final_limit(plan.query_text)
