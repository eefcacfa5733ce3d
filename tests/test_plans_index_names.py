"""Suggested indexes from hostile names: the ORDER BY walk's index is quoted as any other,
its ORDER BY columns are the walked table's own, and an index's name is an identifier."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from correlate.plans import parse_plan
from correlate.plans.conditions import create_index
from correlate.plans.insights import find_insights

PLANS = Path(__file__).parent / "data" / "plans" / "postgres"


def _walk(query: str, relation: str, alias: str, filter_: str) -> str | None:
    raw = json.loads((PLANS / "limit-walk-analyze.json").read_text())
    scan = raw[0]["Plan"]["Plans"][0]
    scan["Relation Name"], scan["Alias"], scan["Filter"] = relation, alias, filter_
    plan = parse_plan(raw, query=query)
    (walk,) = [i for i in find_insights(plan) if i.rule == "limit_index_walk"]
    return walk.suggestion


def test_a_capitalised_table_and_columns_are_quoted() -> None:
    got = _walk(
        'SELECT * FROM "Orders" o WHERE o."customerId" = $1 ORDER BY o."createdAt" DESC LIMIT 10',
        "Orders",
        "o",
        '(o."customerId" = 1001)',
    )
    assert got == 'CREATE INDEX ON "Orders" ("customerId", "createdAt")'


def test_the_order_by_column_of_another_table_is_not_the_walked_tables() -> None:
    got = _walk(
        "SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = $1 ORDER BY c.name LIMIT 10",
        "orders",
        "o",
        "(o.status = 'x'::text)",
    )
    assert got == "CREATE INDEX ON orders (status, then the ORDER BY columns)"


@pytest.mark.parametrize("table", ["2024_orders", "заказы", "x-y"])
def test_the_index_name_is_an_identifier_sqlite_takes(table: str) -> None:
    con = sqlite3.connect(":memory:")
    con.execute(f'CREATE TABLE "{table}" (customer_id INTEGER)')
    con.execute(create_index(table, ["customer_id"], "sqlite"))
    assert len(con.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()) == 1


@pytest.mark.xfail(
    strict=True,
    reason="table_of returns schema and table joined by '.', and create_index splits the "
    "name at every '.': a table whose own name holds a dot (`my.table`) becomes table "
    "`table` of schema my; the two need the name's parts, not one string",
)
def test_a_table_whose_name_holds_a_dot_stays_one_name() -> None:
    from correlate.plans.conditions import table_of

    table = table_of("t", "SELECT * FROM `my.table` AS t WHERE t.x = 1", "mysql")
    assert (
        create_index(table or "", ["x"], "mysql") == "CREATE INDEX my_table_x_idx ON `my.table` (x)"
    )
