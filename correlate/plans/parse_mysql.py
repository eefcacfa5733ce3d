"""MySQL (JSON formats 1 and 2) and MariaDB EXPLAIN FORMAT=JSON into the common plan model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from correlate.errors import InputError
from correlate.plans.model import Plan, PlanNode, Source
from correlate.plans.parse_values import has_key, num, snake, str_list, text_or_none

_STRUCTURE_KEYS = ("table", "query_block", "table_name", "nested_loop", "query_plan")

_MY_OPERATION = {
    "query_block": "query_block",
    "nested_loop": "nested_loop",
    "block-nl-join": "block_nested_loop",
    "filesort": "sort",
    "ordering_operation": "sort",
    "grouping_operation": "aggregate",
    "duplicates_removal": "distinct",
    "temporary_table": "temporary_table",
    "read_sorted_file": "read_sorted_file",
    "union_result": "union",
    "materialized_from_subquery": "materialize",
    "attached_subqueries": "subquery",
    "subqueries": "subquery",
    "query_specifications": "union_member",
    "windowing": "window",
}

_ACCESS_OPERATION = {
    "ALL": "seq_scan",
    "index": "full_index_scan",
    "range": "index_scan",
    "ref": "index_scan",
    "eq_ref": "index_scan",
    "ref_or_null": "index_scan",
    "const": "index_scan",
    "system": "index_scan",
    "index_merge": "index_scan",
    "fulltext": "index_scan",
    "unique_subquery": "index_scan",
    "index_subquery": "index_scan",
}


def _parse_mysql_either(data: Any, raw: Any) -> Plan:
    if isinstance(data, Mapping) and "query_plan" in data:
        return _parse_mysql2(data, raw)
    return _parse_query_block_json(data, raw, "mysql")


def _parse_mariadb(data: Any, raw: Any) -> Plan:
    return _parse_query_block_json(data, raw, "mariadb")


def _parse_query_block_json(data: Any, raw: Any, source: Source) -> Plan:
    if not isinstance(data, Mapping) or not isinstance(data.get("query_block"), Mapping):
        raise InputError(f"not a {source} plan: no 'query_block' object at the top")
    plan = Plan(source=source, raw=raw, nodes=[])
    for key, value in data.items():
        if key == "query_block":
            continue
        if key == "query_optimization" and isinstance(value, Mapping):
            plan.planning_time = num(value.get("r_total_time_ms"))
        plan.extra[key] = value
    _my_node("query_block", data["query_block"], None, 0, plan.nodes)
    plan.analyzed = has_key(data["query_block"], ("r_loops",))
    root = plan.nodes[0]
    if plan.analyzed and root.total_time is not None:
        plan.execution_time = root.total_time
    return plan


def _is_structure(value: Any) -> bool:
    if isinstance(value, Mapping):
        return has_key(value, _STRUCTURE_KEYS)
    if isinstance(value, list):
        return any(isinstance(v, Mapping) and has_key(v, _STRUCTURE_KEYS) for v in value)
    return False


def _my_node(
    key: str, obj: Mapping[str, Any], parent_id: int | None, depth: int, out: list[PlanNode]
) -> None:
    node = PlanNode(
        node_id=len(out),
        parent_id=parent_id,
        depth=depth,
        node_type=key,
        operation=_MY_OPERATION.get(key, snake(key)),
    )
    out.append(node)
    children: list[tuple[str, Any]] = []
    for k, v in obj.items():
        if _is_structure(v) and k not in ("table_name",):
            children.append((k, v))
        elif not _my_field(node, k, v):
            node.extra[k] = v
    if key == "table":
        access = obj.get("access_type")
        node.node_type = access if isinstance(access, str) else "table"
        operation = _ACCESS_OPERATION.get(node.node_type, snake(node.node_type))
        # A covering index read whole (access_type index) is still a full scan.
        if obj.get("using_index") is True and operation not in ("seq_scan", "full_index_scan"):
            operation = "index_only_scan"
        node.operation = operation
        _my_table_numbers(node, obj)
    elif "r_total_time_ms" in obj:
        node.total_time = num(obj["r_total_time_ms"])
    if key == "ordering_operation" and obj.get("using_filesort") is False:
        node.operation = "order"
    for k, v in children:
        if isinstance(v, Mapping):
            _my_node(k, v, node.node_id, depth + 1, out)
            continue
        group_id = len(out)
        _my_node(k, {}, node.node_id, depth + 1, out)
        for item in v:
            if not isinstance(item, Mapping):
                out[group_id].extra.setdefault("items", []).append(item)
            elif len(item) == 1 and isinstance(next(iter(item.values())), Mapping):
                (ik, iv), *_ = item.items()
                _my_node(ik, iv, group_id, depth + 2, out)
            else:
                _my_node(k, item, group_id, depth + 2, out)


_MY_FIELDS = {
    "table_name": "relation",
    "key": "index_name",
    "attached_condition": "filter",
    "r_loops": "actual_loops",
}


def _my_field(node: PlanNode, key: str, value: Any) -> bool:
    name = _MY_FIELDS.get(key)
    if name is not None:
        converted = num(value) if name == "actual_loops" else text_or_none(value)
        if converted is not None:
            setattr(node, name, converted)
            return True
    if key in ("rows", "rows_examined_per_scan") and num(value) is not None:
        node.estimated_rows_examined = num(value)
        return True
    if key == "sort_key" and isinstance(value, str):
        node.sort_key = [s.strip() for s in value.split(",")]
        return True
    return False


def _my_table_numbers(node: PlanNode, obj: Mapping[str, Any]) -> None:
    """Derive output rows, removed rows, cost and time; the raw keys stay in ``extra``."""
    filtered = num(obj.get("filtered"))
    if node.estimated_rows_examined is not None:
        node.estimated_rows = node.estimated_rows_examined * (
            filtered / 100 if filtered is not None else 1.0
        )
    cost = obj.get("cost_info")
    if isinstance(cost, Mapping):
        node.total_cost = num(cost.get("prefix_cost"))
        own = [num(cost.get(k)) for k in ("read_cost", "eval_cost")]
        if all(c is not None for c in own):
            node.self_cost = sum(cast(float, c) for c in own)
    read = num(obj.get("r_rows"))
    if read is not None:
        kept = num(obj.get("r_filtered"))
        node.actual_rows = read * (kept / 100 if kept is not None else 1.0)
        node.rows_removed_by_filter = read - node.actual_rows
    times = [num(obj.get(k)) for k in ("r_table_time_ms", "r_other_time_ms")]
    if any(t is not None for t in times):
        node.total_time = sum(t or 0.0 for t in times)
        if node.actual_loops:
            node.actual_total_time = node.total_time / node.actual_loops


# ---------------------------------------------------------------- MySQL format 2

_V2_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "table_name": ("relation", text_or_none),
    "alias": ("alias", text_or_none),
    "schema_name": ("schema", text_or_none),
    "index_name": ("index_name", text_or_none),
    "estimated_rows": ("estimated_rows", num),
    "estimated_total_cost": ("total_cost", num),
    "estimated_first_row_cost": ("startup_cost", num),
    "actual_rows": ("actual_rows", num),
    "actual_loops": ("actual_loops", num),
    "actual_first_row_ms": ("actual_startup_time", num),
    "actual_last_row_ms": ("actual_total_time", num),
    "sort_fields": ("sort_key", str_list),
}

_V2_OPERATION = {"table": "seq_scan", "filter": "filter", "sort": "sort", "limit": "limit"}


def _parse_mysql2(data: Any, raw: Any) -> Plan:
    if not isinstance(data, Mapping) or not isinstance(data.get("query_plan"), Mapping):
        raise InputError("not a MySQL format-2 plan: no 'query_plan' object at the top")
    plan = Plan(source="mysql", raw=raw, nodes=[])
    for key, value in data.items():
        if key == "query":
            plan.query_text = text_or_none(value)
        elif key != "query_plan":
            plan.extra[key] = value
    _v2_node(data["query_plan"], None, 0, plan.nodes)
    plan.analyzed = any(n.actual_loops is not None for n in plan.nodes)
    return plan


def _v2_node(
    obj: Mapping[str, Any], parent_id: int | None, depth: int, out: list[PlanNode]
) -> None:
    access = obj.get("access_type")
    node_type = access if isinstance(access, str) else "operation"
    node = PlanNode(
        node_id=len(out),
        parent_id=parent_id,
        depth=depth,
        node_type=node_type,
        operation=_V2_OPERATION.get(node_type, snake(node_type)),
    )
    out.append(node)
    if node_type == "index":
        kind = obj.get("index_access_type")
        node.operation = "full_index_scan" if kind == "index_scan" else "index_scan"
        if obj.get("covering") is True:
            node.operation = "index_only_scan"
    elif node_type == "join":
        algorithm = obj.get("join_algorithm")
        node.operation = f"{algorithm}_join" if algorithm == "hash" else "nested_loop"
    children: list[Mapping[str, Any]] = []
    for key, value in obj.items():
        if key == "access_type":
            continue
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, Mapping) and "operation" in v for v in value)
        ):
            children.extend(value)
            if key != "inputs":
                node.extra.setdefault("child_keys", []).append(key)
            continue
        if key == "condition" and isinstance(value, str):
            if node_type == "join":
                node.join_condition = value
            else:
                node.filter = value
            continue
        target = _V2_FIELDS.get(key)
        if target is not None and target[1](value) is not None:
            setattr(node, target[0], target[1](value))
            continue
        node.extra[key] = value
    for child in children:
        _v2_node(child, node.node_id, depth + 1, out)


# ---------------------------------------------------------------- SQLite
