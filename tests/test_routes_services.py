"""In a run of several services a route is named with its service (``front /a``); the pool
agent's leak rows and the load generator's request names, which carry no service, read the
same, or a finding names a route no request has. A run of one service names neither."""

from __future__ import annotations

from correlate.analysis import open_run
from correlate.analysis.client import client_vs_server
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.pool_evidence import instrument_leaks as _leaks
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_detectors import closed_loop, leaking


def two_services(b: RunBuilder) -> None:
    """A second service's request besides the ``svc`` requests a test builds."""
    b.request(b.new_id("t"), 0, 40, "/a", service="back")


def test_a_leak_names_its_requests_route_with_the_service() -> None:
    b = RunBuilder()
    closed_loop(b, leaking, users=lambda t: 10 if t < 50_000 else 3)
    two_services(b)
    first = b.spans[0]
    for i in range(4):
        b.leak(first["trace_id"], first["span_id"], 10_000 + i * 5000)
    for s in range(60):
        b.sample(s * 1000, checked_out=min(10, max(0, (s - 10) // 4)))
    with open_run(b.build(), "r") as run:
        (f,) = pool_exhaustion(run)
        routes = set(run.requests().route)
    assert routes == {"svc /a", "back /a"}
    assert f.kind == FindingKind.POOL_LEAK and f.route == "svc /a"


def test_a_leak_whose_request_is_not_in_the_run_keeps_its_route() -> None:
    b = RunBuilder()
    b.request("t1", 0, 50)
    two_services(b)
    b.leak("t9", "s9", 10_000)
    with open_run(b.build(), "r") as run:
        assert [leak["route"] for leak in _leaks(run)] == ["/a"]


def test_the_load_generators_names_carry_the_service_they_reached() -> None:
    b = RunBuilder()
    b.user_request(1, 0, 60)
    b.user_request(1, 100, 60)  # lost on its way: never reached the server
    b.request("c0", 0, 50)
    b.spans[-1]["parent_id"] = "p0"
    two_services(b)
    with open_run(b.build(), "r") as run:
        (row,) = client_vs_server(run).itertuples()
    assert (row.route, row.client_requests, row.never_reached) == ("svc /a", 2, 1)


def test_a_run_of_one_service_names_no_service() -> None:
    b = RunBuilder()
    b.user_request(1, 0, 60)
    b.request("c0", 0, 50)
    b.spans[-1]["parent_id"] = "p0"
    b.leak("c0", b.spans[-1]["span_id"], 10_000)
    with open_run(b.build(), "r") as run:
        assert list(client_vs_server(run).route) == ["/a"]
        assert [leak["route"] for leak in _leaks(run)] == ["/a"]
