"""Nested loops that re-run their inner side many times."""

from __future__ import annotations

from correlate.plans.insights.base import Insight, InsightContext, count, label
from correlate.plans.model import Plan
from correlate.severity import Severity

#: an inner side run at least this many times is worth a look (measured loops or outer estimate)
NESTED_LOOP_INNER_LOOPS = 1_000


def nested_loop_inner_rescans(plan: Plan, context: InsightContext) -> list[Insight]:
    """A nested loop re-running its inner side many times (loops × rows).

    Source: pganalyze Query Advisor "Inefficient Nested Loops". Measured:
    the inner child's ``Actual Loops``; estimated: the outer child's row
    estimate. Threshold ``NESTED_LOOP_INNER_LOOPS``.
    """
    found = []
    for node in plan.nodes:
        if node.operation != "nested_loop":
            continue
        kids = plan.children(node)
        if len(kids) < 2:
            continue
        outer, inner = kids[0], kids[1]
        measured = inner.actual_loops is not None
        loops = inner.actual_loops if measured else outer.estimated_rows
        if loops is None or loops < NESTED_LOOP_INNER_LOOPS:
            continue
        per_loop = inner.actual_rows if measured else inner.estimated_rows
        total = loops * per_loop if per_loop is not None else None
        found.append(
            Insight(
                rule="nested_loop_inner_rescans",
                severity=(
                    Severity.CRITICAL
                    if loops >= 100 * NESTED_LOOP_INNER_LOOPS
                    else Severity.WARNING
                ),
                node_id=node.node_id,
                relation=inner.relation,
                message=(
                    f"{label(measured)}: nested loop runs {inner.label} {count(loops)} times "
                    f"({count(per_loop)} rows each, {count(total)} in all)"
                ),
                suggestion=(
                    "check the outer row estimate; a hash join, an index on the inner join key, "
                    "or one batched query instead of a loop"
                ),
                evidence={"loops": loops, "rows_per_loop": per_loop, "total_rows": total},
                measured=measured,
            )
        )
    return found
