"""What every plan rule shares: the :class:`Insight` it returns and the context it may use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from correlate.plans.model import Plan, PlanNode
from correlate.severity import Severity


@dataclass(frozen=True)
class Insight:
    """One thing a plan says about why a query is slow, with what to do about it."""

    rule: str
    severity: Severity
    node_id: int | None
    relation: str | None
    message: str
    suggestion: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    measured: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))

    def __str__(self) -> str:
        tail = f" → {self.suggestion}" if self.suggestion else ""
        return f"[{self.severity}] {self.rule}: {self.message}{tail}"


@dataclass
class InsightContext:
    """What the rules may know besides the plan.

    ``relation_rows`` maps a table name to its size (e.g. ``pg_class.reltuples``)
    so estimate-only plans can judge a scan's selectivity.
    """

    relation_rows: dict[str, float] = field(default_factory=dict)


Rule = Callable[[Plan, InsightContext], list[Insight]]


def label(measured: bool) -> str:
    """How a message starts: ``measured`` (EXPLAIN ANALYZE numbers) or ``estimated``."""
    return "measured" if measured else "estimated"


def count(n: float | None) -> str:
    """A row count for a message: ``'12,000'``, ``'?'`` when unknown."""
    return "?" if n is None else f"{n:,.0f}"


def descendants(plan: Plan, node: PlanNode) -> Iterable[PlanNode]:
    """Every node below ``node``, depth first."""
    for child in plan.children(node):
        yield child
        yield from descendants(plan, child)
