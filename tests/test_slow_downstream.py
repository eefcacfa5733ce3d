"""Slow downstream: one callee endpoint dominates its caller's route; the callee's own
breakdown when its spans are in the run; one cause named once beside the repeated-calls
family and the callee's own findings."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import (
    n_plus_one,
    redundant_calls,
    slow_downstream,
    slow_query,
)
from correlate.analysis.findings import Finding
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .conftest import DATA
from .strategies import span_trees

PRODUCER = Path(__file__).parent / "helpers" / "downstream_producer.py"


def call(
    b: RunBuilder,
    trace: str,
    parent: str,
    start: float,
    end: float,
    *,
    service: str = "payments",
    path: str = "/charge",
    method: str = "POST",
    callee: bool = False,
    callee_db_ms: float = 0,
) -> str:
    """An HTTP client call to ``service``; with ``callee``, the callee's SERVER span below
    it, running a query of ``callee_db_ms`` at its start."""
    sid = b.span(
        trace, start, end, parent=parent, kind="CLIENT", name=method, service="shop", template=path
    )
    url = f"http://{service}:8080{path}"
    b.spans[-1]["attributes"] = json.dumps({"http.request.method": method, "url.full": url})
    if callee:
        server = b.span(
            trace, start + 0.5, end - 0.5, parent=sid, kind="SERVER", route=path, service=service
        )
        if callee_db_ms:
            b.span(
                trace,
                start + 1,
                start + 1 + callee_db_ms,
                parent=server,
                kind="CLIENT",
                db="postgresql",
                sql="SELECT * FROM ledger WHERE account = 42",
                service=service,
            )
    return sid


def run_of(
    b: RunBuilder,
    *detectors: object,
    all_findings: bool = False,
    tuned: dict[str, float] | None = None,
) -> list[Finding]:
    store = b.build()
    with open_run(store, "r") as run:
        if all_findings:
            return run.findings(detectors or None, settings=tuned)  # type: ignore[arg-type]
        return slow_downstream(run)


def each_request(
    b: RunBuilder, route: str, duration: float = 100, n: int = 10
) -> Iterator[tuple[str, float, str]]:
    """``n`` requests of ``route``, a second apart: (trace, start, request span) each."""
    for i in range(n):
        trace, t = f"t{i}", i * 1000.0
        yield trace, t, b.request(trace, t, t + duration, route)


def checkout(
    b: RunBuilder, *, call_ms: float, app_ms: float, requests: int = 10, **kw: object
) -> None:
    """``requests`` /checkout requests: ``app_ms`` of their own, then one call of ``call_ms``."""
    for trace, t, r in each_request(b, "/checkout", app_ms + call_ms, requests):
        call(b, trace, r, t + app_ms, t + app_ms + call_ms, **kw)  # type: ignore[arg-type]


def test_one_callee_dominating_the_route_is_found_with_its_numbers() -> None:
    b = RunBuilder()
    checkout(b, call_ms=150, app_ms=100)
    (f,) = run_of(b)
    assert f.kind == FindingKind.SLOW_DOWNSTREAM and f.route == "/checkout"
    assert f.severity == "warning"  # 60% of the latency: under the 80% of a critical
    assert f.evidence["shape"] == "POST payments /charge"
    assert f.evidence["share_of_latency"] == pytest.approx(0.6)
    assert f.evidence["p50_call_ms"] == pytest.approx(150)
    assert f.evidence["calls_per_request"] == 1
    assert f.evidence["callee_requests"] == 0  # no callee spans: said so
    assert "not in the run" in f.explanation
    assert f.impact_ms == pytest.approx(1500)


def test_the_callees_own_breakdown_names_its_database_and_statement() -> None:
    b = RunBuilder()
    checkout(b, call_ms=180, app_ms=20, callee=True, callee_db_ms=160)
    (f,) = run_of(b)
    assert f.severity == "critical"  # 90% of the route's latency
    ev = f.evidence
    assert ev["callee_route"].endswith("/charge") and ev["callee_requests"] == 10
    assert ev["callee_db_ms"] == pytest.approx(160)
    assert ev["callee_app_ms"] == pytest.approx(19)
    assert "ledger" in ev["callee_top_statement"]
    assert "its database" in f.explanation and "ledger" in f.explanation
    assert "database time" in f.suggestion


def test_calls_at_once_count_once() -> None:
    b = RunBuilder()
    for trace, t, r in each_request(b, "/checkout", duration=240):
        # two calls side by side: 120 ms of the route, not 240
        call(b, trace, r, t + 120, t + 240)
        call(b, trace, r, t + 120, t + 240)
    (f,) = run_of(b)
    assert f.evidence["share_of_latency"] == pytest.approx(0.5)
    assert f.evidence["calls_per_request"] == 2


def test_many_small_callees_are_not_one_slow_downstream() -> None:
    b = RunBuilder()
    for trace, t, r in each_request(b, "/home"):
        for n, service in enumerate(["users", "cart", "prices", "stock", "ads"]):
            call(b, trace, r, t + n * 20, t + n * 20 + 19, service=service, method="GET")
    assert run_of(b) == []


def test_a_database_dominated_route_is_the_slow_querys() -> None:
    b = RunBuilder()
    for trace, t, r in each_request(b, "/report"):
        b.query(trace, r, t, t + 75, "SELECT * FROM orders WHERE day = 3")
        call(b, trace, r, t + 75, t + 100)
    assert run_of(b) == []


def test_a_fast_callee_is_left_alone_and_the_floor_is_tunable() -> None:
    b = RunBuilder()
    checkout(b, call_ms=4, app_ms=1)  # 80% of a 5 ms route: a thin proxy, not slow
    assert run_of(b) == []
    store = b.build()
    with open_run(store, "r") as run:
        (f,) = run.findings((slow_downstream,), settings={"slow_downstream.min_call_ms": 2})
    assert f.evidence["p50_call_ms"] == pytest.approx(4)


def test_a_loop_of_calls_is_the_n_plus_ones_not_a_slow_downstream() -> None:
    b = RunBuilder()
    for trace, t, r in each_request(b, "/cart"):
        for n in range(6):
            call(b, trace, r, t + n * 15, t + n * 15 + 14, path=f"/prices/{n}", method="GET")
    assert run_of(b) == []


def test_a_redundant_call_carries_the_severity_and_the_slow_downstream_is_info() -> None:
    b = RunBuilder()
    for trace, t, r in each_request(b, "/cart", duration=250):
        for n in range(2):  # the same GET twice: the answer was in hand
            call(b, trace, r, t + n * 120, t + n * 120 + 119, path="/prices/7", method="GET")
    found = {f.kind: f for f in run_of(b, redundant_calls, slow_downstream, all_findings=True)}
    assert set(found) == {FindingKind.REDUNDANT_CALLS, FindingKind.SLOW_DOWNSTREAM}
    slow = found[FindingKind.SLOW_DOWNSTREAM]
    assert slow.severity == "info" and slow.evidence["cause"] == "redundant_calls"
    assert found[FindingKind.REDUNDANT_CALLS].title in slow.suggestion


def test_a_callees_slow_query_is_named_as_the_cause() -> None:
    b = RunBuilder()
    checkout(b, call_ms=180, app_ms=20, callee=True, callee_db_ms=160)
    found = run_of(b, slow_query, slow_downstream, n_plus_one, all_findings=True)
    (slow,) = [f for f in found if f.kind == FindingKind.SLOW_DOWNSTREAM]
    (query,) = [f for f in found if f.kind == FindingKind.SLOW_QUERY]
    assert query.route == slow.evidence["callee_route"]
    assert slow.severity == "critical"  # the caller's users wait all the same
    assert slow.evidence["cause"] == "slow_query" and query.title in slow.suggestion


def test_hotrod_dispatch_waits_on_the_customer_service() -> None:
    """Jaeger's HotROD: /dispatch calls customer once (its MySQL query behind a one-connection
    mutex, about half of each dispatch) and route ten times (the N+1's, not a slow
    downstream); the customer finding points at the customer route's slow query."""
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(DATA / "peers" / "hotrod", store=store)
    (slow,) = [f for f in analysis.findings if f.kind == FindingKind.SLOW_DOWNSTREAM]
    assert slow.route == "frontend /dispatch" and slow.severity == "warning"
    ev = slow.evidence
    assert ev["shape"] == "GET customer /customer" and ev["requests"] == 8
    assert 0.5 < ev["share_of_latency"] < 0.55
    assert ev["callee_route"] == "customer /customer"
    assert ev["callee_db_ms"] / ev["callee_mean_ms"] > 0.99
    assert ev["callee_top_statement"].startswith("SELECT * FROM customer")
    assert ev["cause"] == "slow_query"
    kinds = {(f.kind, f.route) for f in analysis.findings}
    assert (FindingKind.N_PLUS_ONE_CALLS, "frontend /dispatch") in kinds
    assert (FindingKind.SLOW_QUERY, "customer /customer") in kinds


#: Floors down, so that the few requests of a random tree reach every step of the rule.
LOW = {"slow_downstream.min_requests": 1, "slow_downstream.min_call_ms": 0}


def test_real_otel_spans_of_two_flask_services(tmp_path: Path) -> None:
    """Spans as the official Flask and SQLAlchemy instrumentations write them: the
    storefront's route waits on pricing, whose time is a slow query; the callee's route
    template comes from pricing's own SERVER span (Flask's ``<int:quote_id>``)."""
    pytest.importorskip("opentelemetry.instrumentation.flask")
    out = tmp_path / "spans.jsonl"
    subprocess.run([sys.executable, str(PRODUCER), str(out), "6"], check=True, timeout=120)
    # pricing's SQLite scan is tens of ms, under the default 100 ms floor for a call to
    # another service: this test is about reading real spans, so the floor is lowered.
    floor = {"slow_downstream.min_call_ms": 10}
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store, settings=floor)
    (slow,) = [f for f in analysis.findings if f.kind == FindingKind.SLOW_DOWNSTREAM]
    (query,) = [f for f in analysis.findings if f.kind == FindingKind.SLOW_QUERY]
    assert slow.route == "storefront /cart/<int:cart_id>"
    assert slow.evidence["shape"] == "GET pricing /quotes/<int:quote_id>"
    assert slow.evidence["requests"] == 6 and slow.evidence["share_of_latency"] > 0.8
    assert slow.evidence["callee_route"] == query.route == "pricing /quotes/<int:quote_id>"
    assert slow.evidence["callee_db_ms"] > 0.8 * slow.evidence["callee_mean_ms"]
    assert slow.evidence["cause"] == "slow_query" and query.title in slow.suggestion


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_trees())
def test_random_span_trees_never_crash_it(b: RunBuilder) -> None:
    detectors = (slow_downstream, redundant_calls, n_plus_one)
    for f in run_of(b, *detectors, all_findings=True, tuned=LOW):
        if f.kind == FindingKind.SLOW_DOWNSTREAM:
            assert f.severity in ("info", "warning", "critical")
            assert f.evidence["share_of_time_outside_pool_wait"] > 0
            assert f.evidence["share_of_latency"] <= 1 + 1e-9
            assert f.evidence["calls_per_request"] >= 1
