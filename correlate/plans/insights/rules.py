"""The ordered tuple of plan-insight rules, and the function that runs them."""

from __future__ import annotations

from collections.abc import Iterable

from correlate.plans.insights.base import Insight, InsightContext, Rule
from correlate.plans.insights.dominant import (
    dominant_node,
)
from correlate.plans.insights.engines import (
    mysql_filesort_temporary,
    sqlite_temp_btree,
)
from correlate.plans.insights.estimates import row_misestimate
from correlate.plans.insights.loops import nested_loop_inner_rescans
from correlate.plans.insights.memory import (
    disk_spill,
    lossy_bitmap,
)
from correlate.plans.insights.ordered import limit_index_walk
from correlate.plans.insights.pagination import large_offset
from correlate.plans.insights.scans import (
    full_table_scan,
    seq_scan_selective_filter,
)
from correlate.plans.model import Plan

RULES: tuple[Rule, ...] = (
    seq_scan_selective_filter,
    full_table_scan,
    row_misestimate,
    disk_spill,
    nested_loop_inner_rescans,
    large_offset,
    limit_index_walk,
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
