"""The pool metrics' and the database's evidence in the pool finding (analysis.pool_evidence).

Runs simulated as in tests/test_leak.py, with pool samples shaped like those read
from OpenTelemetry metrics (``pool_class`` ``otel …``, no capacity, no waiters).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.analysis import open_run
from correlate.analysis.detectors import pool_exhaustion
from correlate.analysis.detectors.pool import PoolSettings
from correlate.analysis.pool_evidence import _OVERLAPS, used_at_max_idle
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_leak import leak_steady, saturation_steady


def _metric_samples(b: RunBuilder, used: int, seconds: int = 60) -> None:
    for t in range(1, seconds + 1):
        b.sample(t * 1000.0, used, capacity=used)
    for row in b.samples:
        row.update(pool_class="otel db.client.connections", capacity=None, size=None)
        row.update(waiters=None, timeouts_total=None, checkouts_total=None)
        row.update(leak_suspects_open=None, max_overflow=None, overflow=None)


def test_a_leak_cites_all_connections_in_use_while_the_database_was_idle() -> None:
    b = leak_steady()
    _metric_samples(b, used=10)
    with open_run(b.build(), "r") as run:
        (f,) = pool_exhaustion(run)
        evidence = used_at_max_idle(run, PoolSettings())
    assert f.kind == FindingKind.POOL_LEAK
    # the spans still name the leaking path: metric samples are not correlate.instrument's
    assert f.evidence["checkout_spans"]["culprit"]["status"] == 409
    assert evidence is not None and evidence["from_metrics"]
    assert evidence["ceiling"] == 10 and evidence["seconds"] >= 3
    assert 0 < evidence["first_at_s"] < 60
    assert f.evidence["used_at_max_while_database_idle"] == evidence
    assert (
        f"the pool metrics show all 10 connections in use while no query ran anywhere "
        f"(the database idle) for {evidence['seconds']:.0f} s" in f.explanation.lower()
    )


def test_a_saturated_pool_runs_queries_on_its_connections_so_nothing_is_cited() -> None:
    b = saturation_steady()
    _metric_samples(b, used=5)
    with open_run(b.build(), "r") as run:
        (f,) = pool_exhaustion(run)
        assert used_at_max_idle(run, PoolSettings()) is None
    assert f.kind == FindingKind.POOL_SATURATION
    assert "used_at_max_while_database_idle" not in f.evidence


def test_a_short_idle_stretch_is_below_the_threshold() -> None:
    b = saturation_steady()
    _metric_samples(b, used=5)
    with open_run(b.build(), "r") as run:
        loose = used_at_max_idle(run, PoolSettings(min_idle_at_max_s=0.0))
        strict = used_at_max_idle(run, PoolSettings(min_idle_at_max_s=3.0))
    assert strict is None
    assert loose is None or loose["seconds"] < 3


def test_metrics_exported_after_the_load_do_not_count_as_time_of_the_run() -> None:
    # the service stays up after the test: its exporter reports the leaked pool for 10 min
    b = leak_steady()
    _metric_samples(b, used=10, seconds=660)
    with open_run(b.build(), "r") as run:
        evidence = used_at_max_idle(run, PoolSettings())
        length = run.seconds
    assert evidence is not None and length < 120
    assert 3 <= evidence["seconds"] <= length
    assert evidence["longest_from_s"] + evidence["longest_s"] <= length + 1e-9


def test_two_processes_exporting_at_their_own_times_are_summed_not_seen_one_at_a_time() -> None:
    # two workers, each with a pool of 5, export half a second apart (a gunicorn with two
    # workers and a metric reader each): all 10 connections are in use, not "all 5"
    b = leak_steady()
    _metric_samples(b, used=5)
    second = [
        dict(row, pid=2, time_unix_nano=row["time_unix_nano"] + 500_000_000) for row in b.samples
    ]
    b.samples.extend(second)
    with open_run(b.build(), "r") as run:
        evidence = used_at_max_idle(run, PoolSettings())
        (f,) = pool_exhaustion(run)
    assert evidence is not None and evidence["ceiling"] == 10
    assert "all 10 connections in use" in f.explanation


# -- the overlap counts behind both: a sweep, checked against counting one by one ------------

_times = st.integers(0, 12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_times, _times), max_size=25),  # intervals, some the wrong way round
    st.lists(st.tuples(_times, st.integers(0, 5)), min_size=1, max_size=8),  # probe, width
)
def test_the_overlap_sweep_counts_what_a_join_would(
    spans: list[tuple[int, int]], probes: list[tuple[int, int]]
) -> None:
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    con.register("iv", pd.DataFrame(spans or [(0, 0)], columns=["a", "b"]).iloc[: len(spans)])
    rows = [(k, lo, lo + width) for k, (lo, width) in enumerate(probes)]
    con.register("pr", pd.DataFrame(rows, columns=["id", "lo", "hi"]))
    got = dict(
        con.execute(
            f"""
            WITH ov_spans AS (SELECT CAST(a AS BIGINT) AS a, CAST(b AS BIGINT) AS b FROM iv),
            ov_probes AS (SELECT CAST(id AS BIGINT) AS id, CAST(lo AS BIGINT) AS lo,
                                 CAST(hi AS BIGINT) AS hi FROM pr),
            {_OVERLAPS}
            SELECT id, n FROM ov_found
            """
        ).fetchall()
    )
    for k, lo, hi in rows:
        assert got.get(k, 0) == sum(a <= hi and b >= lo for a, b in spans)
