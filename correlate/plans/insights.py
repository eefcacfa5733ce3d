"""Plan insights: small named rules over a :class:`~correlate.plans.model.Plan`.

``RULES`` is an ordered tuple of functions ``(plan, context) -> list[Insight]``;
callers may pass their own tuple to :func:`find_insights`. Each rule names its
threshold as a module constant and cites the public source of the idea by name;
docs/rules.md#plan-insights describes every rule, its thresholds and severities.

An insight is ``measured`` when it rests on EXPLAIN ANALYZE numbers and an
estimate otherwise; the message starts with ``measured:`` or ``estimated:`` so
a reader never mistakes a planner guess for an observation.

>>> from correlate.plans import parse_plan
>>> plan = parse_plan([{"Plan": {"Node Type": "Sort", "Sort Method": "external merge",
...     "Sort Space Type": "Disk", "Sort Space Used": 2048, "Actual Rows": 10,
...     "Actual Loops": 1}}])
>>> [(i.rule, str(i.severity)) for i in find_insights(plan)]
[('disk_spill', 'warning')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from correlate.plans.conditions import filter_columns, where_columns
from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity

__all__ = [
    "RULES",
    "Insight",
    "InsightContext",
    "Rule",
    "find_insights",
]


@dataclass(frozen=True)
class Insight:
    """One thing a plan says about why a query is slow, with what to do about it."""

    rule: str
    severity: Severity
    node_id: int | None
    relation: str | None
    message: str
    suggestion: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    measured: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))

    def __str__(self) -> str:
        tail = f" → {self.suggestion}" if self.suggestion else ""
        return f"[{self.severity}] {self.rule}: {self.message}{tail}"


@dataclass
class InsightContext:
    """What the rules may know besides the plan.

    ``relation_rows`` maps a table name to its size (e.g. ``pg_class.reltuples``)
    so estimate-only plans can judge a scan's selectivity.
    """

    relation_rows: dict[str, float] = field(default_factory=dict)


Rule = Callable[[Plan, InsightContext], list[Insight]]


def _label(measured: bool) -> str:
    return "measured" if measured else "estimated"


def _fmt(n: float | None) -> str:
    return "?" if n is None else f"{n:,.0f}"


# ------------------------------------------------------------------ seq scans

#: a scan reading at least this many rows is "large" (estimated or measured)
LARGE_SCAN_ROWS = 10_000
#: selective: the filter discards at least this share of the rows it reads
#: (PEV2's highest band for "rows removed by filter")
SELECTIVE_REMOVED_SHARE = 0.9


@dataclass
class _Scan:
    read: float | None
    returned: float | None
    measured: bool
    columns: list[str]
    filter: str | None


def _scan_facts(plan: Plan, node: PlanNode, context: InsightContext) -> _Scan | None:
    """Rows read/returned by a full table scan, and the columns of its filter."""
    if node.operation != "seq_scan":
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


def _index_sql(relation: str | None, columns: list[str]) -> str | None:
    if not relation or not columns:
        return None
    return f"CREATE INDEX ON {relation} ({', '.join(columns[:3])})"


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
            what = f"read {_fmt(scan.read)} rows of {table} to keep {_fmt(scan.returned)}"
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
                    f"{_label(scan.measured)}: a full scan ({node.node_type}) {what}, "
                    f"filtering on {cols}; no index serves that filter"
                ),
                suggestion=_index_sql(node.relation, scan.columns),
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
    """MySQL/MariaDB ``access_type: ALL`` or a SQLite ``SCAN`` not explained by a filter.

    Sources: the MySQL Reference Manual, "EXPLAIN Output Format" (join type
    ALL: a full table scan, normally avoidable by adding indexes); SQLite's
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
        rows = f" of about {_fmt(scan.read)} rows" if scan.read is not None else ""
        found.append(
            Insight(
                rule="full_table_scan",
                severity=Severity.INFO if plan.source == "sqlite" else Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=(
                    f"{_label(scan.measured)}: {node.node_type} reads all{rows} of "
                    f"{node.relation or node.alias} (no index used)"
                ),
                suggestion=(
                    "index the column that joins or filters this table"
                    if plan.source != "sqlite" or plan.query_text
                    else "pass the query text to name the filtered columns"
                ),
                evidence={"rows_read": scan.read, "filter": scan.filter},
                measured=scan.measured,
            )
        )
    return found


# ------------------------------------------------------------------ estimates

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
                            f"(planned {_fmt(est)}, got {_fmt(act)} per loop)"
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
    return False


# ------------------------------------------------------------------ spills

#: more hash batches than this means the hash spilled past work_mem (PEV2 flags > 1)
HASH_BATCHES_SPILL = 1


def disk_spill(plan: Plan, context: InsightContext) -> list[Insight]:
    """A sort or hash that spilled to disk.

    Sources: pganalyze EXPLAIN insights "Disk Sort" and "Hash Batches",
    explain.depesz.com's DISK_SORT hint, PEV2's "Hash Batches > 1". Spill:
    ``Sort Space Type`` Disk or an
    external sort method, or hash batches above ``HASH_BATCHES_SPILL``.
    """
    found = []
    for node in plan.nodes:
        sort_disk = (node.sort_space_type or "").lower() == "disk" or "external" in (
            node.sort_method or ""
        )
        hash_spill = node.hash_batches is not None and node.hash_batches > HASH_BATCHES_SPILL
        if not (sort_disk or hash_spill):
            continue
        if sort_disk:
            what = f"sort spilled {_fmt(node.sort_space_kb)} kB to disk ({node.sort_method})"
        else:
            what = f"hash needed {_fmt(node.hash_batches)} batches (spilled past work_mem)"
        found.append(
            Insight(
                rule="disk_spill",
                severity=Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=f"measured: {node.label}: {what}",
                suggestion="raise work_mem for this query, or sort/hash fewer rows",
                evidence={
                    "sort_method": node.sort_method,
                    "sort_space_kb": node.sort_space_kb,
                    "hash_batches": node.hash_batches,
                    "temp_written_blocks": node.temp_written_blocks,
                },
                measured=True,
            )
        )
    return found


# ------------------------------------------------------------------ nested loops

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
                    f"{_label(measured)}: nested loop runs {inner.label} {_fmt(loops)} times "
                    f"({_fmt(per_loop)} rows each, {_fmt(total)} in all)"
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


# ------------------------------------------------------------------ offset

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
                message=f"{_label(measured)}: Limit skips about {_fmt(skipped)} rows (large OFFSET)",
                suggestion="paginate by key (WHERE id > last_seen ORDER BY id LIMIT n)",
                evidence={"rows_skipped": skipped},
                measured=measured,
            )
        )
    return found


# ------------------------------------------------------------------ bitmaps

#: any lossy heap block means work_mem was too small for an exact bitmap
LOSSY_HEAP_BLOCKS_MIN = 1


def lossy_bitmap(plan: Plan, context: InsightContext) -> list[Insight]:
    """A bitmap heap scan that went lossy and rechecked whole pages.

    Source: pganalyze EXPLAIN insight "Lossy Bitmaps"; pgMustard's lossy-bitmap tip.
    Threshold ``LOSSY_HEAP_BLOCKS_MIN``.
    """
    found = []
    for node in plan.nodes:
        lossy = node.lossy_heap_blocks
        if lossy is None or lossy < LOSSY_HEAP_BLOCKS_MIN:
            continue
        found.append(
            Insight(
                rule="lossy_bitmap",
                severity=Severity.WARNING,
                node_id=node.node_id,
                relation=node.relation,
                message=(
                    f"measured: {node.label} had {_fmt(lossy)} lossy heap blocks; "
                    f"{_fmt(node.rows_removed_by_index_recheck)} rows removed by recheck"
                ),
                suggestion="raise work_mem so the bitmap stays exact",
                evidence={
                    "lossy_heap_blocks": lossy,
                    "exact_heap_blocks": node.exact_heap_blocks,
                    "rows_removed_by_index_recheck": node.rows_removed_by_index_recheck,
                },
                measured=True,
            )
        )
    return found


# ------------------------------------------------------------------ dominant node

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
                    message=f"{_label(measured)}: {top.label} takes {share:.0%} ({what})",
                    suggestion=None,
                    evidence={"share": share, "self": value, "total": total},
                    measured=measured,
                )
            ]
    return []


# ------------------------------------------------------------------ MySQL / SQLite extras

#: a filesort or temporary table over at least this many rows is a warning, else info
SORT_TEMP_WARN_ROWS = 10_000

_TEMP_KEYS = ("using_temporary_table", "using_filesort")


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
        below = [n for n in _descendants(plan, node) if n.estimated_rows_examined is not None]
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
                    f"{_label(plan.analyzed)}: the query uses a {' and a '.join(kinds)}"
                    + (f" over about {_fmt(rows)} rows" if rows is not None else "")
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


def _descendants(plan: Plan, node: PlanNode) -> Iterable[PlanNode]:
    for child in plan.children(node):
        yield child
        yield from _descendants(plan, child)


RULES: tuple[Rule, ...] = (
    seq_scan_selective_filter,
    full_table_scan,
    row_misestimate,
    disk_spill,
    nested_loop_inner_rescans,
    large_offset,
    lossy_bitmap,
    mysql_filesort_temporary,
    sqlite_temp_btree,
    dominant_node,
)


def find_insights(
    plan: Plan, context: InsightContext | None = None, rules: Iterable[Rule] = RULES
) -> list[Insight]:
    """Run ``rules`` over ``plan``; most severe first, then in plan order."""
    ctx = context or InsightContext()
    found = [insight for rule in rules for insight in rule(plan, ctx)]
    return sorted(found, key=lambda i: (-i.severity.level, i.node_id or 0))
