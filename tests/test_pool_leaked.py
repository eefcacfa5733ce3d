"""Capacity drops from pool metrics (analysis.pool_leaked), alone and beside checkout spans."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from correlate.analysis import open_run
from correlate.analysis import pool_holders as holders
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_inference import Group, infer
from correlate.analysis.pool_leaked import Window, _capped_binomial, attribute, leaked_windows, tail

from .builders import RunBuilder, ns
from .test_leak import LEAK, simulate

S = 1_000_000_000


def test_connections_in_use_that_no_running_request_holds_are_the_lost_ones() -> None:
    times = np.array([0, 1, 2, 3, 4], dtype=np.int64) * S
    used = np.array([4, 4, 4, 4, 4])
    held = np.array([4, 3, 3, 1, 1])  # one lost in (0, 1], two in (2, 3]
    windows = leaked_windows(np, times, used, held, 4, 0)
    assert [(w.after_ns, w.before_ns, w.capacity_before, w.lost) for w in windows] == [
        (0, S, 4, 1),
        (2 * S, 3 * S, 3, 2),
    ]
    # the window reaches past its sample by the clocks' slack
    assert [w.before_ns for w in leaked_windows(np, times, used, held, 4, 5)] == [S + 5, 3 * S + 5]


def test_a_holder_the_spans_missed_for_one_sample_is_not_a_lost_connection() -> None:
    times = np.arange(7, dtype=np.int64) * S
    used = np.full(7, 4)
    held = np.array([4, 2, 4, 4, 4, 3, 3])  # at 1 s two holders were missed; one lost by 5 s
    windows = leaked_windows(np, times, used, held, 4, 0)
    assert [(w.after_ns, w.lost) for w in windows] == [(4 * S, 1)]
    # ...nor one counted holding after it gave its connection back
    held = np.array([4, 3, 3, 4, 3, 3, 3])
    windows = leaked_windows(np, times, used, held, 4, 0)
    assert [(w.after_ns, w.lost) for w in windows] == [(0, 1)]


def test_a_pool_with_idle_connections_loses_none() -> None:
    times = np.arange(4, dtype=np.int64) * S
    windows = leaked_windows(np, times, np.array([2, 3, 1, 0]), np.array([2, 3, 1, 0]), 5, 0)
    assert windows == []


def _windows(placed: list[list[str]], lost: list[int]) -> tuple[Counter[str], list[Window]]:
    """Windows whose candidates are the requests of each list of ``placed``, and how
    many requests of each group there are in all."""
    totals: Counter[str] = Counter()
    windows = []
    for k, (names, n) in enumerate(zip(placed, lost, strict=True)):
        totals.update(names)
        windows.append(Window(k * S, (k + 1) * S, 10 - k, n, Counter(names)))
    return totals, windows


def test_the_group_in_every_window_that_lost_a_connection_is_named() -> None:
    crowd = ["GET /a"] * 30
    placed = [[*crowd, "POST /b 402"] for _ in range(5)] + [crowd + crowd for _ in range(20)]
    totals, windows = _windows(placed[:5], [1] * 5)
    totals.update(g for names in placed[5:] for g in names)  # requests outside any window
    found, tried = attribute(totals, windows)
    assert found is not None and found.group == "POST /b 402"
    assert (found.followed, found.lost) == (5, 5)
    assert found.p_value < 1e-4
    assert set(tried) == {"GET /a", "POST /b 402"}


def test_a_group_found_as_often_as_its_share_says_is_not_named() -> None:
    # "POST /b 402" is a tenth of the requests and in about a tenth of the candidates
    placed = [["GET /a"] * 9 + (["POST /b 402"] if k % 3 == 0 else []) for k in range(9)]
    totals, windows = _windows(placed, [1] * 9)
    totals["POST /b 402"] += 7
    found, _ = attribute(totals, windows)
    assert found is not None and found.p_value > 0.05


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.floats(0, 1), st.integers(1, 4)), min_size=1, max_size=6
    ),
    st.integers(0, 30),
)
def test_the_chance_of_as_many_follows_is_a_probability_falling_with_more(
    windows: list[tuple[int, float, int]], k: int
) -> None:
    dists = [_capped_binomial(n, q, cap) for n, q, cap in windows]
    for d in dists:
        assert sum(d) == pytest.approx(1.0) and all(p >= 0 for p in d)
    assert 0.0 <= tail(dists, k + 1) <= tail(dists, k) <= 1.0
    assert tail(dists, 0) == pytest.approx(1.0)


def _with_pool_metrics(b: RunBuilder, every_ms: float) -> None:
    """Pool samples as the OpenTelemetry metrics of the simulated pool would give them."""
    by_trace: dict[str, dict[str, float]] = {}
    for span in b.spans:
        got = by_trace.setdefault(span["trace_id"], {})
        if span["kind"] == "SERVER":
            got["end"] = span["end_ns"]
            got["leaks"] = span["http_status_code"] == 409
        elif span["name"] == "connect" and span["status_code"] != "ERROR":
            got["acquired"] = span["end_ns"]
    reqs = [r for r in by_trace.values() if "acquired" in r]
    last = max(r["end"] for r in reqs)
    t = 0.0
    while ns(t) <= last:
        now = ns(t)
        used = sum(r["acquired"] <= now and (r["leaks"] or now < r["end"]) for r in reqs)
        b.sample(t, min(used, LEAK.capacity), capacity=LEAK.capacity)
        b.samples[-1]["pool_class"] = "otel db.client.connection"
        t += every_ms


def test_with_the_pool_metrics_the_leak_is_named_from_the_drops_they_pin() -> None:
    b = RunBuilder()
    count = simulate(b, LEAK, users=lambda t: 10)
    _with_pool_metrics(b, every_ms=100)
    with open_run(b.build(), "r") as run:
        inf = infer(run, PoolSettings())
        (finding,) = pool_exhaustion(run)
    assert inf is not None and inf.verdict == "leak"
    assert inf.drops_from == "pool metrics"
    assert "capacity drops follow a POST /orders that answered 409" in finding.explanation
    assert "; the drops were read from the pool metrics: connections in use" in finding.explanation
    assert inf.culprit is not None
    assert inf.culprit.group == Group("/orders", "POST", 409, None)
    assert inf.culprit.p_value < 1e-3
    assert inf.evidence()["drops_from"] == "pool metrics"
    # one drop per connection lost (the pool has 10), each after a POST /orders 409
    assert 5 <= len(inf.steps) <= min(count["leaked"], LEAK.capacity)
    assert inf.culprit.steps_followed == inf.culprit.steps == len(inf.steps)


def test_with_two_pools_in_the_metrics_the_drops_come_from_the_checkout_spans() -> None:
    # which requests use which pool is not in the spans: the metrics cannot be matched
    b = RunBuilder()
    simulate(b, LEAK, users=lambda t: 10)
    _with_pool_metrics(b, every_ms=100)
    for sample in b.samples[::2]:
        sample["pid"] = 2
    with open_run(b.build(), "r") as run:
        inf = infer(run, PoolSettings())
    assert inf is not None and inf.verdict == "leak"
    assert inf.drops_from == "checkout spans"
    assert inf.culprit is not None and inf.culprit.group.status == 409


def test_between_one_pool_query_and_the_next_checkout_a_request_holds_nothing() -> None:
    # node-postgres' pool.query: a checkout per statement, the client back after each
    b = RunBuilder()
    r = b.request("t1", 0, 100, "/orders/recent")
    b.connect("t1", r, 1, 2)
    b.query("t1", r, 2, 10)
    b.connect("t1", r, 30, 31)  # the app worked from 10 to 30 ms without a connection
    b.query("t1", r, 31, 40)
    b.query("t1", r, 41, 45)  # a second statement on the same checkout
    with open_run(b.build(), "r") as run:
        ((service, _),) = holders.services(run, PoolSettings())
        holds = holders._query(
            run, "", "SELECT start_ns, end_ns FROM holds", service, PoolSettings()
        )
    assert sorted(holds) == [(ns(2), ns(10)), (ns(31), ns(45))]
