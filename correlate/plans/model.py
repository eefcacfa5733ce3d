"""One plan model for PostgreSQL, MySQL, MariaDB and SQLite plans.

A :class:`Plan` keeps the source's output verbatim in ``raw`` and flattens the
tree into :class:`PlanNode` rows that share one vocabulary, so insight rules and
the run diff are written once. Every key of a source node lands either in a
named field or in the node's ``extra`` dict; nothing is dropped.

Times are milliseconds. ``actual_rows`` and ``actual_total_time`` are **per
loop**, as PostgreSQL's EXPLAIN reports them; ``total_rows`` and
``total_time`` are the derived totals (per loop × loops). ``self_time`` is the
exclusive time: the node's total minus its children's totals, clamped at zero.
Two caveats make it approximate: under a ``Gather`` the workers' loops overlap
in wall time, so children can sum to more than the parent (hence the clamp);
and an ``InitPlan``/``SubPlan`` child's time is charged to the node that runs
it, which may not be its parent in the tree.

>>> from correlate.plans import parse_plan
>>> plan = parse_plan([{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders",
...     "Plan Rows": 10, "Actual Rows": 3, "Actual Loops": 2, "Actual Total Time": 1.5}}])
>>> node = plan.root
>>> (node.operation, node.relation, node.actual_rows, node.total_rows, node.total_time)
('seq_scan', 'orders', 3.0, 6.0, 3.0)
>>> plan.to_records()[0]["node_type"]
'Seq Scan'
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from correlate.dialects import DIALECTS

Source = Literal["postgresql", "mysql", "mariadb", "sqlite"]
#: The plan sources correlate reads: every registered database that names one.
SOURCES: tuple[str, ...] = tuple(d.plan_source for d in DIALECTS.values() if d.plan_source)


@dataclass
class PlanNode:
    """One operator of a plan, in the shared vocabulary.

    ``node_type`` is the source's own name ("Seq Scan", MySQL's ``access_type``
    "ALL", SQLite's "SCAN"); ``operation`` is the normalised name
    ("seq_scan", "index_scan", "nested_loop", "sort", ...).
    """

    node_id: int
    parent_id: int | None
    depth: int
    node_type: str
    operation: str
    parent_relationship: str | None = None
    relation: str | None = None
    schema: str | None = None
    alias: str | None = None
    index_name: str | None = None
    # estimates
    estimated_rows: float | None = None
    #: rows the scan is expected to read before its filter (MySQL/MariaDB ``rows``)
    estimated_rows_examined: float | None = None
    startup_cost: float | None = None
    total_cost: float | None = None
    # measurements (per loop, as the source gives them)
    actual_rows: float | None = None
    actual_loops: float | None = None
    actual_startup_time: float | None = None
    actual_total_time: float | None = None
    # derived
    total_rows: float | None = None
    total_time: float | None = None
    self_time: float | None = None
    self_cost: float | None = None
    # conditions
    filter: str | None = None
    index_condition: str | None = None
    join_condition: str | None = None
    rows_removed_by_filter: float | None = None
    rows_removed_by_index_recheck: float | None = None
    # sort / hash
    sort_key: list[str] | None = None
    sort_method: str | None = None
    sort_space_kb: float | None = None
    sort_space_type: str | None = None
    hash_batches: float | None = None
    original_hash_batches: float | None = None
    spilled: bool | None = None
    # bitmaps and buffers
    exact_heap_blocks: float | None = None
    lossy_heap_blocks: float | None = None
    shared_hit_blocks: float | None = None
    shared_read_blocks: float | None = None
    temp_read_blocks: float | None = None
    temp_written_blocks: float | None = None
    # parallelism
    workers_planned: float | None = None
    workers_launched: float | None = None
    #: every source key not held by a named field, verbatim
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short human name: ``Seq Scan on orders``."""
        where = self.relation or self.alias
        return f"{self.node_type} on {where}" if where else self.node_type


@dataclass
class Plan:
    """A parsed plan: the verbatim source plus flat nodes (root first, depth first)."""

    source: Source
    raw: Any
    nodes: list[PlanNode]
    analyzed: bool = False
    planning_time: float | None = None
    execution_time: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    query_text: str | None = None
    #: top-level keys outside the plan tree (``Triggers``, ``Planning`` buffers, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> PlanNode:
        """The top node."""
        return self.nodes[0]

    def node(self, node_id: int) -> PlanNode:
        """The node with this id."""
        return self.nodes[node_id]

    def children(self, node: PlanNode | int) -> list[PlanNode]:
        """Direct children of ``node``, in source order."""
        nid = node if isinstance(node, int) else node.node_id
        return [n for n in self.nodes if n.parent_id == nid]

    def parent(self, node: PlanNode) -> PlanNode | None:
        """The parent of ``node`` (None for the root)."""
        return None if node.parent_id is None else self.nodes[node.parent_id]

    def walk(self) -> Iterator[PlanNode]:
        """Nodes in depth-first source order."""
        return iter(self.nodes)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per node, ready for ``pandas.DataFrame`` or a DuckDB table.

        List fields and ``extra`` are JSON text so every column has one scalar type.
        """
        records = []
        for node in self.nodes:
            # shallow: the only containers (extra, sort_key) become JSON text below
            row = {name: getattr(node, name) for name in NODE_FIELDS}
            row["extra"] = json.dumps(node.extra, sort_keys=True, default=str)
            if node.sort_key is not None:
                row["sort_key"] = json.dumps(node.sort_key)
            row["source"] = self.source
            row["analyzed"] = self.analyzed
            records.append(row)
        return records

    def __repr__(self) -> str:
        kind = "analyzed" if self.analyzed else "estimated"
        return f"<Plan {self.source} {kind}, {len(self.nodes)} nodes, root {self.root.label!r}>"


NODE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PlanNode))


def finish(plan: Plan) -> Plan:
    """Fill the derived fields (totals, self time/cost, spill) of every node."""
    for node in plan.nodes:
        loops = node.actual_loops if node.actual_loops is not None else 1.0
        if node.total_rows is None and node.actual_rows is not None:
            node.total_rows = node.actual_rows * loops
        if node.total_time is None and node.actual_total_time is not None:
            node.total_time = node.actual_total_time * loops
        if node.spilled is None:
            node.spilled = _spilled(node)
    by_parent: dict[int, list[PlanNode]] = {}
    for node in plan.nodes:
        if node.parent_id is not None:
            by_parent.setdefault(node.parent_id, []).append(node)

    def timed_below(node_id: int) -> list[PlanNode]:
        # MariaDB leaves wrappers (nested_loop, read_sorted_file) untimed: look through them
        found = []
        for kid in by_parent.get(node_id, []):
            found.extend([kid] if kid.total_time is not None else timed_below(kid.node_id))
        return found

    for node in plan.nodes:
        kids = by_parent.get(node.node_id, [])
        if node.total_time is not None and node.self_time is None:
            child_time = sum(k.total_time or 0.0 for k in timed_below(node.node_id))
            node.self_time = max(0.0, node.total_time - child_time)
        if node.total_cost is not None and node.self_cost is None:
            child_cost = sum(k.total_cost or 0.0 for k in kids)
            node.self_cost = max(0.0, node.total_cost - child_cost)
    return plan


def _spilled(node: PlanNode) -> bool | None:
    known = False
    if node.sort_space_type is not None or node.sort_method is not None:
        known = True
        if (node.sort_space_type or "").lower() == "disk":
            return True
        if "external" in (node.sort_method or "").lower():
            return True
    if node.hash_batches is not None:
        known = True
        if node.hash_batches > 1:
            return True
    if node.temp_written_blocks:
        return True
    return False if known else None
