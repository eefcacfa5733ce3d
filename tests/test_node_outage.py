"""A real database outage under examples/node-shop is not read as a connection-pool leak.

The shop (Express + a ``pg`` Pool, the official OpenTelemetry auto-instrumentations) runs
under ``correlate record`` with no leak planted (``DECLINED_SHARE=0``), talking to
PostgreSQL through a loopback proxy (tests/helpers/tcp_cut.py). A few seconds into the load
the proxy is cut: every connection it carried is dropped, as when the database goes away,
and new ones are either refused (its listener closed) or taken and never answered (a host
that drops packets: each times out in the words of a pool that ran dry). Every request
fails from then on. A leak leaves other traces: a pool that ran dry opens no connection,
while here every new one fails. The verdict must not call the outage a leak (nor the
pool's saturation); the failures stand as an error burst put down to the database out of
reach.
Needs what tests/test_node_example.py needs: node, npm, ``npm ci`` in examples/node-shop and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.kinds import FindingKind

from .helpers.tcp_cut import CuttableProxy, when_up
from .test_node_example import SHOP, shop_database

SHOP_PORT, HTTP_PORT = 14612, 14613
#: seconds of load before the cut, and of the whole run
CUT_AFTER_S, DURATION_S = 6.0, 16

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def outage_dsn(pg_dsn: str) -> Iterator[str]:
    """A database of its own for the shop, empty: the service creates and seeds its schema."""
    yield from shop_database(pg_dsn, "node_outage")


def _record_behind_proxy(
    tmp_path: Path,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    refuse: bool = True,
    freeze: bool = False,
    **env: str,
) -> tuple[Path, list[int], str]:
    """Record the shop (no leak planted, ``env`` set) behind a proxy cut mid-run (new
    connections refused, or taken and never answered) or frozen (``freeze``): the store,
    the moment of the cut, the command's output."""
    from sqlalchemy import make_url

    url = make_url(dsn)
    out, db = tmp_path / "run", tmp_path / "store.duckdb"
    cut_at: list[int] = []
    with CuttableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        for name, value in {
            "DATABASE_URL": f"postgresql://{url.username}@127.0.0.1:{proxy.port}/{url.database}",
            "PORT": str(SHOP_PORT),
            "SHOP_URL": f"http://127.0.0.1:{SHOP_PORT}",
            "DURATION": str(DURATION_S),
            "DECLINED_SHARE": "0",  # no leak planted: the outage alone
            **env,
        }.items():
            monkeypatch.setenv(name, value)
        cutter = when_up(
            f"http://127.0.0.1:{SHOP_PORT}/health",
            CUT_AFTER_S,
            proxy.freeze if freeze else lambda: proxy.cut(refuse=refuse),
            cut_at,
        )
        recorded = CliRunner().invoke(
            cli,
            [
                "record", "--out", str(out), "--http-port", str(HTTP_PORT), "--no-grpc",
                "--linger", "1s", "--db", str(db), "--no-color", "--", str(SHOP / "run.sh"),
            ],
        )  # fmt: skip
        cutter.join(timeout=30)
    assert recorded.exit_code == 0, recorded.output
    assert cut_at, "the shop never answered /health, so the proxy was never cut"
    return db, cut_at, recorded.output


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(True, id="refused"),
        # new connections taken and never answered: each times out after the pool's
        # connectionTimeoutMillis in the words of a pool that ran dry ("timeout exceeded
        # when trying to connect"), and the pool's connections are gone with no request
        # holding them, as in a leak
        pytest.param(False, id="unanswered"),
    ],
)
def test_a_database_outage_under_the_node_shop_is_not_a_leak(
    tmp_path: Path, outage_dsn: str, monkeypatch: pytest.MonkeyPatch, refuse: bool
) -> None:
    db, cut_at, output = _record_behind_proxy(tmp_path, outage_dsn, monkeypatch, refuse=refuse)
    assert "command exited with 0" in output  # the shop lived through the outage

    with correlate.open_store(db) as store:
        analysis = correlate.analyze("run", store=store)
        # the outage's own evidence: new connections tried after the cut, which failed
        (failed, refused, before) = store.con.execute(
            """
            SELECT count(*) FILTER (WHERE start_ns >= $cut),
                   count(*) FILTER (WHERE status_message LIKE '%ECONNREFUSED%'),
                   count(*) FILTER (WHERE start_ns < $cut)
            FROM spans WHERE name = 'pg.connect' AND status_code = 'ERROR'
            """,
            {"cut": cut_at[0] - 50_000_000},  # the cut's own moment, give or take the call
        ).fetchone() or (0, 0, 0)
        (served, first) = store.con.execute(
            """
            SELECT count(*) FILTER (WHERE http_status_code = 200 AND start_ns < $cut),
                   min(start_ns)
            FROM spans WHERE kind = 'SERVER'
            """,
            {"cut": cut_at[0]},
        ).fetchone() or (0, 0)
    text = analysis.to_text(color=False, width=120)
    assert served > 0 and failed > 0 and before == 0, (served, failed, before, text)
    assert (refused == failed) if refuse else (refused == 0), (failed, refused, text)

    kinds = {f.kind for f in analysis.findings}
    # not a leak, and not a pool too small for its load either: the database was gone
    assert FindingKind.POOL_LEAK not in kinds, text
    assert FindingKind.POOL_SATURATION not in kinds, text
    assert FindingKind.POOL_EXHAUSTED not in kinds, text
    # the failures are there, put down to the database out of reach and not to the pool
    bursts = [f for f in analysis.findings if f.kind == FindingKind.ERROR_BURST]
    assert bursts, text
    burst = max(bursts, key=lambda f: f.evidence["errors"])
    assert burst.evidence["lost_database_connection"] >= 3, text
    assert burst.evidence["failed_connection_attempts"] > 0, text
    assert "The database was out of reach: from " in burst.explanation, text
    assert "see the pool finding" not in burst.explanation, text
    if refuse:
        assert burst.evidence["exceptions"].get("ECONNREFUSED", 0) > 0, text
    # it begins with the cut (seconds from the first request; a window late at most)
    cut_s = (cut_at[0] - first) / 1e9
    assert burst.evidence["from_s"] <= cut_s + 2 and burst.evidence["to_s"] >= cut_s, (cut_s, text)


def test_a_frozen_network_under_the_node_shop_is_a_hang_not_a_leak(
    tmp_path: Path, outage_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network partition that closes nothing: the queries in flight never return, their
    spans never end, and the requests end only when the load generator gives up on them
    (REQUEST_TIMEOUT_MS); every later checkout times out with no query running, which reads
    as a leak to the pool's capacity. The verdict must name the hang instead."""
    db, cut_at, _ = _record_behind_proxy(
        tmp_path, outage_dsn, monkeypatch, freeze=True, REQUEST_TIMEOUT_MS="4000"
    )
    with correlate.open_store(db) as store:
        analysis = correlate.analyze("run", store=store)
        # the hang's own evidence: no connection failed, no span reports the partition
        (lost,) = store.con.execute(
            "SELECT count(*) FROM spans WHERE name = 'pg.connect' AND status_code = 'ERROR'"
        ).fetchone() or (0,)
        (first,) = store.con.execute(
            "SELECT min(start_ns) FROM spans WHERE kind = 'SERVER'"
        ).fetchone() or (0,)
    text = analysis.to_text(color=False, width=120)
    assert lost == 0, text

    kinds = {f.kind for f in analysis.findings}
    assert FindingKind.POOL_LEAK not in kinds, text
    assert FindingKind.POOL_SATURATION not in kinds, text
    (pool,) = [f for f in analysis.findings if f.kind == FindingKind.POOL_EXHAUSTED]
    assert pool.title.startswith("Connection pool held by queries that never returned"), text
    hung = pool.evidence["hung_requests"]
    # the pool's ten connections, all taken by requests frozen at the partition
    assert hung["took_their_connection_before_the_first_failure"] >= 9, text
    freeze_s = (cut_at[0] - first) / 1e9
    assert freeze_s - 1 <= hung["from_s"] <= hung["to_s"] <= freeze_s + 1, (freeze_s, text)
    assert 3.0 <= hung["median_silence_s"] <= 4.5, text  # the load generator's timeout
    assert "statement_timeout" in pool.suggestion
    # the failures point at that finding, not at a leak
    bursts = [f for f in analysis.findings if f.kind == FindingKind.ERROR_BURST]
    assert (
        bursts
        and "see the pool finding" in max(bursts, key=lambda f: f.evidence["errors"]).explanation
    ), text


def test_a_frozen_network_with_no_checkout_timeout_is_the_database_stalling(
    tmp_path: Path, outage_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same partition on a pool that waits for a connection for ever (node-postgres's
    default, ``connectionTimeoutMillis`` 0): nothing fails, every request after the freeze
    waits until its user gives up, and its time is covered by no span that ended. Read as
    the requests' own code before; the verdict must say the database stopped answering."""
    db, cut_at, _ = _record_behind_proxy(
        tmp_path,
        outage_dsn,
        monkeypatch,
        freeze=True,
        REQUEST_TIMEOUT_MS="4000",
        POOL_TIMEOUT_MS="0",
    )
    with correlate.open_store(db) as store:
        analysis = correlate.analyze("run", store=store)
        (first,) = store.con.execute(
            "SELECT min(start_ns) FROM spans WHERE kind = 'SERVER'"
        ).fetchone() or (0,)
    text = analysis.to_text(color=False, width=120)
    kinds = {f.kind for f in analysis.findings}
    assert not kinds & {FindingKind.POOL_LEAK, FindingKind.POOL_SATURATION}, text
    (stall,) = [f for f in analysis.findings if f.kind == FindingKind.DATABASE_STALL]
    assert stall.severity == "critical" and analysis.findings[0] is stall, text
    freeze_s = (cut_at[0] - first) / 1e9
    assert abs(stall.evidence["from_s"] - freeze_s) <= 1, (freeze_s, text)
    assert stall.evidence["calls_in_flight"] >= 3, text
    assert stall.title.endswith("ended until the run's end"), text
    # the time no span covers is put down to it, not to the routes' own code
    for f in analysis.findings:
        if f.kind == FindingKind.UNEXPLAINED_TIME:
            assert f.evidence["cause"] == "database_stall", text
            assert "profiler" not in f.suggestion, text
