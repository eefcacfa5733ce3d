"""Which route of one run is which of the other.

A run of several services names its routes with their service (``api /a``: two services'
``/health`` differ); a run of one does not. Comparing a run that gained a service with one
that had a single service matches them on (service, route), the prefix taken off by each
request's own service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from correlate.analysis.run import Run

T = TypeVar("T")


def _service_routes(run: Run) -> tuple[bool, dict[str, tuple[str, str]]]:
    """Whether ``run`` has several services, and each of its route names' service ('?'
    when unnamed) and route without the service prefix that several services give it."""
    rows = run.con.execute(
        # max: a route of a one-service run served with and without a service name is
        # that service's
        f"SELECT route, max(service) FROM {run.table('requests')} GROUP BY route"
    ).fetchall()
    several = len({service for _, service in rows if service is not None}) > 1
    out = {}
    for route, service in rows:
        name = "?" if service is None else str(service)
        prefix = f"{name} "
        bare = route[len(prefix) :] if several and route.startswith(prefix) else route
        out[route] = (name, bare)
    return several, out


def route_labels(a: Run, b: Run) -> tuple[dict[str, str], dict[str, str]]:
    """What each run's routes are compared as. Runs of one service each: the route alone
    (a renamed service is the same service). Otherwise service and route, so a baseline's
    ``/a`` meets ``api /a`` of a candidate that gained a second service."""
    (several_a, sa), (several_b, sb) = _service_routes(a), _service_routes(b)
    single = not several_a and not several_b

    def label(service: str, bare: str) -> str:
        return bare if single else f"{service} {bare}"

    return (
        {route: label(*key) for route, key in sa.items()},
        {route: label(*key) for route, key in sb.items()},
    )


def relabel(by_route: dict[str, T], labels: dict[str, str]) -> dict[str, T]:
    """``by_route`` keyed by the labels of :func:`route_labels` instead of route names."""
    return {labels.get(route, route): value for route, value in by_route.items()}
