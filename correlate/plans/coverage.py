"""How much of a run's database time has a plan to explain it.

Each DB span (a span with a statement, the ``db_spans`` view) falls in one class:

* ``traceparent``: a plan names this very span, through the sqlcommenter
  ``traceparent`` in the statement the server logged. It names the DB span's
  own id with the OpenTelemetry SQLAlchemy instrumentation (its comment is
  written inside the span); instrumentations that comment with the *request's* span id
  name the DB span's parent, so a plan whose traceparent names the parent and
  whose fingerprint is the span's counts too;
* ``fingerprint``: no plan of its own, but a plan of the same statement shape
  (captured, read from a file, or logged for another execution);
* ``none``: no plan of its shape at all.

Shares are of the summed span durations, per ``db_system`` and overall, and
the statements with the most uncovered time are listed first: those are the
plans to get next.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> _ = store.ensure_run("empty", source=None, labels=None)
>>> print(plans_coverage(store, "empty"))
run 'empty' has no database spans (spans with a statement): nothing for plans to cover
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["CLASSES", "CoverageRow", "PlanCoverage", "UncoveredStatement", "plans_coverage"]

#: The coverage classes, best first.
CLASSES = ("traceparent", "fingerprint", "none")


@dataclass(frozen=True)
class CoverageRow:
    """DB span time of one ``db_system`` (or ``all``), split by how it is covered."""

    db_system: str
    spans: int
    total_ms: float
    traceparent_ms: float
    fingerprint_ms: float
    none_ms: float

    def share(self, cls: str) -> float:
        """The share (0–1) of this row's time in coverage class ``cls``."""
        value: float = getattr(self, f"{cls}_ms")
        return value / self.total_ms if self.total_ms else 0.0


@dataclass(frozen=True)
class UncoveredStatement:
    """A statement shape with no plan, and the DB time its spans took."""

    fingerprint: str
    db_system: str | None
    normalized: str
    spans: int
    total_ms: float


@dataclass
class PlanCoverage:
    """The result of :func:`plans_coverage`; ``str()`` is the report."""

    run: str
    rows: list[CoverageRow] = field(default_factory=list)
    uncovered: list[UncoveredStatement] = field(default_factory=list)

    @property
    def overall(self) -> CoverageRow | None:
        """The ``all`` row; None when the run has no DB spans."""
        return self.rows[-1] if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "rows": [asdict(r) for r in self.rows],
            "uncovered": [asdict(u) for u in self.uncovered],
        }

    def summary(self) -> str:
        if not self.rows:
            return (
                f"run {self.run!r} has no database spans (spans with a statement): "
                "nothing for plans to cover"
            )
        lines = [
            f"run {self.run!r}: share of DB span time with a plan",
            f"{'db_system':<12} {'spans':>7} {'time_ms':>11} {'traceparent':>12} "
            f"{'fingerprint':>12} {'none':>7}",
        ]
        for row in self.rows:
            lines.append(
                f"{row.db_system:<12} {row.spans:>7,} {row.total_ms:>11,.1f} "
                f"{row.share('traceparent'):>12.1%} {row.share('fingerprint'):>12.1%} "
                f"{row.share('none'):>7.1%}"
            )
        if self.uncovered:
            lines.append("statements without a plan, most time first:")
            for u in self.uncovered:
                text = u.normalized if len(u.normalized) <= 80 else u.normalized[:79] + "…"
                lines.append(
                    f"  {u.total_ms:>10,.1f} ms  {u.spans:>6,} span(s)  {u.db_system or '-'}  "
                    f"{u.fingerprint}  {text}"
                )
        else:
            lines.append("every statement shape has a plan")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from correlate.render.escape import html

        return f"<pre>{html(self.summary())}</pre>"


def plans_coverage(store: Store, run: str, *, top: int = 10) -> PlanCoverage:
    """Split run ``run``'s DB span time by plan coverage; list the ``top`` uncovered statements.

    See the module documentation for the three classes.
    """
    run_id = store.run_id(run)
    con = store.con
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _coverage AS
        WITH d AS (
            SELECT trace_id, span_id, parent_id, db_system, duration_ns, fingerprint, normalized
            FROM db_spans WHERE run_id = $run
        ),
        good AS (
            SELECT * FROM plans WHERE run_id = $run AND reason IS NULL
        ),
        exact AS (
            SELECT DISTINCT d.trace_id, d.span_id FROM d JOIN good p
              ON p.link = 'traceparent' AND p.trace_id = d.trace_id
             AND (p.span_id = d.span_id OR (p.span_id = d.parent_id AND p.fingerprint = d.fingerprint))
        ),
        shapes AS (SELECT DISTINCT fingerprint FROM good WHERE fingerprint IS NOT NULL)
        SELECT d.*,
               CASE WHEN e.span_id IS NOT NULL THEN 'traceparent'
                    WHEN sh.fingerprint IS NOT NULL THEN 'fingerprint'
                    ELSE 'none' END AS covered_by
        FROM d
        LEFT JOIN exact e ON e.trace_id = d.trace_id AND e.span_id = d.span_id
        LEFT JOIN shapes sh ON sh.fingerprint = d.fingerprint
        """,
        {"run": run_id},
    )
    try:
        sums = ", ".join(
            f"coalesce(sum(duration_ns) FILTER (WHERE covered_by = '{c}'), 0) / 1e6"
            for c in CLASSES
        )
        rows = con.execute(
            f"""
            SELECT coalesce(db_system, '-') AS system, count(*), sum(duration_ns) / 1e6, {sums}
            FROM _coverage GROUP BY ROLLUP (system)
            ORDER BY system IS NULL, system
            """
        ).fetchall()
        result = PlanCoverage(run)
        for system, spans, total, *parts in rows:
            if not spans:  # the rollup's total row of a run without DB spans
                continue
            result.rows.append(
                CoverageRow(
                    "all" if system is None else str(system),
                    int(spans),
                    float(total),
                    *(float(p) for p in parts),
                )
            )
        for fp, system, normalized, spans, total in con.execute(
            """
            SELECT fingerprint, db_system, any_value(normalized), count(*), sum(duration_ns) / 1e6
            FROM _coverage WHERE covered_by = 'none'
            GROUP BY fingerprint, db_system ORDER BY 5 DESC, 1 LIMIT ?
            """,
            [top],
        ).fetchall():
            result.uncovered.append(
                UncoveredStatement(str(fp), system, str(normalized), int(spans), float(total))
            )
    finally:
        con.execute("DROP TABLE IF EXISTS _coverage")
    return result
