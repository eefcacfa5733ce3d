"""Full table scans: a selective filter with no index to serve it, and scans of whole tables."""

from __future__ import annotations

from dataclasses import dataclass

from correlate.plans.conditions import (
    create_index,
    filter_columns,
    index_columns,
    table_of,
    where_columns,
)
from correlate.plans.insights.base import Insight, InsightContext, count, label
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

#: a scan reading at least this many rows is "large" (estimated or measured)
LARGE_SCAN_ROWS = 10_000
#: selective: the filter discards at least this share of the rows it reads
#: (PEV2's highest band for "rows removed by filter")
SELECTIVE_REMOVED_SHARE = 0.9


#: Operations that read a whole table or a whole index, in every engine's plan:
#: PostgreSQL's Seq Scan, MySQL/MariaDB access types ALL and index, SQLite's SCAN
#: (of the table, or of an index with USING INDEX).
FULL_SCANS = frozenset({"seq_scan", "full_index_scan"})


@dataclass
class _Scan:
    read: float | None
    returned: float | None
    measured: bool
    columns: list[str]
    filter: str | None


def _scan_facts(plan: Plan, node: PlanNode, context: InsightContext) -> _Scan | None:
    """Rows read/returned by a full table scan, and the columns of its filter."""
    if node.operation not in FULL_SCANS:
        return None
    text = node.filter
    parent = plan.parent(node)
    if text is None and parent is not None and parent.operation == "filter":
        text = parent.filter  # MySQL format 2 puts the condition on a Filter above the scan
    columns = filter_columns(text, node.alias or node.relation)
    if plan.source == "sqlite":
        columns = where_columns(plan.query_text, node.alias or node.relation)
        size = context.relation_rows.get(node.relation or "")
        return _Scan(size, None, False, columns, text)
    if parent is not None and parent.operation == "filter" and node.filter is None:
        # MySQL format 2: the scan returns every row and the Filter above drops them
        if node.total_rows is not None and parent.total_rows is not None:
            return _Scan(node.total_rows, parent.total_rows, True, columns, text)
        return _Scan(node.estimated_rows, parent.estimated_rows, False, columns, text)
    if node.actual_rows is not None and node.rows_removed_by_filter is not None:
        loops = node.actual_loops or 1.0
        returned = node.actual_rows * loops
        read = returned + node.rows_removed_by_filter * loops
        return _Scan(read, returned, True, columns, text)
    size = context.relation_rows.get(node.relation or "")
    guess = node.estimated_rows_examined if node.estimated_rows_examined is not None else size
    return _Scan(guess, node.estimated_rows, False, columns, text)


def _selective(scan: _Scan) -> bool:
    if scan.read is None or scan.returned is None or scan.read <= 0:
        # SQLite gives no row counts: a WHERE on a scanned table is the only sign
        return scan.returned is None and bool(scan.columns)
    return (scan.read - scan.returned) / scan.read >= SELECTIVE_REMOVED_SHARE


def _index_sql(plan: Plan, relation: str | None, columns: list[str]) -> str | None:
    """The index to create, on the table itself where the plan names it by an alias
    (MySQL's and MariaDB's plans do), in the statement its server takes."""
    if not relation or not columns:
        return None
    if plan.source in ("mysql", "mariadb", "sqlite"):
        relation = table_of(relation, plan.query_text, plan.source)
    return create_index(relation or "", columns[:3], plan.source)


def _scan_suggestion(plan: Plan, node: PlanNode, scan: _Scan) -> str:
    """The index to try for a whole-table scan. MariaDB estimates no selectivity for a
    column without statistics (``filtered: 100`` with a condition on it), so a filter the
    plan cannot call selective still names its columns, with that caveat."""
    index = _index_sql(plan, node.relation, scan.columns) if node.operation == "seq_scan" else None
    if index is not None:
        return (
            f"{index}, if the filter on {', '.join(scan.columns)} keeps few rows "
            "(the plan does not say it does)"
        )
    if plan.source != "sqlite" or plan.query_text:
        return "index the column that joins or filters this table"
    return "pass the query text to name the filtered columns"


def seq_scan_selective_filter(plan: Plan, context: InsightContext) -> list[Insight]:
    """A full scan of a large table whose filter keeps few rows: an index is missing.

    Sources: pganalyze EXPLAIN insight "Slow Scan" (a sequential scan with a
    large Rows Removed by Filter); explain.depesz.com's hints
    INDEXABLE_SEQSCAN_SIMPLE/MULTI; Datadog DBM "Missing Index". Large =
    ``LARGE_SCAN_ROWS`` read; selective = ``SELECTIVE_REMOVED_SHARE`` of them
    removed (PEV2's band). SQLite plans
    carry no row counts, so there any SCAN whose table is filtered in the query's
    WHERE qualifies, as an estimate.
    """
    found = []
    for node in plan.nodes:
        scan = _scan_facts(plan, node, context)
        if scan is None or not scan.columns or not _selective(scan):
            continue
        if plan.source != "sqlite" and (scan.read is None or scan.read < LARGE_SCAN_ROWS):
            continue
        cols = ", ".join(scan.columns)
        table = node.relation or node.alias
        if scan.read is not None and scan.returned is not None:
            what = f"read {count(scan.read)} rows of {table} to keep {count(scan.returned)}"
        else:
            what = f"reads every row of {table}"
        severity = (
            Severity.CRITICAL if (scan.read or 0) >= 10 * LARGE_SCAN_ROWS else Severity.WARNING
        )
        found.append(
            Insight(
                rule="seq_scan_selective_filter",
                severity=severity,
                node_id=node.node_id,
                relation=table,
                message=(
                    f"{label(scan.measured)}: a full scan ({node.node_type}) {what}, "
                    f"filtering on {cols}; no index serves that filter"
                ),
                suggestion=_index_sql(
                    plan,
                    node.relation,
                    index_columns(scan.filter, node.alias or node.relation) or scan.columns,
                ),
                evidence={
                    "rows_read": scan.read,
                    "rows_returned": scan.returned,
                    "filter": scan.filter,
                    "columns": scan.columns,
                },
                measured=scan.measured,
            )
        )
    return found


def full_table_scan(plan: Plan, context: InsightContext) -> list[Insight]:
    """MySQL/MariaDB ``access_type: ALL`` or ``index``, or a SQLite ``SCAN``, not explained by a filter.

    Sources: the MySQL Reference Manual, "EXPLAIN Output Format" (join type
    ALL: a full table scan, normally avoidable by adding indexes; join type
    index: the same, but of an index tree); SQLite's
    "EXPLAIN QUERY PLAN" page (SCAN vs SEARCH). Fires when
    :func:`seq_scan_selective_filter` did not, and (MySQL/MariaDB) only over
    ``LARGE_SCAN_ROWS`` rows; SQLite has no counts, so it is info only.
    """
    if plan.source not in ("mysql", "mariadb", "sqlite"):
        return []
    covered = {i.node_id for i in seq_scan_selective_filter(plan, context)}
    found = []
    for node in plan.nodes:
        scan = _scan_facts(plan, node, context)
        if scan is None or node.node_id in covered:
            continue
        if plan.source != "sqlite" and (scan.read is None or scan.read < LARGE_SCAN_ROWS):
            continue
        rows = f" of about {count(scan.read)} rows" if scan.read is not None else ""
        if node.operation == "full_index_scan":
            what = f"reads every entry{rows} of index {node.index_name or '?'} on"
            unused = "(an index read whole, not searched)"
        else:
            what, unused = f"reads all{rows} of", "(no index used)"
        found.append(
            Insight(
                rule="full_table_scan",
                severity=Severity.INFO if plan.source == "sqlite" else Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=(
                    f"{label(scan.measured)}: {node.node_type} {what} "
                    f"{node.relation or node.alias} {unused}"
                ),
                suggestion=_scan_suggestion(plan, node, scan),
                evidence={"rows_read": scan.read, "filter": scan.filter, "columns": scan.columns},
                measured=scan.measured,
            )
        )
    return found
