"""correlate watch against real PostgreSQL and MariaDB servers.

Each test sets up the situation the watcher should see (a session idle in a
transaction, an UPDATE blocked by another) before watching, so the samples
must show it; the watcher's own connection is counted from the server's side.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from correlate.watch import Record, WatchResult, load_activity, read_activity, watch
from correlate.watch.snapshot import fingerprint_id

SECRET = "n0t-for-files!"
ROLE = "correlate_watch_monitor"


def _raw(dsn: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(dsn, poolclass=NullPool)
    conn = engine.raw_connection()
    return conn


def _records(out: Path, kind: str) -> list[dict[str, Any]]:
    return [
        r.fields
        for r in read_activity(out / "db" / "activity.jsonl")
        if isinstance(r, Record) and r.kind == kind
    ]


def _with_password(dsn: str, user: str, password: str, *, database: bool = True) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(dsn).set(username=user, password=password)
    if not database:
        url = url._replace(database=None)  # set() takes None as "unchanged"
    return url.render_as_string(hide_password=False)


class _Server:
    """What differs between the two servers, for the shared tests."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self.dsn = dsn
        self.pg = name == "postgresql"

    def session_id(self, conn: Any) -> int:
        driver = conn.driver_connection
        return int(driver.info.backend_pid if self.pg else driver.thread_id())

    def begin(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("BEGIN" if self.pg else "START TRANSACTION")

    def watcher_sessions(self, probe: Any) -> set[int]:
        cur = probe.cursor()
        if self.pg:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'correlate-watch' "
                "AND datname = current_database()"
            )
        else:
            # No application name in MariaDB's process list: every other session on
            # this test database that was not there before the watch started.
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
        return {int(r[0]) for r in cur.fetchall()}


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    dsn = request.getfixturevalue("pg_dsn" if request.param == "postgresql" else "mysql_dsn")
    server = _Server(request.param, dsn)
    conn = _raw(dsn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS watch_accounts")
    cur.execute("CREATE TABLE watch_accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
    cur.execute("INSERT INTO watch_accounts VALUES (1, 100), (2, 200)")
    conn.commit()
    conn.close()
    yield server


def _watch(dsn: str, out: Path, seconds: float, interval: float = 0.2) -> WatchResult:
    return watch(dsn, out, interval=interval, duration=seconds, handle_signals=False)


def _in_thread(fn: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_a_session_idle_in_a_transaction_shows_with_its_age_growing(
    server: _Server, tmp_path: Path
) -> None:
    leaked = _raw(server.dsn)
    try:
        server.begin(leaked)
        leaked.cursor().execute("SELECT balance FROM watch_accounts WHERE id = 2 FOR UPDATE")
        leaked_id = server.session_id(leaked)
        result = _watch(server.dsn, tmp_path, 1.1)
    finally:
        leaked.rollback()
        leaked.close()
    assert result.samples >= 5 and result.failed_samples == 0
    mine = [s for s in _records(tmp_path, "session") if s["session_id"] == leaked_id]
    assert len(mine) == result.samples
    assert {s["activity"] for s in mine} == {"idle_in_transaction"}
    ages = [s["xact_age_ns"] for s in mine]
    assert all(b > a for a, b in itertools.pairwise(ages))
    assert ages[-1] - ages[0] >= 0.6e9
    if server.pg:
        assert {s["query"] for s in mine} == {
            "SELECT balance FROM watch_accounts WHERE id = 2 FOR UPDATE"
        }
        assert {s["fingerprint"] for s in mine} == {
            fingerprint_id(
                "SELECT balance FROM watch_accounts WHERE id = 2 FOR UPDATE", "postgresql"
            )
        }
    samples = _records(tmp_path, "sample")
    assert all(s["server_time_unix_nano"] and s["error"] is None for s in samples)
    # the watcher leaves itself out
    assert all(s["application"] != "correlate-watch" for s in _records(tmp_path, "session"))


def test_a_blocked_update_names_blocked_and_blocking_sessions(
    server: _Server, tmp_path: Path
) -> None:
    holder, waiter = _raw(server.dsn), _raw(server.dsn)
    holder_id, waiter_id = server.session_id(holder), server.session_id(waiter)
    try:
        server.begin(holder)
        holder.cursor().execute("UPDATE watch_accounts SET balance = 101 WHERE id = 1")
        server.begin(waiter)
        blocked = _in_thread(
            lambda: waiter.cursor().execute("UPDATE watch_accounts SET balance = 102 WHERE id = 1")
        )
        time.sleep(0.3)
        result = _watch(server.dsn, tmp_path, 0.7)
    finally:
        holder.rollback()
        blocked.join(10)
        waiter.rollback()
        holder.close()
        waiter.close()
    waits = _records(tmp_path, "lock_wait")
    assert waits and len(waits) == result.lock_waits
    pairs = {(w["blocked_id"], w["blocking_id"]) for w in waits}
    assert pairs == {(waiter_id, holder_id)}
    assert {w["blocked_query"] for w in waits} == {
        "UPDATE watch_accounts SET balance = 102 WHERE id = 1"
    }
    assert all(w["lock_type"] for w in waits)
    sessions = {(s["session_id"], s["wait_event_type"]) for s in _records(tmp_path, "session")}
    assert (waiter_id, "Lock") in sessions
    if server.pg:
        # PostgreSQL still shows the idle holder's last statement
        assert {w["blocking_query"] for w in waits} == {
            "UPDATE watch_accounts SET balance = 101 WHERE id = 1"
        }


def test_the_watcher_holds_one_connection(server: _Server, tmp_path: Path) -> None:
    probe = _raw(server.dsn)
    before = set() if server.pg else server.watcher_sessions(probe)
    probe.commit()
    seen: list[set[int]] = []
    done = threading.Event()

    def look() -> None:
        while not done.is_set():
            seen.append(server.watcher_sessions(probe) - before)
            probe.commit()  # both servers keep one snapshot per transaction
            time.sleep(0.01)

    looker = _in_thread(look)
    try:
        result = _watch(server.dsn, tmp_path, 1.5, interval=0.1)
    finally:
        done.set()
        looker.join(5)
        probe.close()
    assert result.reconnects == 0
    assert max(len(s) for s in seen) == 1
    # one session for the whole watch, never a second one
    assert len(set().union(*seen)) == 1


def test_a_lost_connection_is_counted_and_the_watch_goes_on(pg_dsn: str, tmp_path: Path) -> None:
    killer = _raw(pg_dsn)
    stop = threading.Event()
    results: list[WatchResult] = []
    thread = _in_thread(
        lambda: results.append(
            watch(pg_dsn, tmp_path, interval=0.1, duration=3, stop=stop, handle_signals=False)
        )
    )
    try:
        time.sleep(0.5)
        cur = killer.cursor()
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'correlate-watch' AND datname = current_database()"
        )
        assert cur.fetchall() == [(True,)]
        time.sleep(1.0)
        stop.set()
        thread.join(5)
    finally:
        killer.close()
    (result,) = results
    assert result.stopped_by == "stop" and result.elapsed_s < 2.5
    assert result.reconnects == 1 and result.failed_samples >= 1
    assert 0 < result.gap_s < 1.0
    assert result.errors and "terminat" in result.errors[0].lower()
    samples = _records(tmp_path, "sample")
    failed = [s for s in samples if s["error"]]
    assert len(failed) == result.failed_samples
    assert sum(1 for s in samples if s["reconnected"]) == 1
    assert sum(1 for s in samples if not s["error"]) == result.samples


@pytest.fixture
def monitor_dsn(server: _Server) -> Iterator[str]:
    """A monitoring role with a password: pg_monitor on PostgreSQL, PROCESS on MariaDB."""
    admin = _raw(server.dsn)
    cur = admin.cursor()
    if server.pg:
        cur.execute(f"DROP ROLE IF EXISTS {ROLE}")
        cur.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}' IN ROLE pg_monitor")
    else:
        cur.execute(f"DROP USER IF EXISTS {ROLE}")
        cur.execute(f"CREATE USER {ROLE} IDENTIFIED BY '{SECRET}'")
        cur.execute(f"GRANT PROCESS ON *.* TO {ROLE}")
    admin.commit()
    try:
        # PROCESS alone opens no database on MariaDB: the URL names none, which is enough.
        yield _with_password(server.dsn, ROLE, SECRET, database=server.pg)
    finally:
        cur.execute(f"DROP ROLE {ROLE}" if server.pg else f"DROP USER {ROLE}")
        admin.commit()
        admin.close()


def test_sigterm_stops_within_one_interval_and_the_password_stays_out(
    server: _Server, monitor_dsn: str, tmp_path: Path
) -> None:
    other = _raw(server.dsn)  # another user's session, idle in a transaction
    server.begin(other)
    other.cursor().execute("SELECT balance FROM watch_accounts WHERE id = 1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    exe = Path(sys.executable).parent / "correlate"
    activity = tmp_path / "db" / "activity.jsonl"
    proc = subprocess.Popen(
        [str(exe), "watch", "--dsn", monitor_dsn, "--out", str(tmp_path), "--interval", "1s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = activity.read_text() if activity.exists() else ""
            if text.count('"record":"sample"') >= 2:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            pytest.fail(f"the watcher wrote no samples: {proc.communicate()[1]}")
        time.sleep(0.3)  # somewhere inside an interval
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        other.rollback()
        other.close()
    assert proc.returncode == 0, err
    assert took < 1.0
    assert "stopped by signal" in out and err == ""
    raw = activity.read_bytes()
    assert raw.endswith(b"\n")
    json.loads(raw.splitlines()[-1])
    for text in (raw.decode(), out, err):
        assert SECRET not in text and quote(SECRET, safe="") not in text
    assert f"{ROLE}:***@" in out
    (header,) = _records(tmp_path, "watch")
    assert header["url"].startswith(f"{server.dsn.split('://')[0]}://{ROLE}:***@")
    # the monitoring role sees the other user's session, with its statement on PostgreSQL
    other_sessions = [s for s in _records(tmp_path, "session") if s["user"] != ROLE]
    assert {s["activity"] for s in other_sessions} >= {"idle_in_transaction"}
    if server.pg:
        assert "SELECT balance FROM watch_accounts WHERE id = 1" in {
            s["query"] for s in other_sessions
        }


def test_a_watch_file_loads_into_the_store(pg_dsn: str, tmp_path: Path) -> None:
    import correlate

    leaked = _raw(pg_dsn)
    try:
        leaked.cursor().execute("BEGIN")
        leaked.cursor().execute("SELECT 1")
        _watch(pg_dsn, tmp_path, 0.5, interval=0.1)
    finally:
        leaked.rollback()
        leaked.close()
    with correlate.open_store(":memory:") as store:
        loaded = load_activity(store, tmp_path / "db" / "activity.jsonl", "live")
        assert loaded.problems == []
        held = store.sql(
            "SELECT count(*) AS n, max(xact_age_ns) > min(xact_age_ns) AS growing "
            "FROM db_activity WHERE activity = 'idle_in_transaction' AND query = 'SELECT 1'"
        )
        assert held["n"][0] == loaded.rows["db_samples"] and bool(held["growing"][0])


def test_ctrl_c_stops_the_command_too(pg_dsn: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "correlate"
    activity = tmp_path / "db" / "activity.jsonl"
    proc = subprocess.Popen(
        [str(exe), "watch", "--dsn", pg_dsn, "--out", str(tmp_path), "--interval", "0.5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            activity.exists() and '"record":"sample"' in activity.read_text()
        ):
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, err) == (0, "")
    assert took < 0.5 + 0.5 and "stopped by signal" in out
    assert activity.read_bytes().endswith(b"\n")


def test_in_the_main_thread_the_signal_handlers_are_put_back(pg_dsn: str, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    result = watch(pg_dsn, tmp_path, interval=0.1, duration=0.3)
    assert result.stopped_by == "duration" and result.samples == 3
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
