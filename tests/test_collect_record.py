"""correlate record: a command exports OTLP to the receiver; its load results are picked up."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.errors import CorrelateError

from .conftest import DATA

SERVICE = DATA / "collect" / "service.py"


def test_record_runs_the_command_against_the_receiver(tmp_path: Path) -> None:
    out = tmp_path / "run"
    k6 = tmp_path / "k6-results.json"
    with correlate.open_store(":memory:") as store:
        result = correlate.record(
            out,
            [sys.executable, str(SERVICE), str(k6), "40"],
            store=store,
            http_port=0,
            grpc_port=None,
            linger=0,
        )
        assert result.returncode == 0
        assert result.collected.spans == 80
        assert result.load_files == [out / "load" / "k6-results.json"]
        assert result.analysis is not None
        assert result.analysis.summary["requests"] == 40
        assert store.con.execute("SELECT count(*) FROM client_requests").fetchone() != (0,)
    info = json.loads((out / "run.json").read_text())
    assert info["command"][1:] == [str(SERVICE), str(k6), "40"]
    assert info["received"]["spans"] == 80


def test_record_command_prints_the_verdict_and_keeps_a_failing_exit_code(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "record", "--out", str(out), "--http-port", "0", "--no-grpc", "--linger", "0s",
            "--db", str(tmp_path / "s.duckdb"),
            "--", sys.executable, str(SERVICE), str(tmp_path / "k6.json"), "5", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "command exited with 3" in result.output
    assert "10 spans" in result.output
    assert "GET /orders" in result.output or "/orders" in result.output


def test_record_says_how_to_point_a_silent_service_at_it(tmp_path: Path) -> None:
    with pytest.raises(CorrelateError, match="OTEL_EXPORTER_OTLP_ENDPOINT") as caught:
        correlate.record(
            tmp_path / "run", [sys.executable, "-c", "pass"], http_port=0, grpc_port=None, linger=0
        )
    assert "no spans arrived" in str(caught.value)


@pytest.mark.parametrize("dsn", ["nosuchdriver://x/y", "postgresql+nosuchdbapi://x/y"])
def test_a_dsn_it_cannot_use_is_an_error_before_the_command_runs(tmp_path: Path, dsn: str) -> None:
    ran = tmp_path / "ran"
    with pytest.raises(CorrelateError, match="x/y"):
        correlate.record(
            tmp_path / "run",
            [sys.executable, "-c", f"open({str(ran)!r}, 'w')"],
            dsn=dsn,
            http_port=0,
            grpc_port=None,
            linger=0,
        )
    assert not ran.exists()


def test_a_watcher_that_fails_meanwhile_stops_the_receiver_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its error reaches the caller and the receiver is stopped (its threads kept the
    process of `correlate record` alive after printing the error)."""
    import importlib
    import threading

    def broken(*args: object, **kwargs: object) -> None:
        raise CorrelateError("the database went away")

    # the package, not correlate.watch, which is the function of that name
    monkeypatch.setattr(importlib.import_module("correlate.watch"), "watch", broken)
    before = set(threading.enumerate())
    with pytest.raises(CorrelateError, match="went away"):
        correlate.record(
            tmp_path / "run",
            [sys.executable, "-c", "pass"],
            dsn="postgresql+psycopg://nobody@127.0.0.1:1/none",
            http_port=0,
            grpc_port=None,
            linger=0,
        )
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []


def test_load_files_named_by_prefix_are_picked_up(tmp_path: Path) -> None:
    from correlate.collect.recorder import pick_up_load_files

    run_dir = tmp_path / "run"
    (run_dir / "load").mkdir(parents=True)
    prefix = tmp_path / "locust"
    for name in ("locust_stats.csv", "locust_stats_history.csv"):
        (tmp_path / name).write_bytes((DATA / "load" / name).read_bytes())
    (tmp_path / "locust_notes.csv").write_text("not,load\n1,2\n")
    copied = pick_up_load_files(["locust", "--csv", str(prefix)], run_dir, since=0)
    assert sorted(p.name for p in copied) == ["locust_stats.csv", "locust_stats_history.csv"]
    # older than the run: not this run's results
    assert pick_up_load_files(["locust", "--csv", str(prefix)], run_dir, since=4e9) == []


@pytest.mark.postgres
def test_record_with_a_dsn_watches_the_database_beside_the_command(
    tmp_path: Path, pg_dsn: str
) -> None:
    out = tmp_path / "run"
    result = correlate.record(
        out,
        [sys.executable, str(SERVICE), str(tmp_path / "k6.json"), "5"],
        dsn=pg_dsn,
        http_port=0,
        grpc_port=None,
        linger=1.5,
        watch_interval=0.2,
    )
    assert result.watched is not None and result.watched.samples >= 2
    assert (out / "db" / "activity.jsonl").stat().st_size > 0
    assert result.collected.spans == 10


@pytest.mark.slow
def test_sigterm_to_record_stops_the_command_and_still_analyses(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "correlate", "record", "--out", str(tmp_path / "run"),
            "--http-port", "0", "--no-grpc", "--linger", "0s", "--db", str(tmp_path / "s.duckdb"),
            "--", sys.executable, str(SERVICE), str(tmp_path / "k6.json"), "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SERVICE_READY": str(ready)},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert ready.exists()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "command exited with 0" in err
    assert "14 spans" in err
    assert "7 requests on 1 route" in out
