"""The pool inference in ClickHouse: what comes back grows with windows and drops, not spans.

The run's tables are copied into chDB and the inference runs through
:class:`correlate.clickhouse.engine.Engine`, which records the rows and bytes of
every result. A run whose every request is there five times over (same times,
new trace ids) waits five times as often, holds five times as many connections,
and must bring back no more rows per statement than the run itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_inference import PoolInference, infer
from correlate.analysis.run import Run
from correlate.store import Store
from tests.conftest import require_chdb
from tests.test_clickhouse_engine import copied

from .builders import RunBuilder
from .test_leak import LEAK, leak_steady, saturation_steady, simulate
from .test_pool_evidence import _metric_samples
from .test_pool_leaked import _with_pool_metrics

pytestmark = pytest.mark.clickhouse


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chDB session for the module (chDB holds one session directory per process)."""
    require_chdb()
    from correlate.clickhouse.connection import connect

    conn = connect(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    yield conn
    conn.close()


def _leaking(copies: int, *, metrics: bool = False) -> Store:
    """The leak of tests.test_leak, every request ``copies`` times over."""
    b = RunBuilder()
    simulate(b, LEAK, users=lambda t: 10)
    if metrics:
        _with_pool_metrics(b, every_ms=100)
    once = list(b.spans)
    for k in range(1, copies):
        for span in once:
            again = copy.deepcopy(span)
            again["trace_id"] = f"{span['trace_id']}-{k}"
            b.spans.append(again)
    return b.build()


def _inferred(conn: Any, store: Store) -> tuple[PoolInference, list[tuple[int, int, str]]]:
    """The inference on ClickHouse, and the (bytes, rows, statement) it fetched."""
    there, engine = copied(store, conn, "r")
    run = Run(there, "r")
    run.span  # noqa: B018 - the run's own tables and span, before the inference
    before = len(engine.fetches)
    inferred = infer(run, PoolSettings())
    assert inferred is not None
    return inferred, engine.fetches[before:]


def _same_as_local(store: Store, inferred: PoolInference) -> None:
    local = Run(store, "r")
    expected = infer(local, PoolSettings())
    assert expected is not None
    assert inferred.evidence() == expected.evidence()
    assert inferred.traces == expected.traces
    assert inferred.steps == expected.steps


def test_five_times_the_requests_bring_back_as_many_rows(chdb: Any) -> None:
    once, fivefold = _leaking(1), _leaking(5)
    small, fetched_small = _inferred(chdb, once)
    large, fetched_large = _inferred(chdb, fivefold)
    # the bigger run is really bigger, and read the same way
    assert large.waits == 5 * small.waits
    assert small.verdict == large.verdict == "leak"
    assert len(small.steps) == len(large.steps) > 0
    assert small.culprit is not None and large.culprit is not None
    # every statement (the holders per window, the drops, the moments of a few waits, the
    # candidates per drop and group, the groups, the waits on an idle database) brings back
    # no more rows at five times the requests: the same windows, drops and groups (the drops'
    # windows, so many waits wide, are narrower when every wait is there five times)
    assert len(fetched_large) == len(fetched_small) >= 7
    for (_, large_rows, statement), (_, small_rows, _) in zip(
        fetched_large, fetched_small, strict=True
    ):
        assert large_rows <= small_rows, statement
    # and hardly more bytes (the example traces' ids are longer by their suffix)
    assert sum(b for b, _, _ in fetched_large) <= 1.2 * sum(b for b, _, _ in fetched_small)
    biggest = max(rows for _, rows, _ in fetched_large)
    assert biggest < large.waits / 20
    _same_as_local(fivefold, large)


def test_the_drops_from_pool_metrics_come_back_per_sample(chdb: Any) -> None:
    store = _leaking(1, metrics=True)
    (samples,) = store.con.execute("SELECT count(*) FROM pool_samples").fetchone() or (0,)
    inferred, fetched = _inferred(chdb, store)
    assert inferred.drops_from == "pool metrics" and inferred.culprit is not None
    # the largest results are the samples themselves (one row per sample, at most)
    assert max(rows for _, rows, _ in fetched) <= samples
    _same_as_local(store, inferred)


def _metric_leak() -> Store:
    b = leak_steady()
    _metric_samples(b, used=10)
    return b.build()


def _metric_saturation() -> Store:
    b = saturation_steady()
    _metric_samples(b, used=5)
    return b.build()


@pytest.mark.parametrize("make", [_metric_leak, _metric_saturation])
def test_the_pool_finding_on_clickhouse_is_duckdbs(chdb: Any, make: Any) -> None:
    # the samples' evidence (all connections in use while no query ran, connections beyond
    # the requests in flight) counts overlaps with a sweep in both engines
    store = make()
    remote, engine = copied(store, chdb, "r")
    (there,) = pool_exhaustion(Run(remote, "r"))
    (here,) = pool_exhaustion(Run(store, "r"))
    assert (there.kind, there.explanation) == (here.kind, here.explanation)
    assert there.evidence == here.evidence
    if make is _metric_leak:
        assert here.evidence["used_at_max_while_database_idle"]["seconds"] >= 3
    # no statement of the finding brings back more rows than the run has pool samples
    (samples,) = store.con.execute("SELECT count(*) FROM pool_samples").fetchone() or (0,)
    assert max(rows for _, rows, _ in engine.fetches) <= max(samples, 100)
