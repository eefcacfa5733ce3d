"""Constructed runs for the report tests: a slow query with a plan, and hostile trace text."""

from __future__ import annotations

from typing import Any

from correlate.plans import InsightContext
from correlate.plans.capture import CapturedPlan, ServerFacts
from correlate.plans.store import add_plan as store_plan
from correlate.store import Store

from .builders import RunBuilder

HOSTILE_ROUTE = "/x/<script>alert(1)</script>"
HOSTILE_SQL = "SELECT id FROM orders WHERE note = '<script>alert(2)</script>' AND customer_id = 7"

#: A PostgreSQL EXPLAIN (FORMAT JSON) of the slow query: a sequential scan whose
#: filter throws away almost every row, under a sort.
PLAN_JSON: list[dict[str, Any]] = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Plan Rows": 20,
            "Total Cost": 4100.0,
            "Plans": [
                {
                    "Node Type": "Sort",
                    "Parent Relationship": "Outer",
                    "Sort Key": ["created_at DESC"],
                    "Plan Rows": 20,
                    "Total Cost": 4099.0,
                    "Plans": [
                        {
                            "Node Type": "Seq Scan",
                            "Parent Relationship": "Outer",
                            "Relation Name": "orders",
                            "Alias": "orders",
                            "Filter": "((note = '<script>alert(3)</script>') AND (customer_id = 7))",
                            "Plan Rows": 20,
                            "Total Cost": 4000.0,
                        }
                    ],
                }
            ],
        }
    }
]


def hostile_run(*, requests: int = 12) -> RunBuilder:
    """Requests on a route holding ``<script>``, each mostly one slow query."""
    b = RunBuilder()
    for i in range(requests):
        start = i * 100
        r = b.request(f"t{i}", start, start + 60, HOSTILE_ROUTE)
        b.query(f"t{i}", r, start + 5, start + 50, HOSTILE_SQL)
    return b


def add_plan(store: Store, run: str = "r") -> None:
    """Store :data:`PLAN_JSON` as the plan of the run's (only) fingerprint, with its insights."""
    run_id = store.run_id(run)
    (fingerprint,) = store.con.execute(
        "SELECT any_value(fingerprint) FROM statements WHERE run_id = ?", [run_id]
    ).fetchone() or (None,)
    assert fingerprint is not None
    captured = CapturedPlan(
        key=str(fingerprint),
        text=HOSTILE_SQL,
        sql=HOSTILE_SQL,
        method="generic_plan",
        plan=PLAN_JSON,
    )
    store_plan(
        store,
        run,
        captured,
        ServerFacts("postgresql", "16.4"),
        context=InsightContext(relation_rows={"orders": 500_000.0}),
    )
