"""MySQL/MariaDB and SQLite specifics: filesorts, temporary tables, temporary b-trees."""

from __future__ import annotations

from correlate.plans.insights.base import (
    Insight,
    InsightContext,
    count,
    descendants,
    label,
)
from correlate.plans.model import Plan
from correlate.severity import Severity

#: a filesort or temporary table over at least this many rows is a warning, else info
SORT_TEMP_WARN_ROWS = 10_000


def mysql_filesort_temporary(plan: Plan, context: InsightContext) -> list[Insight]:
    """MySQL/MariaDB ``filesort`` and temporary tables ("Using filesort", "Using temporary").

    Source: the MySQL Reference Manual, "EXPLAIN Output Format", EXPLAIN Extra
    Information ("Using filesort", "Using temporary").
    Severity warning when the rows beneath reach ``SORT_TEMP_WARN_ROWS``.
    """
    if plan.source not in ("mysql", "mariadb"):
        return []
    found = []
    for node in plan.nodes:
        kinds = []
        if node.node_type == "filesort" or node.extra.get("using_filesort") is True:
            kinds.append("filesort")
        if node.node_type == "temporary_table" or node.extra.get("using_temporary_table") is True:
            kinds.append("temporary table")
        if not kinds:
            continue
        below = [n for n in descendants(plan, node) if n.estimated_rows_examined is not None]
        rows = max((n.estimated_rows_examined or 0.0 for n in below), default=None)
        found.append(
            Insight(
                rule="mysql_filesort_temporary",
                severity=(
                    Severity.WARNING if (rows or 0) >= SORT_TEMP_WARN_ROWS else Severity.INFO
                ),
                node_id=node.node_id,
                relation=None,
                message=(
                    f"{label(plan.analyzed)}: the query uses a {' and a '.join(kinds)}"
                    + (f" over about {count(rows)} rows" if rows is not None else "")
                ),
                suggestion="an index matching the ORDER BY / GROUP BY columns avoids it",
                evidence={"kinds": kinds, "rows": rows},
                measured=plan.analyzed,
            )
        )
    return found


def sqlite_temp_btree(plan: Plan, context: InsightContext) -> list[Insight]:
    """SQLite ``USE TEMP B-TREE FOR ORDER BY/GROUP BY/DISTINCT``: a sort with no index.

    Source: SQLite's "EXPLAIN QUERY PLAN" page ("temporary b-tree").
    No threshold: SQLite plans carry no row counts, so this is info.
    """
    return [
        Insight(
            rule="sqlite_temp_btree",
            severity=Severity.INFO,
            node_id=node.node_id,
            relation=None,
            message=f"estimated: SQLite builds a temporary b-tree for {node.extra.get('for')}",
            suggestion=f"an index in {node.extra.get('for')} column order avoids the sort",
            evidence={"for": node.extra.get("for")},
        )
        for node in plan.nodes
        if node.operation == "temp_btree"
    ]
