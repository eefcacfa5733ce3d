"""PostgreSQL EXPLAIN (FORMAT JSON) into the common plan model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from correlate.errors import InputError
from correlate.plans.model import Plan, PlanNode
from correlate.plans.parse_values import num, snake, str_list, text_or_none

#: PostgreSQL node key → (PlanNode field, converter). Keys not here go to ``extra``.
PG_NODE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "Parent Relationship": ("parent_relationship", text_or_none),
    "Relation Name": ("relation", text_or_none),
    "Schema": ("schema", text_or_none),
    "Alias": ("alias", text_or_none),
    "Index Name": ("index_name", text_or_none),
    "Plan Rows": ("estimated_rows", num),
    "Startup Cost": ("startup_cost", num),
    "Total Cost": ("total_cost", num),
    "Actual Rows": ("actual_rows", num),
    "Actual Loops": ("actual_loops", num),
    "Actual Startup Time": ("actual_startup_time", num),
    "Actual Total Time": ("actual_total_time", num),
    "Filter": ("filter", text_or_none),
    "Index Cond": ("index_condition", text_or_none),
    "Hash Cond": ("join_condition", text_or_none),
    "Merge Cond": ("join_condition", text_or_none),
    "Join Filter": ("join_condition", text_or_none),
    "Rows Removed by Filter": ("rows_removed_by_filter", num),
    "Rows Removed by Index Recheck": ("rows_removed_by_index_recheck", num),
    "Sort Key": ("sort_key", str_list),
    "Sort Method": ("sort_method", text_or_none),
    "Sort Space Used": ("sort_space_kb", num),
    "Sort Space Type": ("sort_space_type", text_or_none),
    "Hash Batches": ("hash_batches", num),
    "HashAgg Batches": ("hash_batches", num),
    "Original Hash Batches": ("original_hash_batches", num),
    "Exact Heap Blocks": ("exact_heap_blocks", num),
    "Lossy Heap Blocks": ("lossy_heap_blocks", num),
    "Shared Hit Blocks": ("shared_hit_blocks", num),
    "Shared Read Blocks": ("shared_read_blocks", num),
    "Temp Read Blocks": ("temp_read_blocks", num),
    "Temp Written Blocks": ("temp_written_blocks", num),
    "Workers Planned": ("workers_planned", num),
    "Workers Launched": ("workers_launched", num),
}

_PG_TOP = {
    "Planning Time": "planning_time",
    "Execution Time": "execution_time",
    "Query Text": "query_text",
}


def _parse_postgresql(data: Any, raw: Any) -> Plan:
    if isinstance(data, list):
        if len(data) != 1 or not isinstance(data[0], Mapping):
            raise InputError("not a PostgreSQL plan: expected a list of one {'Plan': …} object")
        data = data[0]
    if not isinstance(data, Mapping) or not isinstance(data.get("Plan"), Mapping):
        raise InputError("not a PostgreSQL plan: no 'Plan' object at the top")
    plan = Plan(source="postgresql", raw=raw, nodes=[])
    for key, value in data.items():
        if key == "Plan":
            continue
        if key in _PG_TOP:
            if key == "Query Text":
                plan.query_text = text_or_none(value)
            else:
                setattr(plan, _PG_TOP[key], num(value))
        elif key == "Settings" and isinstance(value, Mapping):
            plan.settings = dict(value)
        else:
            plan.extra[key] = value
    _pg_node(data["Plan"], None, 0, plan.nodes)
    plan.analyzed = plan.execution_time is not None or any(
        n.actual_loops is not None for n in plan.nodes
    )
    return plan


def _pg_node(obj: Any, parent_id: int | None, depth: int, out: list[PlanNode]) -> None:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("Node Type"), str):
        raise InputError(
            f"not a PostgreSQL plan: a node without 'Node Type' at depth {depth} "
            f"(keys {sorted(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__})"
        )
    node_type = obj["Node Type"]
    node = PlanNode(
        node_id=len(out),
        parent_id=parent_id,
        depth=depth,
        node_type=node_type,
        operation=snake(node_type),
    )
    out.append(node)
    children: list[Any] = []
    for key, value in obj.items():
        if key == "Node Type":
            continue
        if key == "Plans" and isinstance(value, list):
            children = value
            continue
        target = PG_NODE_FIELDS.get(key)
        if target is not None:
            name, convert = target
            converted = convert(value)
            if converted is not None and getattr(node, name) is None:
                setattr(node, name, converted)
                continue
        node.extra[key] = value
    if node.operation == "aggregate" and isinstance(obj.get("Strategy"), str):
        node.operation = {"Hashed": "hash_aggregate", "Sorted": "group_aggregate"}.get(
            obj["Strategy"], "aggregate"
        )
    for child in children:
        _pg_node(child, node.node_id, depth + 1, out)


# ---------------------------------------------------------------- MySQL 1 / MariaDB
