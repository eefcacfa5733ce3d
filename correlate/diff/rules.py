"""``--fail-on`` rules: what makes a comparison a regression.

>>> rules = ["p95:+10%", "errors:+1%", "queries-per-request:+1", "new-finding:warning"]
>>> [str(r) for r in parse_rules(rules)]
['p95:+10%', 'errors:+1%', 'queries-per-request:+1', 'new-finding:warning']
>>> parse_rules(["p95:10"])
Traceback (most recent call last):
...
correlate.errors.InputError: --fail-on 'p95:10': a latency rule reads p50:+N% ... (e.g. p95:+10%)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from correlate.analysis.findings import SEVERITIES
from correlate.errors import InputError

#: What ``correlate diff`` fails on when no --fail-on is given.
DEFAULT_RULES = ("p95:+10%", "errors:+1%", "new-finding:warning")

_LATENCY = re.compile(r"^(p50|p90|p95|p99):\+(\d+(?:\.\d+)?)%$")
_QUERIES = re.compile(r"^queries-per-request:\+(\d+(?:\.\d+)?)$")
_ERRORS = re.compile(r"^errors:\+(\d+(?:\.\d+)?)%$")
_FINDING = re.compile(r"^new-finding:(critical|warning|info)$")


@dataclass(frozen=True)
class Rule:
    """One rule: ``kind`` is ``latency``, ``errors``, ``queries`` or ``finding``."""

    text: str
    kind: str
    quantile: str | None = None
    threshold: float = 0.0
    severity: str | None = None

    def __str__(self) -> str:
        return self.text

    def severity_counts(self, severity: str) -> bool:
        """A new finding of ``severity`` breaks a ``new-finding`` rule at this level or worse."""
        assert self.severity is not None
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.severity)


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
            rules.append(Rule(t, "finding", severity=m[1]))
        elif t.startswith(("p50", "p90", "p95", "p99")):
            raise InputError(
                f"--fail-on {text!r}: a latency rule reads p50:+N% / p90 / p95 / p99 "
                "(e.g. p95:+10%)"
            )
        else:
            raise InputError(
                f"--fail-on {text!r} is not a rule; use p95:+10% (latency), errors:+1% "
                "(error-rate points), queries-per-request:+1, or new-finding:warning "
                "(critical|warning|info)"
            )
    return rules
