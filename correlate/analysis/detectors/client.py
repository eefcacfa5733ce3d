"""What the load generator saw that the server's spans do not explain.

Rules (correlate's own, on the client-to-server join of
:mod:`correlate.analysis.client`; docs/rules.md#outside_server):

* *time outside the server*: on a route, the median client latency exceeds
  the server span by at least ``min_outside_ms`` and that gap is at least
  ``min_outside_share`` of the client's median — the request waited before
  the server's span began (accept queue, a full worker pool, a proxy) or after
  it ended;
* *requests that never reached the server*: at least ``min_lost_share`` of a
  route's client requests (and ``min_lost``) have no server span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from correlate.analysis.client import client_vs_server
from correlate.analysis.findings import Finding, ms, pct
from correlate.analysis.settings import setting, share
from correlate.kinds import FindingKind
from correlate.severity import Severity

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class OutsideServerSettings:
    """Thresholds of :func:`outside_server` (keys ``outside_server.*``)."""

    section: ClassVar[str] = "outside_server"
    min_outside_ms: float = setting(
        50.0, "median client latency minus server span, per request", unit="ms"
    )
    min_outside_share: float = share(0.5, "that gap's share of the client's median latency")
    min_lost_share: float = share(0.01, "share of a route's client requests with no server span")
    min_lost: int = setting(5, "client requests with no server span", low=1)


DEFAULTS = OutsideServerSettings()


def outside_server(run: Run, settings: OutsideServerSettings = DEFAULTS) -> list[Finding]:
    s = settings
    frame = client_vs_server(run)
    found = []
    for row in frame.itertuples():
        if row.match != "traceparent":
            continue
        outside = row.outside_p50_ms
        if (
            outside == outside
            and outside >= s.min_outside_ms
            and (outside >= s.min_outside_share * row.client_p50_ms)
        ):
            found.append(
                Finding(
                    kind=FindingKind.OUTSIDE_SERVER,
                    severity=Severity.WARNING,
                    title=f"Time outside the server on {row.route}: {ms(outside)} per request",
                    route=str(row.route),
                    impact_ms=float(outside) * int(row.reached_server),
                    evidence={
                        "client_p50_ms": float(row.client_p50_ms),
                        "server_p50_ms": float(row.server_p50_ms),
                        "outside_p50_ms": float(outside),
                        "outside_p95_ms": float(row.outside_p95_ms),
                        "requests": int(row.reached_server),
                    },
                    explanation=(
                        f"The load generator waited {ms(row.client_p50_ms)} for a typical "
                        f"{row.route} request, but the server's span lasted "
                        f"{ms(row.server_p50_ms)}: {ms(outside)} went by before the server "
                        "started on it or after it finished — the accept queue, a full worker "
                        "or thread pool, a proxy, the network, or the load generator itself."
                    ),
                    suggestion=(
                        "Compare the server's worker/thread count with the concurrency offered; "
                        "check the load generator's CPU; put a span around the server's whole "
                        "request handling (WSGI/ASGI middleware) to see where the gap starts."
                    ),
                    threshold=(
                        f"median client − server ≥ {s.min_outside_ms:.0f} ms and ≥ "
                        f"{pct(s.min_outside_share)} of the client's median"
                    ),
                    source="correlate (docs/rules.md#outside_server)",
                )
            )
        lost = int(row.never_reached)
        if lost >= s.min_lost and lost >= s.min_lost_share * int(row.client_requests):
            found.append(
                Finding(
                    kind=FindingKind.NEVER_REACHED,
                    severity=Severity.WARNING,
                    title=f"{lost} {row.route} requests never reached the server",
                    route=str(row.route),
                    evidence={
                        "client_requests": int(row.client_requests),
                        "never_reached": lost,
                        "no_response": int(row.no_response),
                    },
                    explanation=(
                        f"{lost} of {int(row.client_requests)} client requests to {row.route} "
                        f"({pct(lost / int(row.client_requests))}) have no server span in their "
                        f"trace; {int(row.no_response)} got no response at all. They were refused "
                        "or dropped before the service (connection limits, a proxy, a crash), "
                        "or the service lost their spans (sampling, an exporter queue)."
                    ),
                    suggestion=(
                        "Check the load generator's errors for those requests (connection "
                        "refused/reset, timeouts) and the server's exporter for dropped spans."
                    ),
                    threshold=f"≥ {pct(s.min_lost_share)} and ≥ {s.min_lost} client requests",
                    source="correlate (docs/rules.md#never_reached)",
                )
            )
    return found
