"""What the load generator saw that the server's spans do not explain.

Rules (correlate's own, on the client-to-server join of
:mod:`correlate.analysis.client`):

* *time outside the server*: on a route, the median client latency exceeds
  the server span by at least :data:`MIN_OUTSIDE_MS` and that gap is at least
  :data:`MIN_OUTSIDE_SHARE` of the client's median — the request waited before
  the server's span began (accept queue, a full worker pool, a proxy) or after
  it ended;
* *requests that never reached the server*: at least :data:`MIN_LOST_SHARE`
  of a route's client requests (and :data:`MIN_LOST`) have no server span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.analysis.client import client_vs_server
from correlate.analysis.findings import Finding, ms, pct

if TYPE_CHECKING:
    from correlate.analysis.run import Run

MIN_OUTSIDE_MS = 50.0
MIN_OUTSIDE_SHARE = 0.5
MIN_LOST_SHARE = 0.01
MIN_LOST = 5


def outside_server(run: Run) -> list[Finding]:
    frame = client_vs_server(run)
    found = []
    for row in frame.itertuples():
        if row.match != "traceparent":
            continue
        outside = row.outside_p50_ms
        if (
            outside == outside
            and outside >= MIN_OUTSIDE_MS
            and (outside >= MIN_OUTSIDE_SHARE * row.client_p50_ms)
        ):
            found.append(
                Finding(
                    kind="outside_server",
                    severity="warning",
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
                        f"median client − server ≥ {MIN_OUTSIDE_MS:.0f} ms and ≥ "
                        f"{pct(MIN_OUTSIDE_SHARE)} of the client's median"
                    ),
                    source="correlate",
                )
            )
        lost = int(row.never_reached)
        if lost >= MIN_LOST and lost >= MIN_LOST_SHARE * int(row.client_requests):
            found.append(
                Finding(
                    kind="never_reached",
                    severity="warning",
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
                    threshold=f"≥ {pct(MIN_LOST_SHARE)} and ≥ {MIN_LOST} client requests",
                    source="correlate",
                )
            )
    return found
