"""A real Django service, instrumented as its users instrument it, read by correlate.

tests/apps/django_shop runs on PostgreSQL under a WSGI server with only the standard
packages (opentelemetry-instrumentation-django and -psycopg) and the SDK's OTLP/JSON file
exporter; correlate gets the spans as a user would hand them over: ``correlate ingest``,
``correlate plans capture``, ``correlate report``, each a process of its own, so what
it prints on stderr is what a user would see. Django names its routes after its URL
patterns (``orders/``, ``accounts/<int:account>/events/``) and writes SQL with ``%s``
placeholders and quoted identifiers; none of that is shaped for correlate. Once with the
old semantic conventions (``db.statement``, ``http.method``), once with the stable ones
(``db.query.text``, ``http.request.method``) and Django's sqlcommenter on, which ends each
statement with the request's route and traceparent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers.produce import produce

ROOT = Path(__file__).resolve().parents[1]
PRODUCER = Path(__file__).parent / "helpers" / "django_producer.py"

# Django's http.route is the URL pattern's route, without a leading slash; correlate gives it one
N_PLUS_ONE, SLOW, CLEAN = "/orders/", "/accounts/<int:account>/events/", "/customers/<int:pk>/"


def correlate(*args: str) -> str:
    """Run the ``correlate`` CLI; it must succeed and print nothing on stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "correlate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


@pytest.fixture
def shop_tables(pg_dsn: str) -> Iterator[str]:
    """The database the shop creates its ``djshop_*`` tables in; they are dropped after."""
    import psycopg

    yield pg_dsn
    with psycopg.connect(pg_dsn.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS djshop_order, djshop_customer, djshop_event")


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("semconv", "options"),
    [("", ()), ("http,database", ("sqlcommenter",))],
    ids=["old-semconv", "stable-semconv-sqlcommenter"],
)
def test_a_django_service_gets_its_findings_on_its_own_routes(
    shop_tables: str, tmp_path: Path, semconv: str, options: tuple[str, ...]
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.django")
    pytest.importorskip("opentelemetry.instrumentation.psycopg")
    spans, db = tmp_path / "spans.jsonl", str(tmp_path / "store.duckdb")
    produce(PRODUCER, shop_tables, spans, "10", *options, semconv=semconv)
    assert ("traceparent=" in spans.read_text()) == ("sqlcommenter" in options)

    # 10 rounds: GET orders/ reads the orders then a customer per order (21 queries), the
    # other two views one query each; and each request opens a connection, on which Django
    # sets the time zone when the server's differs from its own (Etc/UTC is not UTC to it)
    ingested = correlate("ingest", str(spans), "--run", "shop", "--db", db)
    set_config = {"run 'shop': 260 spans added from 1 file(s)\n": 0,
                  "run 'shop': 290 spans added from 1 file(s)\n": 1}[ingested]  # fmt: skip
    captured = correlate(
        "plans", "capture", "--run", "shop", "--db", db,
        "--dsn", shop_tables.replace("+psycopg", ""),
    )  # fmt: skip
    assert captured.startswith(f"run 'shop': {3 + set_config} plan(s) captured from postgresql")
    report: dict[str, Any] = json.loads(correlate("report", "shop", "--db", db, "--format", "json"))

    routes = {r["route"]: r for r in report["routes"]}
    assert {route: r["requests"] for route, r in routes.items()} == {
        N_PLUS_ONE: 10,
        SLOW: 10,
        CLEAN: 10,
    }
    assert {r["service"] for r in routes.values()} == {"django-shop"}
    assert routes[N_PLUS_ONE]["db_calls"] == 21 + set_config
    findings = [(f["kind"], f["route"], f["severity"]) for f in report["findings"]]
    assert [f for f in findings if f[1] == CLEAN] == []
    assert sorted(f for f in findings if f[2] != "info") == [
        ("n_plus_one", N_PLUS_ONE, "critical"),
        ("slow_query", SLOW, "critical"),
    ]

    by_kind = {f["kind"]: f for f in report["findings"]}
    n1 = by_kind["n_plus_one"]
    assert n1["evidence"]["calls_per_request"] == 20
    assert n1["evidence"]["statement"] == (
        "SELECT djshop_customer.id, djshop_customer.name FROM djshop_customer "
        "WHERE djshop_customer.id = $1 LIMIT $2"
    )
    assert "select_related" in n1["suggestion"]

    slow = by_kind["slow_query"]
    assert slow["evidence"]["statement"] == (
        "SELECT djshop_event.id AS id, djshop_event.kind AS kind FROM djshop_event "
        "WHERE djshop_event.account = $1"
    )
    assert slow["evidence"]["plan_rows_read_per_call"] >= 300_000
    assert "Seq Scan" in slow["evidence"]["plan_insights"][0]
    assert slow["suggestion"] == "CREATE INDEX ON djshop_event (account)"
