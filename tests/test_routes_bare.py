"""A route named without its leading slash (Django's ``http.route``) has one name everywhere.

The request tables give ``pay/<int:pk>/`` its slash; the pool agent's leak rows, the load
generator's request names and a callee's route copied onto its caller must read the same,
or a finding names a route no request has.
"""

from __future__ import annotations

from correlate.analysis import open_run
from correlate.analysis.client import client_vs_server
from correlate.analysis.detectors import n_plus_one, pool_exhaustion
from correlate.analysis.evidence import collect
from correlate.analysis.verdict import analyze
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_detectors import closed_loop, leaking
from .test_repeated import http_call

DJANGO = "pay/<int:pk>/"
SHOWN = "/pay/<int:pk>/"


def django_leak() -> RunBuilder:
    b = RunBuilder()
    closed_loop(b, leaking, users=lambda t: 10 if t < 50_000 else 3, route=DJANGO)
    first = b.spans[0]
    for i in range(4):
        b.leak(first["trace_id"], first["span_id"], 10_000 + i * 5000, route=DJANGO)
    for s in range(60):
        b.sample(s * 1000, checked_out=min(10, max(0, (s - 10) // 4)))
    return b


def test_a_leak_on_a_django_route_names_the_requests_route() -> None:
    store = django_leak().build()
    with open_run(store, "r") as run:
        (f,) = pool_exhaustion(run)
        routes = set(run.requests().route)
    assert routes == {SHOWN}
    assert f.kind == FindingKind.POOL_LEAK
    assert f.route == SHOWN and SHOWN in f.title


def test_the_report_shows_a_tail_request_of_the_leaking_route() -> None:
    store = django_leak().build()
    analysis = analyze("r", store=store)
    assert analysis.findings[0].route == SHOWN
    (example, *_) = collect(store, analysis).examples
    assert example.why == "a p95 request of this route" and example.route == SHOWN


def test_the_load_generators_name_of_a_django_route_gets_its_slash() -> None:
    b = RunBuilder()
    trace = b.new_id("t")
    b.request(trace, 0, 50, DJANGO)
    b.user_request(1, 0, 60, route=DJANGO)
    with open_run(b.build(), "r") as run:
        assert list(client_vs_server(run).route) == [SHOWN]


def test_a_callees_django_route_gets_its_slash_on_the_caller() -> None:
    b = RunBuilder()
    for i in range(6):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 100, "/game/{id}/start")
        for n in range(6):
            url = f"http://account:5000/api/account/{100 * i + n}/"
            http_call(b, trace, r, i * 1000 + 5 + n * 10, url, callee_route="api/account/<int:pk>/")
    with open_run(b.build(), "r") as run:
        (f,) = n_plus_one(run)
    assert f.evidence["shape"].endswith(" /api/account/<int:pk>/")


def test_ingest_links_the_callees_route_with_its_slash() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100, "/front")
    http_call(b, "t1", r, 5, "http://account:5000/api/account/7/", callee_route="api/<int:pk>/")
    store = b.build()
    (template,) = store.con.execute(
        "SELECT http_target_template FROM spans WHERE kind = 'CLIENT'"
    ).fetchone() or (None,)
    assert template == "/api/<int:pk>/"


def test_an_optional_parameter_route_gets_its_slash_in_the_requests() -> None:
    b = RunBuilder()
    b.request("t1", 0, 50, "api/items/{id?}")  # ASP.NET and Laravel: an optional parameter
    b.request("t2", 0, 50, "orders/\\d+/")  # a pattern, not a path
    with open_run(b.build(), "r") as run:
        assert set(run.requests().route) == {"/api/items/{id?}", "orders/\\d+/"}


# -- Django's one-word routes --------------------------------------------------------------

DJANGO_SCOPE = "opentelemetry.instrumentation.django"


def django_health(b: RunBuilder) -> str:
    """A request Django routed to its ``health`` pattern, and one that matched no pattern
    (its span has no ``http.route``; ingest folds its path into ``/health``)."""
    routed = b.request("t1", 0, 50, "health", scope=DJANGO_SCOPE)
    b.span("t2", 100, 150, kind="SERVER", template="/health", http_status=404, scope=DJANGO_SCOPE)
    return routed


def test_djangos_one_word_route_is_the_same_route_as_its_path() -> None:
    b = RunBuilder()
    django_health(b)
    b.request("t3", 200, 250, "checkout", scope="io.opentelemetry.tomcat-10.0")
    with open_run(b.build(), "r") as run:
        assert sorted(run.requests().route) == ["/health", "/health", "checkout"]


def test_a_leak_on_a_django_one_word_route_names_the_requests_route() -> None:
    b = RunBuilder()
    routed = django_health(b)
    b.leak("t1", routed, 10_000, route="health")
    with open_run(b.build(), "r") as run:
        from correlate.analysis.pool_evidence import instrument_leaks as _leaks

        (leak,) = _leaks(run)
    assert leak["route"] == "/health"


def test_the_load_generators_name_of_a_django_one_word_route_gets_its_slash() -> None:
    b = RunBuilder()
    b.user_request(1, 0, 60, route="health")
    b.user_request(1, 100, 60, route="health")  # lost on its way: never reached the server
    b.request("c0", 0, 50, "health", scope=DJANGO_SCOPE)
    b.spans[-1]["parent_id"] = "p0"
    with open_run(b.build(), "r") as run:
        (row,) = client_vs_server(run).itertuples()
    assert (row.route, row.client_requests, row.never_reached) == ("/health", 2, 1)


def test_a_django_callees_one_word_route_gets_its_slash_on_the_caller() -> None:
    b = RunBuilder()
    r = b.request("t1", 0, 100, "/front")
    http_call(b, "t1", r, 5, "http://account:5000/health", callee_route="health")
    b.spans[-1]["scope_name"] = DJANGO_SCOPE
    (template,) = b.build().con.execute(
        "SELECT http_target_template FROM spans WHERE kind = 'CLIENT'"
    ).fetchone() or (None,)
    assert template == "/health"
