"""The CI gate at smoke-run sizes: a few dozen requests per route is its normal case.

Each test is a defect found by an outside probe of ``correlate diff``: a rule that cannot
be judged must say so, errors and latency are judged at small sizes, a changed query text
is not an N+1, and a second service keeps the routes matched.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import correlate
from correlate.diff import RunDiff, diff
from correlate.diff.compare import MIN_REQUESTS, compare_latency
from correlate.diff.stats import proportion_rise
from correlate.store import Store

from .builders import RunBuilder


def _route(
    b: RunBuilder,
    route: str,
    n: int,
    median_ms: float,
    *,
    seed: int,
    failed: int = 0,
    service: str = "svc",
    sql: str | None = None,
    calls: int = 1,
    offset: float = 0.0,
) -> None:
    """``n`` requests of ``route`` (log-normal latency around ``median_ms``), the first
    ``failed`` of them failed, each running ``sql`` ``calls`` times."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        start = offset + i * 500.0
        end = start + float(rng.lognormal(np.log(median_ms), 0.3))
        trace = f"{service}{route}{i}"
        bad = i < failed
        r = b.span(
            trace,
            start,
            end,
            kind="SERVER",
            route=route,
            http_status=500 if bad else 200,
            status="ERROR" if bad else "UNSET",
            service=service,
        )
        for k in range(calls if sql else 0):
            b.query(trace, r, start + 0.1 + k * 0.01, start + 0.105 + k * 0.01, sql)


def _diff(store: Store, runs: dict[str, RunBuilder], fail_on: list[str] | None) -> RunDiff:
    for name, b in runs.items():
        b.name = name
        b.build(store)
    return diff("base", "cand", store=store, fail_on=fail_on)


# D2 -------------------------------------------------------------------------------------


def test_a_rule_judged_on_no_route_fails_the_gate_and_says_why() -> None:
    """Every route under the minimum and ten times slower: never "no change"."""
    base, cand = RunBuilder(), RunBuilder()
    for k, route in enumerate(("/a", "/b")):
        _route(base, route, 8, 10, seed=k, offset=k * 1e6)
        _route(cand, route, 8, 100, seed=10 + k, offset=k * 1e6)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["p95:+10%"])
    assert not result.unchanged
    assert result.regressed
    assert result.failures == [
        f"not judged: p95:+10% on no route: /a, /b had fewer than {MIN_REQUESTS} requests "
        "on one side (run the smoke load longer)"
    ]
    doc = json.loads(result.to_json())
    assert doc["unchanged"] is False
    assert [r["not_judged"] for r in doc["routes"]] == [["p95:+10%"], ["p95:+10%"]]
    assert "no change" not in result.to_text() and "no change" not in result.to_markdown()
    # it is said as what it is: not a regression found, a gate that could not look
    assert "NOT JUDGED: 1 rule(s) could be judged on no route" in result.to_text()
    assert "REGRESSION" not in result.to_text()


def test_a_rule_judged_on_some_routes_notes_the_others() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/big", 60, 10, seed=1)
    _route(cand, "/big", 60, 10, seed=1)
    _route(base, "/tiny", 5, 10, seed=2, offset=1e6)
    _route(cand, "/tiny", 5, 10, seed=2, offset=1e6)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["p95:+10%"])
    assert not result.regressed and not result.unchanged
    note = f"not judged: p95:+10% on /tiny (fewer than {MIN_REQUESTS} requests on one side)"
    assert note in result.notes
    assert note in result.to_text()
    assert "no change" not in result.to_text()
    tiny = next(r for r in result.routes if r.route == "/tiny")
    assert tiny.not_judged == ["p95:+10%"]


def test_runs_that_share_no_route_judge_nothing() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 40, 10, seed=1)
    _route(cand, "/b", 40, 10, seed=1)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["p95:+10%", "errors:+1%"])
    assert result.failures == [
        "not judged: p95:+10% on no route: the runs share no route",
        "not judged: errors:+1% on no route: the runs share no route",
    ]


def test_three_requests_a_side_cannot_show_a_rise_in_errors() -> None:
    """All three failing where none did is one chance in 20: not significant at 5%."""
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 3, 10, seed=1)
    _route(cand, "/a", 3, 10, seed=1, failed=3)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["errors:+1%"])
    assert result.failures == [
        "not judged: errors:+1% on no route: /a had too few requests on one side for an "
        "exact test (run the smoke load longer)"
    ]


# D3 -------------------------------------------------------------------------------------


def test_the_exact_test_tells_a_broken_route_from_one_unlucky_request() -> None:
    assert proportion_rise(0, 20, 20, 20) < 1e-10
    assert proportion_rise(0, 20, 1, 20) == pytest.approx(0.5)
    assert proportion_rise(3, 20, 3, 20) > 0.5


@pytest.mark.parametrize(("failed", "fails"), [(20, True), (1, False)])
def test_errors_are_judged_on_twenty_requests(failed: int, fails: bool) -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 400, 10, seed=1)
    _route(cand, "/a", 400, 10, seed=1)
    _route(base, "/pay", 20, 10, seed=2, offset=1e6)
    _route(cand, "/pay", 20, 10, seed=2, offset=1e6, failed=failed)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["errors:+1%"])
    expected = ["errors:+1%: /pay errors 0.0% → 100.0% (0 of 20 → 20 of 20)"] if fails else []
    assert result.failures == expected
    assert all(not r.not_judged for r in result.routes)
    # the PR comment's table shows the errors too, beside the failure line
    row = next(line for line in result.to_markdown().splitlines() if line.startswith("| /pay"))
    assert row.endswith(f"| 0% → {failed / 20:.0%} ({failed} of 20) |")


def test_no_errors_no_errors_column() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 40, 10, seed=1)
    _route(cand, "/a", 40, 10, seed=1)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["errors:+1%"])
    assert "| route | requests | p50 | p95 | p95 change |\n" in result.to_markdown()


# D4 -------------------------------------------------------------------------------------


def test_a_threefold_slowdown_on_eighty_requests_fails_p95() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/pay", 80, 10, seed=1)
    _route(cand, "/pay", 80, 30, seed=2)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["p95:+10%"])
    assert result.regressed
    (failure,) = result.failures
    assert failure.startswith("p95:+10%: /pay p95")


def test_a_route_under_the_minimum_says_why_in_the_p95_cell() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/pay", 12, 10, seed=1)
    _route(cand, "/pay", 12, 30, seed=2)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["p95:+10%"])
    (row,) = [line for line in result.to_markdown().splitlines() if line.startswith("| /pay")]
    why = f"too few requests to compare (12 and 12; at least {MIN_REQUESTS} each)"
    assert row.replace("\\", "").endswith(f"| {why} |")  # Markdown escapes the brackets


@pytest.mark.parametrize("n", [MIN_REQUESTS, 80])
def test_same_code_noise_rarely_fails_p95(n: int) -> None:
    """Two samples of one distribution, many seeds: a p95:+10% failure at most as often as
    the documented false-alarm rate (ALPHA, 5%)."""
    seeds = 200
    alarms = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        a, b = rng.lognormal(np.log(200), 0.5, n), rng.lognormal(np.log(200), 0.5, n)
        route = compare_latency(list(a), list(b), {"p95"}, alpha=0.05)
        alarms += route.significant("p95", 0.10)
    assert alarms / seeds <= 0.05


# D5 -------------------------------------------------------------------------------------

OLD, NEW = "SELECT * FROM items WHERE id = 1", "SELECT id, name FROM items WHERE id = 1"


def test_a_rewritten_query_at_the_same_count_is_no_n_plus_one() -> None:
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 40, 10, seed=1, sql=OLD)
    _route(cand, "/a", 40, 10, seed=1, sql=NEW)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["queries-per-request:+1"])
    assert result.failures == []
    assert any(n.startswith("query text changed on /a") for n in result.notes), result.notes


@pytest.mark.parametrize(
    ("candidate_sql", "was"), [("NEW", "0.0"), ("OLD", "1.0")], ids=["rewritten", "same-text"]
)
def test_one_query_going_to_ten_calls_fails(candidate_sql: str, was: str) -> None:
    # an N+1 fails whether or not its text changed on the way
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 40, 10, seed=1, sql=OLD)
    _route(cand, "/a", 40, 10, seed=1, sql={"NEW": NEW, "OLD": OLD}[candidate_sql], calls=10)
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, ["queries-per-request:+1"])
    (failure,) = result.failures
    assert f"10.0× per request (was {was})" in failure


# D6 -------------------------------------------------------------------------------------


def test_a_second_service_keeps_the_routes_matched() -> None:
    base, cand = RunBuilder(), RunBuilder()
    for k, route in enumerate(("/a", "/b")):
        _route(base, route, 100, 10, seed=k, service="api", offset=k * 1e6)
        _route(cand, route, 100, 40, seed=10 + k, service="api", offset=k * 1e6)
    _route(cand, "/health", 50, 1, seed=20, service="gateway", offset=3e6, sql=OLD)
    rules = ["p95:+25%", "missing-route:30", "queries-per-request:+1"]
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, rules)
    assert [(r.route, r.baseline_requests, r.candidate_requests) for r in result.routes] == [
        ("api /a", 100, 100),
        ("api /b", 100, 100),
        ("gateway /health", 0, 50),
    ]
    assert [f.split(" p95")[0] for f in result.failures] == [
        "p95:+25%: api /a",
        "p95:+25%: api /b",
    ]


def test_single_service_runs_match_on_the_route_alone() -> None:
    """A renamed service (one per run) is the same service: its routes still match."""
    base, cand = RunBuilder(), RunBuilder()
    _route(base, "/a", 40, 10, seed=1, service="shop")
    _route(cand, "/a", 40, 10, seed=1, service="shop-api")
    with correlate.open_store(":memory:") as store:
        result = _diff(store, {"base": base, "cand": cand}, None)
    assert [r.route for r in result.routes] == ["/a"]
    assert not result.regressed
