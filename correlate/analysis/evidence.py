"""The evidence a report shows beyond the verdict, gathered from the store.

:func:`collect` takes an :class:`~correlate.analysis.verdict.Analysis` and
adds what the findings point at: the plans of flagged queries (their nodes and
insights), example slow requests span by span, and latency per route over
time. Renderers (:mod:`correlate.render`) take the resulting :class:`Evidence`;
:func:`evidence_of` wraps a bare analysis for renderers given nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.run import Run
    from correlate.analysis.verdict import Analysis
    from correlate.store import Store

#: At most this many plans and example requests are gathered for a report.
MAX_PLANS = 5
MAX_EXAMPLES = 2
#: Spans shown in one example request's waterfall; the rest are counted.
MAX_WATERFALL_SPANS = 60


@dataclass
class PlanView:
    """The plan linked to one fingerprint: its nodes, and what the insight rules flagged."""

    fingerprint: str
    plan_id: int
    source: str
    analyzed: bool
    normalized: str | None
    #: one row per node, root first (``node_id``, ``parent_id``, ``depth``, ``node_type``, …)
    nodes: pd.DataFrame
    #: one row per insight (``rule``, ``severity``, ``node_id``, ``message``, ``suggestion``)
    insights: pd.DataFrame

    @property
    def flagged_nodes(self) -> set[int]:
        """Ids of the nodes an insight points at."""
        return {int(n) for n in self.insights.node_id.dropna()}


@dataclass
class Waterfall:
    """One request's spans on a common time axis (milliseconds from the request's start)."""

    trace_id: str
    route: str
    duration_ms: float
    why: str
    #: ``name``, ``kind``, ``depth``, ``start_ms``, ``duration_ms``, ``category``
    #: (request, pool, db, client, internal…), ``fingerprint``, ``error``
    spans: pd.DataFrame
    #: spans of the trace left out of ``spans`` (beyond :data:`MAX_WATERFALL_SPANS`)
    more: int = 0


@dataclass
class Evidence:
    """Everything a report shows: the analysis, plus the evidence gathered from the store."""

    analysis: Analysis
    #: per window and route: ``t_s``, ``route``, ``requests``, ``p50_ms``, ``p95_ms``
    route_timeline: pd.DataFrame
    plans: list[PlanView] = field(default_factory=list)
    examples: list[Waterfall] = field(default_factory=list)


def collect(store: Store, analysis: Analysis) -> Evidence:
    """Gather the evidence a report shows for ``analysis`` (a run in ``store``)."""
    from correlate.analysis.run import Run

    with Run(store, analysis.run) as run:
        if not analysis.summary.get("requests"):
            return Evidence(analysis, run.route_timeline())
        return Evidence(
            analysis,
            route_timeline=run.route_timeline(),
            plans=_plans(run, analysis),
            examples=_examples(run, analysis),
        )


def _plans(run: Run, analysis: Analysis) -> list[PlanView]:
    queries = analysis.queries
    if queries.empty:
        return []
    flagged = [f.fingerprint for f in analysis.findings if f.fingerprint]
    with_insights = [q.fingerprint for q in queries.itertuples() if len(q.insights)]
    wanted = list(dict.fromkeys([*flagged, *with_insights]))
    views = []
    for fingerprint in wanted:
        match = queries[queries.fingerprint == fingerprint]
        if match.empty or match.plan_id.isna().iloc[0]:
            continue
        plan_id = int(match.plan_id.iloc[0])
        head = run.con.execute(
            "SELECT source, coalesce(analyzed, false) FROM plans WHERE plan_id = ?", [plan_id]
        ).fetchone()
        assert head is not None
        nodes = run.con.execute(
            """
            SELECT node_id, parent_id, depth, node_type, operation, relation, alias, index_name,
                   estimated_rows, actual_rows, actual_loops, total_rows, total_time, self_time,
                   total_cost, filter, index_condition, join_condition, rows_removed_by_filter
            FROM plan_nodes WHERE plan_id = ? ORDER BY node_id
            """,
            [plan_id],
        ).df()
        insights = run.con.execute(
            """
            SELECT rule, severity, node_id, relation, message, suggestion FROM plan_insights
            WHERE plan_id = ? ORDER BY severity = 'critical' DESC, node_id, rule
            """,
            [plan_id],
        ).df()
        normalized = match.normalized.iloc[0]
        views.append(
            PlanView(
                fingerprint=str(fingerprint),
                plan_id=plan_id,
                source=str(head[0]),
                analyzed=bool(head[1]),
                normalized=None if normalized is None else str(normalized),
                nodes=nodes,
                insights=insights,
            )
        )
        if len(views) >= MAX_PLANS:
            break
    return views


def _examples(run: Run, analysis: Analysis) -> list[Waterfall]:
    """A tail request of the route that matters most, and the slowest traced example
    of the most urgent finding of another kind."""
    reqs = run.table("requests")
    first_route = next((f.route for f in analysis.findings if f.route), None)
    route = first_route or str(analysis.routes.route.iloc[0])
    picked: list[tuple[str, str]] = []
    row = run.con.execute(
        f"""
        SELECT trace_id FROM {reqs} WHERE route = $route
        ORDER BY abs(duration_ms - (SELECT quantile_cont(duration_ms, 0.95) FROM {reqs}
                                    WHERE route = $route)), trace_id
        LIMIT 1
        """,
        {"route": route},
    ).fetchone()
    if row is not None:
        picked.append((str(row[0]), "a p95 request of this route"))
    kinds_seen = {f.kind for f in analysis.findings[:1]}
    for f in analysis.findings:
        if len(picked) >= MAX_EXAMPLES:
            break
        if not f.trace_ids or f.kind in kinds_seen:
            continue
        kinds_seen.add(f.kind)
        row = run.con.execute(
            f"""
            SELECT trace_id FROM {reqs} WHERE trace_id IN (SELECT unnest($ids))
            ORDER BY duration_ms DESC, trace_id LIMIT 1
            """,
            {"ids": list(f.trace_ids)},
        ).fetchone()
        if row is not None and str(row[0]) not in {t for t, _ in picked}:
            picked.append((str(row[0]), f"an example of: {f.title}"))
    return [w for w in (_waterfall(run, trace, why) for trace, why in picked) if w is not None]


def _waterfall(run: Run, trace_id: str, why: str) -> Waterfall | None:
    reqs = run.table("requests")
    head = run.con.execute(
        f"""
        SELECT request_id, route, start_ns, duration_ms FROM {reqs}
        WHERE trace_id = ? ORDER BY duration_ms DESC LIMIT 1
        """,
        [trace_id],
    ).fetchone()
    if head is None:
        return None
    request_id, route, start_ns, duration_ms = head
    spans = run.con.execute(
        """
        WITH fp AS (
            SELECT span_id, any_value(fingerprint) AS fingerprint,
                   any_value(operation) AS operation, any_value(tables) AS tables
            FROM db_spans WHERE run_id = $run AND trace_id = $trace GROUP BY span_id
        )
        SELECT s.span_id, s.parent_id, s.kind, s.db_statement IS NOT NULL AS is_db,
               s.db_system IS NOT NULL AND s.db_statement IS NULL AS is_connect,
               CASE WHEN fp.fingerprint IS NULL THEN s.name
                    ELSE concat_ws(' ', upper(fp.operation), fp.tables[1],
                                   '(' || fp.fingerprint || ')') END AS name,
               fp.fingerprint,
               (s.start_ns - $t0) / 1e6 AS start_ms, s.duration_ns / 1e6 AS duration_ms,
               coalesce(s.status_code = 'ERROR', false) AS error
        FROM spans s LEFT JOIN fp USING (span_id)
        WHERE s.run_id = $run AND s.trace_id = $trace
        ORDER BY s.start_ns, s.span_id
        """,
        {"run": run.run_id, "trace": trace_id, "t0": int(start_ns)},
    ).df()
    depth: dict[str, int] = {}
    parents = dict(zip(spans.span_id, spans.parent_id, strict=True))

    def depth_of(span_id: str) -> int:
        if span_id not in depth:
            depth[span_id] = 0  # guards a cycle in hostile input
            parent = parents.get(span_id)
            depth[span_id] = 0 if parent not in parents else depth_of(str(parent)) + 1
        return depth[span_id]

    spans["depth"] = [depth_of(str(s)) for s in spans.span_id]
    spans["category"] = [
        "pool" if c else "db" if d else "request" if s == request_id else str(k).lower()
        for s, k, d, c in zip(spans.span_id, spans.kind, spans.is_db, spans.is_connect, strict=True)
    ]
    more = max(len(spans) - MAX_WATERFALL_SPANS, 0)
    shown = spans.head(MAX_WATERFALL_SPANS)[
        ["name", "kind", "depth", "start_ms", "duration_ms", "category", "fingerprint", "error"]
    ].reset_index(drop=True)
    return Waterfall(trace_id, str(route), float(duration_ms), why, shown, more)


def evidence_of(data: Evidence | Analysis) -> Evidence:
    """``data`` as :class:`Evidence`: an analysis alone gets no store evidence."""
    from correlate.analysis.verdict import Analysis

    if isinstance(data, Analysis):
        import pandas as pd

        return Evidence(
            data, pd.DataFrame(columns=["t_s", "route", "requests", "p50_ms", "p95_ms"])
        )
    return data


__all__ = ["Evidence", "PlanView", "Waterfall", "collect", "evidence_of"]
