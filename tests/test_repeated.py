"""The repeated-calls family (N+1 over DB and HTTP, redundant calls, fan-out) on small
constructed runs, on the peer fixtures in ``tests/data/peers`` and on random span trees."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import (
    fan_out,
    n_plus_one,
    redundant_calls,
    slow_downstream,
    slow_query,
)
from correlate.analysis.detectors.calls import calls_table
from correlate.analysis.findings import Finding
from correlate.analysis.verdict import reconcile
from correlate.kinds import FindingKind
from correlate.routes import path_of, path_template

from .builders import RunBuilder
from .conftest import DATA
from .strategies import span_trees

PEERS = DATA / "peers"
EXPECTED: dict[str, Any] = json.loads((PEERS / "expected.json").read_text())
FAMILY = (n_plus_one, redundant_calls, fan_out)
KINDS = {
    "slow_query": FindingKind.SLOW_QUERY,
    "slow_downstream": FindingKind.SLOW_DOWNSTREAM,
    "n_plus_one_db": FindingKind.N_PLUS_ONE,
    "n_plus_one_http": FindingKind.N_PLUS_ONE_CALLS,
    "fan_out": FindingKind.FAN_OUT,
    "redundant": FindingKind.REDUNDANT_CALLS,
}


def findings(b: RunBuilder, *detectors: Callable[..., list[Finding]]) -> list[Finding]:
    store = b.build()
    with open_run(store, "r") as run:
        return [f for d in detectors or FAMILY for f in d(run)]


def loop(
    b: RunBuilder,
    *,
    calls: int,
    each: float = 0.5,
    requests: int = 10,
    wrap: bool = False,
    sql: str = "SELECT * FROM items WHERE order_id = {n}",
    gap: float = 1.0,
) -> None:
    """``requests`` requests of /list, each running ``sql`` ``calls`` times in a loop."""
    for i in range(requests):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 20 + calls * (each + gap), "/list")
        parent = b.span(trace, start + 1, start + 19 + calls * (each + gap), parent=r, name="loop")
        at = start + 2
        for n in range(calls):
            owner = parent
            if wrap:  # a repository span around each statement, as Spring Data records it
                owner = b.span(trace, at, at + each, parent=parent, name="Repo.findById")
            b.query(trace, owner, at, at + each, sql.format(n=n))
            at += each + gap


def http_call(
    b: RunBuilder, trace: str, parent: str, at: float, url: str, *, callee_route: str | None
) -> str:
    # the template ingest gives a client span: its URL's path with the ids folded, until
    # correlate.ingest.callees replaces it with the callee's route
    folded = path_template(path_of(url))
    sid = b.span(
        trace, at, at + 3, parent=parent, kind="CLIENT", name="GET", service="game", template=folded
    )
    b.spans[-1]["attributes"] = json.dumps({"http.request.method": "GET", "url.full": url})
    if callee_route:
        b.span(
            trace,
            at + 0.5,
            at + 2.5,
            parent=sid,
            kind="SERVER",
            route=callee_route,
            service="account",
        )
    return sid


# -- N+1 ----------------------------------------------------------------------------------


def test_a_fast_n_plus_one_is_found_without_the_50_ms_union() -> None:
    b = RunBuilder()
    loop(b, calls=6, each=0.5, gap=30)  # 3 ms of queries in a 200 ms request
    (f,) = findings(b, n_plus_one)
    assert f.kind == FindingKind.N_PLUS_ONE and f.route == "/list"
    assert f.evidence["calls_per_request"] == 6 and f.evidence["parent"] == "loop"
    assert f.evidence["union_ms_per_request"] == pytest.approx(3)
    assert f.severity == "info"  # few, cheap, and cheap at 10x: worth knowing only
    assert "At 10× this load" in f.explanation


def test_twenty_calls_per_request_are_a_warning_at_any_speed() -> None:
    b = RunBuilder()
    loop(b, calls=20, each=0.2, gap=30)
    (f,) = findings(b, n_plus_one)
    assert f.severity == "warning"
    assert f.evidence["union_ms_per_request"] < 5


def test_many_and_costly_is_critical_and_a_costly_share_is_a_warning() -> None:
    b = RunBuilder()
    loop(b, calls=12, each=10)
    (f,) = findings(b, n_plus_one)
    assert f.severity == "critical"
    b = RunBuilder()
    loop(b, calls=6, each=3)  # 18 ms of a 44 ms request: costly by share
    (f,) = findings(b, n_plus_one)
    assert f.severity == "warning" and f.evidence["share_of_request_time"] > 0.1


def test_the_projection_escalates_a_busy_pattern() -> None:
    b = RunBuilder()
    # 6 cheap calls in a long request, but 200 requests a second: at 10x the load they
    # keep more than one connection busy
    for i in range(400):
        trace, start = f"t{i}", i * 5.0
        r = b.request(trace, start, start + 400, "/list")
        for n in range(6):
            b.query(trace, r, start + n * 60, start + n * 60 + 0.2, f"SELECT * FROM x WHERE id={n}")
    (f,) = findings(b, n_plus_one)
    assert f.evidence["share_of_request_time"] < 0.1
    assert f.evidence["projected_busy_connections"] >= 1
    assert f.severity == "warning"


def test_three_cheap_calls_stay_quiet() -> None:
    b = RunBuilder()
    loop(b, calls=3)
    assert findings(b) == []


def test_wrapper_spans_are_looked_through_one_level() -> None:
    b = RunBuilder()
    loop(b, calls=7, wrap=True)
    (f,) = findings(b, n_plus_one)
    assert f.evidence["parent"] == "loop" and f.evidence["calls_per_request"] == 7


def test_the_calls_table_leaves_only_itself_behind() -> None:
    b = RunBuilder()
    loop(b, calls=7, wrap=True)
    with open_run(b.build(), "r") as run:
        calls = calls_table(run)
        names = {
            row[0]
            for row in run.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary"
            ).fetchall()
        }
        parents = run.con.execute(f"SELECT DISTINCT parent_name FROM {calls}").fetchall()
    assert calls in names and run.table("call_ids") not in names
    assert parents == [("loop",)]


def test_the_same_visible_statement_is_redundant_not_an_n_plus_one() -> None:
    b = RunBuilder()
    loop(b, calls=6, sql="SELECT * FROM author WHERE id = 7")
    (f,) = findings(b)
    assert f.kind == FindingKind.REDUNDANT_CALLS and f.evidence["calls_per_request"] == 6
    assert f.severity == "warning"  # from redundant_calls.warning_calls


def test_http_n_plus_one_groups_by_the_callees_route_template() -> None:
    b = RunBuilder()
    for i in range(6):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 100, "/game/{id}/start")
        for n in range(6):
            http_call(
                b,
                trace,
                r,
                i * 1000 + 5 + n * 10,
                f"http://account:5000/api/account/{100 * i + n}?v=1",
                callee_route="/api/account/{id}" if n % 2 else None,
            )
    (f,) = findings(b)
    assert f.kind == FindingKind.N_PLUS_ONE_CALLS
    # half the calls name the callee's route, half fold the path: one template
    assert f.evidence["shape"].endswith("/api/account/{id}")
    assert f.evidence["calls_per_request"] == 6 and f.evidence["family"] == "http"


# -- redundant ------------------------------------------------------------------------------


def test_bound_parameters_are_never_redundant() -> None:
    b = RunBuilder()
    loop(b, calls=2, sql="SELECT * FROM author WHERE id = $1")
    assert findings(b, redundant_calls) == []


def test_a_retry_after_an_error_is_not_redundant() -> None:
    b = RunBuilder()
    for i in range(5):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 50, "/a")
        b.span(
            trace,
            i * 1000 + 1,
            i * 1000 + 5,
            parent=r,
            kind="CLIENT",
            db="postgresql",
            sql="SELECT * FROM a WHERE id = 1",
            status="ERROR",
        )
        b.query(trace, r, i * 1000 + 6, i * 1000 + 9, "SELECT * FROM a WHERE id = 1")
    assert findings(b, redundant_calls) == []


def test_twice_the_same_read_is_redundant_info() -> None:
    b = RunBuilder()
    for i in range(5):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 200, "/a")
        for at in (1, 100):
            b.query(trace, r, i * 1000 + at, i * 1000 + at + 1, "SELECT * FROM a WHERE id = 1")
    (f,) = findings(b)
    assert f.kind == FindingKind.REDUNDANT_CALLS and f.severity == "info"
    assert f.evidence["calls_per_request"] == 2


# -- fan-out --------------------------------------------------------------------------------


@pytest.mark.parametrize(("children", "severity"), [(18, None), (25, "warning"), (61, "critical")])
def test_fan_out(children: int, severity: str | None) -> None:
    b = RunBuilder()
    for i in range(5):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 500, "/a")
        for n in range(children):  # all different shapes: no N+1, only the fan-out
            b.query(trace, r, i * 1000 + n * 5, i * 1000 + n * 5 + 1, f"SELECT * FROM t{n}")
    found = findings(b, fan_out)
    assert [f.severity for f in found] == ([severity] if severity else [])
    if found:
        assert found[0].evidence["calls_per_request"] == children


def test_a_fan_out_of_one_n_plus_one_points_at_it() -> None:
    b = RunBuilder()
    for i in range(10):  # 24 reads of one shape and one other call: the N+1 is the fan-out
        r = b.request(f"t{i}", i * 1000, i * 1000 + 500, "/list")
        b.query(f"t{i}", r, i * 1000 + 1, i * 1000 + 2, "SELECT * FROM orders")
        for n in range(24):
            at = i * 1000 + 5 + n * 10
            b.query(f"t{i}", r, at, at + 5, f"SELECT * FROM items WHERE order_id = {n}")
    found = {f.kind: f for f in reconcile(findings(b))}
    n_plus_one, fan = found[FindingKind.N_PLUS_ONE], found[FindingKind.FAN_OUT]
    assert fan.severity == "info" and fan.evidence["cause"] == str(FindingKind.N_PLUS_ONE)
    assert f"these calls are the ones “{n_plus_one.title}” names" in fan.suggestion
    # all different shapes: the fan-out is its own finding, pointing at nothing
    b = RunBuilder()
    for i in range(5):
        r = b.request(f"t{i}", i * 1000, i * 1000 + 500, "/a")
        for n in range(25):
            b.query(f"t{i}", r, i * 1000 + n * 5, i * 1000 + n * 5 + 1, f"SELECT * FROM t{n}")
    (fan,) = reconcile(findings(b))
    assert "cause" not in fan.evidence and fan.suggestion.startswith("Batch the calls")


# -- the peer fixtures ---------------------------------------------------------------------

#: Every fixture that stands on its own (HotROD's four files are one run together).
PEER_RUNS = [f for f in EXPECTED["files"] if not f["part_of"]]
#: What the peer fixtures are checked against: the family and the two "dominates" rules.
PEER_DETECTORS = (*FAMILY, slow_query, slow_downstream)


def _plain(text: str) -> str:
    """A statement or shape as the fixture's facts write it: literal numbers and bound
    placeholders as ``?``, no space around operators, lower case, without the fixture's
    trailing note in parentheses."""
    text = re.sub(r" \((?:same|ids|param)[^)]*\)$", "", text.strip())
    text = re.sub(r"<same id>|\$[0-9]+|(?<![$\w])[0-9]+\b", "?", text)
    return re.sub(r"\s*([=,<>])\s*", r"\1", text).lower()


@pytest.mark.parametrize("entry", PEER_RUNS, ids=[f["file"] for f in PEER_RUNS])
def test_peer_fixture_patterns(entry: dict[str, Any]) -> None:
    """Each expected pattern is found once, on its route, under its parent, with its shape,
    requests and calls; nothing else is (a clean file gives nothing)."""
    with correlate.open_store(":memory:") as store:
        store.ingest([PEERS / entry["file"]], run="peer")
        with open_run(store, "peer") as run:
            found = [f for d in PEER_DETECTORS for f in d(run)]
            texts = dict(
                run.con.execute(
                    "SELECT fingerprint, any_value(text) FROM statements GROUP BY 1"
                ).fetchall()
            )
    for p in entry["patterns"]:
        mine = [f for f in found if f.kind == KINDS[p["kind"]] and f.route.endswith(p["route"])]
        assert len(mine) == 1, (p, [f.title for f in found])
        (f,) = mine
        calls, n = p["calls_per_request"], f.evidence["requests"]
        assert n == p["requests"]
        per_request = f.evidence.get("calls_per_request", f.evidence.get("calls", 0) / n)
        assert per_request == pytest.approx(sum(calls) / len(calls))
        if "max_calls" in f.evidence:
            assert f.evidence["max_calls"] == max(calls)
        if "parent" in f.evidence:
            assert f.evidence["parent"] == p["parent"]
        if f.kind in (FindingKind.N_PLUS_ONE, FindingKind.SLOW_QUERY):
            shape = texts.get(f.fingerprint, f.fingerprint)
        elif f.kind == FindingKind.REDUNDANT_CALLS:
            shape = f.evidence["example"]
        elif f.kind == FindingKind.FAN_OUT:  # the fixture names no shape: any calls count
            continue
        else:
            shape = f.evidence["shape"]
        assert _plain(shape) == _plain(p["shape"]), (shape, p["shape"])
    assert len(found) == len(entry["patterns"]), [f.title for f in found]
    if any(p["kind"] == "fan_out" for p in entry["patterns"]):
        # one shape: an N+1 carries the severity, the fan-out is info beside it
        (fan,) = [f for f in found if f.kind == FindingKind.FAN_OUT]
        assert fan.severity == "info" and fan.evidence["share_in_one_shape"] == 1


# -- the committed samples and random trees --------------------------------------------------


def test_samples_keep_their_verdict() -> None:
    with correlate.open_store(":memory:") as store:
        store.ingest(["sample_traces/checkout-blackfriday"], run="bf")
        store.ingest(["sample_traces/checkout-fixed"], run="fixed")
        with open_run(store, "bf") as run:
            (n1,) = [f for f in run.findings() if f.kind == FindingKind.N_PLUS_ONE]
        with open_run(store, "fixed") as run:
            fixed = [f for f in run.findings() if f.severity != "info"]
    assert n1.route == "/orders/recent" and n1.severity == "critical"
    assert n1.evidence["calls_per_request"] == 20
    assert fixed == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_trees())
def test_random_span_trees_never_crash_the_family(b: RunBuilder) -> None:
    for f in findings(b):
        assert f.severity in ("info", "warning", "critical")
        assert f.evidence["calls_per_request"] >= 2
        assert 0 <= f.evidence["share_of_requests"] <= 1


def test_bound_values_recorded_on_the_span_tell_redundant_from_n_plus_one() -> None:
    b = RunBuilder()
    for i in range(5):
        trace = f"t{i}"
        r = b.request(trace, i * 1000, i * 1000 + 100, "/a")
        for n, value in enumerate(["7", "7", "8", "9", "10", "11"]):
            b.query(
                trace, r, i * 1000 + n * 10, i * 1000 + n * 10 + 1, "SELECT * FROM a WHERE id = $1"
            )
            b.spans[-1]["attributes"] = json.dumps({"db.query.parameter.0": value})
    found = {f.kind: f for f in findings(b)}
    assert set(found) == {FindingKind.N_PLUS_ONE, FindingKind.REDUNDANT_CALLS}
    assert found[FindingKind.REDUNDANT_CALLS].evidence["calls_per_request"] == 2
    assert found[FindingKind.N_PLUS_ONE].evidence["calls_per_request"] == 6


def test_hotrod_dispatch_calls_route_once_per_driver() -> None:
    """Jaeger's HotROD: ten /route calls per /dispatch, three at a time (ids in the query
    string); the redis GetDriver retries after an error are not redundant calls."""
    with correlate.open_store(":memory:") as store:
        store.ingest([PEERS / "hotrod"], run="hotrod")
        with open_run(store, "hotrod") as run:
            found = [f for d in FAMILY for f in d(run)]
    http = [f for f in found if f.evidence.get("family") == "http"]
    (f,) = http
    assert f.route is not None and f.route.endswith("/dispatch")
    assert f.evidence["shape"] == "GET route /route"
    assert (f.evidence["requests"], f.evidence["calls_per_request"]) == (8, 10)
    assert not [f for f in found if f.kind in (FindingKind.REDUNDANT_CALLS, FindingKind.FAN_OUT)]
