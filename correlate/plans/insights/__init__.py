"""Plan insights: small named rules over a :class:`~correlate.plans.model.Plan`.

``RULES`` is an ordered tuple of functions ``(plan, context) -> list[Insight]``;
callers may pass their own tuple to :func:`find_insights`. The rules live in
one module per concern (scans, estimates, memory, loops, pagination, the
dominant node, engine specifics); each names its threshold as a module
constant and cites the public source of the idea by name. docs/rules.md
(#plan-insights) describes every rule, its thresholds and severities.

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

from correlate.plans.insights.base import Insight, InsightContext, Rule
from correlate.plans.insights.dominant import (
    DOMINANT_BANDS,
    DOMINANT_MIN_MS,
    DOMINANT_MIN_NODES,
    dominant_node,
)
from correlate.plans.insights.engines import (
    SORT_TEMP_WARN_ROWS,
    mysql_filesort_temporary,
    sqlite_temp_btree,
)
from correlate.plans.insights.estimates import MISESTIMATE_BANDS, row_misestimate
from correlate.plans.insights.loops import NESTED_LOOP_INNER_LOOPS, nested_loop_inner_rescans
from correlate.plans.insights.memory import (
    HASH_BATCHES_SPILL,
    LOSSY_HEAP_BLOCKS_MIN,
    disk_spill,
    lossy_bitmap,
)
from correlate.plans.insights.pagination import LARGE_OFFSET_ROWS, large_offset
from correlate.plans.insights.rules import RULES, find_insights
from correlate.plans.insights.scans import (
    LARGE_SCAN_ROWS,
    SELECTIVE_REMOVED_SHARE,
    full_table_scan,
    seq_scan_selective_filter,
)

__all__ = [
    "DOMINANT_BANDS",
    "DOMINANT_MIN_MS",
    "DOMINANT_MIN_NODES",
    "HASH_BATCHES_SPILL",
    "LARGE_OFFSET_ROWS",
    "LARGE_SCAN_ROWS",
    "LOSSY_HEAP_BLOCKS_MIN",
    "MISESTIMATE_BANDS",
    "NESTED_LOOP_INNER_LOOPS",
    "RULES",
    "SELECTIVE_REMOVED_SHARE",
    "SORT_TEMP_WARN_ROWS",
    "Insight",
    "InsightContext",
    "Rule",
    "disk_spill",
    "dominant_node",
    "find_insights",
    "full_table_scan",
    "large_offset",
    "lossy_bitmap",
    "mysql_filesort_temporary",
    "nested_loop_inner_rescans",
    "row_misestimate",
    "seq_scan_selective_filter",
    "sqlite_temp_btree",
]
