"""Plans in the run store: capture them for a run's statements, keep nodes and insights.

A plan is tied to spans by fingerprint (``plans.link = 'fingerprint'``): the
plan of one representative statement stands for every span of that shape.
Plans logged by the server with a sqlcommenter ``traceparent`` are tied to
the exact span instead (``link = 'traceparent'``): those come from files and
logs through ``correlate ingest`` (:mod:`correlate.plans.load`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from correlate.dialects import DIALECTS, UnknownDatabaseError, for_url, get
from correlate.errors import CorrelateError, InputError
from correlate.plans.insights import Insight, InsightContext, find_insights
from correlate.plans.parse import parse_plan

if TYPE_CHECKING:
    from correlate.clickhouse.source import ClickHouseStore
    from correlate.plans.capture import CapturedPlan, ServerFacts
    from correlate.plans.model import Plan
    from correlate.store import Store

__all__ = ["PlanCaptureReport", "StoredPlan", "add_plan", "capture_plans"]


@dataclass(frozen=True)
class StoredPlan:
    """A plan as :func:`add_plan` stored it: its id, the parsed plan and its insights
    (``plan`` is None, ``insights`` empty and ``reason`` says why for a statement that got
    a reason, or whose plan could not be read)."""

    plan_id: int
    plan: Plan | None
    insights: list[Insight]
    reason: str | None = None


def add_plan(
    store: Store,
    run: str,
    captured: CapturedPlan,
    server: ServerFacts,
    *,
    context: InsightContext | None = None,
) -> StoredPlan:
    """Store one captured plan of run ``run`` (by name), tied to its fingerprint.

    A plan is parsed, its nodes and insights (found with ``context``, by default the
    server's table sizes) stored with it, all in one transaction. A ``captured`` that got
    a reason instead of a plan is stored too, so the reason is kept.
    """
    store.require_writable()
    run_id = store.run_id(run)
    plan: Plan | None = None
    insights: list[Insight] = []
    if captured.ok:
        source = get(server.dialect).plan_source or server.dialect
        try:
            plan = parse_plan(captured.plan, source, query=captured.sql)
        except InputError as exc:
            # One statement's unreadable plan (MariaDB writes a NUL in a literal as an
            # invalid JSON escape) is that statement's reason, not the capture's end.
            captured = replace(
                captured,
                method=None,
                plan=None,
                reason=f"the server's plan could not be read ({exc})",
                reason_code="error",
            )
    if plan is not None:
        if context is None:
            context = InsightContext(relation_rows=dict(server.relation_rows))
        insights = find_insights(plan, context)
    with store.atomic():
        plan_id = _insert_plan(store, run_id, captured, server, plan)
        if plan is not None:
            _insert_nodes(store, plan_id, plan)
            _insert_insights(store, plan_id, insights)
    return StoredPlan(plan_id, plan, insights, captured.reason)


@dataclass
class PlanCaptureReport:
    """What ``capture_plans`` did: plans stored, statements that could not be explained."""

    run: str
    server: str
    captured: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    insights: list[Insight] = field(default_factory=list)
    #: plans captured, but not as asked: (fingerprint, why), e.g. estimated, not analyzed
    noted: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"run {self.run!r}: {self.captured} plan(s) captured from {self.server}"]
        for why in sorted({why for _, why in self.noted}):
            keys = [key for key, said in self.noted if said == why]
            lines.append(f"{len(keys)} of them {why}: {', '.join(keys[:5])}")
            if len(keys) > 5:
                lines[-1] += f", … ({len(keys) - 5} more)"
        if self.failed:
            lines.append(f"not explained ({len(self.failed)}):")
            lines.extend(f"  {fingerprint}: {reason}" for fingerprint, reason in self.failed)
        if self.insights:
            lines.append("insights:")
            lines.extend(f"  {insight}" for insight in self.insights)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def capture_plans(
    store: Store,
    run: str,
    dsn: str,
    *,
    analyze: bool = False,
    statement_timeout_ms: int = 5000,
    source: ClickHouseStore | None = None,
) -> PlanCaptureReport:
    """Explain each distinct statement shape of ``run`` on the database at ``dsn``.

    Only statements of the database kind ``dsn`` names are sent (its URL
    scheme: postgresql, mysql/mariadb, sqlite); see
    :func:`correlate.plans.capture.explain_statements` for how each server is
    asked and what keeps it safe. ``analyze=True`` executes SELECT statements.

    ``source`` (a ClickHouse source, :func:`correlate.clickhouse.source.open_source`)
    gives the statements instead of ``run``: its spans stay where they are, one text per
    statement shape comes back, and the plans go into ``store``'s run ``run``, created
    when new, for an analysis of the source with that local run (``--db``, ``--run``).
    """
    from correlate.plans.capture import explain_statements

    store.require_writable()
    dialect = for_url(dsn)
    if dialect.capture is None:
        raise UnknownDatabaseError(
            f"live capture supports PostgreSQL, MariaDB/MySQL and SQLite, not {dialect.title}"
        )
    if source is None:
        statements = _statements_to_explain(store, run, dialect)
        where, check = f"run {run!r}", "the run name"
    else:
        statements = _statements_to_explain(source, source.name, dialect)
        where, check = f"the spans of {source.path}", "--window, --service"
    if not statements:
        raise CorrelateError(
            f"{where} has no {'/'.join(dialect.explains)} statements to explain; "
            f"check {check} and that the URL points at the database the service used"
        )
    if source is not None:
        store.ensure_run(run, source=source.path, labels=None)
    result = explain_statements(
        dsn, statements, analyze=analyze, statement_timeout_ms=statement_timeout_ms
    )
    report = PlanCaptureReport(run, f"{result.server.dialect} {result.server.version}")
    with store.atomic():
        for captured in result.plans:
            stored = add_plan(store, run, captured, result.server)
            if stored.plan is None:
                report.failed.append((captured.key, stored.reason or "no plan"))
                continue
            report.captured += 1
            report.insights.extend(stored.insights)
            if captured.note:
                report.noted.append((captured.key, captured.note))
    return report


def _statements_to_explain(store: Store, run: str, dialect: Any) -> list[tuple[str, str]]:
    """(fingerprint, text) of each statement shape of ``run`` that ``dialect``'s server
    can plan: the text of the shape's most frequent statement key stands for it."""
    # A server plans the statements of every database it can parse (MariaDB and MySQL
    # each other's), under every db.system name those databases go by, in any case and
    # with spaces around it, as fingerprinting reads it.
    systems = sorted({s for name in dialect.explains for s in (name, *DIALECTS[name].db_systems)})
    listed = ", ".join("'" + s.replace("'", "''") + "'" for s in systems)
    rows = store.con.execute(
        f"""
        SELECT st.fingerprint, arg_max(st.text, c.n) FROM statements st JOIN (
            SELECT db_system, statement_key(db_system, db_statement) AS key, count(*) AS n
            FROM spans WHERE run_id = $run AND db_statement IS NOT NULL GROUP BY ALL
        ) c ON c.db_system IS NOT DISTINCT FROM st.db_system AND c.key = st.key
        WHERE st.run_id = $run AND lower(trim(st.db_system)) IN ({listed})
        GROUP BY st.fingerprint ORDER BY st.fingerprint
        """,
        {"run": store.run_id(run)},
    ).fetchall()
    return [(str(fingerprint), str(text)) for fingerprint, text in rows]


def _insert_plan(
    store: Store,
    run_id: int,
    captured: CapturedPlan,
    server: ServerFacts,
    plan: Plan | None,
) -> int:
    row = store.con.execute(
        """
        INSERT INTO plans (run_id, fingerprint, link, source, method, server_version, settings,
                           statement, explained_sql, analyzed, planning_ms, execution_ms, raw,
                           reason, reason_code)
        VALUES (?, ?, 'fingerprint', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        RETURNING plan_id
        """,
        [
            run_id,
            captured.key,
            server.dialect,
            captured.method,
            server.version,
            json.dumps(server.settings),
            captured.text,
            captured.sql,
            plan.analyzed if plan else None,
            plan.planning_time if plan else None,
            plan.execution_time if plan else None,
            json.dumps(captured.plan, default=str) if captured.plan is not None else None,
            captured.reason,
            captured.reason_code,
        ],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _insert_nodes(store: Store, plan_id: int, plan: Plan) -> None:
    import pyarrow as pa

    records: list[dict[str, Any]] = plan.to_records()
    columns = [c for c in records[0] if c not in ("source", "analyzed")]
    table = pa.table({c: [r[c] for r in records] for c in columns})
    store.con.register("_plan_nodes", table)
    store.con.execute(
        f"INSERT INTO plan_nodes BY NAME SELECT ? AS plan_id, {', '.join(columns)} FROM _plan_nodes",
        [plan_id],
    )
    store.con.unregister("_plan_nodes")


def _insert_insights(store: Store, plan_id: int, insights: list[Insight]) -> None:
    if not insights:
        return
    store.con.executemany(
        "INSERT INTO plan_insights VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                plan_id,
                i.rule,
                i.severity,
                i.node_id,
                i.relation,
                i.message,
                i.suggestion,
                json.dumps(i.evidence, default=str),
                i.measured,
            )
            for i in insights
        ],
    )
