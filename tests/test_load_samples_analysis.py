"""The load generator's own samples (``load_samples``) as the offered load, when requests say nothing."""

from __future__ import annotations

import pytest

from correlate.analysis import open_run
from correlate.analysis.detectors import load as load_rules
from correlate.store import Store

from .builders import RunBuilder, ns
from .conftest import DATA
from .test_detectors import closed_loop, ramp


def with_samples(b: RunBuilder, users: list[tuple[float, int]], tool: str = "k6") -> Store:
    """Build the run, then add the load generator's samples (ms, users) for the whole run."""
    store = b.build()
    store.con.executemany(
        "INSERT INTO load_samples (run_id, file_id, tool, time_unix_nano, users) "
        "VALUES (1, 0, ?, ?, ?)",
        [(tool, ns(at), n) for at, n in users],
    )
    # A per-endpoint sample is not the run's load.
    store.con.execute(
        "INSERT INTO load_samples (run_id, file_id, tool, time_unix_nano, users, method, name) "
        "VALUES (1, 0, ?, ?, 999, 'GET', '/a')",
        [tool, ns(1000)],
    )
    return store


def test_users_sampled_is_the_most_per_window_and_users_stay_from_requests() -> None:
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": 5, "app": 10}, seconds=20)
    store = with_samples(b, [(0, 1), (400, 3), (900, 2), (5000, 7)])
    timeline = open_run(store, "r").timeline()
    width = float(timeline.width_s.iloc[0])
    assert width == 1.0
    by_second = dict(zip(timeline.t_s, timeline.users_sampled, strict=True))
    assert by_second[0.0] == 3 and by_second[5.0] == 7
    assert timeline.users_sampled.isna().sum() == len(timeline) - 2
    # The requests know their users: they stay the offered load.
    load = load_rules.offered_load(open_run(store, "r"), timeline)
    assert load is not None and load.equals(timeline.users.fillna(0).astype(float))


def test_offered_load_falls_back_to_load_samples() -> None:
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": 5, "app": 10}, users=ramp, seconds=50)
    b.client.clear()
    store = with_samples(b, [(t * 1000.0, ramp(t * 1000.0)) for t in range(0, 50, 3)])
    run = open_run(store, "r")
    timeline = run.timeline()
    assert timeline.users.isna().all()
    load = load_rules.offered_load(run, timeline)
    assert load is not None
    # Each window has the latest sample's users: the ramp, sampled every 3 s.
    expected = [float(ramp(3000.0 * (t // 3))) for t in timeline.t_s.astype(int)]
    assert load.tolist() == expected


def test_knee_found_from_sampled_users_alone() -> None:
    b = RunBuilder()
    closed_loop(
        b,
        lambda t, u: {"pool": max(0, u - 8) * 60.0, "db": 10, "app": 10},
        users=ramp,
        seconds=50,
    )
    b.client.clear()
    assert load_rules.throughput_knee(open_run(b.build(), "r")) == []  # no load known
    store = with_samples(b, [(t * 1000.0, ramp(t * 1000.0)) for t in range(50)])
    (f,) = load_rules.throughput_knee(open_run(store, "r"))
    assert "pool wait" in f.title and f.evidence["load"] > 8


def test_k6_requests_without_users_use_the_vus_samples(store: Store) -> None:
    # k6 keeps no VU per request unless told to: every request has user 0 (not known).
    store.ingest([DATA / "load" / "k6.json"], run="k6")
    run = open_run(store, "k6")
    timeline = run.timeline()
    assert timeline.users.isna().all()
    load = load_rules.offered_load(run, timeline)
    assert load is not None and load.max() == pytest.approx(2.0)
    assert int(timeline.users_sampled.max()) == 2


def test_the_verdict_asks_for_load_results_only_when_no_offered_load_is_known() -> None:
    # Locust's CSV output gives the users it ran (its stats history), not one row per
    # request: the load is known, and the verdict must not call the results missing.
    import correlate

    def load_gaps(store: Store) -> list[str]:
        return [g for g in correlate.analyze("r", store=store).gaps if "load-generator" in g]

    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": 5, "app": 10}, users=ramp, seconds=20)
    b.client.clear()
    sampled = with_samples(b, [(t * 1000.0, ramp(t * 1000.0)) for t in range(20)], "locust")
    assert load_gaps(sampled) == []
    (gap,) = load_gaps(b.build())  # nothing from the load generator: say what to add
    assert "Locust's --csv stats history" in gap
