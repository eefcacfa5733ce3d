"""Acceptance on the committed sample runs: the planted faults are named, the fixed run is clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.analysis.verdict import Analysis

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"


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
    assert "correlate/demo/app.py:131" in top.suggestion
    assert top.evidence["timeouts"] == 105
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
    assert fixed.summary["requests"] == 1811


def test_text_verdict_puts_findings_before_tables(analyses: dict[str, Analysis]) -> None:
    text = analyses["checkout-blackfriday"].to_text()
    assert text.index("Connection-pool leak") < text.index("N+1") < text.index("Routes")
    assert "No findings" in analyses["checkout-fixed"].to_text()
