"""The verdict on a run: ``correlate analyze``'s result, computed once, rendered many ways.

:func:`analyze` ingests a run directory when it is given one (idempotently:
files already in the run are passed over), analyses the run and returns an
:class:`Analysis` holding everything a renderer needs, so the store can be
closed before anything is printed.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.analysis import stack
from correlate.analysis.client import client_vs_server
from correlate.analysis.findings import Finding, ms, rank
from correlate.analysis.pool_holders import CLOCK_SLACK_NS
from correlate.analysis.pool_stalled import as_hang, told_by_waits_alone
from correlate.analysis.run import Run
from correlate.errors import RunNotFoundError
from correlate.kinds import FindingKind
from correlate.semconv import NOT_SQL_SYSTEMS_SQL
from correlate.severity import Severity

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.detectors import Detector
    from correlate.analysis.settings import Settings, SettingsLike
    from correlate.ingest import IngestReport, Progress
    from correlate.store import Store


@dataclass
class Analysis:
    """What the analysis of one run found, with the tables behind it."""

    run: str
    summary: dict[str, Any]
    findings: list[Finding]
    routes: pd.DataFrame
    queries: pd.DataFrame
    timeline: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    #: per route, the load generator's requests against the server's (empty without them)
    client: pd.DataFrame
    #: evidence the run lacks, and what each gap hides (say what to do next)
    gaps: list[str] = field(default_factory=list)
    ingest: IngestReport | None = None

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{sum(f.severity == s for f in self.findings)} {s}"
            for s in Severity
            if s > Severity.INFO
        )
        return (
            f"<Analysis of {self.run!r}: {self.summary.get('requests', 0)} requests, "
            f"{counts} finding(s)>"
        )

    def _repr_html_(self) -> str:
        """The verdict, routes and queries as HTML: how a notebook shows a result."""
        from correlate.render.html import fragment

        return fragment(self)

    def to_text(self, *, color: bool = False, width: int = 120) -> str:
        """The terminal rendering (see :mod:`correlate.render.text`)."""
        from correlate.render.text import render

        return render(self, color=color, width=width)


def analyze(
    target: str | os.PathLike[str],
    *,
    store: Store,
    run: str | None = None,
    detectors: tuple[Detector, ...] | None = None,
    settings: SettingsLike | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Analyse a run: ``target`` is a run directory or trace file (ingested into
    ``store`` first, as run ``run`` or the directory's name) or the name of a run
    already in ``store``.

    ``settings`` tunes the detectors' thresholds: keys mapped to values (e.g.
    ``{"n_plus_one.min_calls": 3}``) layered over the project file (correlate.toml or
    ``[tool.correlate]`` in pyproject.toml), or a
    :class:`~correlate.analysis.settings.Settings` used as it is. docs/rules.md lists
    the keys.

    >>> import correlate
    >>> with correlate.open_store(":memory:") as store:
    ...     result = correlate.analyze("sample_traces/checkout-fixed", store=store)
    >>> result.run, result.summary["requests"] > 1000, [f.kind for f in result.findings]
    ('checkout-fixed', True, [])
    """
    from correlate.analysis.settings import resolve_settings

    # before any ingest: a typo in a setting should not cost a long ingest first
    resolved = resolve_settings(settings, detectors=detectors)
    name, report = resolve_run(store, target, run=run, progress=progress)
    with Run(store, name) as r:
        result = _collect(r, detectors, resolved)
    result.ingest = report
    return result


def resolve_run(
    store: Store,
    target: str | os.PathLike[str],
    *,
    run: str | None = None,
    progress: Progress | None = None,
) -> tuple[str, IngestReport | None]:
    """The run ``target`` names, and the ingest report when it was a path.

    A run directory or trace file is ingested (idempotently) as run ``run`` or its
    directory's name; anything else must be the name of a run already in ``store``.
    """
    path = Path(target)
    if path.exists():
        name = run or (path.name if path.is_dir() else path.stem.split(".")[0])
        return name, store.ingest([path], name, progress=progress)
    name = run or str(target)
    names = store.run_names()
    if run is None and name not in names:
        raise RunNotFoundError(
            f"{str(target)!r} is neither a run directory or trace file nor a run in "
            f"{store.path} (runs there: {', '.join(names) or 'none'})"
        )
    return name, None


#: The findings that name the pool's verdict: at most one per run.
POOL_KINDS = (FindingKind.POOL_LEAK, FindingKind.POOL_SATURATION, FindingKind.POOL_EXHAUSTED)
#: Findings that describe latency over the run and may blame the part that grew.
_SYMPTOM_KINDS = (FindingKind.DEGRADATION, FindingKind.THROUGHPUT_KNEE)


def reconcile(findings: list[Finding]) -> list[Finding]:
    """One cause named once: a finding that describes a symptom defers to the finding that
    names its cause.

    - A degradation or throughput knee whose grown part is pool wait is a symptom of
      whatever the pool finding concluded (leak, saturation, or that it cannot tell); so is
      one whose grown part is application time, and unexplained time, when the leak was
      found with no pool wait seen (the pool makes no checkout span: waits are app time).
    - A queue for a connection read from timing (unexplained time) in the pool finding's
      service is that pool's waits that got a connection, which no span measures: it points
      at the pool finding, which names its size.
    - A slow downstream whose calls are an N+1, a redundant call or a fan-out on the same
      route is that pattern's doing: the repeated-calls finding carries the severity and the
      fix, and the slow downstream is only info beside it.
    - A fan-out whose calls are mostly one shape that an N+1 or redundant-calls finding on
      the same route names is that finding's calls counted again: it points at it.
    - A database that stopped answering (``database_stall``) is what unexplained time is
      made of (no span that ended covers a wait on it), and is info beside its service's
      pool hang finding, which names its effect on the pool; a pool finding that could not
      tell, or a leak read from waits alone (no checkout span, holder or suspect), is that hang.
    - A slow downstream whose callee's route has a finding of its own (a slow query, an
      N+1, a pool finding, a queue for a connection or a section that lists it among its
      routes, …) keeps its severity — the caller's users wait — but points at the callee's
      finding as the cause.

    A symptom points at its cause by title, and its evidence records the cause's kind
    (``evidence["cause"]``), so no two findings name different causes for the same time.
    """
    return rank(_defer_fan_out(_defer_downstream(_defer_to_stall(_defer_to_pool(findings)))))


def _defer_to_stall(findings: list[Finding]) -> list[Finding]:
    """A database that stopped answering explains the time no span covers (unexplained
    time: the requests waited on it), and the pool's hang finding says what it did to the
    pool: the stall is then info beside it. A leak the waits alone told is that hang."""
    stalls = [f for f in findings if f.kind == FindingKind.DATABASE_STALL]
    if not stalls:
        return findings

    def service_of(f: Finding) -> Any:
        return (f.evidence.get("checkout_spans") or {}).get("service")

    def stall_of(f: Finding) -> Finding | None:  # its service's (one of no known service: any)
        return next((x for x in stalls if service_of(f) in (x.evidence.get("service"), None)), None)

    # each stall's service's pool hang, not another service's
    hangs = [f for f in findings if "hung_requests" in f.evidence]
    out, stall = [], stalls[0]
    for f in findings:
        pool = next((h for h in hangs if stall_of(h) is f), None)
        if pool is not None:
            f = _caused_by(
                f,
                pool,
                f"See “{pool.title}”: it names the requests whose calls never returned and "
                "what they did to the pool; its fix is this one's.",
                Severity.INFO,
            )
        elif (hung := stall_of(f)) is not None and told_by_waits_alone(f):
            f = as_hang(f, hung)  # its calls held the connections: the stall's hang
        elif f.kind == FindingKind.UNEXPLAINED_TIME and "holders_ceiling" not in f.evidence:
            f = _caused_by(
                f,
                stall,
                f"Likely “{stall.title}”: requests that waited on it have no span that ended "
                "to cover the wait, so it counts as their own code's time. Fix that first, "
                "then look again.",
            )
        out.append(f)
    return out


def _defer_to_pool(findings: list[Finding]) -> list[Finding]:
    pool = next((f for f in findings if f.kind in POOL_KINDS), None)
    if pool is None:
        return findings
    service = (pool.evidence.get("checkout_spans") or {}).get("service")
    queue = next(
        (
            f
            for f in findings
            if f.kind == FindingKind.UNEXPLAINED_TIME
            and "holders_ceiling" in f.evidence
            and (service is None or f.evidence.get("service") in (service, None))
        ),
        None,
    )
    out = []
    for f in findings:
        if f.kind in _SYMPTOM_KINDS and f.evidence.get("grew_most") == "pool wait":
            f = _caused_by(
                f,
                pool,
                f"A symptom of the pool finding, “{pool.title}”: the pool wait that grew here "
                "is its doing. Fix that first.",
            )
        elif f is queue:
            # the waits that ended with a connection, which no span measures: the pool's
            f = _caused_by(
                f,
                pool,
                f"The same pool as “{pool.title}”: these are its waits that ended with a "
                "connection, which no span measures (that finding counts only what the spans "
                "show). Fix it there.",
            )
        elif f is pool and queue is not None:
            f = replace(
                f,
                explanation=f"{f.explanation} The requests that got a connection most likely "
                f"waited too, {ms(queue.evidence['queued_ms'])} per request before their "
                f"first query, unmeasured (“{queue.title}”).",
                evidence={**f.evidence, "unmeasured_wait_ms": queue.evidence["queued_ms"]},
            )
        elif pool.evidence.get("pool_wait_unseen") and (
            (f.kind in _SYMPTOM_KINDS and f.evidence.get("grew_most") == "application time")
            or f.kind == FindingKind.UNEXPLAINED_TIME
        ):
            # a pool that makes no checkout span: the wait for a connection is app time
            f = _caused_by(
                f,
                pool,
                f"Likely the pool finding's doing, “{pool.title}”: this pool makes no checkout "
                "span, so time waiting for a connection counts as application time. Fix that "
                "first, then look again.",
            )
        out.append(f)
    return out


#: Findings about repeated calls that explain a slow downstream on their route and shape.
_REPEATED_KINDS = (FindingKind.N_PLUS_ONE_CALLS, FindingKind.REDUNDANT_CALLS, FindingKind.FAN_OUT)


def _defer_downstream(findings: list[Finding]) -> list[Finding]:
    out = []
    for f in findings:
        if f.kind == FindingKind.SLOW_DOWNSTREAM:
            shape, callee = f.evidence.get("shape"), f.evidence.get("callee_route")
            repeated = next(
                (
                    g
                    for g in findings
                    if g.kind in _REPEATED_KINDS
                    and g.route == f.route
                    and shape in (g.evidence.get("shape"), g.evidence.get("top_shape"))
                ),
                None,
            )
            own = next(
                (
                    g
                    for g in findings
                    if callee is not None
                    and callee in _routes_of(g)
                    and g is not f
                    and g.severity > Severity.INFO
                ),
                None,
            )
            if repeated is not None:
                f = _caused_by(
                    f,
                    repeated,
                    f"These calls are the repeated-calls finding “{repeated.title}”: fix that, "
                    "and this time goes with it.",
                    severity=Severity.INFO,
                )
            elif own is not None:
                f = _caused_by(
                    f,
                    own,
                    f"The callee's own finding names the cause, “{own.title}”: fix that first, "
                    "and the caller's wait goes with it.",
                )
        out.append(f)
    return out


#: Findings whose calls a fan-out of one shape counts again.
_FAN_OUT_CAUSES = (
    FindingKind.N_PLUS_ONE,
    FindingKind.N_PLUS_ONE_CALLS,
    FindingKind.REDUNDANT_CALLS,
)


def _defer_fan_out(findings: list[Finding]) -> list[Finding]:
    out = []
    for f in findings:
        if f.kind == FindingKind.FAN_OUT and f.severity == Severity.INFO:
            shape = f.evidence.get("top_shape")
            pattern = next(
                (
                    g
                    for g in findings
                    if g.kind in _FAN_OUT_CAUSES
                    and g.route == f.route
                    and shape is not None
                    and shape == g.evidence.get("shape")
                ),
                None,
            )
            if pattern is not None:
                share = f.evidence.get("share_in_one_shape")
                most = f"{share:.0%} of" if isinstance(share, float) else "Most of"
                f = _caused_by(
                    f,
                    pattern,
                    f"{most} these calls are the ones “{pattern.title}” names: fix that, and "
                    "the fan-out goes with it.",
                )
        out.append(f)
    return out


def _routes_of(f: Finding) -> set[str]:
    """The routes a finding is about: its own, and those its evidence lists (the routes
    that queued for one pool, or waited for one section)."""
    listed = f.evidence.get("routes")
    named = (
        [r.get("route") for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    )
    return {r for r in (f.route, *named) if isinstance(r, str)}


def _caused_by(
    f: Finding, cause: Finding, suggestion: str, severity: Severity | None = None
) -> Finding:
    """``f`` pointing at ``cause``: its kind in the evidence, the suggestion, and the
    severity when the cause carries it instead."""
    return replace(
        f,
        severity=f.severity if severity is None else severity,
        evidence={**f.evidence, "cause": str(cause.kind)},
        suggestion=suggestion,
    )


def _collect(run: Run, detectors: tuple[Detector, ...] | None, settings: Settings) -> Analysis:
    routes = run.routes()
    summary = _summary(run)
    breakdowns = {route: run.breakdown(route) for route in routes.route.head(8)}
    return Analysis(
        run=run.name,
        summary=summary,
        findings=run.findings(detectors, settings=settings),
        routes=routes,
        queries=run.queries(),
        timeline=run.timeline(),
        breakdowns=breakdowns,
        client=client_vs_server(run),
        gaps=_gaps(run, summary),
    )


def _summary(run: Run) -> dict[str, Any]:
    reqs = run.table("requests")
    row = run.con.execute(
        f"""
        SELECT count(*), coalesce(avg(error::INT), 0),
               quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95),
               coalesce(sum(duration_ms), 0), coalesce(sum(pool_ms), 0), coalesce(sum(db_ms), 0),
               coalesce(sum(downstream_ms), 0), coalesce(sum(app_ms), 0),
               count(DISTINCT route)
        FROM {reqs}
        """
    ).fetchone()
    assert row is not None
    n, err, p50, p95, total, pool, db, down, app, routes = row
    # A worker's messages are requests too (their own routes), but their latency is not a
    # web request's: the headline gives each kind its own count and percentiles.
    kinds = {
        bool(message): (int(count), _float(p50k), _float(p95k), int(groups))
        for message, count, p50k, p95k, groups in run.con.execute(
            f"""
            SELECT message, count(*), quantile_cont(duration_ms, 0.5),
                   quantile_cont(duration_ms, 0.95), count(DISTINCT route)
            FROM {reqs} GROUP BY message
            """
        ).fetchall()
    }
    counts = run.con.execute(
        """
        SELECT (SELECT span_count FROM runs WHERE run_id = $run),
               (SELECT count(*) FROM spans WHERE run_id = $run AND db_statement IS NOT NULL),
               (SELECT count(*) FROM pool_samples WHERE run_id = $run),
               (SELECT count(*) FROM pool_checkouts WHERE run_id = $run),
               (SELECT count(*) FROM client_requests WHERE run_id = $run),
               (SELECT count(DISTINCT fingerprint) FROM statements WHERE run_id = $run),
               (SELECT count(DISTINCT fingerprint) FROM plans
                WHERE run_id = $run AND raw IS NOT NULL AND fingerprint IS NOT NULL)
        """,
        {"run": run.run_id},
    ).fetchone()
    assert counts is not None
    spans, db_spans, samples, checkouts, client, fingerprints, planned = counts
    (connects, pool_errors) = run.con.execute(
        f"SELECT count(*) FILTER (WHERE span_id IS NOT NULL), "
        f"count(*) FILTER (WHERE span_id IS NULL AND status_code = 'ERROR') "
        f"FROM {run.table('parts')} WHERE category = 'pool'"
    ).fetchone() or (0, 0)
    (matched,) = run.con.execute(
        """
        SELECT count(*) FROM client_requests c
        WHERE c.run_id = $run AND EXISTS (
            SELECT 1 FROM spans s WHERE s.run_id = $run AND s.trace_id = c.trace_id
              AND s.kind = 'SERVER' AND s.parent_id = c.span_id)
        """,
        {"run": run.run_id},
    ).fetchone() or (0,)
    total = float(total) or 1.0
    return {
        "run": run.name,
        "seconds": run.seconds,
        "spans": int(spans or 0),
        "requests": int(n),
        "routes": int(routes),
        "by_kind": {
            name: dict(zip(("count", "p50_ms", "p95_ms", "routes"), kinds[message], strict=True))
            for name, message in (("web", False), ("messages", True))
            if message in kinds
        },
        "throughput_rps": n / run.seconds if run.seconds else 0.0,
        "error_rate": float(err),
        "p50_ms": None if p50 is None else float(p50),
        "p95_ms": None if p95 is None else float(p95),
        "time_share": {
            "pool": pool / total,
            "db": db / total,
            "downstream": down / total,
            "app": app / total,
        },
        "unattributed_spans": run.unattributed_spans,
        "db_spans": int(db_spans),
        "fingerprints": int(fingerprints),
        "fingerprints_with_plans": int(planned),
        "connect_spans": int(connects),
        "pool_errors": int(pool_errors or 0),
        "pool_samples": int(samples),
        "pool_checkouts": int(checkouts),
        "client_requests": int(client),
        "client_requests_matched": int(matched),
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _gaps(run: Run, s: dict[str, Any]) -> list[str]:
    gaps = []
    if s["requests"] == 0:
        gaps.append(
            "no SERVER or CONSUMER spans: nothing to attribute. Instrument the service's web "
            "framework (e.g. opentelemetry-instrumentation-flask) or its message consumer "
            "(opentelemetry-instrumentation-pika, -kafka-python, -celery) so each request or "
            "message processed has an entry span."
        )
    if s["unattributed_spans"]:
        gaps.append(
            f"{s['unattributed_spans']:,} span(s) belong to no request (no SERVER or CONSUMER span "
            "in their trace) and are left out of the attribution."
        )
    if run.doubled_db_spans:
        gaps.append(
            f"{run.doubled_db_spans:,} statement(s) were recorded twice (an ORM's and the "
            "driver's instrumentation both on, as SQLAlchemy's and psycopg's, or knex's and "
            "pg's): each is counted once, as the driver's span where it lies under the other."
        )
    late, db_calls = _late_db_calls(run)
    if late >= 10 and late >= 0.1 * db_calls:
        gaps.append(
            f"{late:,} of {db_calls:,} database spans start after the request they hang under "
            "had answered: not fire-and-forget work at that scale, but spans given another "
            "request's trace context, as a pool that runs a queued caller's callback in the "
            "request that released the connection does (mysql2's pool.query under load). "
            "Their time is no request's, and findings that count calls per request (N+1, "
            "repeated queries) may name the wrong route: take the connection in the request "
            "itself (`await pool.getConnection()`) so its queries stay in its trace."
        )
    if s["db_spans"] and s["fingerprints"] and not s["fingerprints_with_plans"] and _has_sql(run):
        if run.store.spans_at == "clickhouse":
            # the source's run is no run of a local store: capture into one, then name it
            local = getattr(run.store, "local_run", None)
            name = shlex.quote(local) if local else "NAME"
            gaps.append(
                "no query plans: slow-query findings cannot say why. Capture them from the "
                "source's statements with `correlate plans capture --source URL --window "
                f"START..END --run {name} --dsn URL`, then analyse with `--source URL --window "
                f"START..END --run {name}`; or ingest EXPLAIN output into a local run and name "
                "it with --run."
            )
        else:
            gaps.append(
                f"no query plans: slow-query findings cannot say why. Run `correlate plans "
                f"capture --run {shlex.quote(run.name)} --dsn URL`, or add EXPLAIN output to "
                "the run."
            )
    lang = stack.language(run) if not s["connect_spans"] and not s["pool_checkouts"] else None
    if not s["connect_spans"] and not s["pool_checkouts"] and s["pool_samples"]:
        gaps.append(
            "pool metrics but no connect spans: the pool's state over time is known, not which "
            "request waited, so time waiting for a connection counts as app time. Instrument "
            "the pool checkout (e.g. opentelemetry-instrumentation-sqlalchemy's connect span)"
            + (
                " or record the run with correlate.instrument (docs/run-directory.md)."
                if lang == "python"
                else "."
            )
        )
    elif not s["connect_spans"] and not s["pool_checkouts"] and s["pool_errors"]:
        gaps.append(
            "no pool telemetry or connect spans: only the checkouts that failed (the pool's "
            "own errors) count as pool wait; a wait that ended with a connection counts as app "
            f"time. {stack.pool_telemetry(lang, watched=stack.watched(run))}."
        )
    elif not s["connect_spans"] and not s["pool_checkouts"]:
        gaps.append(
            "no pool telemetry or connect spans: time waiting for a connection counts as app "
            f"time. {stack.pool_telemetry(lang, watched=stack.watched(run))}."
        )
    if not s["client_requests"] and not _knows_offered_load(run):
        gaps.append(
            "no load-generator results: degradation and throughput-knee checks need the "
            "offered load over time (add the run's load/requests.jsonl, Locust's --csv "
            "stats history or k6's JSON output)."
        )
    return gaps


def _knows_offered_load(run: Run) -> bool:
    """Whether the load the detectors read is known, from the same sources they take it from:
    the load generator's requests, its samples of the users it ran (Locust's stats history,
    k6's vus), or run.json's stages."""
    from correlate.analysis.detectors.load import offered_load

    return offered_load(run, run.timeline()) is not None


def _late_db_calls(run: Run) -> tuple[int, int]:
    """(database spans that start after their request ended, beyond the clock slack; all
    database spans under requests)."""
    row = run.con.execute(
        f"""
        SELECT count(*) FILTER (WHERE start_ns > b + $slack), count(*)
        FROM {run.table("parts")} WHERE category = 'db'
        """,
        {"slack": CLOCK_SLACK_NS},
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _has_sql(run: Run) -> bool:
    """Whether any statement of the run is SQL: a Redis or MongoDB command has no plan to
    capture, so a run of those alone is not told to capture plans."""
    row = run.con.execute(
        "SELECT count(*) FROM statements WHERE run_id = $run "
        f"AND lower(trim(coalesce(db_system, ''))) NOT IN ({NOT_SQL_SYSTEMS_SQL})",
        {"run": run.run_id},
    ).fetchone()
    return bool(row and row[0])
