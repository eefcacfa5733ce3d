"""SQLite EXPLAIN QUERY PLAN rows into the common plan model."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from correlate.errors import InputError
from correlate.plans.model import Plan, PlanNode
from correlate.plans.parse_values import snake

_SQLITE_SCAN = re.compile(
    r"^(?P<verb>SCAN|SEARCH)\s+(?:TABLE\s+)?(?P<name>\S+)(?:\s+AS\s+(?P<alias>\S+))?"
    r"(?:\s+USING\s+(?P<how>COVERING INDEX|INDEX|INTEGER PRIMARY KEY|PRIMARY KEY)"
    r"(?:\s+(?P<index>[^\s(]+))?)?\s*(?:\((?P<cond>.*)\))?"
)
_SQLITE_TEMP = re.compile(r"^USE TEMP B-TREE FOR (?P<what>.+)$")


def _is_sqlite_row(row: Any) -> bool:
    if isinstance(row, Mapping):
        return {"id", "parent", "detail"} <= set(row)
    if isinstance(row, Sequence) and not isinstance(row, str | bytes):
        return len(row) == 4 and isinstance(row[0], int) and isinstance(row[3], str)
    return False


def _parse_sqlite(data: Any, raw: Any) -> Plan:
    if not isinstance(data, Sequence) or not all(_is_sqlite_row(r) for r in data):
        raise InputError(
            "not SQLite EXPLAIN QUERY PLAN rows: expected (id, parent, notused, detail)"
        )
    rows = [
        (int(r["id"]), int(r["parent"]), r.get("notused"), str(r["detail"]))
        if isinstance(r, Mapping)
        else (int(r[0]), int(r[1]), r[2], str(r[3]))
        for r in data
    ]
    plan = Plan(source="sqlite", raw=raw, nodes=[])
    plan.nodes.append(
        PlanNode(
            node_id=0,
            parent_id=None,
            depth=0,
            node_type="QUERY PLAN",
            operation="query",
            extra={"synthetic": True},
        )
    )
    by_sqlite_id: dict[int, PlanNode] = {0: plan.nodes[0]}
    for sid, parent, notused, detail in rows:
        up = by_sqlite_id.get(parent)
        if up is None:
            raise InputError(
                f"SQLite plan row {sid} names parent {parent}, which no earlier row has"
            )
        node = _sqlite_node(detail, len(plan.nodes), up)
        node.extra.update({"sqlite_id": sid, "sqlite_parent": parent, "notused": notused})
        plan.nodes.append(node)
        by_sqlite_id[sid] = node
    return plan


def _sqlite_node(detail: str, node_id: int, parent: PlanNode) -> PlanNode:
    node = PlanNode(
        node_id=node_id,
        parent_id=parent.node_id,
        depth=parent.depth + 1,
        node_type=detail,
        operation=snake(detail.split(" ")[0]),
        extra={"detail": detail},
    )
    scan = _SQLITE_SCAN.match(detail)
    temp = _SQLITE_TEMP.match(detail)
    if scan and scan["name"] not in ("CONSTANT", "SUBQUERY"):
        node.node_type = scan["verb"]
        node.relation = scan["name"]
        node.alias = scan["alias"]
        node.index_name = scan["index"] or (
            scan["how"] if scan["how"] and "KEY" in scan["how"] else None
        )
        node.index_condition = scan["cond"]
        how = scan["how"] or ""
        if not how:
            node.operation = "seq_scan"
        elif "COVERING" in how:
            node.operation = "index_only_scan" if scan["verb"] == "SEARCH" else "full_index_scan"
        else:
            node.operation = "index_scan" if scan["verb"] == "SEARCH" else "full_index_scan"
    elif temp:
        node.node_type = "USE TEMP B-TREE"
        node.operation = "temp_btree"
        node.extra["for"] = temp["what"]
    return node


_FROM = re.compile(r"\b(?:FROM|JOIN)\s+([\w.]+)(?:\s+(?:AS\s+)?(\w+))?", re.IGNORECASE)
_NOT_ALIAS = frozenset(
    {
        "where",
        "join",
        "on",
        "inner",
        "left",
        "right",
        "cross",
        "natural",
        "group",
        "order",
        "limit",
        "using",
        "full",
        "outer",
        "union",
    }
)


def _resolve_sqlite_aliases(plan: Plan, query: str) -> None:
    """SQLite names a scan by its alias (``SCAN o``); the query says which table that is."""
    tables = {}
    for table, alias in _FROM.findall(query):
        if alias and alias.lower() not in _NOT_ALIAS:
            tables[alias] = table
    for node in plan.nodes:
        if node.relation in tables and node.alias is None:
            node.alias, node.relation = node.relation, tables[node.relation]


# ---------------------------------------------------------------- text forms
