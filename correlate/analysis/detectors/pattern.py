"""A pattern of calls on a route, as the repeated-calls detectors report it.

The family's detectors (:mod:`~correlate.analysis.detectors.n_plus_one`,
:mod:`~correlate.analysis.detectors.redundant`, :mod:`~correlate.analysis.detectors.fan_out`)
each find their pattern their own way, then say the same things about it: how many of the
route's requests show it, how many calls such a request makes, what they cost now and at
``projection_factor`` × the load. Each one's query ends in the columns of :class:`Pattern`
(:data:`PATTERN_COLUMNS`, in that order) followed by its own; :func:`patterns` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from correlate.analysis.detectors.calls import calls_table
from correlate.analysis.findings import Finding
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class Scale:
    """What a repeated pattern costs on a route: measured, and projected to more load.

    ``requests`` is how many of the route's ``route_requests`` show it; per such request it
    makes ``calls`` calls (mean) whose intervals' union is ``union_ms``, of a request of
    ``request_ms`` on average; the run lasted ``seconds``.
    """

    requests: int
    route_requests: int
    calls: float
    union_ms: float
    request_ms: float
    seconds: float

    @property
    def request_share(self) -> float:
        """Share of the route's requests that show the pattern."""
        return self.requests / self.route_requests if self.route_requests else 0.0

    @property
    def time_share(self) -> float:
        """Share of such a request's time spent in the repeated calls (their union)."""
        return min(self.union_ms / self.request_ms, 1.0) if self.request_ms > 0 else 0.0

    @property
    def round_trips_per_second(self) -> float:
        """Calls the pattern makes per second at the run's throughput."""
        return self.calls * self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def busy_per_second(self) -> float:
        """Seconds of call time per second of the run: connections (or callee workers) the
        pattern keeps busy on average."""
        return self.union_ms * self.requests / 1000 / self.seconds if self.seconds > 0 else 0.0

    def projection(self, factor: float, noun: str) -> str:
        """The pattern at ``factor`` × the load, in plain words with the numbers."""
        if self.seconds <= 0:
            return ""
        rps = self.requests / self.seconds
        return (
            f"At {factor:g}× this load ({rps * factor:.1f} such requests a second) it would "
            f"make {self.round_trips_per_second * factor:,.0f} {noun} a second and keep about "
            f"{self.busy_per_second * factor:.2f} connections busy with them alone, before "
            "any queueing."
        )

    def evidence(self, factor: float) -> dict[str, float]:
        """The measured and projected numbers, for a finding's evidence."""
        return {
            "share_of_request_time": self.time_share,
            "round_trips_per_second": self.round_trips_per_second,
            "busy_connections": self.busy_per_second,
            "projection_factor": factor,
            "projected_round_trips_per_second": self.round_trips_per_second * factor,
            "projected_busy_connections": self.busy_per_second * factor,
        }


#: The columns a family detector's query starts with, in this order: the route, the
#: requests showing the pattern and all of the route's, calls per such request (mean and
#: most), the pattern's cost per request (``cost_ms``) and over the run, the mean request,
#: the parent span's most common name and up to three example traces.
PATTERN_COLUMNS = (
    "route",
    "requests",
    "route_requests",
    "calls",
    "max_calls",
    "cost_ms",
    "total_ms",
    "duration_ms",
    "parent_name",
    "traces",
)


@dataclass(frozen=True)
class Pattern:
    """One row of a family detector's query: :data:`PATTERN_COLUMNS`, and the run's length."""

    route: str
    requests: int
    route_requests: int
    calls: float
    max_calls: int
    cost_ms: float
    total_ms: float
    duration_ms: float
    parent: str | None
    traces: tuple[str, ...]
    seconds: float

    def scale(self, calls: float | None = None) -> Scale:
        """The pattern's :class:`Scale`; ``calls`` per request when not :attr:`calls` (the
        repeats of a redundant call, say)."""
        return Scale(
            self.requests,
            self.route_requests,
            self.calls if calls is None else calls,
            self.cost_ms,
            self.duration_ms,
            self.seconds,
        )

    def evidence(self, scale: Scale, factor: float, cost: str, **own: Any) -> dict[str, Any]:
        """The evidence every family finding carries, with :attr:`cost_ms` named ``cost``
        and the detector's ``own`` after it."""
        return {
            "requests": self.requests,
            "route_requests": self.route_requests,
            "share_of_requests": scale.request_share,
            "calls_per_request": self.calls,
            "max_calls": self.max_calls,
            cost: self.cost_ms,
            **own,
            "mean_request_ms": self.duration_ms,
            "parent": self.parent,
            **scale.evidence(factor),
        }

    def finding(self, kind: str, severity: Severity, **fields: Any) -> Finding:
        """A finding on the pattern's route, its impact the pattern's time over the run."""
        return Finding(
            kind=kind,
            severity=severity,
            route=self.route,
            impact_ms=self.total_ms,
            trace_ids=self.traces,
            **fields,
        )


def patterns(run: Run, sql: str, **params: Any) -> list[tuple[Pattern, tuple[Any, ...]]]:
    """Run a family detector's query (``{calls}``, ``{reqs}`` and ``{tree}`` name the run's
    tables; ``params`` are bound): each row as its :class:`Pattern` and the detector's own
    columns after it."""
    text = sql.format(calls=calls_table(run), reqs=run.table("requests"), tree=run.table("tree"))
    rows = run.con.execute(text, params).fetchall()
    seconds, n = run.seconds, len(PATTERN_COLUMNS)
    out = []
    for row in rows:
        route, requests, route_n, calls, max_calls, cost, total, duration, parent, traces = row[:n]
        pattern = Pattern(
            str(route),
            int(requests),
            int(route_n),
            float(calls),
            int(max_calls),
            float(cost),
            float(total),
            float(duration),
            parent,
            tuple(traces),
            seconds,
        )
        out.append((pattern, tuple(row[n:])))
    return out


def severity(
    scale: Scale, *, min_request_share: float, warning: bool, critical: bool = False
) -> Severity:
    """``info`` when fewer than ``min_request_share`` of the route's requests show the
    pattern; else ``critical`` or ``warning`` as the detector's own tests say, else ``info``."""
    if scale.request_share < min_request_share:
        return Severity.INFO
    if critical:
        return Severity.CRITICAL
    return Severity.WARNING if warning else Severity.INFO


__all__ = ["PATTERN_COLUMNS", "Pattern", "Scale", "patterns", "severity"]
