"""Findings: what a detector concluded, with the numbers that prove it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from correlate.kinds import FindingKind
from correlate.severity import Severity

#: Severities, most urgent first (the members of :class:`~correlate.severity.Severity`).
SEVERITIES: tuple[Severity, ...] = tuple(Severity)


@dataclass(frozen=True)
class Finding:
    """One diagnosis.

    ``impact_ms`` is the request time the finding accounts for over the run
    (how much faster the run's requests would have been without it, as far
    as the evidence goes); findings rank by severity, then impact.

    ``kind`` is a :class:`~correlate.kinds.FindingKind` for the built-in detectors
    (a detector of your own may use any string); ``severity`` a
    :class:`~correlate.severity.Severity`. Plain strings are converted.
    """

    kind: str
    severity: Severity
    title: str
    explanation: str
    suggestion: str
    threshold: str
    source: str
    impact_ms: float = 0.0
    route: str | None = None
    fingerprint: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    trace_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if not isinstance(self.kind, FindingKind) and self.kind in _KINDS:
            object.__setattr__(self, "kind", FindingKind(self.kind))

    def _repr_html_(self) -> str:
        """The finding as HTML: how a notebook shows it."""
        from correlate.render.html import finding_fragment

        return finding_fragment(self)

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain JSON-ready values."""
        out = asdict(self)
        out["kind"], out["severity"] = str(self.kind), str(self.severity)
        out["trace_ids"] = list(self.trace_ids)
        return out


def rank(findings: list[Finding]) -> list[Finding]:
    """Most urgent first: by severity, then by impact, then by kind and route for stability."""
    return sorted(
        findings,
        key=lambda f: (-f.severity.level, -f.impact_ms, f.kind, f.route or ""),
    )


_KINDS = frozenset(k.value for k in FindingKind)


def ms(value: float) -> str:
    """Milliseconds for prose: ``'66.9 ms'``, ``'1.25 s'``."""
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def pct(share: float) -> str:
    """A share for prose: ``'42%'``, and ``'<1%'`` for a small share that is not none.

    >>> pct(0.421), pct(0.001), pct(0.0)
    ('42%', '<1%', '0%')
    """
    if 0 < share < 0.005:
        return "<1%"
    return f"{share * 100:.0f}%"
