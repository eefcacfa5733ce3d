"""Plan insight rules: a positive and a negative case each, and the live acceptance case."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from correlate.plans import RULES, InsightContext, compare_plans, find_insights, parse_plan
from correlate.plans import insights as ins

PLANS = Path(__file__).parent / "data" / "plans"


def pg(node: dict[str, Any], **top: Any) -> Any:
    """A PostgreSQL plan around ``node``."""
    return parse_plan([{"Plan": node, **top}])


def rules_fired(plan: Any, context: InsightContext | None = None) -> set[str]:
    return {i.rule for i in find_insights(plan, context)}


def seq_scan(removed: float, kept: float = 20, **more: Any) -> dict[str, Any]:
    return {
        "Node Type": "Seq Scan",
        "Relation Name": "orders",
        "Alias": "orders",
        "Filter": "((customer_id = $1) AND ((status)::text = 'paid'::text))",
        "Plan Rows": kept,
        "Actual Rows": kept,
        "Actual Loops": 1,
        "Actual Total Time": 5.0,
        "Rows Removed by Filter": removed,
        **more,
    }


def test_rules_are_documented_and_have_constants() -> None:
    for rule in RULES:
        assert rule.__doc__ and "Source" in rule.__doc__, rule.__name__
    assert ins.LARGE_SCAN_ROWS == 10_000 and ins.SELECTIVE_REMOVED_SHARE == 0.9


# ------------------------------------------------------------------ seq scan


def test_seq_scan_selective_filter_positive() -> None:
    [insight] = [
        i for i in find_insights(pg(seq_scan(49_980))) if i.rule == "seq_scan_selective_filter"
    ]
    assert insight.measured and insight.message.startswith("measured:")
    assert "customer_id, status" in insight.message
    assert insight.suggestion == "CREATE INDEX ON orders (customer_id, status)"
    assert insight.evidence["rows_read"] == 50_000 and insight.evidence["rows_returned"] == 20


@pytest.mark.parametrize(
    ("condition", "index"),
    [
        # SQLAlchemy on asyncpg binds the pattern too: PostgreSQL lists it first
        ("(((payload)::text ~~ ($2)::text) AND (kind = $1))", "(kind)"),
        ("((created_at > $2) AND (kind = $1))", "(kind, created_at)"),
        ("((payload)::text ~~ '%7%'::text)", "(payload)"),  # nothing else to index
    ],
)
def test_the_index_named_leads_with_equality_and_leaves_patterns_out(
    condition: str, index: str
) -> None:
    plan = pg(seq_scan(399_917, kept=83, **{"Filter": condition, "Relation Name": "events"}))
    [insight] = [i for i in find_insights(plan) if i.rule == "seq_scan_selective_filter"]
    assert insight.suggestion == f"CREATE INDEX ON events {index}"


@pytest.mark.parametrize(
    "node",
    [
        seq_scan(removed=500),  # small table
        seq_scan(removed=30_000, kept=20_000),  # filter not selective
        {**seq_scan(49_980), "Filter": None},  # no filter at all
        {**seq_scan(49_980), "Node Type": "Index Scan"},
    ],
    ids=["small", "unselective", "no-filter", "index-scan"],
)
def test_seq_scan_selective_filter_negative(node: dict[str, Any]) -> None:
    assert "seq_scan_selective_filter" not in rules_fired(pg(node))


def test_seq_scan_estimate_needs_relation_size() -> None:
    node = {
        "Node Type": "Seq Scan",
        "Relation Name": "orders",
        "Filter": "(customer_id = 7)",
        "Plan Rows": 20,
        "Total Cost": 900.0,
    }
    assert "seq_scan_selective_filter" not in rules_fired(pg(node))
    context = InsightContext(relation_rows={"orders": 50_000})
    [insight] = [
        i for i in find_insights(pg(node), context) if i.rule == "seq_scan_selective_filter"
    ]
    assert not insight.measured and insight.message.startswith("estimated:")


def test_full_table_scan_mariadb_without_filter() -> None:
    plan = parse_plan(
        {
            "query_block": {
                "select_id": 1,
                "table": {
                    "table_name": "orders",
                    "access_type": "ALL",
                    "rows": 50000,
                    "filtered": 100,
                },
            }
        }
    )
    assert "full_table_scan" in rules_fired(plan)
    small = parse_plan(
        {
            "query_block": {
                "select_id": 1,
                "table": {
                    "table_name": "orders",
                    "access_type": "ALL",
                    "rows": 50,
                    "filtered": 100,
                },
            }
        }
    )
    assert "full_table_scan" not in rules_fired(small)


#: MariaDB 10.11's EXPLAIN FORMAT=JSON of a filter on a column with no index and no
#: statistics: ``filtered`` stays 100, so the plan cannot say the filter is selective
MARIADB_UNINDEXED_FILTER = {
    "query_block": {
        "select_id": 1,
        "nested_loop": [
            {
                "table": {
                    "table_name": "nm_orders",
                    "access_type": "ALL",
                    "rows": 300812,
                    "filtered": 100,
                    "attached_condition": "nm_orders.customer_id = ***",
                }
            }
        ],
    }
}


def test_full_table_scan_mariadb_names_the_filtered_column_with_a_caveat() -> None:
    [insight] = find_insights(parse_plan(MARIADB_UNINDEXED_FILTER))
    assert insight.rule == "full_table_scan" and insight.severity == "warning"
    assert insight.evidence["columns"] == ["customer_id"]
    assert insight.suggestion == (
        "CREATE INDEX nm_orders_customer_id_idx ON nm_orders (customer_id), if the filter on "
        "customer_id keeps few rows "
        "(the plan does not say it does)"
    )


@pytest.mark.parametrize(
    ("alias", "query", "suggested"),
    [
        # Sequelize writes FROM `orders` AS `Order`; MariaDB's plan names the table `Order`
        (
            "Order",
            "SELECT `id` FROM `orders` AS `Order` WHERE `Order`.`customer_id` = 7",
            "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
        ),
        # a table name from the traced statement is untrusted text: quoted to be run
        (
            "o",
            "SELECT 1 FROM `x; DROP TABLE t; --` AS `o` WHERE `o`.`customer_id` = 7",
            "CREATE INDEX x_DROP_TABLE_t_customer_id_idx ON `x; DROP TABLE t; --` (customer_id)",
        ),
    ],
)
def test_an_index_is_named_on_the_table_an_alias_stands_for(
    alias: str, query: str, suggested: str
) -> None:
    raw = json.loads(json.dumps(MARIADB_UNINDEXED_FILTER).replace("nm_orders", alias))
    [insight] = find_insights(parse_plan(raw, query=query))
    assert insight.suggestion is not None and insight.suggestion.startswith(suggested)


#: MariaDB 10.11's ANALYZE FORMAT=JSON of ``… ORDER BY id DESC LIMIT 10``: the primary key
#: read backwards stops after 10 rows, but ``rows`` estimates the whole index
MARIADB_LIMITED_INDEX_SCAN = {
    "query_block": {
        "select_id": 1,
        "r_loops": 1,
        "nested_loop": [
            {
                "table": {
                    "table_name": "nm_orders",
                    "access_type": "index",
                    "key": "PRIMARY",
                    "used_key_parts": ["id"],
                    "r_loops": 1,
                    "rows": 100256,
                    "r_rows": 10,
                    "filtered": 100,
                    "r_filtered": 100,
                }
            }
        ],
    }
}


def test_mariadb_scan_stopped_by_the_statements_limit_is_no_misestimate() -> None:
    limited = "SELECT id, customer_id, total FROM nm_orders ORDER BY id DESC LIMIT 10"
    plan = parse_plan(MARIADB_LIMITED_INDEX_SCAN, query=limited)
    assert "row_misestimate" not in rules_fired(plan)
    # without the statement, or with the LIMIT only inside a subquery, the figures stand
    assert "row_misestimate" in rules_fired(parse_plan(MARIADB_LIMITED_INDEX_SCAN))
    inner = "SELECT * FROM (SELECT id FROM nm_orders ORDER BY id DESC LIMIT 10) t"
    assert "row_misestimate" in rules_fired(parse_plan(MARIADB_LIMITED_INDEX_SCAN, query=inner))


def test_sqlite_scan_without_query_is_info_only() -> None:
    found = find_insights(parse_plan([(2, 0, 0, "SCAN orders")]))
    assert [(i.rule, i.severity) for i in found] == [("full_table_scan", "info")]
    assert find_insights(parse_plan([(2, 0, 0, "SEARCH orders USING INDEX oi (amount=?)")])) == []


# ------------------------------------------------------------------ misestimate


@pytest.mark.parametrize(
    ("planned", "actual", "severity"),
    [(10, 200, "info"), (10, 5_000, "warning"), (5, 50_000, "critical"), (50_000, 5, "critical")],
)
def test_row_misestimate_bands(planned: int, actual: int, severity: str) -> None:
    plan = pg(
        {"Node Type": "Hash Join", "Plan Rows": planned, "Actual Rows": actual, "Actual Loops": 1}
    )
    [insight] = [i for i in find_insights(plan) if i.rule == "row_misestimate"]
    assert insight.severity == severity and insight.measured


def test_row_misestimate_negative() -> None:
    assert "row_misestimate" not in rules_fired(
        pg({"Node Type": "Hash Join", "Plan Rows": 100, "Actual Rows": 900, "Actual Loops": 1})
    )
    # estimate-only plans have nothing to compare
    assert "row_misestimate" not in rules_fired(pg({"Node Type": "Hash Join", "Plan Rows": 1}))


# ------------------------------------------------------------------ spills


@pytest.mark.parametrize(
    "node",
    [
        {
            "Node Type": "Sort",
            "Sort Method": "external merge",
            "Sort Space Used": 9000,
            "Sort Space Type": "Disk",
        },
        {"Node Type": "Hash", "Hash Batches": 8, "Original Hash Batches": 1},
    ],
)
def test_disk_spill_positive(node: dict[str, Any]) -> None:
    assert "disk_spill" in rules_fired(pg(node))


def test_disk_spill_negative() -> None:
    assert "disk_spill" not in rules_fired(
        pg(
            {
                "Node Type": "Sort",
                "Sort Method": "quicksort",
                "Sort Space Type": "Memory",
                "Plans": [{"Node Type": "Hash", "Hash Batches": 1}],
            }
        )
    )


# ------------------------------------------------------------------ nested loops


def nested(loops: int) -> dict[str, Any]:
    return {
        "Node Type": "Nested Loop",
        "Actual Rows": loops,
        "Actual Loops": 1,
        "Plans": [
            {
                "Node Type": "Seq Scan",
                "Relation Name": "orders",
                "Actual Rows": loops,
                "Actual Loops": 1,
            },
            {
                "Node Type": "Index Scan",
                "Relation Name": "customers",
                "Index Name": "customers_pkey",
                "Actual Rows": 1,
                "Actual Loops": loops,
            },
        ],
    }


def test_nested_loop_inner_rescans() -> None:
    [insight] = [
        i for i in find_insights(pg(nested(20_000))) if i.rule == "nested_loop_inner_rescans"
    ]
    assert insight.relation == "customers" and insight.evidence["loops"] == 20_000
    assert "nested_loop_inner_rescans" not in rules_fired(pg(nested(50)))


# ------------------------------------------------------------------ offset


def limit(skipped: int) -> dict[str, Any]:
    return {
        "Node Type": "Limit",
        "Actual Rows": 10,
        "Actual Loops": 1,
        "Plans": [
            {
                "Node Type": "Index Scan",
                "Relation Name": "orders",
                "Actual Rows": skipped + 10,
                "Actual Loops": 1,
            }
        ],
    }


def test_large_offset() -> None:
    assert "large_offset" in rules_fired(pg(limit(50_000)))
    assert "large_offset" not in rules_fired(pg(limit(20)))


def test_large_offset_estimated_from_startup_cost() -> None:
    plan = pg(
        {
            "Node Type": "Limit",
            "Startup Cost": 500.0,
            "Total Cost": 501.0,
            "Plan Rows": 10,
            "Plans": [
                {
                    "Node Type": "Index Scan",
                    "Startup Cost": 0.0,
                    "Total Cost": 1000.0,
                    "Plan Rows": 10_000,
                }
            ],
        }
    )
    [insight] = [i for i in find_insights(plan) if i.rule == "large_offset"]
    assert not insight.measured and insight.evidence["rows_skipped"] == pytest.approx(5000)


# ------------------------------------------------------------------ lossy bitmaps


def test_lossy_bitmap() -> None:
    heap = {
        "Node Type": "Bitmap Heap Scan",
        "Relation Name": "orders",
        "Exact Heap Blocks": 10,
        "Actual Loops": 1,
        "Actual Rows": 5,
    }
    assert "lossy_bitmap" in rules_fired(pg({**heap, "Lossy Heap Blocks": 800}))
    assert "lossy_bitmap" not in rules_fired(pg({**heap, "Lossy Heap Blocks": 0}))


# ------------------------------------------------------------------ dominant node


def test_dominant_node() -> None:
    plan = pg(
        {
            "Node Type": "Hash Join",
            "Actual Total Time": 100.0,
            "Actual Loops": 1,
            "Plans": [
                {"Node Type": "Seq Scan", "Actual Total Time": 95.0, "Actual Loops": 1},
                {"Node Type": "Hash", "Actual Total Time": 1.0, "Actual Loops": 1},
            ],
        },
        **{"Execution Time": 100.0},
    )
    [insight] = [i for i in find_insights(plan) if i.rule == "dominant_node"]
    assert insight.node_id == 1 and insight.severity == "critical"
    even = pg(
        {
            "Node Type": "Hash Join",
            "Actual Total Time": 90.0,
            "Actual Loops": 1,
            "Plans": [
                {"Node Type": "Seq Scan", "Actual Total Time": 30.0, "Actual Loops": 1},
                {"Node Type": "Hash", "Actual Total Time": 30.0, "Actual Loops": 1},
            ],
        },
        **{"Execution Time": 90.0},
    )
    assert "dominant_node" not in rules_fired(even)


def test_dominant_node_needs_a_real_tree_and_real_time() -> None:
    single = pg({"Node Type": "Index Scan", "Relation Name": "orders", "Total Cost": 8.3})
    assert "dominant_node" not in rules_fired(single)
    quick = pg(
        {
            "Node Type": "Hash Join",
            "Actual Total Time": 2.0,
            "Actual Loops": 1,
            "Plans": [
                {"Node Type": "Seq Scan", "Actual Total Time": 1.9, "Actual Loops": 1},
                {"Node Type": "Hash", "Actual Total Time": 0.01, "Actual Loops": 1},
            ],
        },
        **{"Execution Time": 2.0},
    )
    assert "dominant_node" not in rules_fired(quick)
    estimated = pg(
        {
            "Node Type": "Hash Join",
            "Total Cost": 100.0,
            "Plans": [
                {"Node Type": "Seq Scan", "Total Cost": 95.0},
                {"Node Type": "Hash", "Total Cost": 1.0},
            ],
        }
    )
    [insight] = [i for i in find_insights(estimated) if i.rule == "dominant_node"]
    assert insight.severity == "info" and not insight.measured


# ------------------------------------------------------------------ MySQL / SQLite


def test_mysql_filesort_temporary() -> None:
    plan = parse_plan((PLANS / "mysql-v1-join.json").read_text())
    [insight] = [i for i in find_insights(plan) if i.rule == "mysql_filesort_temporary"]
    assert insight.severity == "warning" and "filesort and a temporary table" in insight.message
    plain = parse_plan(
        {
            "query_block": {
                "select_id": 1,
                "table": {
                    "table_name": "t",
                    "access_type": "ref",
                    "key": "k",
                    "rows": 3,
                    "filtered": 100,
                },
            }
        }
    )
    assert "mysql_filesort_temporary" not in rules_fired(plain)


def test_mysql_v2_filter_over_table_scan() -> None:
    plan = parse_plan((PLANS / "mysql-v2-filter.json").read_text())
    [insight] = [i for i in find_insights(plan) if i.rule == "seq_scan_selective_filter"]
    assert insight.suggestion == "CREATE INDEX orders_customer_id_idx ON orders (customer_id)"
    assert insight.measured


def test_sqlite_temp_btree() -> None:
    plan = parse_plan([(3, 0, 0, "SCAN orders"), (14, 0, 0, "USE TEMP B-TREE FOR ORDER BY")])
    assert "sqlite_temp_btree" in rules_fired(plan)
    assert "sqlite_temp_btree" not in rules_fired(parse_plan([(3, 0, 0, "SCAN orders")]))


# ------------------------------------------------------------------ acceptance: live servers

QUERY = "SELECT * FROM plan_orders WHERE customer_id = 42"


def seq_scan_insights(plan: Any) -> list[Any]:
    return [i for i in find_insights(plan) if i.rule == "seq_scan_selective_filter"]


@pytest.mark.postgres
def test_acceptance_postgres_missing_index(pg_dsn: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(pg_dsn)
    explain = "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) "
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "CREATE TEMP TABLE plan_orders AS SELECT g AS id, mod(g, 2500) AS customer_id, "
                "g * 1.5 AS amount FROM generate_series(1, 50000) g"
            )
            conn.exec_driver_sql("ANALYZE plan_orders")
            before = parse_plan(conn.exec_driver_sql(explain + QUERY).scalar())
            conn.exec_driver_sql("CREATE INDEX ON plan_orders (customer_id)")
            after = parse_plan(conn.exec_driver_sql(explain + QUERY).scalar())
    finally:
        engine.dispose()
    [insight] = seq_scan_insights(before)
    assert insight.measured and "customer_id" in insight.message
    assert insight.suggestion == "CREATE INDEX ON plan_orders (customer_id)"
    assert seq_scan_insights(after) == []
    diff = compare_plans(before, after)
    assert "seq_scan" in diff.removed_operations
    assert diff.indexes_gained and diff.indexes_gained[0][0] == "plan_orders"


@pytest.mark.mariadb
@pytest.mark.parametrize("verb", ["ANALYZE", "EXPLAIN"])
def test_acceptance_mariadb_missing_index(mysql_dsn: str, verb: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(mysql_dsn)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS plan_orders")
            conn.exec_driver_sql(
                "CREATE TABLE plan_orders (id INT PRIMARY KEY, customer_id INT, amount INT)"
            )
            try:
                conn.exec_driver_sql(
                    "INSERT INTO plan_orders SELECT seq, mod(seq, 2500), seq FROM seq_1_to_50000"
                )
                # histograms give EXPLAIN a real `filtered` estimate
                conn.exec_driver_sql("ANALYZE TABLE plan_orders PERSISTENT FOR ALL").fetchall()
                before = parse_plan(conn.exec_driver_sql(f"{verb} FORMAT=JSON {QUERY}").scalar())
                # the suggestion itself, as MariaDB takes it (an index needs a name there)
                conn.exec_driver_sql(seq_scan_insights(before)[0].suggestion)
                after = parse_plan(conn.exec_driver_sql(f"{verb} FORMAT=JSON {QUERY}").scalar())
            finally:
                conn.exec_driver_sql("DROP TABLE plan_orders")
    finally:
        engine.dispose()
    [insight] = seq_scan_insights(before)
    assert insight.measured is (verb == "ANALYZE")
    assert "customer_id" in insight.message
    assert (
        insight.suggestion
        == "CREATE INDEX plan_orders_customer_id_idx ON plan_orders (customer_id)"
    )
    assert seq_scan_insights(after) == []
    assert compare_plans(before, after).indexes_gained == [
        ("plan_orders", "plan_orders_customer_id_idx")
    ]


def test_acceptance_sqlite_missing_index() -> None:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE plan_orders (id INTEGER PRIMARY KEY, customer_id INT, amount INT)")
    con.executemany(
        "INSERT INTO plan_orders VALUES (?, ?, ?)", ((i, i % 2500, i) for i in range(1, 5001))
    )
    sql = QUERY.replace("42", "?")
    before = parse_plan(con.execute("EXPLAIN QUERY PLAN " + sql, (42,)).fetchall(), query=sql)
    con.execute(seq_scan_insights(before)[0].suggestion)  # as SQLite takes it
    after = parse_plan(con.execute("EXPLAIN QUERY PLAN " + sql, (42,)).fetchall(), query=sql)
    con.close()
    [insight] = seq_scan_insights(before)
    assert not insight.measured and insight.message.startswith("estimated:")
    assert (
        insight.suggestion
        == "CREATE INDEX plan_orders_customer_id_idx ON plan_orders (customer_id)"
    )
    assert seq_scan_insights(after) == [] and find_insights(after) == []


def test_fewer_rows_under_a_limit_is_not_a_misestimate() -> None:
    from correlate.plans import parse_plan
    from correlate.plans.insights import InsightContext, row_misestimate

    def plan(limit: bool) -> list[dict[str, object]]:
        scan = {
            "Node Type": "Index Scan",
            "Relation Name": "orders",
            "Index Name": "orders_pkey",
            "Plan Rows": 200000,
            "Actual Rows": 20,
            "Actual Loops": 1,
        }
        if not limit:
            return [{"Plan": scan}]
        return [
            {
                "Plan": {
                    "Node Type": "Limit",
                    "Plan Rows": 20,
                    "Actual Rows": 20,
                    "Actual Loops": 1,
                    "Plans": [scan],
                }
            }
        ]

    context = InsightContext(relation_rows={})
    assert row_misestimate(parse_plan(plan(limit=True)), context) == []
    (found,) = row_misestimate(parse_plan(plan(limit=False)), context)
    assert "over-estimated rows 10,000×" in found.message
