"""ORDER BY … LIMIT served by walking an index in order while a filter drops what it reads.

For ``WHERE customer_id = $1 ORDER BY id DESC LIMIT 10`` PostgreSQL may walk the primary
key backward and filter each row, betting that matching rows are spread evenly and the
first ten come soon. When they are few, or bunched at the far end of the walk, it reads
most of the table for them; an index on the filtered columns followed by the ORDER BY
column finds them in order at once.
"""

from __future__ import annotations

from correlate.plans.conditions import create_index, filter_columns, index_columns
from correlate.plans.insights.base import Insight, InsightContext, count, label
from correlate.plans.insights.scans import LARGE_SCAN_ROWS, SELECTIVE_REMOVED_SHARE
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

#: scans that return rows in an index's order
WALKS = frozenset({"index_scan", "index_only_scan"})
#: nodes between a Limit and the walk that keep its order (parallel workers merged)
_KEEP_ORDER = frozenset({"gather_merge", "result"})


def _under_limit(plan: Plan, node: PlanNode) -> bool:
    parent = plan.parent(node)
    while parent is not None and parent.operation in _KEEP_ORDER:
        parent = plan.parent(parent)
    return parent is not None and parent.operation == "limit"


def order_columns(query: str | None, of: tuple[str, ...] = ()) -> list[str]:
    """The plain columns of the outermost ORDER BY of ``query`` (none if it has other
    expressions there, or does not parse); with ``of`` (the table's name and alias), none
    if one is qualified by another table (an index on this one cannot serve that order).

    >>> order_columns('SELECT * FROM "orders" WHERE customer_id = $1 ORDER BY "id" DESC LIMIT 5')
    ['id']
    """
    if not query:
        return []
    from sqlglot import exp, parse_one
    from sqlglot.errors import SqlglotError

    try:
        tree = parse_one(query, read="postgres")
    except (SqlglotError, ValueError, RecursionError):
        return []
    order = tree.args.get("order") if tree is not None else None
    if not isinstance(order, exp.Order):
        return []
    keys = [o.this for o in order.expressions]
    if not keys or not all(isinstance(k, exp.Column) for k in keys):
        return []
    names = {n.lower() for n in of}
    if names and any(k.table and k.table.lower() not in names for k in keys):
        return []
    return [k.name for k in keys]


def limit_index_walk(plan: Plan, context: InsightContext) -> list[Insight]:
    """An index walked in order under a Limit, with a filter on other columns.

    Source: pganalyze, "Postgres Planner Quirks: The impact of ORDER BY + LIMIT on index
    usage". Measured: the walk read ≥ ``LARGE_SCAN_ROWS`` rows and its filter removed
    ≥ ``SELECTIVE_REMOVED_SHARE`` of them (warning; critical from ten times as many).
    Estimated (no ANALYZE numbers, a generic plan): info, as the risk it is.
    """
    if plan.source not in ("postgresql", None):
        return []
    found = []
    for node in plan.nodes:
        if node.operation not in WALKS or not node.filter or not _under_limit(plan, node):
            continue
        table = node.relation or node.alias
        columns = filter_columns(node.filter, node.alias or node.relation)
        if not columns:
            continue
        index = node.index_name or "an index"
        measured = node.actual_rows is not None and node.rows_removed_by_filter is not None
        evidence: dict[str, object] = {"index": node.index_name, "filter": node.filter}
        if measured:
            loops = node.actual_loops or 1.0
            kept = (node.actual_rows or 0.0) * loops
            read = kept + (node.rows_removed_by_filter or 0.0) * loops
            if read < LARGE_SCAN_ROWS or (read - kept) / read < SELECTIVE_REMOVED_SHARE:
                continue
            severity = Severity.CRITICAL if read >= 10 * LARGE_SCAN_ROWS else Severity.WARNING
            what = (
                f"walked {index} in order and read {count(read)} rows of {table} to keep "
                f"{count(kept)} for the LIMIT"
            )
            evidence |= {"rows_read": read, "rows_returned": kept}
        else:
            severity = Severity.INFO
            what = (
                f"walks {index} in order until the LIMIT is met; where few rows of {table} "
                "match, or they lie at the far end of the walk, it reads most of the table"
            )
        wanted = (index_columns(node.filter, node.alias or node.relation) or columns)[:3]
        of = tuple(n for n in (node.relation, node.alias) if n)
        ordered = [c for c in order_columns(plan.query_text, of) if c not in wanted]
        found.append(
            Insight(
                rule="limit_index_walk",
                severity=severity,
                node_id=node.node_id,
                relation=table,
                message=(
                    f"{label(measured)}: {node.node_type} {what}, filtering on {', '.join(columns)}"
                ),
                suggestion=(
                    create_index(node.relation, wanted + ordered, plan.source)
                    if node.relation and ordered
                    else create_index(node.relation, wanted, plan.source).removesuffix(")")
                    + ", then the ORDER BY columns)"
                    if node.relation
                    else None
                ),
                evidence=evidence,
                measured=measured,
            )
        )
    return found
