"""``--fail-on`` rules: what makes a comparison a regression.

:data:`RULE_FORMS` lists every form a rule takes; the CLI's help and the error for a
rule that is not one are built from it.

>>> rules = ["p95:+10%", "errors:+1%", "queries-per-request:+1", "new-finding:warning",
...          "missing-route:30"]
>>> [str(r) for r in parse_rules(rules)]
['p95:+10%', 'errors:+1%', 'queries-per-request:+1', 'new-finding:warning', 'missing-route:30']
>>> parse_rules(["p95:10"])
Traceback (most recent call last):
...
correlate.errors.InputError: --fail-on 'p95:10': a latency rule reads p50:+N% ... (e.g. p95:+10%)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.diff.compare import QueryChange, RunDiff

#: What ``correlate diff`` fails on when no --fail-on is given. ``missing-route:30``: the
#: same load script drove both runs, so a route the baseline served 30 times (enough to
#: compare) and the candidate never is broken, renamed or lost by the exporter; none of
#: those is "no regression", and a renamed route is a deliberate change that a --fail-on
#: list without this rule accepts.
DEFAULT_RULES = ("p95:+10%", "errors:+1%", "new-finding:warning", "missing-route:30")

_QUANTILES = ("p50", "p90", "p95", "p99")
#: How a failure of a rule judged on no route begins; the verdict counts them apart.
NOT_JUDGED = "not judged:"
#: Route names listed in one "not judged" line, before "and N more".
MAX_NAMED = 5
_SEVERITIES = "|".join(Severity)

#: Every form of rule: (example, what it fails on). Help texts are built from it.
RULE_FORMS: tuple[tuple[str, str], ...] = (
    ("p95:+10%", f"a route's {', '.join(_QUANTILES)} latency rose by N%"),
    ("errors:+1%", "a route's error rate rose by N percentage points"),
    ("queries-per-request:+1", "a query runs N more times per request"),
    ("new-finding:warning", f"a new finding at this severity or worse ({_SEVERITIES})"),
    ("missing-route:30", "a route the baseline served N or more times has no candidate requests"),
)

_LATENCY = re.compile(rf"^({'|'.join(_QUANTILES)}):\+(\d+(?:\.\d+)?)%$")
_QUERIES = re.compile(r"^queries-per-request:\+(\d+(?:\.\d+)?)$")
_ERRORS = re.compile(r"^errors:\+(\d+(?:\.\d+)?)%$")
_FINDING = re.compile(rf"^new-finding:({_SEVERITIES})$")
_MISSING = re.compile(r"^missing-route:(\d+)$")


def rules_help() -> str:
    """One line per rule form, for ``--fail-on``'s help, and the default rules."""
    forms = "; ".join(f"{example} — {what}" for example, what in RULE_FORMS)
    return f"A regression rule (repeatable): {forms}. Default: {' '.join(DEFAULT_RULES)}."


@dataclass(frozen=True)
class Rule:
    """One rule: ``kind`` is ``latency``, ``errors``, ``queries``, ``finding`` or ``missing``."""

    text: str
    kind: str
    quantile: str | None = None
    threshold: float = 0.0
    severity: Severity | None = None

    def __str__(self) -> str:
        return self.text

    def severity_counts(self, severity: str) -> bool:
        """A new finding of ``severity`` breaks a ``new-finding`` rule at this level or worse."""
        assert self.severity is not None
        return Severity.parse(severity) >= self.severity


def parse_rules(texts: tuple[str, ...] | list[str]) -> list[Rule]:
    """Parse ``--fail-on`` values; raise :class:`InputError` saying the accepted forms."""
    rules = []
    for text in texts:
        t = text.strip()
        if m := _LATENCY.match(t):
            rules.append(Rule(t, "latency", quantile=m[1], threshold=float(m[2]) / 100))
        elif m := _ERRORS.match(t):
            rules.append(Rule(t, "errors", threshold=float(m[1]) / 100))
        elif m := _QUERIES.match(t):
            rules.append(Rule(t, "queries", threshold=float(m[1])))
        elif m := _FINDING.match(t):
            rules.append(Rule(t, "finding", severity=Severity(m[1])))
        elif m := _MISSING.match(t):
            rules.append(Rule(t, "missing", threshold=max(int(m[1]), 1)))
        elif t.startswith(_QUANTILES):
            raise InputError(
                f"--fail-on {text!r}: a latency rule reads p50:+N% / p90 / p95 / p99 "
                "(e.g. p95:+10%)"
            )
        else:
            forms = "; ".join(f"{example} — {what}" for example, what in RULE_FORMS)
            raise InputError(f"--fail-on {text!r} is not a rule; use one of: {forms}")
    return rules


def judge(d: RunDiff) -> list[str]:
    """The rules ``d`` breaks, one line each; then :func:`not_judged`'s."""
    failures = []
    for rule in d.rules:
        if rule.kind == "latency":
            q = rule.quantile or "p95"
            for r in d.routes:
                if r.significant(q, rule.threshold):
                    ratio, low, high = r.ratios[q]
                    failures.append(
                        f"{rule}: {r.route} {q} {_ms(r.baseline_ms[q])} → "
                        f"{_ms(r.candidate_ms[q])} ({ratio - 1:+.0%}, "
                        f"{1 - r.alpha:.1%} interval {low - 1:+.0%} to {high - 1:+.0%})"
                    )
        elif rule.kind == "errors":
            for r in d.routes:
                if r.errors_rose(rule.threshold):
                    failures.append(
                        f"{rule}: {r.route} errors {r.baseline_error_rate:.1%} → "
                        f"{r.candidate_error_rate:.1%} ({r.baseline_errors} of "
                        f"{r.baseline_requests} → {r.candidate_errors} of {r.candidate_requests})"
                    )
        elif rule.kind == "queries":
            # a query whose text changed is a new fingerprint and a vanished one: the
            # route's total per request tells a rewrite from a loop; a route new in the
            # candidate runs no more queries than before, there was no before
            rose = route_query_totals(d.queries)
            new = {r.route for r in d.routes if not r.baseline_requests}
            for c in d.queries:
                if c.route in new:
                    continue
                if c.calls_delta >= rule.threshold and rose[c.route] >= rule.threshold:
                    failures.append(
                        f"{rule}: {c.route} runs {c.fingerprint} "
                        f"{c.candidate_per_request or 0:.1f}× per request "
                        f"(was {c.baseline_per_request or 0:.1f})"
                    )
        elif rule.kind == "missing":
            for r in d.routes:
                if r.missing and r.baseline_requests >= rule.threshold:
                    failures.append(
                        f"{rule}: {r.route} served {r.baseline_requests} requests in the "
                        "baseline and none in the candidate"
                    )
        elif rule.kind == "finding":
            for f in d.new_findings:
                if rule.severity_counts(f.severity):
                    failures.append(f"{rule}: new {f.severity} finding: {f.title}")
    return failures + not_judged(d)


def _ms(value: float) -> str:
    from correlate.analysis.findings import ms

    return ms(value)


def route_query_totals(queries: list[QueryChange]) -> dict[str, float]:
    """Per route, the change in queries per request, all fingerprints together."""
    out: dict[str, float] = {}
    for c in queries:
        out[c.route] = out.get(c.route, 0.0) + c.calls_delta
    return out


def _named(routes: list[str]) -> str:
    shown = ", ".join(routes[:MAX_NAMED])
    more = len(routes) - MAX_NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def not_judged(d: RunDiff) -> list[str]:
    """Mark the routes each latency and errors rule could not be judged on, note them, and
    fail a rule that could be judged on no route at all: a gate blind to what it was asked
    to check must not pass as if it had checked it."""
    from correlate.diff.compare import MIN_REQUESTS, MIN_TAIL

    if d.baseline == d.candidate:  # a run against itself: nothing to judge, nothing changed
        return []
    shared = [r for r in d.routes if r.baseline_requests and r.candidate_requests]
    failures = []
    for rule in d.rules:
        if rule.kind == "latency":
            q = rule.quantile or "p95"
            need = max(MIN_REQUESTS, round(MIN_TAIL / (1 - int(q[1:]) / 100)))
            why = f"fewer than {need} requests on one side"
            blind = [r for r in shared if q not in r.ratios]
        elif rule.kind == "errors":
            why = "too few requests on one side for an exact test"
            blind = [r for r in shared if not r.errors_judged()]
        else:
            continue
        for r in blind:
            r.not_judged.append(str(rule))
        names = [r.route for r in blind]
        if not shared:
            failures.append(f"{NOT_JUDGED} {rule} on no route: the runs share no route")
        elif len(blind) == len(shared):
            failures.append(
                f"{NOT_JUDGED} {rule} on no route: {_named(names)} had {why} "
                "(run the smoke load longer)"
            )
        elif blind:
            d.notes.append(f"{NOT_JUDGED} {rule} on {_named(names)} ({why})")
    return failures
