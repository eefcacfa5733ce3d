"""N+1: one statement shape, or one callee route, called again and again under one parent.

Rule (docs/rules.md#n_plus_one, docs/rules.md#n_plus_one_calls): the same shape
(:mod:`~correlate.analysis.detectors.calls`: a statement's fingerprint, an HTTP callee's
route template, an RPC method, a messaging destination) at least ``min_calls`` times
under one group parent in one request, with varying parameters — a loop whose every
visible call is the very same statement or URL is a redundant call, not an N+1, and a
transaction-control statement repeated with the loop's work (a SAVEPOINT per item) is the
loop's, not an N+1 of its own.
Spans are grouped by parent rather than by an unbroken run of spans (Sentry's rule), so
SQLAlchemy's pool ``connect`` spans between the queries do not hide the pattern;
overlapping calls count, by the union of their intervals.

There is no floor on the time the calls take: at smoke scale every query is fast, and an
N+1 that costs 3 ms at five users costs its round trips twenty times over at twenty
times the load. The severity comes from the measured cost and from that scale instead
(:func:`severity`), and the finding says what the pattern would cost at
``projection_factor`` × the load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis import stack
from correlate.analysis.detectors.calls import unions_sql
from correlate.analysis.detectors.pattern import Scale, patterns
from correlate.analysis.detectors.pattern import severity as pattern_severity
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.semconv import NOT_SQL_SYSTEMS
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class NPlusOneSettings:
    """Thresholds of :func:`n_plus_one` (keys ``n_plus_one.*``)."""

    section: ClassVar[str] = "n_plus_one"
    #: min_calls above critical_calls would leave no finding below critical
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("min_calls", "critical_calls"),)
    min_calls: int = setting(5, "calls of one shape under one parent span", low=2)
    min_union_ms: float = setting(
        50.0, "union of those calls' intervals per request from which it is a warning", unit="ms"
    )
    critical_calls: int = setting(
        10, "calls per request from which it is a warning at any speed, critical when costly"
    )
    min_time_share: float = share(
        0.1, "share of the request's time in the calls from which it is a warning"
    )
    projection_factor: float = setting(10.0, "load multiple the finding projects to", low=1.0)
    projected_busy: float = setting(
        1.0, "connections kept busy at the projected load from which it is a warning"
    )
    min_request_share: float = share(
        0.05, "share of its route's requests below which the pattern is only info"
    )


DEFAULTS = NPlusOneSettings()

#: Statements that open, close or mark a transaction: one per item when the loop's work
#: is transactional (Django's ``get_or_create`` makes a SAVEPOINT and a RELEASE per call),
#: but no rows to fetch at once. The loop's reads and writes are the N+1.
TRANSACTION_CONTROL = frozenset(
    ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE")
)


def severity(scale: Scale, calls: float, s: NPlusOneSettings) -> Severity:
    """Critical when many and costly; a warning when many, costly or costly at the projected
    load; info otherwise, and when few of the route's requests show it.

    *Many* is ``critical_calls`` calls per request; *costly* is a union of at least
    ``min_union_ms`` or ``min_time_share`` of the request's time.
    """
    many = calls >= s.critical_calls
    costly = scale.union_ms >= s.min_union_ms or scale.time_share >= s.min_time_share
    projected = scale.busy_per_second * s.projection_factor >= s.projected_busy
    return pattern_severity(
        scale,
        min_request_share=s.min_request_share,
        warning=many or costly or projected,
        critical=many and costly,
    )


#: One row per (route, family, shape): the requests that repeat a shape under one parent.
_GROUPS_SQL = """
WITH groups AS (
    SELECT th, rh, gph, family, shape, any_value(parent_name) AS parent_name,
           -- one name when spans name the callee differently (peer.service, server
           -- address): the same in every engine, whichever calls come first
           min(target) AS target, sum(calls) AS calls, sum(b - a) / 1e6 AS union_ms
    FROM ({unions})
    GROUP BY ALL
    HAVING sum(calls) >= $min_calls
       -- every call visible and the very same: a redundant call, not an N+1
       AND NOT (sum(visible) = sum(calls) AND len(list_distinct(flatten(list(idents)))) = 1)
),
-- a request may run the loop under several parents: one row per request
hits AS (
    SELECT r.route, g.family, g.shape, any_value(r.trace_id) AS trace_id,
           sum(g.calls) AS calls, sum(g.union_ms) AS union_ms,
           any_value(r.duration_ms) AS duration_ms,
           mode(g.parent_name) AS parent_name, min(g.target) AS target
    FROM groups g JOIN {reqs} r ON r.th = g.th AND r.rh = g.rh
    GROUP BY r.th, r.rh, r.route, g.family, g.shape
)
SELECT h.route, count(*) AS requests,
       (SELECT count(*) FROM {reqs} r WHERE r.route = h.route) AS route_requests,
       avg(h.calls) AS calls, max(h.calls) AS max_calls, avg(h.union_ms) AS union_ms,
       sum(h.union_ms) AS total_ms, avg(h.duration_ms) AS duration_ms,
       mode(h.parent_name) AS parent_name,
       list(h.trace_id ORDER BY h.union_ms DESC, h.trace_id)[1:3] AS traces,
       h.family, h.shape, min(h.target) AS target
FROM hits h GROUP BY h.route, h.family, h.shape
ORDER BY total_ms DESC, h.route, h.shape
""".replace(
    "{unions}",
    unions_sql(
        # only a shape called min_calls times under one parent can be one: the islands are
        # found for those calls alone (at a million spans, two calls in five)
        """(SELECT c.* FROM {calls} c
            JOIN (SELECT th, rh, gph, family, shape FROM {calls} WHERE shape IS NOT NULL
                  GROUP BY th, rh, gph, family, shape HAVING count(*) >= $min_calls) k
              ON k.th = c.th AND k.rh = c.rh AND k.gph IS NOT DISTINCT FROM c.gph
             AND k.family = c.family AND k.shape = c.shape)""",
        "th, rh, gph, family, shape",
    ),
)


def n_plus_one(run: Run, settings: NPlusOneSettings = DEFAULTS) -> list[Finding]:
    """N+1 queries (kind ``n_plus_one``) and N+1 HTTP, RPC and messaging calls (kind
    ``n_plus_one_calls``), from ``min_calls`` calls of one shape under one parent."""
    s = settings
    rows = patterns(run, _GROUPS_SQL, min_calls=s.min_calls)
    texts = _texts(run) if rows else {}
    lang: str | None = None  # read once, when a query's fix needs it
    found = []
    for p, (family, shape, target) in rows:
        scale, calls, route = p.scale(), p.calls, p.route
        db = family == "db"
        statement, table, system, verb = (
            texts.get(shape, untexted(shape)) if db else (shape, None, None, None)
        )
        if db and system not in NOT_SQL_SYSTEMS and (verb or "").upper() in TRANSACTION_CONTROL:
            continue
        if db and system in NOT_SQL_SYSTEMS:
            # a key-value or document store: a command per item, not a query
            what = f"the same {system} command{f' {verb}' if verb else ''}"
            noun, kind = "queries", FindingKind.N_PLUS_ONE
            fix = (
                f"Fetch all items in one round trip to {system}: a multi-key command (Redis "
                "MGET or a pipeline, memcached get_multi, Elasticsearch mget, MongoDB $in), "
                "or keep what does not change per request in the process."
            )
        elif db:
            what = f"the same query{f' on {table}' if table else ''}"
            noun, kind = "queries", FindingKind.N_PLUS_ONE
            if lang is None:
                lang = stack.language(run) or ""
            fix = (
                "Fetch the rows for all items in one query: an IN (…) or a join, or with "
                f"eager loading in the ORM ({stack.eager_loading(lang)})."
            )
        else:
            protocol = {"http": "HTTP", "rpc": "RPC", "messaging": "messaging"}.get(family, "")
            what = f"{protocol + ' ' if protocol else ''}calls to {shape}"
            noun, kind = "calls", FindingKind.N_PLUS_ONE_CALLS
            fix = (
                f"Ask {target or 'the callee'} once for all items (a batch or bulk endpoint, "
                "a query parameter taking several ids), or cache what does not change per "
                "request."
            )
        where = f" under {p.parent}" if p.parent else " under one parent span"
        projection = scale.projection(s.projection_factor, noun)
        evidence = p.evidence(
            scale,
            s.projection_factor,
            "union_ms_per_request",
            family=family,
            shape=shape,
            target=target,
            statement=statement,
        )
        found.append(
            p.finding(
                kind,
                severity(scale, calls, s),
                title=f"N+1 {noun} in {route}: {what} {calls:.0f}× per request",
                fingerprint=shape if db else None,
                evidence=evidence,
                explanation=(
                    f"{pct(scale.request_share)} of {route} requests ({p.requests} of "
                    f"{p.route_requests}) make {what} {calls:.0f} times{where}, "
                    f"{ms(p.cost_ms)} per request out of {ms(p.duration_ms)} "
                    f"({pct(scale.time_share)}): one call per item instead of one for all of "
                    f"them. {projection}"
                ).strip(),
                suggestion=fix,
                threshold=(
                    f"≥ {s.min_calls} calls of one shape under one parent; a warning from "
                    f"{s.critical_calls} calls per request, {s.min_union_ms:.0f} ms or "
                    f"{pct(s.min_time_share)} of the request, or ≥ {s.projected_busy:g} busy "
                    f"connection(s) at {s.projection_factor:g}× the load; critical when both "
                    "many and costly"
                ),
                source=(
                    "Sentry N+1 DB query detector, connect spans transparent; perf-sentinel "
                    "levels; severity from scale (docs/rules.md#"
                    + ("n_plus_one)" if db else "n_plus_one_calls)")
                ),
            )
        )
    return found


def untexted(shape: str) -> tuple[str, None, str | None, str | None]:
    """A call with no statement: its shape is its system and span name (``redis GET``, as
    :mod:`correlate.analysis.requests` makes it), which still tell a command store's call."""
    system, _, name = shape.strip().partition(" ")
    if system.lower() in NOT_SQL_SYSTEMS:
        return "", None, system.lower(), name.strip().upper() or None
    return "", None, None, None


def _texts(run: Run) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    """fingerprint → (normalized text, first table, database system, operation)."""
    rows = run.con.execute(
        "SELECT fingerprint, min(normalized), min(tables[1]), lower(trim(min(db_system))), "
        "min(operation) FROM statements WHERE run_id = ? GROUP BY fingerprint",
        [run.run_id],
    ).fetchall()
    return {fp: (text, table, system, verb) for fp, text, table, system, verb in rows}
