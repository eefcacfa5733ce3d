"""OFFSET pagination: a Limit that reads and throws away many rows first."""

from __future__ import annotations

from correlate.plans.insights.base import Insight, InsightContext, count, label
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

#: a Limit skipping at least this many rows is a large OFFSET
LARGE_OFFSET_ROWS = 1_000


def _offset(plan: Plan, node: PlanNode) -> tuple[float | None, bool]:
    offset = node.extra.get("limit_offset")  # MySQL format 2
    if isinstance(offset, int | float):
        return float(offset), False
    kids = plan.children(node)
    if not kids:
        return None, False
    child = kids[0]
    if node.total_rows is not None and child.total_rows is not None:
        return child.total_rows - node.total_rows, True
    # PostgreSQL charges the skipped rows to the Limit's startup cost
    if None in (node.startup_cost, child.startup_cost, child.total_cost, child.estimated_rows):
        return None, False
    span = (child.total_cost or 0.0) - (child.startup_cost or 0.0)
    if span <= 0:
        return None, False
    share = ((node.startup_cost or 0.0) - (child.startup_cost or 0.0)) / span
    return share * (child.estimated_rows or 0.0), False


def large_offset(plan: Plan, context: InsightContext) -> list[Insight]:
    """A Limit that reads and throws away many rows first (OFFSET pagination).

    Source: pganalyze EXPLAIN insight "Large Offset". Threshold ``LARGE_OFFSET_ROWS``.
    Measured: child rows minus Limit rows; estimated: PostgreSQL's Limit startup
    cost share of its child's cost, or MySQL format 2's ``limit_offset``.
    """
    found = []
    for node in plan.nodes:
        if node.operation != "limit":
            continue
        skipped, measured = _offset(plan, node)
        if skipped is None or skipped < LARGE_OFFSET_ROWS:
            continue
        found.append(
            Insight(
                rule="large_offset",
                severity=Severity.WARNING,
                node_id=node.node_id,
                relation=None,
                message=f"{label(measured)}: Limit skips about {count(skipped)} rows (large OFFSET)",
                suggestion="paginate by key (WHERE id > last_seen ORDER BY id LIMIT n)",
                evidence={"rows_skipped": skipped},
                measured=measured,
            )
        )
    return found
