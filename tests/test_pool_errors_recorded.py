"""Pools that make no checkout span, read from their errors in real OpenTelemetry output.

tests/data/pool-errors holds short runs of examples/flask-psycopg recorded by its record.sh
(the settings of each are in that directory's README.md): the spans of the SDK's Flask and
psycopg2 / psycopg instrumentations as ``correlate collect`` received them, ``correlate
watch``'s samples of the database, and Locust's CSVs. No span covers a checkout; a request
that found the pool empty failed with the pool's own error, recorded on its SERVER span.

Two runs were read wrong until each failure was read at the moment it failed rather than
when its request began: ``psycopg2-saturation`` (psycopg2's pool with minconn 1 closes
connections given back beyond it and opens new ones inside its lock, before the request's
first query, so at a failed request's start a quarter of the failures saw fewer than 2 of
the 3 holders: undecided; ``-kept`` is the same load with minconn 3) and
``psycopg3-saturation-overcount`` (a pool of 2 seen with 3 holders by 6 of the first
window's 51 failures, a request past ``putconn`` still counted until its end: a fall from 3
to 2 read as a leak).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import correlate
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_evidence import held_sessions
from correlate.analysis.verdict import Analysis
from correlate.kinds import FindingKind
from correlate.render import text
from correlate.render.units import evidence_items
from correlate.render.words import time_split

from .test_leak import causes

DATA = Path(__file__).parent / "data" / "pool-errors"


@dataclass(frozen=True)
class Recorded:
    verdict: FindingKind
    #: the pool's words, as its request spans carry them
    said: str
    #: the pool's size (POOL_SIZE)
    size: int


PSYCOPG2 = "psycopg2.pool.PoolError: connection pool exhausted"
PSYCOPG3 = "psycopg_pool.PoolTimeout: couldn't get a connection after"

RUNS = {
    "psycopg2-leak": Recorded(FindingKind.POOL_LEAK, PSYCOPG2, 4),
    "psycopg3-leak": Recorded(FindingKind.POOL_LEAK, PSYCOPG3 + " 1.00 sec", 4),
    "psycopg2-saturation": Recorded(FindingKind.POOL_SATURATION, PSYCOPG2, 3),
    "psycopg2-saturation-kept": Recorded(FindingKind.POOL_SATURATION, PSYCOPG2, 3),
    "psycopg3-saturation": Recorded(FindingKind.POOL_SATURATION, PSYCOPG3 + " 0.30 sec", 2),
    "psycopg3-saturation-overcount": Recorded(
        FindingKind.POOL_SATURATION, PSYCOPG3 + " 0.30 sec", 2
    ),
}
LEAKS = [name for name, r in RUNS.items() if r.verdict == FindingKind.POOL_LEAK]


@pytest.fixture(scope="module")
def store() -> Iterator[correlate.Store]:
    with correlate.open_store(":memory:") as store:
        yield store


@pytest.fixture(scope="module")
def analysed(store: correlate.Store) -> dict[str, Analysis]:
    return {name: correlate.analyze(DATA / name, store=store, run=name) for name in RUNS}


def _pool(analysis: Analysis) -> list[correlate.Finding]:
    return [f for f in analysis.findings if f.kind.startswith("pool_")]


@pytest.mark.parametrize("name", list(RUNS))
def test_the_pool_finding_names_the_runs_cause(analysed: dict[str, Analysis], name: str) -> None:
    analysis, recorded = analysed[name], RUNS[name]
    assert [f.kind for f in _pool(analysis)] == [recorded.verdict]
    assert causes(analysis.findings) == {str(recorded.verdict)}
    (f,) = _pool(analysis)
    assert f.severity == "critical"
    inferred = f.evidence["checkout_spans"]
    assert inferred["verdict"] == str(recorded.verdict).removeprefix("pool_")


@pytest.mark.parametrize("name", list(RUNS))
def test_the_finding_says_the_pools_own_error_and_counts_each(
    analysed: dict[str, Analysis], store: correlate.Store, name: str
) -> None:
    analysis, recorded = analysed[name], RUNS[name]
    (f,) = _pool(analysis)
    words = f"requests found no connection to take from the pool ({recorded.said}"
    assert words in f.explanation
    assert f.evidence["pool_error_of"].startswith(recorded.said.split(".")[0])
    # every request that failed with the pool's error, as the SDK recorded it
    with correlate.open_run(store, name) as run:
        row = run.con.execute(
            """
            SELECT count(*) FROM spans
            WHERE run_id = $run AND kind = 'SERVER' AND status_code = 'ERROR'
              AND len(list_filter(events, lambda e: e.name = 'exception'
                      AND e.attributes->>'$."exception.type"' LIKE 'psycopg%Pool%')) > 0
            """,
            {"run": run.run_id},
        ).fetchone()
    assert row is not None
    failed = row[0]
    assert failed > 20
    assert f.evidence["requests_without_a_connection"] == failed


@pytest.mark.parametrize("name", list(RUNS))
def test_where_the_time_went_counts_failed_checkouts_only(
    analysed: dict[str, Analysis], name: str
) -> None:
    line = time_split(analysed[name].summary)
    assert line.startswith("Where the time went: pool wait ")
    assert "% (failed checkouts only), database " in line
    (shown,) = [
        text for text in analysed[name].to_text().splitlines() if text.startswith("Where the time")
    ]
    assert "(failed checkouts only)" in shown


def test_psycopg2s_leaked_connections_sat_idle_in_transaction(
    analysed: dict[str, Analysis],
) -> None:
    # a declined payment raised after its INSERT: the pool keeps each leaked connection, and
    # the database saw every one of them left in that transaction
    (f,) = _pool(analysed["psycopg2-leak"])
    sessions = f.evidence["database_sessions"]
    assert sessions["held_sessions"] == RUNS["psycopg2-leak"].size
    assert sessions["longest_held_s"] > 10 * sessions["longest_request_s"]
    assert "sessions of the service sit idle in transaction" in f.explanation


def test_psycopg3s_leak_is_read_from_the_empty_pool_alone(
    analysed: dict[str, Analysis], store: correlate.Store
) -> None:
    # psycopg_pool keeps no reference to a connection it lent: a leaked one is closed when
    # it is garbage-collected, so the database sees no session held, while the pool still
    # counts it out. The pool's errors say the rest: empty, with no running request holding
    (f,) = _pool(analysed["psycopg3-leak"])
    inferred = f.evidence["checkout_spans"]
    assert inferred["held_before_the_pool_emptied"] == RUNS["psycopg3-leak"].size
    assert inferred["capacity_last"] == 0
    failed = f.evidence["requests_without_a_connection"]
    assert f"none did when any of the {failed} failed checkouts found the pool empty" in (
        f.explanation
    )
    with correlate.open_run(store, "psycopg3-leak") as run:
        sessions = held_sessions(run, PoolSettings())
    assert sessions is not None and sessions["held_sessions"] == 0


@pytest.mark.parametrize("name", [n for n in RUNS if n not in LEAKS])
def test_a_saturated_pool_left_no_session_in_a_transaction(
    store: correlate.Store, name: str
) -> None:
    # the database's own view, whatever the verdict: no session held, never more busy than
    # the pool allows
    with correlate.open_run(store, name) as run:
        sessions = held_sessions(run, PoolSettings())
    assert sessions is not None and sessions["samples"] >= 15
    assert sessions["held_sessions"] == 0
    assert 1 <= sessions["active_max"] <= RUNS[name].size


@pytest.mark.parametrize("name", [n for n in RUNS if n not in LEAKS])
def test_the_slow_pg_sleep_is_not_sent_to_an_index(
    analysed: dict[str, Analysis], name: str
) -> None:
    # GET /products holds its connection in `SELECT pg_sleep(%s)`: it reads no table, so
    # its time is pg_sleep's own, and neither a plan nor an index would shorten it
    (f,) = [f for f in analysed[name].findings if f.kind == FindingKind.SLOW_QUERY]
    assert f.evidence["statement"] == "SELECT pg_sleep($1)"
    assert f.suggestion.startswith("Its time is the work of pg_sleep() itself")
    assert "index on the filtered columns" not in f.suggestion


@pytest.mark.parametrize("name", list(RUNS))
def test_failed_checkouts_are_called_timeouts_only_when_they_timed_out(
    analysed: dict[str, Analysis], name: str
) -> None:
    # psycopg2's pool refuses a checkout at once (PoolError: connection pool exhausted):
    # nothing timed out, and the report does not say so; psycopg_pool's waited, then gave up
    (f,) = _pool(analysed[name])
    timed_out = "Timeout" in RUNS[name].said
    assert f.evidence["checkouts_timed_out"] is timed_out
    # the JSON keys stay; the reports name the entries for what they count
    failed = f"{f.evidence['timeouts']:,}"
    shown = dict(evidence_items(f.evidence))
    report = text.render(analysed[name], width=100)
    if timed_out:
        assert shown["timeouts"] == failed
        assert "or timeouts" in f.threshold
    else:
        assert shown["failed checkouts"] == failed
        assert shown["requests failed at checkout"] == failed
        assert shown["pool error"] == RUNS[name].said
        assert "or failed checkouts" in f.threshold
        assert "timeout" not in report.lower()
