"""The plan model and parsers: every source, every text form, nothing lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.plans import Plan, compare_plans, parse_plan
from correlate.plans.parse import PG_NODE_FIELDS

PLANS = Path(__file__).parent / "data" / "plans"
PG_PLANS = PLANS / "postgres"


def pg_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node dict of a PostgreSQL plan tree, depth first."""
    out = [node]
    for child in node.get("Plans", []):
        out.extend(pg_nodes(child))
    return out


def assert_lossless(plan: Plan, top: dict[str, Any]) -> None:
    """Every key of every source node is in a named field (same value) or in ``extra``."""
    source_nodes = pg_nodes(top["Plan"])
    assert len(plan.nodes) == len(source_nodes)
    for node, src in zip(plan.nodes, source_nodes, strict=True):
        assert node.node_type == src["Node Type"]
        for key, value in src.items():
            if key in ("Node Type", "Plans"):
                continue
            if key in node.extra:
                assert node.extra[key] == value
                continue
            name, convert = PG_NODE_FIELDS[key]
            assert getattr(node, name) == convert(value), key


# ------------------------------------------------------------------ PostgreSQL


def test_real_postgres_plans_parse_without_loss() -> None:
    # CTEs, InitPlans, a semi-join and a row trigger (tests/helpers/make_pg_plans.sh)
    files = sorted(PG_PLANS.glob("*.json"))
    assert files
    for path in files:
        top = json.loads(path.read_text())
        plan = parse_plan(path.read_text())
        # one is the generic plan of a statement with placeholders: estimates only
        assert plan.source == "postgresql" and plan.analyzed == ("generic" not in path.name)
        assert_lossless(plan, top[0])
        assert plan.execution_time == top[0].get("Execution Time")
        assert plan.extra.get("Triggers") == top[0].get("Triggers")
        assert all(n.self_time is None or n.self_time >= 0 for n in plan.nodes)
        assert plan.raw == path.read_text()


SEQ_SCAN = {
    "Node Type": "Seq Scan",
    "Relation Name": "orders",
    "Alias": "o",
    "Filter": "(customer_id = 42)",
    "Plan Rows": 20,
    "Actual Rows": 20,
    "Actual Loops": 1,
    "Actual Total Time": 4.0,
    "Rows Removed by Filter": 49980,
}


@pytest.mark.parametrize(
    "raw",
    [
        [{"Plan": SEQ_SCAN}],
        {"Plan": SEQ_SCAN},
        {"Query Text": "SELECT * FROM orders o WHERE customer_id = 42", "Plan": SEQ_SCAN},
        json.dumps([{"Plan": SEQ_SCAN}], indent=2),
        # psql's aligned output: header, dashes, `+` continuations, row count
        "QUERY PLAN\n-----------\n"
        + "\n".join(f" {line}+" for line in json.dumps([{"Plan": SEQ_SCAN}], indent=2).splitlines())
        + "\n(1 row)\n",
        # auto_explain's log message
        "duration: 4.101 ms  plan:\n" + json.dumps({"Query Text": "SELECT 1", "Plan": SEQ_SCAN}),
        json.dumps({"Plan": SEQ_SCAN}).encode(),
    ],
    ids=["list", "bare", "auto_explain", "json-text", "psql-box", "log-message", "bytes"],
)
def test_postgres_forms(raw: Any) -> None:
    plan = parse_plan(raw)
    assert plan.source == "postgresql"
    node = plan.root
    assert (node.operation, node.relation, node.alias) == ("seq_scan", "orders", "o")
    assert node.filter == "(customer_id = 42)"
    assert node.rows_removed_by_filter == 49980
    assert plan.raw is raw


def test_auto_explain_query_text() -> None:
    plan = parse_plan({"Query Text": "SELECT 1", "Plan": SEQ_SCAN, "Settings": {"work_mem": "8MB"}})
    assert plan.query_text == "SELECT 1"
    assert plan.settings == {"work_mem": "8MB"}


def test_per_loop_totals_and_self_time() -> None:
    plan = parse_plan(
        {
            "Plan": {
                "Node Type": "Nested Loop",
                "Actual Rows": 100,
                "Actual Loops": 1,
                "Actual Total Time": 10.0,
                "Plans": [
                    {
                        "Node Type": "Seq Scan",
                        "Actual Rows": 100,
                        "Actual Loops": 1,
                        "Actual Total Time": 2.0,
                    },
                    {
                        "Node Type": "Index Scan",
                        "Actual Rows": 1,
                        "Actual Loops": 100,
                        "Actual Total Time": 0.05,
                        "Index Name": "customers_pkey",
                    },
                ],
            }
        }
    )
    loop, _outer, inner = plan.nodes
    assert inner.total_rows == 100 and inner.total_time == pytest.approx(5.0)
    assert loop.self_time == pytest.approx(3.0)
    assert [c.node_id for c in plan.children(loop)] == [1, 2]
    assert plan.parent(inner) is loop and inner.depth == 1
    assert inner.index_name == "customers_pkey"


def test_parallel_workers_time_is_wall_clock_under_gather() -> None:
    # under Gather the loops are the three processes, running at the same time
    plan = parse_plan(
        {
            "Plan": {
                "Node Type": "Gather",
                "Actual Total Time": 10.0,
                "Actual Loops": 1,
                "Workers Planned": 2,
                "Workers Launched": 2,
                "Plans": [
                    {
                        "Node Type": "Seq Scan",
                        "Parallel Aware": True,
                        "Actual Total Time": 9.0,
                        "Actual Loops": 3,
                    }
                ],
            }
        }
    )
    assert plan.nodes[1].total_time == 9.0
    assert plan.root.self_time == 1.0
    assert plan.root.workers_launched == 2


def test_spill_fields() -> None:
    sort = parse_plan(
        {
            "Plan": {
                "Node Type": "Sort",
                "Sort Method": "external merge",
                "Sort Space Used": 4096,
                "Sort Space Type": "Disk",
            }
        }
    ).root
    assert sort.spilled is True and sort.sort_space_kb == 4096
    hashed = parse_plan({"Plan": {"Node Type": "Hash", "Hash Batches": 4}}).root
    assert hashed.spilled is True
    quick = parse_plan(
        {"Plan": {"Node Type": "Sort", "Sort Method": "quicksort", "Sort Space Type": "Memory"}}
    ).root
    assert quick.spilled is False


def test_records_load_into_duckdb() -> None:
    plan = parse_plan([{"Plan": SEQ_SCAN}])
    frame = pd.DataFrame(plan.to_records())
    con = duckdb.connect()
    con.register("nodes", frame)
    row = con.execute("SELECT operation, relation, rows_removed_by_filter FROM nodes").fetchone()
    assert row == ("seq_scan", "orders", 49980.0)
    con.close()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "empty"),
        ("hello", "no JSON"),
        ('[{"Plan": ', "invalid JSON"),
        ({"nope": 1}, "keys ['nope']"),
        ([], "empty list"),
        ([{"Plan": SEQ_SCAN}, {"Plan": SEQ_SCAN}], "one at a time"),
        ({"Plan": {"Relation Name": "x"}}, "without 'Node Type'"),
        ([(1, 0, 0)], "neither"),
        ([(2, 5, 0, "SCAN t")], "names parent 5"),
        (42, "got int"),
    ],
)
def test_malformed_input_says_what_is_wrong(raw: Any, says: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        parse_plan(raw)
    assert says in str(info.value)


def test_unknown_source_is_refused() -> None:
    with pytest.raises(InputError, match="unknown plan source 'oracle'"):
        parse_plan({"Plan": SEQ_SCAN}, source="oracle")


# ------------------------------------------------------------------ MySQL (hand-written)


def test_mysql_v1_fixture() -> None:
    raw = (PLANS / "mysql-v1-join.json").read_text()
    plan = parse_plan(raw)
    assert plan.source == "mysql" and not plan.analyzed
    ops = [(n.node_type, n.operation, n.relation) for n in plan.nodes]
    assert ops == [
        ("query_block", "query_block", None),
        ("ordering_operation", "sort", None),
        ("nested_loop", "nested_loop", None),
        ("ALL", "seq_scan", "o"),
        ("eq_ref", "index_only_scan", "c"),
    ]
    scan, lookup = plan.nodes[3], plan.nodes[4]
    assert scan.estimated_rows_examined == 50000 and scan.estimated_rows == 5000
    assert scan.filter == "(`shop`.`o`.`status` = 'paid')"
    assert scan.self_cost == pytest.approx(5037.5) and scan.total_cost == 5037.5
    assert scan.extra["filtered"] == "10.00"  # the raw string is kept as well
    assert lookup.index_name == "PRIMARY" and lookup.extra["ref"] == ["shop.o.customer_id"]
    assert plan.nodes[1].extra["using_filesort"] is True
    assert plan.nodes[0].extra["cost_info"] == {"query_cost": "20421.50"}


def test_mysql_v2_fixture() -> None:
    plan = parse_plan((PLANS / "mysql-v2-filter.json").read_text())
    assert plan.source == "mysql" and plan.analyzed
    assert plan.query_text and plan.query_text.startswith("/* select#1 */")
    limit, filt, scan = plan.nodes
    assert (limit.operation, filt.operation, scan.operation) == ("limit", "filter", "seq_scan")
    assert filt.filter == "(orders.customer_id = 42)"
    assert scan.relation == "orders" and scan.schema == "shop"
    assert scan.actual_rows == 50000 and scan.actual_total_time == 18.7
    assert limit.extra["limit_offset"] == 5000
    assert plan.extra["json_schema_version"] == "2.0"


# ------------------------------------------------------------------ MariaDB (inline, as MariaDB 10.11 prints EXPLAIN FORMAT=JSON)

MARIADB_ANALYZE = {
    "query_optimization": {"r_total_time_ms": 0.1},
    "query_block": {
        "select_id": 1,
        "r_loops": 1,
        "r_total_time_ms": 12.0,
        "nested_loop": [
            {
                "table": {
                    "table_name": "orders",
                    "access_type": "ALL",
                    "r_loops": 1,
                    "rows": 50000,
                    "r_rows": 50000,
                    "r_table_time_ms": 8.0,
                    "r_other_time_ms": 3.0,
                    "r_engine_stats": {"pages_accessed": 120},
                    "filtered": 100,
                    "r_filtered": 0.04,
                    "attached_condition": "orders.customer_id = 42",
                }
            }
        ],
    },
}


def test_mariadb_analyze_fields() -> None:
    plan = parse_plan(MARIADB_ANALYZE)
    assert plan.source == "mariadb" and plan.analyzed
    assert plan.planning_time == 0.1 and plan.execution_time == 12.0
    block, loop, scan = plan.nodes
    assert loop.operation == "nested_loop" and scan.parent_id == loop.node_id
    assert scan.actual_rows == pytest.approx(20) and scan.rows_removed_by_filter == pytest.approx(
        49980
    )
    assert scan.total_time == 11.0 and scan.actual_loops == 1
    assert block.self_time == pytest.approx(1.0)  # looks through the untimed nested_loop
    assert scan.extra["r_engine_stats"] == {"pages_accessed": 120}


def test_mariadb_source_forced() -> None:
    assert parse_plan(MARIADB_ANALYZE, source="mariadb").source == "mariadb"


# ------------------------------------------------------------------ SQLite


def test_sqlite_rows_become_a_tree() -> None:
    rows = [
        (2, 0, 0, "SEARCH orders USING INTEGER PRIMARY KEY (rowid=?)"),
        (6, 0, 0, "LIST SUBQUERY 1"),
        (9, 6, 0, "SEARCH orders USING INDEX oi (amount=?)"),
        (14, 0, 0, "USE TEMP B-TREE FOR ORDER BY"),
    ]
    plan = parse_plan(rows)
    assert plan.source == "sqlite" and plan.root.operation == "query"
    _root, pk, sub, idx, temp = plan.nodes
    assert pk.operation == "index_scan" and pk.index_condition == "rowid=?"
    assert idx.parent_id == sub.node_id and idx.depth == 2 and idx.index_name == "oi"
    assert temp.operation == "temp_btree" and temp.extra["for"] == "ORDER BY"
    assert idx.extra == {"detail": rows[2][3], "sqlite_id": 9, "sqlite_parent": 6, "notused": 0}


@pytest.mark.parametrize(
    ("detail", "operation", "relation", "alias"),
    [
        ("SCAN orders", "seq_scan", "orders", None),
        ("SCAN TABLE orders", "seq_scan", "orders", None),  # SQLite before 3.36
        ("SCAN TABLE orders AS o", "seq_scan", "orders", "o"),
        ("SCAN orders USING COVERING INDEX oi", "full_index_scan", "orders", None),
        ("SEARCH orders USING COVERING INDEX oi (amount>?)", "index_only_scan", "orders", None),
        ("SCAN CONSTANT ROW", "scan", None, None),
    ],
)
def test_sqlite_detail_wordings(detail: str, operation: str, relation: str, alias: str) -> None:
    node = parse_plan([(2, 0, 0, detail)]).nodes[1]
    assert (node.operation, node.relation, node.alias) == (operation, relation, alias)


def test_sqlite_live_and_alias_resolved() -> None:
    con = sqlite3.connect(":memory:")
    con.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, status TEXT);"
    )
    query = "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = ?"
    rows = con.execute("EXPLAIN QUERY PLAN " + query, ("paid",)).fetchall()
    con.close()
    plan = parse_plan(rows, query=query)
    scans = {n.alias: (n.operation, n.relation) for n in plan.nodes if n.relation}
    assert scans == {"o": ("seq_scan", "orders"), "c": ("index_scan", "customers")}
    assert plan.raw == rows


# ------------------------------------------------------------------ live servers


@pytest.mark.postgres
def test_postgres_live_capture(pg_dsn: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(pg_dsn)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "CREATE TEMP TABLE plan_model_orders AS SELECT g AS id, mod(g, 2500) AS "
                "customer_id, g * 1.5 AS amount FROM generate_series(1, 50000) g"
            )
            conn.exec_driver_sql("ANALYZE plan_model_orders")
            conn.exec_driver_sql("SET work_mem = '8MB'")  # SETTINGS lists changed GUCs
            raw = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) SELECT customer_id, "
                "count(*) FROM plan_model_orders WHERE amount > 100 GROUP BY customer_id "
                "ORDER BY 2 DESC"
            ).scalar()
    finally:
        engine.dispose()
    assert isinstance(raw, list)
    plan = parse_plan(raw)
    assert plan.analyzed and plan.execution_time and plan.planning_time is not None
    assert plan.settings == {"work_mem": "8MB"}
    assert "Planning" in plan.extra
    assert_lossless(plan, raw[0])
    scan = next(n for n in plan.nodes if n.operation == "seq_scan")
    assert scan.relation == "plan_model_orders" and scan.schema is not None
    assert scan.extra["Output"]  # VERBOSE
    assert scan.shared_hit_blocks is not None or "Local Hit Blocks" in scan.extra


@pytest.mark.mariadb
@pytest.mark.parametrize("verb", ["EXPLAIN", "ANALYZE"])
def test_mariadb_live_capture(mysql_dsn: str, verb: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(mysql_dsn)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE plan_model_orders (id INT PRIMARY KEY, customer_id INT, amount INT)"
            )
            conn.exec_driver_sql(
                "INSERT INTO plan_model_orders SELECT seq, mod(seq, 50), seq FROM seq_1_to_5000"
            )
            raw = conn.exec_driver_sql(
                f"{verb} FORMAT=JSON SELECT customer_id, count(*) FROM plan_model_orders a "
                "WHERE amount < 100 GROUP BY customer_id"
            ).scalar()
    finally:
        engine.dispose()
    plan = parse_plan(raw)
    assert plan.source == "mariadb"
    assert plan.analyzed is (verb == "ANALYZE")
    scan = next(n for n in plan.nodes if n.relation == "a")
    assert scan.operation == "seq_scan" and scan.filter == "a.amount < 100"
    if verb == "ANALYZE":
        assert scan.actual_loops == 1 and scan.total_time is not None
        assert scan.rows_removed_by_filter == pytest.approx(5000 - 99, abs=1)


# ------------------------------------------------------------------ properties

_KEYS = st.sampled_from(["Filter", "Custom Thing", "Output", "Index Name", "Plan Rows"])


@st.composite
def pg_trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    node: dict[str, Any] = {
        "Node Type": draw(st.sampled_from(["Seq Scan", "Hash Join", "Sort", "Mystery Node"])),
        "Actual Loops": draw(st.integers(0, 50)),
        "Actual Total Time": draw(st.floats(0, 1e4, allow_nan=False)),
        "Actual Rows": draw(st.floats(0, 1e6, allow_nan=False)),
    }
    for key in draw(st.lists(_KEYS, max_size=3, unique=True)):
        node[key] = draw(st.one_of(st.text(max_size=5), st.integers(0, 9), st.none()))
    if depth < 3:
        kids = draw(st.lists(pg_trees(depth + 1), max_size=3))
        if kids:
            node["Plans"] = kids
    return node


@settings(max_examples=60, deadline=None)
@given(pg_trees())
def test_property_postgres_trees_round_trip(tree: dict[str, Any]) -> None:
    top = {"Plan": tree}
    plan = parse_plan([top])
    assert_lossless(plan, top)
    assert all(n.self_time is not None and n.self_time >= 0 for n in plan.nodes)
    assert len(plan.to_records()) == len(plan.nodes)
    assert all(n.parent_id is None or n.parent_id < n.node_id for n in plan.nodes)
    assert not compare_plans(plan, parse_plan(json.dumps([top]))).changed


# ------------------------------------------------------------------ compare


def scan(node_type: str, relation: str, rows: float, index: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"Node Type": node_type, "Relation Name": relation, "Plan Rows": rows}
    if index:
        node["Index Name"] = index
    return node


def join(*kids: dict[str, Any]) -> Plan:
    return parse_plan({"Plan": {"Node Type": "Hash Join", "Plans": list(kids)}})


def test_compare_join_order_index_and_estimates() -> None:
    a = join(scan("Seq Scan", "orders", 50_000), scan("Seq Scan", "customers", 100))
    b = join(
        scan("Index Scan", "customers", 100, "customers_pkey"), scan("Seq Scan", "orders", 900)
    )
    diff = compare_plans(a, b)
    assert diff.join_order_before == ["orders", "customers"]
    assert diff.join_order_after == ["customers", "orders"] and diff.join_order_changed
    assert diff.indexes_gained == [("customers", "customers_pkey")] and diff.indexes_lost == []
    assert diff.added_operations == ["index_scan"] and diff.removed_operations == ["seq_scan"]
    [change] = diff.estimate_changes
    assert (change.relation, change.before, change.after) == ("orders", 50_000, 900)
    assert any("join order" in line for line in diff.summary())
    back = compare_plans(b, a)
    assert back.indexes_lost == [("customers", "customers_pkey")]


def test_compare_same_plan_is_unchanged() -> None:
    a = join(scan("Seq Scan", "orders", 100), scan("Seq Scan", "customers", 100))
    assert not compare_plans(a, a).changed
    assert compare_plans(a, a).summary() == ["plans are the same shape"]


@pytest.mark.parametrize("rows", ["NAN", "nan", "inf", "-Infinity"])
def test_a_number_no_server_writes_is_no_estimate(rows: object) -> None:
    # hypothesis found "Plan Rows": "NAN" read as a float NaN, which poisons every ratio
    top = {"Plan": {"Node Type": "Seq Scan", "Plan Rows": rows, "Total Cost": "inf"}}
    (node,) = parse_plan(json.dumps([top])).nodes
    assert node.estimated_rows is None and node.total_cost is None
