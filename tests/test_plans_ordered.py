"""ORDER BY … LIMIT walking an index in order while a filter drops what it reads.

The fixtures are real PostgreSQL 15 plans (tests/helpers/make_pg_plans.sh): 200,000
events, customer 1001's 200 among the first ids, and ``WHERE customer_id = … ORDER BY id
DESC LIMIT 10`` walking the primary key backward — analysed, and as the generic plan
``correlate plans capture`` gets for a statement with placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from correlate.plans import parse_plan
from correlate.plans.insights import find_insights
from correlate.plans.insights.ordered import order_columns

PLANS = Path(__file__).parent / "data" / "plans" / "postgres"
QUERY = "SELECT id, kind FROM fx.events WHERE customer_id = $1 ORDER BY id DESC LIMIT 10"


def _insights(name: str, query: str | None = QUERY) -> list:  # type: ignore[type-arg]
    plan = parse_plan(json.loads((PLANS / name).read_text()), query=query)
    return [i for i in find_insights(plan) if i.rule == "limit_index_walk"]


def test_a_measured_walk_that_reads_the_table_for_ten_rows_is_critical() -> None:
    (walk,) = _insights("limit-walk-analyze.json")
    assert walk.measured and walk.severity == "critical"
    assert walk.evidence["rows_read"] == 199_810 and walk.evidence["rows_returned"] == 10
    assert "read 199,810 rows of events to keep 10 for the LIMIT" in walk.message
    assert walk.suggestion == "CREATE INDEX ON events (customer_id, id)"


def test_the_generic_plan_is_flagged_as_a_risk_only() -> None:
    (walk,) = _insights("limit-walk-generic.json")
    assert not walk.measured and walk.severity == "info"
    assert walk.message.startswith("estimated: Index Scan walks events_pkey in order")


def test_without_the_query_the_order_columns_are_named_in_words() -> None:
    (walk,) = _insights("limit-walk-generic.json", query=None)
    assert walk.suggestion == "CREATE INDEX ON events (customer_id, then the ORDER BY columns)"


def test_a_walk_whose_filter_keeps_most_rows_is_fine() -> None:
    raw = json.loads((PLANS / "limit-walk-analyze.json").read_text())
    scan = raw[0]["Plan"]["Plans"][0]
    scan["Actual Rows"], scan["Rows Removed by Filter"] = 10, 3
    assert [i.rule for i in find_insights(parse_plan(raw))].count("limit_index_walk") == 0


@pytest.mark.parametrize(
    ("query", "columns"),
    [
        (QUERY, ["id"]),
        ('SELECT * FROM "t" WHERE a = 1 ORDER BY "t"."b", c DESC LIMIT 5', ["b", "c"]),
        ("SELECT * FROM t WHERE a = 1 ORDER BY lower(b) LIMIT 5", []),
        ("SELECT * FROM t LIMIT 5", []),
        ("not sql at all (", []),
        (None, []),
    ],
)
def test_order_columns(query: str | None, columns: list[str]) -> None:
    assert order_columns(query) == columns
