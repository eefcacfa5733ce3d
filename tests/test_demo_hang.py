"""A network partition under the Python demo shop is a hang, not a connection-pool leak.

The demo (Flask on waitress, SQLAlchemy's pool of 5 + 5, stock OpenTelemetry only:
``run_demo(instrument="otel")``) runs with no leak planted, its PostgreSQL behind a
loopback proxy (tests/helpers/tcp_cut.py) that freezes a few seconds into the load:
nothing is closed, nothing passes. The queries in flight never return, and a worker
blocked in one never ends its request, so the request has no span; what of it ended (its
``connect`` checkout, its earlier queries) is exported in a trace with no request. Locust
gives up on it after ``request_timeout``; every later checkout times out with no query
running anywhere, which the pool's capacity read as a leak ("Connection-pool leak:
connections are not returned", critical) before the hang rule counted requests that
never ended. Needs PostgreSQL and the demo's packages (``pip install 'correlate[demo]'``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import correlate
from correlate.kinds import FindingKind

from .helpers.tcp_cut import CuttableProxy, when_up

DEMO_PORT = 14640
#: seconds of load before the freeze, of the whole load, and Locust's wait for an answer
FREEZE_AFTER_S, DURATION_S, TIMEOUT_S = 8.0, 22, 5.0

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_a_frozen_network_under_the_python_demo_is_a_hang_not_a_leak(
    tmp_path: Path, pg_dsn: str
) -> None:
    if importlib.util.find_spec("locust") is None:  # importing it would patch in gevent
        pytest.skip("the demo needs locust: pip install 'correlate[demo]'")
    from sqlalchemy import make_url

    from correlate.demo import Faults, run_demo

    url = make_url(pg_dsn)
    out = tmp_path / "run"
    frozen_at: list[int] = []
    with CuttableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        freezer = when_up(
            f"http://127.0.0.1:{DEMO_PORT}/health",
            FREEZE_AFTER_S,
            proxy.freeze,
            frozen_at,
            wait_s=180,  # seeding comes first
        )
        result = run_demo(
            out,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            duration=DURATION_S,
            users=20,
            faults=Faults.none(),  # no leak planted: the partition alone
            orders=5_000,
            instrument="otel",
            request_timeout=TIMEOUT_S,
            schema="correlate_demo_hang",
            port=DEMO_PORT,
        )
        freezer.join(timeout=30)
    assert frozen_at, "the demo never answered /health, so the proxy was never frozen"
    assert result.failures > 0, result.summary()

    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store, run="run")
        (first,) = store.con.execute(
            "SELECT min(start_ns) FROM spans WHERE kind = 'SERVER'"
        ).fetchone() or (0,)
        text = analysis.to_text(color=False, width=120)
        kinds = {f.kind for f in analysis.findings}
        assert FindingKind.POOL_LEAK not in kinds, text
        assert FindingKind.POOL_SATURATION not in kinds, text
        (pool,) = [f for f in analysis.findings if f.kind == FindingKind.POOL_EXHAUSTED]
        assert pool.title.startswith("Connection pool held by queries that never returned"), text
        hung = pool.evidence["hung_requests"]
        # the connections the pool had open, taken by requests that never ended
        assert hung["never_ended"] == hung["requests"] >= 5, text
        assert hung["took_their_connection_before_the_first_failure"] == hung["requests"], text
        freeze_s = (frozen_at[0] - first) / 1e9
        assert freeze_s - 1 <= hung["from_s"] <= hung["to_s"] <= freeze_s + 1, (freeze_s, text)
        assert "none of them ever ended" in pool.explanation, text
        # each is a trace with no request span: the worker never answered it
        (servers,) = store.con.execute(
            "SELECT count(*) FROM spans WHERE kind = 'SERVER' AND list_contains($t, trace_id)",
            {"t": hung["traces"]},
        ).fetchone() or (0,)
        assert servers == 0, text
