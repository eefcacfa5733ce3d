"""``correlate demo --instrument otel``: a run recorded with stock OpenTelemetry only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import correlate
from correlate.demo import DemoError, run_demo


def test_otel_instrument_is_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="instrument must be one of correlate, otel"):
        run_demo(tmp_path / "run", duration=1, users=1, instrument="jaeger")
    assert not (tmp_path / "run").exists()


def test_otel_run_has_only_stock_spans_and_analyses(tmp_path: Path) -> None:
    for module in ("flask", "waitress", "locust", "opentelemetry.instrumentation.flask"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[demo]')")
    out = tmp_path / "run"
    result = run_demo(
        out, duration=4, users=4, orders=2_000, think_time=(0.05, 0.1), instrument="otel"
    )
    assert result.requests > 20 and result.app_returncode == 0
    # nothing of correlate.instrument's: no pool telemetry
    assert not (out / "pool").exists() or not any((out / "pool").iterdir())
    scopes, names = set(), set()
    for path in sorted((out / "spans").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    scopes.add(ss["scope"]["name"])
                    names.update(s["name"] for s in ss["spans"])
    assert scopes == {
        "opentelemetry.instrumentation.flask",
        "opentelemetry.instrumentation.sqlalchemy",
        "opentelemetry.instrumentation.urllib",  # the fraud check
    }
    assert "connect" in names
    info = json.loads((out / "run.json").read_text())
    assert info["demo"]["instrument"] == "otel"
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store)
    assert analysis.summary["connect_spans"] > 0
    assert analysis.summary["pool_checkouts"] == 0
    # the SDK's metrics exporter wrote the instrumentation's pool metric, read as pool samples
    assert len(list((out / "metrics").glob("metrics-*.jsonl"))) == 1
    assert analysis.summary["pool_samples"] >= 2


def test_cli_demo_choices_are_the_demos_own() -> None:
    from dataclasses import fields

    from correlate.cli import DEMO_FAULTS, DEMO_SHAPES
    from correlate.demo.faults import Faults
    from correlate.demo.runner import SHAPES

    assert tuple(f.name for f in fields(Faults)) == DEMO_FAULTS
    assert DEMO_SHAPES == SHAPES
    assert Faults.only(["pool_leak"]).enabled() == ["pool_leak"]
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.only(["hot_row_typo"])


def test_watch_needs_a_server_database(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="watch=True needs a PostgreSQL or MariaDB/MySQL dsn"):
        run_demo(tmp_path / "run", duration=1, users=1, watch=True)
    assert not (tmp_path / "run").exists()


def test_otel_run_with_watch_records_sessions_and_the_watchers_cost(
    tmp_path: Path, pg_dsn: str
) -> None:
    for module in ("flask", "waitress", "locust", "opentelemetry.instrumentation.flask"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[demo]')")
    out = tmp_path / "run"
    run_demo(
        out,
        dsn=pg_dsn,
        duration=4,
        users=4,
        orders=2_000,
        think_time=(0.05, 0.1),
        instrument="otel",
        watch=True,
        schema="metrics_watch_demo",
    )
    cost = json.loads((out / "run.json").read_text())["watch"]
    assert cost["samples"] >= 2 and 0 < cost["queries_per_s"] <= 1.5
    assert cost["cpu_percent"] is None or 0 <= cost["cpu_percent"] < 50
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store)
        (sessions,) = store.con.execute("SELECT count(*) FROM db_activity").fetchone()
    assert sessions > 0 and analysis.summary["pool_samples"] >= 2
