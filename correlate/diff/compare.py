"""Compare two runs: did the candidate regress against the baseline, and why?

:func:`diff` analyses both runs (ingesting run directories first) and compares
them route by route (latency quantiles with bootstrap intervals, at matched
load), query by query (calls per request, time, new and vanished
fingerprints, plan changes) and finding by finding (what is new). ``--fail-on``
rules (:mod:`correlate.diff.rules`) turn the comparison into a verdict.

>>> import correlate
>>> with correlate.open_store(":memory:") as store:
...     same = correlate.diff("sample_traces/checkout-fixed", "sample_traces/checkout-fixed",
...                           store=store)
>>> same.regressed, same.failures
(False, [])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from correlate.analysis.run import Run
from correlate.diff.matching import relabel, route_labels
from correlate.diff.rules import DEFAULT_RULES, Rule, judge, parse_rules, route_query_totals
from correlate.diff.stats import quantile_ratio
from correlate.errors import CorrelateError, InputError
from correlate.severity import Severity

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.findings import Finding
    from correlate.analysis.settings import SettingsLike
    from correlate.store import Store

#: Fewer requests than this on a route (either side) and its latency is not compared. A
#: smoke run's few dozen requests a route are the gate's normal case: a 3x slowdown on 80
#: requests must fail it. At 20 a side, two samples of one distribution break
#: ``p95:+10%`` in about 2.5% of comparisons (tests/test_diff_small_samples.py checks it).
MIN_REQUESTS = 20
#: Runs whose peak offered load differs by more than this share are flagged as not comparable.
LOAD_TOLERANCE = 0.25
#: Load within this share of a run's peak counts as its steady stage.
PLATEAU = 0.9
QUANTILES = ("p50", "p90", "p95", "p99")
#: A latency change smaller than this is not called a change, however certain.
MIN_EFFECT = 0.05
#: …nor one of fewer milliseconds than this: at smoke-run sizes a p95 moves by a few
#: milliseconds between two runs of the same code.
MIN_EFFECT_MS = 5.0
#: The chance of a false alarm across all routes of a comparison.
ALPHA = 0.05
#: A quantile is compared only with this many requests beyond it on each side (a p99 needs
#: 100 requests): without one the quantile is the slowest request, and the bootstrap has
#: nothing above it to resample. With one, the interval is wide at small sizes, and the
#: width carries the uncertainty.
MIN_TAIL = 1
#: A query changed when its calls per request move by this much, or its p95 grows by
#: this factor and this many milliseconds, or its plan changed.
CALLS_CHANGE = 0.5
SLOWER_QUERY = 1.5
SLOWER_QUERY_MS = 5.0


@dataclass
class RouteChange:
    """One route's latency, baseline against candidate."""

    route: str
    baseline_requests: int
    candidate_requests: int
    baseline_ms: dict[str, float]
    candidate_ms: dict[str, float]
    #: per quantile: (ratio, low, high) of the 95% bootstrap interval
    ratios: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    baseline_error_rate: float = 0.0
    candidate_error_rate: float = 0.0
    baseline_errors: int = 0
    candidate_errors: int = 0
    #: the error level of this route's intervals (0.05 over the number of routes compared)
    alpha: float = 0.05
    note: str | None = None
    #: quantiles not compared for want of requests beyond them, and why
    skipped: dict[str, str] = field(default_factory=dict)
    #: the baseline served this route and the candidate has no request of it at all
    missing: bool = False
    #: the rules that could not be judged on this route for want of requests
    not_judged: list[str] = field(default_factory=list)

    def change(self, quantile: str) -> float | None:
        """Relative change of a quantile (+0.25 = 25% slower), None when not compared."""
        r = self.ratios.get(quantile)
        return None if r is None else r[0] - 1.0

    def significant(self, quantile: str, threshold: float) -> bool:
        """Slower by at least ``threshold`` and :data:`MIN_EFFECT_MS`, with the interval's
        low end above 1."""
        r = self.ratios.get(quantile)
        if r is None:
            return False
        grew = self.candidate_ms.get(quantile, 0.0) - self.baseline_ms.get(quantile, 0.0)
        return r[0] - 1.0 >= threshold and r[1] > 1.0 and grew >= MIN_EFFECT_MS

    def errors_judged(self) -> bool:
        """Both sides served the route, enough times that even every candidate request
        failing (none in the baseline) would be significant at the route's error level."""
        from correlate.diff.stats import smallest_rise_p

        return smallest_rise_p(self.baseline_requests, self.candidate_requests) < self.alpha

    def errors_rose(self, points: float) -> bool:
        """The error rate rose by at least ``points`` (0.01 = one point), significantly
        (Fisher's exact test, so a few dozen requests are judged too)."""
        from correlate.diff.stats import proportion_rise

        if not self.errors_judged():
            return False
        rise = self.candidate_error_rate - self.baseline_error_rate
        p = proportion_rise(
            self.baseline_errors,
            self.baseline_requests,
            self.candidate_errors,
            self.candidate_requests,
        )
        return rise >= points and p < self.alpha


@dataclass
class QueryChange:
    """One fingerprint on one route, baseline against candidate (None: absent there)."""

    fingerprint: str
    route: str
    statement: str | None
    baseline_per_request: float | None
    candidate_per_request: float | None
    baseline_p95_ms: float | None
    candidate_p95_ms: float | None
    baseline_total_ms: float | None
    candidate_total_ms: float | None
    plan_changes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.baseline_per_request is None:
            return "new"
        if self.candidate_per_request is None:
            return "vanished"
        slower = (
            self.baseline_p95_ms is not None
            and self.candidate_p95_ms is not None
            and self.candidate_p95_ms >= SLOWER_QUERY * self.baseline_p95_ms
            and self.candidate_p95_ms - self.baseline_p95_ms >= SLOWER_QUERY_MS
        )
        changed = abs(self.calls_delta) >= CALLS_CHANGE or self.plan_changes or slower
        return "changed" if changed else "same"

    @property
    def calls_delta(self) -> float:
        return (self.candidate_per_request or 0.0) - (self.baseline_per_request or 0.0)


@dataclass
class RunDiff:
    """The comparison, and what the rules made of it."""

    baseline: str
    candidate: str
    routes: list[RouteChange]
    queries: list[QueryChange]
    new_findings: list[Finding]
    resolved_findings: list[Finding]
    rules: list[Rule]
    failures: list[str]
    notes: list[str] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return bool(self.failures)

    @property
    def unchanged(self) -> bool:
        """Nothing worth a line: no clear latency change, no query or finding change."""
        latency = any(
            (low > 1.0 or high < 1.0) and abs(ratio - 1.0) >= MIN_EFFECT
            for r in self.routes
            for ratio, low, high in r.ratios.values()
        )
        errors = any(r.errors_rose(0.0) for r in self.routes)
        queries = any(q.status != "same" for q in self.queries)
        missing = any(r.missing for r in self.routes)
        # a rule that could not be judged is no evidence of "no change"
        unjudged = any(r.not_judged for r in self.routes)
        return not (
            latency
            or errors
            or queries
            or missing
            or unjudged
            or self.new_findings
            or self.resolved_findings
        )

    def to_text(self, *, color: bool = False, width: int = 120) -> str:
        from correlate.render.diff import render_text

        return render_text(self, color=color, width=width)

    def to_markdown(self) -> str:
        from correlate.render.diff import render_markdown

        return render_markdown(self)

    def to_json(self) -> str:
        from correlate.render.diff import render_json

        return render_json(self)


def diff(
    baseline: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    store: Store,
    fail_on: str | tuple[str, ...] | list[str] | None = None,
    settings: SettingsLike | None = None,
) -> RunDiff:
    """Compare run ``candidate`` with run ``baseline`` (run names, or run directories
    and trace files, ingested first under their directory's name).

    ``fail_on`` takes rules such as ``p95:+10%``, ``queries-per-request:+1`` or
    ``new-finding:warning`` (one rule may be a plain string); by default
    :data:`~correlate.diff.rules.DEFAULT_RULES`, and an empty list means no rules: nothing
    can fail, and the comparison says so. Two paths with one base name become two runs
    (``main/run``, ``pr/run``); see :mod:`correlate.diff.runs`.
    ``settings`` tunes the detectors of both runs alike, as for :func:`correlate.analyze`.
    A run without requests is an :class:`~correlate.errors.InputError`: there is nothing
    to compare, and "no regression" would pass a candidate whose files were all skipped.
    """
    if isinstance(fail_on, str):
        fail_on = [fail_on]  # one rule, not a list of one-letter ones
    rules = parse_rules(list(DEFAULT_RULES if fail_on is None else fail_on))
    from correlate.analysis.settings import resolve_settings
    from correlate.diff.runs import resolve_runs

    resolved = resolve_settings(settings)
    base_name, cand_name, naming = resolve_runs(store, baseline, candidate)
    with Run(store, base_name) as a, Run(store, cand_name) as b:
        _require_requests(a)
        _require_requests(b)
        load, notes = _load(a, b)
        notes = naming + notes
        wanted = {"p50", "p95"} | {r.quantile for r in rules if r.quantile}
        labels = route_labels(a, b)
        routes = _routes(a, b, load, wanted, labels)
        queries = _queries(a, b, labels)
        fa, fb = a.findings(settings=resolved), b.findings(settings=resolved)
    notes += _rewritten_queries(queries)
    key_a, key_b = (lambda f: _finding_key(f, labels[0])), (lambda f: _finding_key(f, labels[1]))
    before = {key_a(f): f.severity for f in fa}
    still = {key_b(f) for f in fb}
    # new, or the same finding gone up in severity (an N+1 on 4% of requests now on all)
    new = [f for f in fb if key_b(f) not in before or f.severity > before[key_b(f)]]
    gone = [f for f in fa if key_a(f) not in still and f.severity > Severity.INFO]
    result = RunDiff(
        baseline=base_name,
        candidate=cand_name,
        routes=routes,
        queries=queries,
        new_findings=new,
        resolved_findings=gone,
        rules=rules,
        failures=[],
        notes=notes,
        load=load,
    )
    result.failures = judge(result)
    return result


def _require_requests(run: Run) -> None:
    (requests,) = run.con.execute(f"SELECT count(*) FROM {run.table('requests')}").fetchone() or (
        0,
    )
    if requests:
        return
    (spans,) = run.con.execute(
        "SELECT count(*) FROM spans WHERE run_id = ?", [run.run_id]
    ).fetchone() or (0,)
    what = "no spans" if not spans else f"{spans} spans but no requests (server or root spans)"
    raise InputError(
        f"run {run.name!r} has {what} to compare; check its ingest summary for skipped files, "
        "or pass --format if the format was misdetected"
    )


def _finding_key(f: Finding, labels: dict[str, str]) -> tuple[str, str | None, str | None]:
    return (f.kind, None if f.route is None else labels.get(f.route, f.route), f.fingerprint)


def _peak_users(run: Run) -> float | None:
    from correlate.analysis.detectors.load import offered_load

    load = offered_load(run, run.timeline())
    return None if load is None or load.max() <= 0 else float(load.max())


def _load(a: Run, b: Run) -> tuple[dict[str, Any], list[str]]:
    pa, pb = _peak_users(a), _peak_users(b)
    notes = []
    load: dict[str, Any] = {"baseline_peak_users": pa, "candidate_peak_users": pb}
    if pa and pb:
        load["matched"] = "steady stage"
        if abs(pb - pa) / max(pa, pb) > LOAD_TOLERANCE:
            notes.append(
                f"the runs had different peak load ({pa:.0f} against {pb:.0f} users): "
                "latency differences may come from the load, not the code"
            )
    else:
        load["matched"] = "whole run"
        notes.append(
            "the offered load of one run is unknown (no load-generator results): whole runs "
            "are compared, not matched load stages"
        )
    return load, notes


def _steady_buckets(run: Run) -> list[int] | None:
    """The timeline windows where the load was near its peak, when it is known."""
    from correlate.analysis.detectors.load import offered_load

    timeline = run.timeline()
    load = offered_load(run, timeline)
    if load is None or load.max() <= 0:
        return None
    steady = timeline[load >= PLATEAU * load.max()]
    return None if steady.empty else sorted(int(b) for b in steady.bucket)


@dataclass
class _RouteSample:
    """One run's requests of one route: counted in full, latencies capped for the bootstrap."""

    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


def _route_samples(run: Run, buckets: list[int] | None) -> dict[str, _RouteSample]:
    """Per route (in ``buckets`` of the timeline when given): counts, errors and latency
    quantiles computed where the requests are, and at most MAX_SAMPLE latencies for the
    bootstrap, a pseudo-random subsample past that (what comes back grows with routes,
    not requests)."""
    from correlate.diff.stats import MAX_SAMPLE

    reqs = run.table("requests")
    timeline = run.timeline() if buckets is not None else None
    width = float(timeline.width_s.iloc[0]) * 1e9 if timeline is not None else 1.0
    where = (
        "list_contains($buckets, CAST(floor((end_ns - $start) / $width) AS BIGINT))"
        if buckets is not None
        else "true"
    )
    params = {"buckets": buckets, "start": run.span[0], "width": width} if buckets else {}
    picked = f"SELECT route, duration_ms, error, request_id, start_ns FROM {reqs} WHERE {where}"
    levels = ", ".join(f"quantile_cont(duration_ms, {int(q[1:]) / 100}) AS {q}" for q in QUANTILES)
    out: dict[str, _RouteSample] = {}
    for route, n, errors, rate, *qs in run.con.execute(
        f"""
        SELECT route, count(*), count(*) FILTER (WHERE error), avg(CAST(error AS INTEGER)),
               {levels}
        FROM ({picked}) GROUP BY route
        """,
        params or None,
    ).fetchall():
        out[route] = _RouteSample(
            int(n),
            int(errors),
            float(rate),
            {q: float(v) for q, v in zip(QUANTILES, qs, strict=True)},
        )
    for route, values in run.con.execute(
        f"""
        -- in time order, as the bootstrap's resampling by index is seeded
        SELECT route, list(duration_ms ORDER BY start_ns, request_id) FROM (
            SELECT route, duration_ms, start_ns, request_id, row_number() OVER (
                PARTITION BY route ORDER BY hash(request_id), duration_ms) AS k
            FROM ({picked})
        ) WHERE k <= {MAX_SAMPLE} GROUP BY route
        """,
        params or None,
    ).fetchall():
        out[route].latencies = [float(v) for v in values]
    return out


def _routes(
    a: Run,
    b: Run,
    load: dict[str, Any],
    quantiles: set[str],
    labels: tuple[dict[str, str], dict[str, str]],
) -> list[RouteChange]:
    steady = load.get("matched") == "steady stage"
    ra = relabel(_route_samples(a, _steady_buckets(a) if steady else None), labels[0])
    rb = relabel(_route_samples(b, _steady_buckets(b) if steady else None), labels[1])
    routes = sorted(set(ra) | set(rb))
    # the whole candidate, not its steady stage: a route it served at lower load is not gone
    served = set(labels[1].values()) if steady else set(rb)
    empty = _RouteSample()
    both = [r for r in routes if ra.get(r, empty).requests and rb.get(r, empty).requests]
    # every route both runs served is a test (its errors at least): Bonferroni keeps the
    # chance of any false alarm near ALPHA
    alpha = ALPHA / max(len(both), 1)
    out = []
    for route in routes:
        xa, xb = ra.get(route, empty), rb.get(route, empty)
        change = RouteChange(
            route=route,
            baseline_requests=xa.requests,
            candidate_requests=xb.requests,
            baseline_ms=dict(xa.quantiles),
            candidate_ms=dict(xb.quantiles),
            baseline_error_rate=xa.error_rate,
            candidate_error_rate=xb.error_rate,
            baseline_errors=xa.errors,
            candidate_errors=xb.errors,
            alpha=alpha,
        )
        if xa.requests and route not in served:
            change.missing = True
            change.note = f"no requests in the candidate ({xa.requests} in the baseline)"
        elif xa.requests < MIN_REQUESTS or xb.requests < MIN_REQUESTS:
            change.note = (
                f"too few requests to compare ({xa.requests} and {xb.requests}; "
                f"at least {MIN_REQUESTS} each)"
            )
        else:
            _compare_quantiles(change, xa.latencies, xb.latencies, quantiles)
        out.append(change)
    return out


def _compare_quantiles(
    change: RouteChange, baseline: list[float], candidate: list[float], quantiles: set[str]
) -> None:
    """Fill ``change``'s ratios (bootstrap intervals at its ``alpha``) and skipped quantiles."""
    for q in sorted(quantiles, key=QUANTILES.index):
        level = int(q[1:]) / 100
        if min(change.baseline_requests, change.candidate_requests) * (1 - level) < MIN_TAIL:
            # a p99 of 50 requests is their slowest: nothing above it to resample
            change.skipped[q] = f"{q} needs {MIN_TAIL / (1 - level):.0f} requests a side to compare"
            continue
        r = quantile_ratio(baseline, candidate, level, alpha=change.alpha)
        change.ratios[q] = (r.ratio, r.low, r.high)


def compare_latency(
    baseline: list[float], candidate: list[float], quantiles: set[str], *, alpha: float = ALPHA
) -> RouteChange:
    """One route's latencies (milliseconds) compared as :func:`diff` compares them, for
    checking the statistics on samples of a known distribution."""
    import numpy as np

    def levels(values: list[float]) -> dict[str, float]:
        return {q: float(np.quantile(values, int(q[1:]) / 100)) for q in QUANTILES}

    change = RouteChange(
        route="",
        baseline_requests=len(baseline),
        candidate_requests=len(candidate),
        baseline_ms=levels(baseline),
        candidate_ms=levels(candidate),
        alpha=alpha,
    )
    _compare_quantiles(change, baseline, candidate, quantiles)
    return change


def _per_route_queries(run: Run) -> pd.DataFrame:
    rq, reqs, parts = run.table("request_queries"), run.table("requests"), run.table("parts")
    return run.con.execute(
        f"""
        WITH ok AS (SELECT route, count(*) AS requests FROM {reqs} WHERE NOT error GROUP BY route),
        q AS (
            -- summed as whole nanoseconds: a sum of floats depends on the order the threads
            -- add them in, and the JSON must not change between two runs of the command
            SELECT r.route, q.fingerprint, sum(q.calls) AS calls,
                   sum(CAST(round(q.span_ms * 1e6) AS BIGINT)) / 1e6 AS total_ms
            FROM {rq} q JOIN {reqs} r ON r.th = q.th AND r.rh = q.rh
            WHERE NOT r.error GROUP BY ALL
        ),
        p95 AS (
            SELECT r.route, p.fingerprint,
                   quantile_cont((p.end_ns - p.start_ns) / 1e6, 0.95) AS p95_ms
            FROM {parts} p JOIN {reqs} r ON r.th = p.th AND r.rh = p.rh
            WHERE p.category = 'db' GROUP BY ALL
        )
        -- per successful request of the route: a request that failed before its queries
        -- is not a change in how many it runs, and a loop that spreads to more requests is
        SELECT q.route, q.fingerprint, q.calls / ok.requests AS per_request, q.total_ms,
               p95.p95_ms
        FROM q JOIN ok USING (route) JOIN p95 USING (route, fingerprint)
        """
    ).df()


def _plans(run: Run) -> dict[str, Any]:
    from correlate.plans.parse import parse_plan

    rows = run.con.execute(
        """
        SELECT fingerprint, raw, explained_sql FROM plans
        WHERE run_id = ? AND raw IS NOT NULL AND fingerprint IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY fingerprint
                                   ORDER BY link = 'traceparent' DESC, plan_id DESC) = 1
        """,
        [run.run_id],
    ).fetchall()
    import json

    out = {}
    for fp, raw, sql in rows:
        try:
            out[fp] = parse_plan(json.loads(raw), query=sql)
        except (CorrelateError, ValueError):  # a plan we cannot re-read is not compared
            continue
    return out


def _queries(a: Run, b: Run, labels: tuple[dict[str, str], dict[str, str]]) -> list[QueryChange]:
    qa, qb = _per_route_queries(a), _per_route_queries(b)
    qa["route"] = [labels[0].get(r, r) for r in qa["route"]]
    qb["route"] = [labels[1].get(r, r) for r in qb["route"]]
    texts = dict(
        a.con.execute(
            "SELECT fingerprint, any_value(normalized) FROM statements "
            "WHERE run_id IN (?, ?) GROUP BY fingerprint",
            [a.run_id, b.run_id],
        ).fetchall()
    )
    from correlate.plans.compare import compare_plans

    plans_a, plans_b = _plans(a), _plans(b)
    ia = qa.set_index(["route", "fingerprint"])
    ib = qb.set_index(["route", "fingerprint"])
    out = []
    for key in sorted(set(ia.index) | set(ib.index)):
        route, fp = key
        ra = ia.loc[key] if key in ia.index else None
        rb = ib.loc[key] if key in ib.index else None
        changes: list[str] = []
        if fp in plans_a and fp in plans_b:
            d = compare_plans(plans_a[fp], plans_b[fp])
            if d.changed:
                changes = d.summary()
        out.append(
            QueryChange(
                fingerprint=fp,
                route=route,
                statement=texts.get(fp),
                baseline_per_request=None if ra is None else float(ra.per_request),
                candidate_per_request=None if rb is None else float(rb.per_request),
                baseline_p95_ms=None if ra is None else float(ra.p95_ms),
                candidate_p95_ms=None if rb is None else float(rb.p95_ms),
                baseline_total_ms=None if ra is None else float(ra.total_ms),
                candidate_total_ms=None if rb is None else float(rb.total_ms),
                plan_changes=changes,
            )
        )
    return out


def _rewritten_queries(queries: list[QueryChange]) -> list[str]:
    """A note per route whose queries changed text (gone and new fingerprints) but not in
    number per request."""
    rose = route_query_totals(queries)
    notes = []
    for route in sorted(rose):
        mine = [c for c in queries if c.route == route]
        new = sum(c.status == "new" for c in mine)
        gone = sum(c.status == "vanished" for c in mine)
        if new and gone and abs(rose[route]) < CALLS_CHANGE:
            total = sum(c.candidate_per_request or 0.0 for c in mine)
            notes.append(
                f"query text changed on {route}: {gone} gone, {new} new, at the same "
                f"{total:.1f} queries per request"
            )
    return notes
