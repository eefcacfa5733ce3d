"""Compare two plans of the same query: what the run diff shows about a plan change.

>>> from correlate.plans import parse_plan
>>> a = parse_plan([{"Plan": {"Node Type": "Seq Scan", "Relation Name": "orders",
...     "Plan Rows": 10}}])
>>> b = parse_plan([{"Plan": {"Node Type": "Index Scan", "Relation Name": "orders",
...     "Index Name": "orders_customer_idx", "Plan Rows": 12}}])
>>> diff = compare_plans(a, b)
>>> diff.added_operations, diff.removed_operations, diff.indexes_gained
(['index_scan'], ['seq_scan'], [('orders', 'orders_customer_idx')])
>>> diff.changed
True
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from correlate.plans.model import Plan, PlanNode

__all__ = ["ESTIMATE_CHANGE_FACTOR", "EstimateChange", "PlanDiff", "compare_plans"]

#: a relation's row estimate changing by at least this factor is reported
ESTIMATE_CHANGE_FACTOR = 2.0


@dataclass(frozen=True)
class EstimateChange:
    """A relation whose estimated rows moved between the plans."""

    relation: str
    before: float
    after: float

    @property
    def factor(self) -> float:
        """after / before, with both floored at one row."""
        return max(self.after, 1.0) / max(self.before, 1.0)


@dataclass
class PlanDiff:
    """What changed from plan ``a`` to plan ``b``."""

    added_operations: list[str] = field(default_factory=list)
    removed_operations: list[str] = field(default_factory=list)
    indexes_gained: list[tuple[str, str]] = field(default_factory=list)
    indexes_lost: list[tuple[str, str]] = field(default_factory=list)
    join_order_before: list[str] = field(default_factory=list)
    join_order_after: list[str] = field(default_factory=list)
    estimate_changes: list[EstimateChange] = field(default_factory=list)

    @property
    def join_order_changed(self) -> bool:
        """The relations are read in another order (same set, different sequence)."""
        return self.join_order_before != self.join_order_after

    @property
    def changed(self) -> bool:
        """Anything at all differs."""
        return bool(
            self.added_operations
            or self.removed_operations
            or self.indexes_gained
            or self.indexes_lost
            or self.join_order_changed
            or self.estimate_changes
        )

    def summary(self) -> list[str]:
        """One plain sentence per change."""
        lines = [f"new: {op}" for op in self.added_operations]
        lines += [f"gone: {op}" for op in self.removed_operations]
        lines += [f"now uses index {i} on {r}" for r, i in self.indexes_gained]
        lines += [f"no longer uses index {i} on {r}" for r, i in self.indexes_lost]
        if self.join_order_changed:
            before, after = " → ".join(self.join_order_before), " → ".join(self.join_order_after)
            lines.append(f"join order {before} became {after}")
        lines += [
            f"estimate for {c.relation}: {c.before:,.0f} → {c.after:,.0f} rows"
            for c in self.estimate_changes
        ]
        return lines or ["plans are the same shape"]


def _scans(plan: Plan) -> list[PlanNode]:
    return [n for n in plan.nodes if n.relation is not None]


def _indexes(plan: Plan) -> set[tuple[str, str]]:
    """(relation, index) pairs; a Bitmap Index Scan takes its heap scan's relation."""
    found = set()
    for node in plan.nodes:
        if not node.index_name:
            continue
        owner: PlanNode | None = node
        while owner is not None and owner.relation is None:
            owner = plan.parent(owner)
        found.add((owner.relation if owner and owner.relation else "", node.index_name))
    return found


def _multiset_diff(a: Counter[str], b: Counter[str]) -> list[str]:
    return sorted((b - a).elements())


def compare_plans(a: Plan, b: Plan) -> PlanDiff:
    """Operations added/removed, indexes gained/lost, join order and estimate changes.

    Operations use the normalised names, so plans from different sources compare.
    """
    ops_a = Counter(n.operation for n in a.nodes)
    ops_b = Counter(n.operation for n in b.nodes)
    idx_a, idx_b = _indexes(a), _indexes(b)
    est_a: dict[str, float] = {}
    est_b: dict[str, float] = {}
    for nodes, est in ((_scans(a), est_a), (_scans(b), est_b)):
        for n in nodes:
            rows = n.estimated_rows
            if rows is not None and n.relation is not None:
                est.setdefault(n.relation, rows)
    changes = []
    for rel in est_a.keys() & est_b.keys():
        change = EstimateChange(rel, est_a[rel], est_b[rel])
        if max(change.factor, 1 / change.factor) >= ESTIMATE_CHANGE_FACTOR:
            changes.append(change)
    return PlanDiff(
        added_operations=_multiset_diff(ops_a, ops_b),
        removed_operations=_multiset_diff(ops_b, ops_a),
        indexes_gained=sorted(idx_b - idx_a),
        indexes_lost=sorted(idx_a - idx_b),
        join_order_before=[n.relation or "" for n in _scans(a) if _is_leaf_scan(a, n)],
        join_order_after=[n.relation or "" for n in _scans(b) if _is_leaf_scan(b, n)],
        estimate_changes=sorted(changes, key=lambda c: c.relation),
    )


def _is_leaf_scan(plan: Plan, node: PlanNode) -> bool:
    """Scans that read a relation (not ModifyTable, which also names one)."""
    return node.operation != "modify_table"
