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
    _parallel_times(plan.nodes)
    return plan


def _parallel_times(nodes: list[PlanNode]) -> None:
    """Wall-clock totals of the nodes a Gather or Gather Merge runs in parallel.

    PostgreSQL reports a node's actual time per loop, averaged over the
    processes that ran it, and under a Gather its loops count those processes
    (the workers launched, plus the leader), which run at the same time. So the
    node's total is time × loops / processes, not time × loops: a Seq Scan run
    by three processes for 21 ms each took 21 ms, not 63. (PEV2 reads parallel
    plans the same way.) Loops beyond the processes, on the inner side of a
    nested loop, still multiply.
    """
    processes: dict[int, float] = {}
    for node in nodes:  # parents come before their children
        inherited = processes.get(node.parent_id) if node.parent_id is not None else None
        if node.node_type in ("Gather", "Gather Merge") and node.workers_launched is not None:
            processes[node.node_id] = 1.0  # the Gather itself runs once, in the leader
            for child in nodes:
                if child.parent_id == node.node_id:
                    processes[child.node_id] = node.workers_launched + 1.0
            continue
        if node.node_id in processes:
            inherited = processes[node.node_id]
        if inherited is None or inherited <= 1.0:
            continue
        processes[node.node_id] = inherited
        if node.actual_total_time is not None and node.actual_loops is not None:
            node.total_time = node.actual_total_time * max(node.actual_loops / inherited, 1.0)


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
