"""The hang rule's edges, recorded on examples/node-shop behind tests/helpers/tcp_cut.py's
proxy: a hang on a pool of two connections is named, and a leak whose clients give up
before the pool does is still a leak.

Needs what tests/test_node_example.py needs: node, npm, ``npm ci`` in examples/node-shop and
PostgreSQL. Ports of their own, so these run beside the other Node tests' fixed ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.analysis.findings import Finding
from correlate.cli import cli
from correlate.kinds import FindingKind

from .helpers.tcp_cut import CuttableProxy, when_up
from .test_node_example import SHOP, shop_database

SHOP_PORT, HTTP_PORT = 14712, 14713
HUNG = "Connection pool held by queries that never returned"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def edges_dsn(pg_dsn: str) -> Iterator[str]:
    """A database of its own for the shop, empty: the service creates and seeds its schema."""
    yield from shop_database(pg_dsn, "node_hang_edges")


def _recorded(
    tmp_path: Path,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    freeze_after_s: float | None,
    **env: str,
) -> tuple[list[Finding], str]:
    from sqlalchemy import make_url

    url = make_url(dsn)
    out, db = tmp_path / "run", tmp_path / "store.duckdb"
    at: list[int] = []
    with CuttableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        monkeypatch.setenv(
            "DATABASE_URL", f"postgresql://{url.username}@127.0.0.1:{proxy.port}/{url.database}"
        )
        monkeypatch.setenv("PORT", str(SHOP_PORT))
        monkeypatch.setenv("SHOP_URL", f"http://127.0.0.1:{SHOP_PORT}")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        freezer = (
            None
            if freeze_after_s is None
            else when_up(f"http://127.0.0.1:{SHOP_PORT}/health", freeze_after_s, proxy.freeze, at)
        )
        recorded = CliRunner().invoke(
            cli,
            [
                "record", "--out", str(out), "--http-port", str(HTTP_PORT), "--no-grpc",
                "--linger", "1s", "--db", str(db), "--no-color", "--", str(SHOP / "run.sh"),
            ],
        )  # fmt: skip
        if freezer is not None:
            freezer.join(timeout=30)
    assert recorded.exit_code == 0, recorded.output
    assert freeze_after_s is None or at, "the shop never answered /health: never frozen"
    with correlate.open_store(db) as store:
        analysis = correlate.analyze("run", store=store)
    return analysis.findings, analysis.to_text(color=False, width=120)


def test_a_frozen_network_under_a_pool_of_two_is_a_hang(
    tmp_path: Path, edges_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    findings, text = _recorded(
        tmp_path, edges_dsn, monkeypatch, 5.0,
        POOL_SIZE="2", USERS="4", DURATION="14", DECLINED_SHARE="0", REQUEST_TIMEOUT_MS="4000",
    )  # fmt: skip
    kinds = {f.kind for f in findings}
    assert FindingKind.POOL_LEAK not in kinds, text
    (pool,) = [f for f in findings if f.kind == FindingKind.POOL_EXHAUSTED]
    assert pool.title.startswith(HUNG), text
    assert pool.evidence["hung_requests"]["silent_at_once"] == 2, text


def test_a_leak_whose_clients_give_up_first_under_the_node_shop_is_still_a_leak(
    tmp_path: Path, edges_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # half the checkouts leak: the pool of four is empty within seconds, and every request
    # after that is given up by its client (1 s) before the pool gives up on it (2 s)
    findings, text = _recorded(
        tmp_path, edges_dsn, monkeypatch, None,
        POOL_SIZE="4", USERS="8", DURATION="14", DECLINED_SHARE="0.5", CHECKOUT_SHARE="0.3",
        REQUEST_TIMEOUT_MS="1000",
    )  # fmt: skip
    assert not any(f.title.startswith(HUNG) for f in findings), text
    assert FindingKind.POOL_LEAK in {f.kind for f in findings}, text
