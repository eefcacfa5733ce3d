"""Query plans: one model for PostgreSQL, MySQL, MariaDB and SQLite, insights, and diffs.

>>> from correlate.plans import parse_plan, find_insights
>>> plan = parse_plan([{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders",
...     "Filter": "(customer_id = 42)", "Plan Rows": 20, "Actual Rows": 20,
...     "Actual Loops": 1, "Rows Removed by Filter": 49980, "Actual Total Time": 9.0}}])
>>> [i.suggestion for i in find_insights(plan) if i.rule == "seq_scan_selective_filter"]
['CREATE INDEX ON orders (customer_id)']
"""

from __future__ import annotations

from correlate.plans.compare import PlanDiff, compare_plans
from correlate.plans.coverage import PlanCoverage, plans_coverage
from correlate.plans.insights import RULES, Insight, InsightContext, find_insights
from correlate.plans.model import Plan, PlanNode
from correlate.plans.parse import parse_plan

__all__ = [
    "RULES",
    "Insight",
    "InsightContext",
    "Plan",
    "PlanCoverage",
    "PlanDiff",
    "PlanNode",
    "compare_plans",
    "find_insights",
    "parse_plan",
    "plans_coverage",
]
