"""A leak's route named on recorded runs whose pool makes no checkout span.

- tests/data/knex-leak (its README says how it was recorded): knex never ran out, nothing
  failed; the only trace of the leak is two ``POST /checkout`` that began a transaction and
  answered 402 without ending it, and latency rising as their connections stayed out.
- tests/data/pool-errors/psycopg2-leak: psycopg2's pool ran dry, and ``correlate watch`` saw
  its four leaked sessions idle in transaction; the last statement of each began, to the
  millisecond, in a declined ``POST /checkout``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_suspects import matched_sessions, unended_transactions
from correlate.analysis.verdict import Analysis
from correlate.kinds import FindingKind

DATA = Path(__file__).parent / "data"
RUNS = {"knex-leak": DATA / "knex-leak", "psycopg2-leak": DATA / "pool-errors" / "psycopg2-leak"}
#: the declined payments of knex-leak, in the order they ended
KNEX_LEAKS = ("117836dccca2193762bb6f7ebcab1a25", "3fe3744997b955d2de2b06ec73ac5074")


@pytest.fixture(scope="module")
def store() -> Iterator[correlate.Store]:
    with correlate.open_store(":memory:") as store:
        yield store


@pytest.fixture(scope="module")
def analysed(store: correlate.Store) -> dict[str, Analysis]:
    return {name: correlate.analyze(path, store=store, run=name) for name, path in RUNS.items()}


def _leak(analysis: Analysis) -> correlate.Finding:
    (f,) = [f for f in analysis.findings if f.kind.startswith("pool_")]
    assert f.kind == FindingKind.POOL_LEAK
    return f


def test_knex_transactions_never_ended_are_the_leak_and_its_route(
    analysed: dict[str, Analysis], store: correlate.Store
) -> None:
    with correlate.open_run(store, "knex-leak") as run:
        found = unended_transactions(run, PoolSettings())
    assert found is not None and found.group is not None
    assert found.group.describe() == "POST /checkout that answered 402"
    assert (found.count, found.total) == (2, 2)
    assert found.traces == KNEX_LEAKS
    f = _leak(analysed["knex-leak"])
    assert f.title == "Connection-pool leak in POST /checkout that answered 402"
    assert f.trace_ids == KNEX_LEAKS
    assert f.evidence["requests_without_a_connection"] == 0
    assert "2 requests began a database transaction and ended without committing" in (f.explanation)
    assert "Start with the path of every POST /checkout that answered 402" in f.suggestion
    assert "correlate.instrument" not in f.suggestion
    # the wait for a connection is application time here: not CPU work, the leak's doing
    unexplained = [
        g for g in analysed["knex-leak"].findings if g.kind == FindingKind.UNEXPLAINED_TIME
    ]
    assert unexplained and all(g.evidence["cause"] == "pool_leak" for g in unexplained)
    assert all(f.title in g.suggestion for g in unexplained)


def test_psycopg2s_held_sessions_name_the_declined_checkout(
    analysed: dict[str, Analysis], store: correlate.Store
) -> None:
    with correlate.open_run(store, "psycopg2-leak") as run:
        found = matched_sessions(run, PoolSettings())
    assert found is not None and found.group is not None
    assert found.group.describe() == (
        "POST /checkout that answered 500 and raised __main__.PaymentDeclined"
    )
    matches = found.detail["matches"]
    assert found.total == len(matches) == found.detail["held"] == 4
    assert max(m["gap_ms"] for m in matches) < 1.0
    f = _leak(analysed["psycopg2-leak"])
    assert f.title == (
        "Connection-pool leak in POST /checkout that answered 500 and raised "
        "__main__.PaymentDeclined"
    )
    assert set(f.trace_ids) <= {m["trace_id"] for m in matches}
    assert f.evidence["leak_suspects"]["source"] == "database sessions"
    assert "Start with the path of every POST /checkout that answered 500" in f.suggestion
