"""Edges of telling a hung transaction from a leaked one (analysis.pool_suspects).

A request that began a transaction and then heard nothing back, while its service heard
nothing from that database either, was cut short by a database that stopped answering.
These runs try the signs that rule misreads: another database of the service answering
through the hang, a leak that answers its own error after a quiet spell, services apart.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_suspects import unended_transactions
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_pool_suspects import (
    FREEZE_MS,
    GAVE_UP_MS,
    RUN_MS,
    _findings,
    _read,
    committed,
    frozen,
    left_open,
)


def with_redis(b: RunBuilder, *, service: str = "svc", every: int = 900) -> RunBuilder:
    """``b`` with a session route of ``service`` that reads Redis every ``every`` ms all
    run long: a database the freeze of PostgreSQL does not touch."""
    for k, t in enumerate(range(50, RUN_MS, every)):
        trace = f"s{service}{k}"
        req = b.request(trace, t, t + 5, "/session", service=service)
        b.span(
            trace, t + 1, t + 2, parent=req, kind="CLIENT", db="redis", name="get",
            service=service,
        )  # fmt: skip
    return b


def worked_on(status: int, *, work: float = 1_500) -> RunBuilder:
    """A quiet shop (a checkout every 7 s) whose declined checkouts leave their transaction
    open and, after their last query, work ``work`` ms more with no span (a render, an
    uninstrumented call) before they answer ``status``."""
    b = RunBuilder()
    for k, t in enumerate(range(100, RUN_MS, 7_000)):
        trace = f"c{k}"
        committed(b, trace, b.request(trace, t, t + 30, "/checkout", status=201), t + 10)
    for k, t in enumerate((3_000, 10_000, 17_000, 24_000)):
        trace = f"declined{k}"
        req = b.request(trace, t, t + 14 + work, "/checkout", status=status)
        left_open(b, trace, req, t + 10)
    return b


def _unnamed(b: RunBuilder) -> RunBuilder:
    for sp in b.spans:
        sp["service"] = None
    return b


def test_a_freeze_of_postgresql_is_no_leak_while_redis_still_answers() -> None:
    # the service's Redis calls end through the hang: they say nothing of PostgreSQL
    b = with_redis(frozen())
    assert _read(b) is None
    assert FindingKind.POOL_LEAK not in [f.kind for f in _findings(b)]


def test_a_freeze_of_one_service_is_no_leak_while_another_service_answers() -> None:
    # another service's queries to its own database end all along
    b = frozen()
    for k, t in enumerate(range(0, RUN_MS, 100)):
        req = b.request(f"o{k}", t, t + 10, "/stock", service="stock")
        b.query(f"o{k}", req, t + 2, t + 3, "select * from stock where id = $1")
    assert _read(b) is None


def test_a_redis_call_of_the_request_itself_at_its_end_is_no_hang() -> None:
    # the request heard back from Redis just before it answered: it was not waiting on a
    # database that stopped, it returned with its transaction open
    b = frozen()
    for k, t in enumerate((FREEZE_MS - 20, FREEZE_MS - 10)):
        (req,) = [
            sp["span_id"] for sp in b.spans
            if sp["trace_id"] == f"hung{k}" and sp["kind"] == "SERVER"
        ]  # fmt: skip
        b.span(
            f"hung{k}", t + GAVE_UP_MS - 5, t + GAVE_UP_MS - 4, parent=req, kind="CLIENT",
            db="redis", name="set",
        )  # fmt: skip
    got = _read(b)
    assert got is not None and got.traces == ("hung0", "hung1")


@pytest.mark.parametrize("status", [402, 500])
def test_a_leak_that_answers_its_own_error_after_a_quiet_spell_stays_a_suspect(
    status: int,
) -> None:
    # nothing of the quiet shop ends while a declined checkout works on, yet it answered
    # its client itself, with an error: a leak's early return, not a client giving up
    got = _read(worked_on(status))
    assert got is not None
    assert (got.total, got.group and got.group.status) == (4, status)


def test_a_freeze_reads_the_same_without_a_service_name() -> None:
    # spans with no service.name: the hung requests and the answers all fall under one
    assert _read(_unnamed(frozen())) is None
    got = _read(_unnamed(with_redis(frozen(others_answered=True))))
    assert got is not None and got.traces == ("hung0", "hung1")


@pytest.mark.parametrize(
    "make",
    [
        lambda: with_redis(frozen()),
        lambda: with_redis(frozen(others_answered=True)),
        lambda: worked_on(402),
        lambda: worked_on(200),
        lambda: _unnamed(frozen()),
        lambda: _unnamed(frozen(others_answered=True)),
    ],
    ids=["redis", "redis-answered", "402", "200", "unnamed", "unnamed-answered"],
)
def test_clickhouse_tells_these_edges_as_duckdb_does(chdb: object, make: Any) -> None:
    from correlate.analysis.run import Run
    from tests.test_clickhouse_engine import copied

    store = make().build()
    with open_run(store, "r") as run:
        local = unended_transactions(run, PoolSettings())
    there, _ = copied(store, chdb, "r")
    assert unended_transactions(Run(there, "r"), PoolSettings()) == local  # type: ignore[arg-type]


def _checkouts(n: int) -> RunBuilder:
    """``n`` requests, two a millisecond: half product pages, half checkouts that commit
    but one in a thousand."""
    b = RunBuilder()
    for k in range(n):
        t, trace = k * 0.5, f"t{k}"
        req = b.request(trace, t, t + 30, "/checkout", status=201)
        b.query(trace, req, t + 1, t + 2, "BEGIN" if k % 2 else "select 1")
        if k % 2 and k % 1000 != 1:
            b.query(trace, req, t + 4, t + 5, "COMMIT")
    return b


def _best_time(n: int) -> float:
    with open_run(_checkouts(n).build(), "r") as run:
        run.table("parts")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            unended_transactions(run, PoolSettings())
            times.append(time.perf_counter() - t0)
    return min(times)


def test_telling_hangs_apart_grows_with_the_run_not_its_square() -> None:
    # an ASOF join of each request to its service's answers, planned as a nested loop on a
    # low estimate, took 4 s at 20,000 requests and 16 s at 40,000 (0.1 s before it)
    small, large = _best_time(5_000), _best_time(20_000)
    assert large < 8 * max(small, 0.01), (small, large)


def test_a_leak_whose_last_leak_runs_dry_the_pool_is_still_named() -> None:
    # a pool of four, with no checkout span; the export path begins a transaction, waits
    # 1.5 s on a call with no span and answers 200 without COMMIT. The fourth leak takes
    # the last connection: nothing of the service ends while it waits, and it reads as
    # hung; the three before it, answered while the pool still served, name the leak
    knex = json.dumps(
        {
            "exception.type": "KnexTimeoutError",
            "exception.message": "Knex: Timeout acquiring a connection. The pool is probably full.",
        }
    )
    dry = 20_014
    b = RunBuilder()
    for k, t in enumerate(range(0, RUN_MS, 200)):
        if t < dry:
            req = b.request(f"p{k}", t, t + 20, "/products/:id")
            b.query(f"p{k}", req, t + 2, t + 3, "select * from products where id = $1")
        else:
            b.span(
                f"p{k}", t, t + 2_000, kind="SERVER", route="/products/:id", http_status=500,
                status="ERROR", events=[{"time_ns": 0, "name": "exception", "attributes": knex}],
            )  # fmt: skip
    for k, t in enumerate(range(100, dry, 500)):
        committed(b, f"c{k}", b.request(f"c{k}", t, t + 30, "/checkout", status=201), t + 10)
    for k, t in enumerate((5_000, 10_000, 15_000, 20_000)):
        left_open(b, f"leak{k}", b.request(f"leak{k}", t, t + 1_515, "/export"), t + 10)
    got = _read(b)
    assert got is not None
    assert (got.total, got.traces) == (3, ("leak0", "leak1", "leak2"))
    (f,) = [f for f in _findings(b) if f.kind == FindingKind.POOL_LEAK]
    assert f.title == "Connection-pool leak in /export that answered 200"
