"""Comparing runs: the CI gate's verdicts, its statistics and its rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.diff import RunDiff, diff
from correlate.diff.rules import parse_rules
from correlate.diff.stats import quantile_ratio
from correlate.errors import CorrelateError, InputError
from correlate.store import Store

from .builders import RunBuilder

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"
FIXED, BF = SAMPLES / "checkout-fixed", SAMPLES / "checkout-blackfriday"


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with correlate.open_store(":memory:") as s:
        yield s


@pytest.fixture(scope="module")
def regression(store: Store) -> RunDiff:
    return diff(FIXED, BF, store=store)


def test_blackfriday_against_fixed_is_a_regression_naming_the_faults(regression: RunDiff) -> None:
    assert regression.regressed
    kinds = {f.kind for f in regression.new_findings}
    assert {"pool_leak", "n_plus_one", "slow_query"} <= kinds
    n1 = next(q for q in regression.queries if q.route == "/orders/recent" and q.status == "new")
    assert n1.candidate_per_request == pytest.approx(20)
    assert any("/customers/<int:customer_id>/orders p95" in f for f in regression.failures)
    # the scan: the customer-orders query lost its index, plan against plan
    scan = next(q for q in regression.queries if q.fingerprint == "9d713e7aca993f02")
    assert "new: seq_scan" in scan.plan_changes
    assert "no longer uses index ix_orders_customer_id on orders" in scan.plan_changes
    # the healthy control route did not move enough to call it
    health = next(r for r in regression.routes if r.route == "/health")
    assert not health.significant("p95", 0.10)
    assert regression.load["matched"] == "steady stage"


def test_a_run_against_itself_is_no_change(store: Store) -> None:
    same = diff(FIXED, FIXED, store=store)
    assert not same.regressed and same.unchanged
    assert "no change" in same.to_text()
    assert all(
        r.ratios["p95"][1] <= 1.0 <= r.ratios["p95"][2] for r in same.routes if "p95" in r.ratios
    )
    assert [r.route for r in same.routes if "p95" in r.skipped] == []  # /health: 85 requests


def test_markdown_is_a_small_pr_comment_and_json_is_strict(regression: RunDiff) -> None:
    md = regression.to_markdown()
    assert len(md.encode()) < 4096
    assert md.startswith("### 🔴 correlate: REGRESSION")
    assert "\\<int:customer\\_id\\>" in md  # route text escaped for Markdown
    doc = json.loads(regression.to_json(), parse_constant=lambda c: pytest.fail(c))
    assert doc["schema"] == "correlate.diff/1" and doc["regressed"] is True
    assert {q["status"] for q in doc["queries"]} >= {"new", "vanished"}


def test_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "s.duckdb")
    bad = runner.invoke(cli, ["diff", str(FIXED), str(BF), "--db", db])
    assert bad.exit_code == 1
    assert "REGRESSION" in bad.output
    same = runner.invoke(cli, ["diff", "checkout-fixed", "checkout-fixed", "--db", db])
    assert same.exit_code == 0
    assert "no change" in same.output
    out = tmp_path / "diff.md"
    written = runner.invoke(
        cli, ["diff", "checkout-fixed", "checkout-blackfriday", "--db", db, "-o", str(out)]
    )
    assert written.exit_code == 1 and out.read_text().startswith("### 🔴")
    missing = runner.invoke(cli, ["diff", "checkout-fixed", "nope", "--db", db])
    assert missing.exit_code == 2
    usage = runner.invoke(cli, ["diff", "a", "b", "--fail-on", "p95:10", "--db", db])
    assert usage.exit_code == 2
    assert "p95:+10%" in usage.output


def test_bootstrap_interval_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(1)
    a = rng.lognormal(3, 0.5, 2000)
    b = 1.3 * rng.lognormal(3, 0.5, 2000)
    r = quantile_ratio(a, b, 0.95, seed=3)
    assert r.low < 1.3 < r.high
    assert r.excludes_one()
    same = quantile_ratio(a, a, 0.95)
    assert same.ratio == 1.0 and same.low <= 1.0 <= same.high


def test_rules_parse_and_refuse() -> None:
    rules = parse_rules(["p99:+5%", "queries-per-request:+0.5", "new-finding:critical"])
    assert [(r.kind, r.quantile, r.threshold, r.severity) for r in rules] == [
        ("latency", "p99", 0.05, None),
        ("queries", None, 0.5, None),
        ("finding", None, 0.0, "critical"),
    ]
    assert rules[2].severity_counts("critical") and not rules[2].severity_counts("warning")
    with pytest.raises(InputError, match="not a rule"):
        parse_rules(["latency:+10%"])


def _listing(b: RunBuilder, calls: int, users: int = 5) -> None:
    for i in range(300):
        trace = f"t{i}"
        start = i * 100.0
        r = b.request(trace, start, start + 10 + calls * 3, "/list")
        for n in range(calls):
            b.query(
                trace, r, start + 5 + n * 3, start + 7 + n * 3, f"SELECT * FROM x WHERE id = {n}"
            )
        b.user_request(i % users, start, 10 + calls * 3, "/list")


def test_queries_per_request_rule_and_load_mismatch_note() -> None:
    with correlate.open_store(":memory:") as store:
        base = RunBuilder(name="base")
        _listing(base, calls=2)
        base.build(store)
        cand = RunBuilder(name="cand")
        _listing(cand, calls=4, users=2)
        cand.build(store)
        result = diff("base", "cand", store=store, fail_on=["queries-per-request:+1"])
    assert result.failures == [
        "queries-per-request:+1: /list runs "
        f"{result.queries[0].fingerprint} 4.0× per request (was 2.0)"
    ]
    assert any("different peak load" in n for n in result.notes)


def test_too_few_requests_are_not_compared() -> None:
    with correlate.open_store(":memory:") as store:
        for name, ms in (("a", 10.0), ("b", 40.0)):
            b = RunBuilder(name=name)
            for i in range(10):
                b.request(f"t{i}", i * 100, i * 100 + ms)
            b.build(store)
        result = diff("a", "b", store=store)
    (route,) = result.routes
    assert route.note and "too few requests" in route.note
    # the latency rule could be judged nowhere: the gate fails rather than pass blind
    assert result.failures == [
        "not judged: p95:+10% on no route: /a had fewer than 20 requests on one side "
        "(run the smoke load longer)"
    ]
    assert any("offered load" in n for n in result.notes)


def test_unknown_run_is_an_error() -> None:
    with correlate.open_store(":memory:") as store, pytest.raises(CorrelateError, match="nope"):
        diff("nope", "nope", store=store)


def _steady(
    b: RunBuilder, routes: int, n: int, *, rng: np.random.Generator, fail_every: int = 0
) -> None:
    for route in range(routes):
        for i in range(n):
            start = route * 100_000 + i * 300.0
            failed = bool(fail_every) and i % fail_every == 0
            b.request(
                f"r{route}t{i}",
                start,
                start + float(rng.lognormal(5, 0.4)),
                f"/r{route}",
                status=500 if failed else 200,
                error=failed,
            )


def test_a_rise_in_errors_is_a_regression_even_at_equal_latency() -> None:
    with correlate.open_store(":memory:") as store:
        for name, fail_every in (("base", 0), ("cand", 10)):
            b = RunBuilder(name=name)
            _steady(b, 1, 300, rng=np.random.default_rng(7), fail_every=fail_every)
            b.build(store)
        result = diff("base", "cand", store=store)
    assert result.regressed and not result.unchanged
    assert result.failures == ["errors:+1%: /r0 errors 0.0% → 10.0% (0 of 300 → 30 of 300)"]


def test_a_finding_that_grew_worse_is_new() -> None:
    with correlate.open_store(":memory:") as store:
        for name, share in (("base", 0.04), ("cand", 1.0)):
            b = RunBuilder(name=name)
            for i in range(200):
                r = b.request(f"t{i}", i * 300, i * 300 + 200, "/a")
                if i < share * 200:
                    for k in range(12):
                        at = i * 300 + 5 + k * 15
                        # one id per item: an N+1 (the same id each time is a redundant call)
                        b.query(f"t{i}", r, at, at + 12, f"SELECT * FROM items WHERE id = {k}")
            b.build(store)
        result = diff(
            "base", "cand", store=store, fail_on=["new-finding:warning", "queries-per-request:+1"]
        )
    (n1,) = result.new_findings
    assert n1.kind == "n_plus_one" and n1.severity == "critical"  # was info in the baseline
    (calls,) = [q for q in result.queries if q.status == "changed"]
    assert (calls.baseline_per_request, calls.candidate_per_request) == (
        pytest.approx(0.48),
        pytest.approx(12),
    )
    assert len(result.failures) == 2


def test_small_samples_and_many_routes_are_tested_honestly() -> None:
    with correlate.open_store(":memory:") as store:
        for name, offset, n in (("a", 0, 50), ("b", 1000, 50), ("c", 0, 150), ("d", 1, 150)):
            b = RunBuilder(name=name)
            _steady(b, 5, n, rng=np.random.default_rng(offset))
            b.build(store)
        small = diff("a", "b", store=store, fail_on=["p99:+10%"])
        big = diff("c", "d", store=store)
    # a p99 of 50 requests is their slowest: not compared, and said so
    assert all("p99" not in r.ratios and "p99 needs 100" in r.skipped["p99"] for r in small.routes)
    assert "p99 needs 100 requests a side to compare" in small.to_text()
    assert all("p95" in r.ratios for r in small.routes)
    # five routes tested at once: each interval at 1%, so 5% for the whole comparison
    assert [r.alpha for r in big.routes] == [pytest.approx(0.01)] * 5
    assert all("p95" in r.ratios for r in big.routes)
    assert "99.0% bootstrap interval" in big.to_text()


def test_a_run_without_requests_is_an_input_error(tmp_path: Path) -> None:
    """A candidate whose files were all skipped has nothing to compare: never "no regression"."""
    path = tmp_path / "s.duckdb"
    with correlate.open_store(path) as store:
        base = RunBuilder(name="base")
        _steady(base, 2, 300, rng=np.random.default_rng(1))
        base.build(store)
        RunBuilder(name="empty").build(store)
        for baseline, candidate in (("base", "empty"), ("empty", "base")):
            with pytest.raises(InputError, match="run 'empty' has no spans"):
                diff(baseline, candidate, store=store)
    result = CliRunner().invoke(cli, ["diff", "base", "empty", "--db", str(path)])
    assert result.exit_code == 2
    assert result.output == (
        "Error: run 'empty' has no spans to compare; check its ingest summary for skipped "
        "files, or pass --format if the format was misdetected\n"
    )


def test_a_route_gone_from_the_candidate_is_a_regression() -> None:
    with correlate.open_store(":memory:") as store:
        base = RunBuilder(name="base")
        _steady(base, 3, 300, rng=np.random.default_rng(3))
        base.build(store)
        cand = RunBuilder(name="cand")
        _steady(cand, 1, 300, rng=np.random.default_rng(3))
        for i in range(10):  # a handful: too few to compare, but served
            cand.request(f"few{i}", 400_000 + i * 300.0, 400_000 + i * 300.0 + 150, "/r2")
        cand.build(store)
        result = diff("base", "cand", store=store)
        lenient = diff("base", "cand", store=store, fail_on=["p95:+10%"])
    assert result.failures == [
        "missing-route:30: /r1 served 300 requests in the baseline and none in the candidate"
    ]
    gone = next(r for r in result.routes if r.route == "/r1")
    assert gone.missing and gone.note == "no requests in the candidate (300 in the baseline)"
    few = next(r for r in result.routes if r.route == "/r2")
    assert not few.missing and "too few requests" in (few.note or "")
    # without the rule it is no failure, but the comparison still says so
    assert not lenient.regressed and not lenient.unchanged
    assert "/r1: no requests in the candidate (300 in the baseline)" in lenient.to_text()
    assert "no requests in the candidate" in lenient.to_markdown()
    assert parse_rules(["missing-route:1"])[0].threshold == 1
