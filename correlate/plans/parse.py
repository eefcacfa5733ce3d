"""Parse PostgreSQL, MySQL, MariaDB and SQLite plans into one :class:`Plan`.

``parse_plan`` takes what a driver or a log hands you: a JSON string (psql's
``QUERY PLAN`` box with ``+`` continuations and auto_explain's ``duration: …
plan:`` prefix are stripped), a decoded list/dict, or SQLite's ``EXPLAIN QUERY
PLAN`` rows. The source is detected by key (FORMATS.md §6.1, §7.1–7.3):

* ``[{"Plan": …}]``, ``{"Plan": …}``, ``{"Query Text": …, "Plan": …}`` → PostgreSQL
* ``{"query_block": …}`` → MySQL format 1 when it has ``cost_info`` or
  ``rows_examined_per_scan``, else MariaDB (10.11 has neither)
* ``{"query_plan": …}`` / ``json_schema_version`` → MySQL format 2
* rows ``(id, parent, notused, detail)`` → SQLite

>>> plan = parse_plan('''QUERY PLAN
... ------------------------------------
...  [{"Plan": {"Node Type": "Seq Scan",+
...    "Relation Name": "orders",         +
...    "Filter": "(customer_id = 7)"}}]
... (1 row)''')
>>> plan.source, plan.root.operation, plan.root.filter
('postgresql', 'seq_scan', '(customer_id = 7)')
>>> parse_plan([(2, 0, 0, "SCAN orders")]).nodes[1].operation
'seq_scan'
>>> parse_plan({"nope": 1})
Traceback (most recent call last):
...
correlate.errors.InputError: not a plan: a dict with keys ['nope']; expected PostgreSQL ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from correlate.errors import InputError
from correlate.plans.model import SOURCES, Plan, PlanNode, Source, finish

__all__ = ["PG_NODE_FIELDS", "parse_plan", "plan_json", "snake"]


def parse_plan(raw: Any, source: str | None = None, *, query: str | None = None) -> Plan:
    """Parse one plan; ``source`` forces the dialect, ``query`` sets the query text.

    Raises :class:`~correlate.errors.InputError` saying what is wrong when
    ``raw`` is not a plan this module knows.
    """
    if source is not None and source not in SOURCES:
        raise InputError(f"unknown plan source {source!r}; use one of {', '.join(SOURCES)}")
    data = raw
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        data = _loads(data)
    kind = source or _detect(data)
    parser = _PARSERS[kind]
    plan = parser(data, raw)
    if query is not None:
        plan.query_text = query
        if plan.source == "sqlite":
            _resolve_sqlite_aliases(plan, query)
    return finish(plan)


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

_NOISE = re.compile(r"^\s*(QUERY PLAN|EXPLAIN|ANALYZE|-+|\(\d+ rows?\))\s*$")


def _loads(text: str) -> Any:
    lines = []
    for line in text.splitlines():
        if _NOISE.match(line):
            continue
        stripped = line.rstrip()
        if stripped.endswith("+"):
            stripped = stripped[:-1]
        lines.append(stripped)
    body = "\n".join(lines).strip()
    if not body:
        raise InputError("not a plan: the text is empty")
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise InputError(
            "not a plan: no JSON found in the text; pass EXPLAIN (FORMAT JSON) output, "
            "MySQL/MariaDB EXPLAIN FORMAT=JSON, or SQLite EXPLAIN QUERY PLAN rows"
        )
    start = min(starts)
    try:
        data, end = json.JSONDecoder().raw_decode(body, start)
    except json.JSONDecodeError as exc:
        raise InputError(f"not a plan: invalid JSON ({exc})") from None
    if body[end:].strip():
        raise InputError(f"not a plan: text after the JSON: {body[end:].strip()[:60]!r}")
    return data


def plan_json(text: str) -> Any:
    """Decode plan JSON from text as psql, mysql or auto_explain print it.

    >>> plan_json("QUERY PLAN\\n----\\n [{\\"Plan\\": {}}]+\\n(1 row)")
    [{'Plan': {}}]
    """
    return _loads(text)


def _detect(data: Any) -> str:
    if isinstance(data, Mapping):
        if "Plan" in data:
            return "postgresql"
        if "query_plan" in data or "json_schema_version" in data:
            return "mysql2"
        if "query_block" in data:
            return "mysql" if _has_key(data, ("cost_info", "rows_examined_per_scan")) else "mariadb"
        raise InputError(
            f"not a plan: a dict with keys {sorted(data)[:8]}; expected PostgreSQL "
            '{"Plan": …}, MySQL/MariaDB {"query_block": …} or MySQL {"query_plan": …}'
        )
    if isinstance(data, Sequence) and not isinstance(data, str):
        if len(data) == 1 and isinstance(data[0], Mapping) and "Plan" in data[0]:
            return "postgresql"
        if data and all(isinstance(d, Mapping) and "Plan" in d for d in data):
            raise InputError(
                f"not one plan: a list of {len(data)} PostgreSQL plans; parse them one at a time"
            )
        if data and all(_is_sqlite_row(r) for r in data):
            return "sqlite"
        if not data:
            raise InputError("not a plan: an empty list")
        raise InputError(
            "not a plan: a list that is neither [{'Plan': …}] nor SQLite EXPLAIN QUERY PLAN "
            f"rows (id, parent, notused, detail); first item: {str(data[0])[:80]!r}"
        )
    raise InputError(f"not a plan: got {type(data).__name__}")


def _has_key(obj: Any, keys: tuple[str, ...]) -> bool:
    if isinstance(obj, Mapping):
        return any(k in obj for k in keys) or any(_has_key(v, keys) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_key(v, keys) for v in obj)
    return False


def _num(value: Any) -> float | None:
    """Numbers, and MySQL's numbers-as-strings ("3.67"); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer past float range is no count a server wrote
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def snake(name: str) -> str:
    """``"Index Only Scan"`` → ``"index_only_scan"``; ``"ModifyTable"`` → ``"modify_table"``.

    >>> snake("Bitmap Heap Scan"), snake("ModifyTable"), snake("block-nl-join")
    ('bitmap_heap_scan', 'modify_table', 'block_nl_join')
    """
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


# ---------------------------------------------------------------- PostgreSQL


def _str(v: Any) -> Any:
    return v if isinstance(v, str) else None


def _list(v: Any) -> Any:
    return [str(x) for x in v] if isinstance(v, list) else None


#: PostgreSQL node key → (PlanNode field, converter). Keys not here go to ``extra``.
PG_NODE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "Parent Relationship": ("parent_relationship", _str),
    "Relation Name": ("relation", _str),
    "Schema": ("schema", _str),
    "Alias": ("alias", _str),
    "Index Name": ("index_name", _str),
    "Plan Rows": ("estimated_rows", _num),
    "Startup Cost": ("startup_cost", _num),
    "Total Cost": ("total_cost", _num),
    "Actual Rows": ("actual_rows", _num),
    "Actual Loops": ("actual_loops", _num),
    "Actual Startup Time": ("actual_startup_time", _num),
    "Actual Total Time": ("actual_total_time", _num),
    "Filter": ("filter", _str),
    "Index Cond": ("index_condition", _str),
    "Hash Cond": ("join_condition", _str),
    "Merge Cond": ("join_condition", _str),
    "Join Filter": ("join_condition", _str),
    "Rows Removed by Filter": ("rows_removed_by_filter", _num),
    "Rows Removed by Index Recheck": ("rows_removed_by_index_recheck", _num),
    "Sort Key": ("sort_key", _list),
    "Sort Method": ("sort_method", _str),
    "Sort Space Used": ("sort_space_kb", _num),
    "Sort Space Type": ("sort_space_type", _str),
    "Hash Batches": ("hash_batches", _num),
    "HashAgg Batches": ("hash_batches", _num),
    "Original Hash Batches": ("original_hash_batches", _num),
    "Exact Heap Blocks": ("exact_heap_blocks", _num),
    "Lossy Heap Blocks": ("lossy_heap_blocks", _num),
    "Shared Hit Blocks": ("shared_hit_blocks", _num),
    "Shared Read Blocks": ("shared_read_blocks", _num),
    "Temp Read Blocks": ("temp_read_blocks", _num),
    "Temp Written Blocks": ("temp_written_blocks", _num),
    "Workers Planned": ("workers_planned", _num),
    "Workers Launched": ("workers_launched", _num),
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
                plan.query_text = _str(value)
            else:
                setattr(plan, _PG_TOP[key], _num(value))
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
            plan.planning_time = _num(value.get("r_total_time_ms"))
        plan.extra[key] = value
    _my_node("query_block", data["query_block"], None, 0, plan.nodes)
    plan.analyzed = _has_key(data["query_block"], ("r_loops",))
    root = plan.nodes[0]
    if plan.analyzed and root.total_time is not None:
        plan.execution_time = root.total_time
    return plan


def _is_structure(value: Any) -> bool:
    if isinstance(value, Mapping):
        return _has_key(value, _STRUCTURE_KEYS)
    if isinstance(value, list):
        return any(isinstance(v, Mapping) and _has_key(v, _STRUCTURE_KEYS) for v in value)
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
        if obj.get("using_index") is True and operation != "seq_scan":
            operation = "index_only_scan"
        node.operation = operation
        _my_table_numbers(node, obj)
    elif "r_total_time_ms" in obj:
        node.total_time = _num(obj["r_total_time_ms"])
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
        converted = _num(value) if name == "actual_loops" else _str(value)
        if converted is not None:
            setattr(node, name, converted)
            return True
    if key in ("rows", "rows_examined_per_scan") and _num(value) is not None:
        node.estimated_rows_examined = _num(value)
        return True
    if key == "sort_key" and isinstance(value, str):
        node.sort_key = [s.strip() for s in value.split(",")]
        return True
    return False


def _my_table_numbers(node: PlanNode, obj: Mapping[str, Any]) -> None:
    """Derive output rows, removed rows, cost and time; the raw keys stay in ``extra``."""
    filtered = _num(obj.get("filtered"))
    if node.estimated_rows_examined is not None:
        node.estimated_rows = node.estimated_rows_examined * (
            filtered / 100 if filtered is not None else 1.0
        )
    cost = obj.get("cost_info")
    if isinstance(cost, Mapping):
        node.total_cost = _num(cost.get("prefix_cost"))
        own = [_num(cost.get(k)) for k in ("read_cost", "eval_cost")]
        if all(c is not None for c in own):
            node.self_cost = sum(cast(float, c) for c in own)
    read = _num(obj.get("r_rows"))
    if read is not None:
        kept = _num(obj.get("r_filtered"))
        node.actual_rows = read * (kept / 100 if kept is not None else 1.0)
        node.rows_removed_by_filter = read - node.actual_rows
    times = [_num(obj.get(k)) for k in ("r_table_time_ms", "r_other_time_ms")]
    if any(t is not None for t in times):
        node.total_time = sum(t or 0.0 for t in times)
        if node.actual_loops:
            node.actual_total_time = node.total_time / node.actual_loops


# ---------------------------------------------------------------- MySQL format 2

_V2_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "table_name": ("relation", _str),
    "alias": ("alias", _str),
    "schema_name": ("schema", _str),
    "index_name": ("index_name", _str),
    "estimated_rows": ("estimated_rows", _num),
    "estimated_total_cost": ("total_cost", _num),
    "estimated_first_row_cost": ("startup_cost", _num),
    "actual_rows": ("actual_rows", _num),
    "actual_loops": ("actual_loops", _num),
    "actual_first_row_ms": ("actual_startup_time", _num),
    "actual_last_row_ms": ("actual_total_time", _num),
    "sort_fields": ("sort_key", _list),
}

_V2_OPERATION = {"table": "seq_scan", "filter": "filter", "sort": "sort", "limit": "limit"}


def _parse_mysql2(data: Any, raw: Any) -> Plan:
    if not isinstance(data, Mapping) or not isinstance(data.get("query_plan"), Mapping):
        raise InputError("not a MySQL format-2 plan: no 'query_plan' object at the top")
    plan = Plan(source="mysql", raw=raw, nodes=[])
    for key, value in data.items():
        if key == "query":
            plan.query_text = _str(value)
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


_PARSERS: dict[str, Callable[[Any, Any], Plan]] = {
    "postgresql": _parse_postgresql,
    "mysql": _parse_mysql_either,
    "mysql2": _parse_mysql2,
    "mariadb": _parse_mariadb,
    "sqlite": _parse_sqlite,
}
