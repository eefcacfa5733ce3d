"""Acceptance on the committed sample runs: the planted faults are named, the fixed run is clean."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.analysis.verdict import Analysis

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"
APP = Path(__file__).resolve().parents[1] / "correlate" / "demo" / "app.py"


def _checkout_session_line() -> int:
    """The line of ``correlate/demo/app.py`` where checkout's session first takes a connection
    (its first query), the one it leaks."""
    lines = APP.read_text().splitlines()
    start = lines.index("    def checkout() -> Any:")
    return next(i for i in range(start, len(lines)) if "session.get(Customer" in lines[i]) + 1


def _run_json(name: str) -> dict[str, object]:
    return json.loads((SAMPLES / name / "run.json").read_text())


@pytest.fixture(scope="module")
def analyses() -> Iterator[dict[str, Analysis]]:
    with correlate.open_store(":memory:") as store:
        yield {
            name: correlate.analyze(SAMPLES / name, store=store)
            for name in ("checkout-blackfriday", "checkout-fixed")
        }


def test_blackfriday_ranks_the_pool_leak_first(analyses: dict[str, Analysis]) -> None:
    top = analyses["checkout-blackfriday"].findings[0]
    assert top.kind == "pool_leak"
    assert top.severity == "critical"
    assert top.route == "/checkout"
    assert top.evidence["leaked_connections"] == 10
    assert f"correlate/demo/app.py:{_checkout_session_line()}" in top.suggestion
    # every checkout that timed out in the service is counted
    assert top.evidence["timeouts"] == _run_json("checkout-blackfriday")["pool_totals"]["timeouts"]  # type: ignore[index]
    # the leak happens on the declined-payment path (HTTP 402)
    assert "402" in top.explanation


def test_blackfriday_names_the_n_plus_one_and_the_slow_query(
    analyses: dict[str, Analysis],
) -> None:
    by_kind = {f.kind: f for f in analyses["checkout-blackfriday"].findings}
    n1 = by_kind["n_plus_one"]
    assert n1.route == "/orders/recent"
    assert n1.evidence["calls_per_request"] == pytest.approx(20)
    assert "order_items" in n1.title
    slow = by_kind["slow_query"]
    assert slow.route == "/customers/<int:customer_id>/orders"
    assert "orders" in slow.title
    queries = analyses["checkout-blackfriday"].queries.set_index("fingerprint")
    assert queries.loc[slow.fingerprint, "tables"].tolist() == ["correlate_demo.orders"]
    assert queries.loc[n1.fingerprint, "tables"].tolist() == ["correlate_demo.order_items"]
    # the timeouts show up as an error burst tied to the pool
    assert "pool" in by_kind["error_burst"].explanation
    # and nothing on the healthy control route
    assert all(f.route != "/health" for f in analyses["checkout-blackfriday"].findings)


def test_fixed_run_has_no_warning_level_findings(analyses: dict[str, Analysis]) -> None:
    fixed = analyses["checkout-fixed"]
    assert [f for f in fixed.findings if f.severity in ("critical", "warning")] == []
    # every request the load generator made reached the service (one may be cut at the end)
    with gzip.open(SAMPLES / "checkout-fixed" / "load" / "requests.jsonl.gz", "rt") as fh:
        sent = sum(1 for line in fh if line.strip())
    assert abs(fixed.summary["requests"] - sent) <= max(2, sent // 100)


def test_text_verdict_puts_findings_before_tables(analyses: dict[str, Analysis]) -> None:
    text = analyses["checkout-blackfriday"].to_text()
    assert text.index("Connection-pool leak") < text.index("N+1") < text.index("Routes")
    assert "No findings" in analyses["checkout-fixed"].to_text()


def test_blackfriday_names_the_hot_row_and_the_call_inside_its_transaction(
    analyses: dict[str, Analysis],
) -> None:
    (lock,) = [f for f in analyses["checkout-blackfriday"].findings if f.kind == "lock_contention"]
    assert lock.severity in ("warning", "critical")
    assert lock.route == "/checkout"
    # the statement: the doorbuster's stock UPDATE, by fingerprint and text
    assert lock.evidence["statement"].startswith("UPDATE correlate_demo.products SET stock")
    queries = analyses["checkout-blackfriday"].queries.set_index("fingerprint")
    assert queries.loc[lock.fingerprint, "tables"].tolist() == ["correlate_demo.products"]
    # what /checkout does while it holds the row: the fraud check, most of the hold
    top = lock.evidence["held_doing"][0]
    assert top["doing"] == "HTTP call POST /fraud-check" and top["category"] == "downstream"
    assert top["total_ms"] > 0.5 * sum(d["total_ms"] for d in lock.evidence["held_doing"])
    assert "POST /fraud-check" in lock.title and "inside the transaction" in lock.explanation
    # queueing: waits grow with the number ahead, from well under a millisecond alone
    by_ahead = lock.evidence["median_ms_by_ahead"]
    assert by_ahead["0"] < 5 < by_ahead["1"]
    assert lock.evidence["queued"] >= 0.8 * lock.evidence["contended"] >= 8


def test_fixed_run_has_no_lock_contention(analyses: dict[str, Analysis]) -> None:
    fixed = analyses["checkout-fixed"]
    assert [f for f in fixed.findings if f.kind == "lock_contention"] == []
    # the fixed service still runs the UPDATE and the fraud check, in the other order
    texts = fixed.queries["normalized"].tolist()
    assert any(t.startswith("UPDATE correlate_demo.products SET stock") for t in texts)
