"""correlate watch without a server: the file format, its reader, loader, store tables, CLI."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.cli import cli
from correlate.cli_options import parse_interval as _interval
from correlate.errors import CorrelateError, DatabaseConnectionError, InputError
from correlate.schema import DDL, SCHEMA_VERSION, TAG_SPAN_COLUMNS, WATCH_DDL
from correlate.store import Store
from correlate.watch import Problem, Record, load_activity, read_activity, watch
from correlate.watch.connection import open_target
from correlate.watch.mysql import snapshot as mysql_snapshot
from correlate.watch.postgres import snapshot as pg_snapshot
from correlate.watch.reader import CUT_SHORT, parse_lines
from correlate.watch.records import FIELDS, TABLES
from correlate.watch.snapshot import fingerprint_id
from correlate.watch.writer import ActivityWriter

from .strategies import any_json

DATA = Path(__file__).parent / "data"

T0 = 1_700_000_000_000_000_000


def _header(**extra: Any) -> dict[str, Any]:
    return {
        "record": "watch",
        "format_version": 1,
        "time_unix_nano": T0,
        "database": "postgresql",
        "server_version": "16.2",
        "url": "postgresql+psycopg://monitor:***@db/shop",
        "interval_s": 1.0,
        "watcher_pid": 42,
        "lock_view": "pg_blocking_pids",
        "statement_timeout_ms": 1000,
        "query_text_limit": 2048,
        **extra,
    }


def _sample(n: int, sessions: int = 1, waits: int = 0) -> dict[str, Any]:
    return {
        "record": "sample",
        "sample": n,
        "time_unix_nano": T0 + n * 10**9,
        "server_time_unix_nano": T0 + n * 10**9 + 5000,
        "query_ns": 1_200_000,
        "sessions": sessions,
        "lock_waits": waits,
        "error": None,
        "reconnected": False,
    }


def _session(n: int, sid: int, activity: str = "idle_in_transaction") -> dict[str, Any]:
    key = {k: _sample(n)[k] for k in ("sample", "time_unix_nano", "server_time_unix_nano")}
    record: dict[str, Any] = {"record": "session", **key}
    for spec in FIELDS["session"][3:]:
        record[spec.name] = None
    record.update(
        session_id=sid,
        activity=activity,
        state="idle in transaction",
        xact_start_unix_nano=T0,
        xact_age_ns=key["server_time_unix_nano"] - T0,
        query="SELECT * FROM orders WHERE id = 7",
        fingerprint=fingerprint_id("SELECT * FROM orders WHERE id = 7", "postgresql"),
    )
    return record


def _lock_wait(n: int, blocked: int, blocking: int) -> dict[str, Any]:
    key = {k: _sample(n)[k] for k in ("sample", "time_unix_nano", "server_time_unix_nano")}
    return {
        "record": "lock_wait",
        **key,
        "blocked_id": blocked,
        "blocking_id": blocking,
        "lock_type": "transactionid",
        "lock_mode": "ShareLock",
        "relation": None,
        "wait_started_unix_nano": None,
        "blocked_query": "UPDATE t SET v = 2 WHERE id = 1",
        "blocked_fingerprint": "0123456789abcdef",
        "blocking_query": "UPDATE t SET v = 1 WHERE id = 1",
    }


def _records() -> list[dict[str, Any]]:
    return [
        _header(),
        _sample(1, 2, 1),
        _session(1, 100),
        _session(1, 101, "active"),
        _lock_wait(1, 101, 100),
        _sample(2, 1),
        _session(2, 100),
    ]


def _write(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


# -- the format ------------------------------------------------------------------------------


def test_store_tables_have_exactly_the_record_fields(store: Store) -> None:
    for kind, table in TABLES.items():
        columns = [
            r[0]
            for r in store.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]
        assert columns == ["run_id", "file_id", "watch", *(f.name for f in FIELDS[kind])]


def test_documented_fields_match_the_records() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "run-directory.md").read_text()
    section = doc[doc.index("## `db/activity.jsonl`") :]
    for kind, fields in FIELDS.items():
        for spec in fields:
            assert f"`{spec.name}`" in section, f"{kind}.{spec.name} is not documented"


def test_migration_from_schema_2_adds_the_watch_tables(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    # schema 2: without the watch tables, and without the span columns schema 4 added
    tag_columns = "".join(f",\n    {name} {type_}" for name, type_ in TAG_SPAN_COLUMNS)
    # the db_spans view lists the span columns: schema 2's had no tag columns
    view_tags = "".join(f", s.{name}" for name, _ in TAG_SPAN_COLUMNS)
    con.execute(DDL.replace(WATCH_DDL, "").replace(tag_columns, "").replace(view_tags, ""))
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute("INSERT INTO runs (name) VALUES ('old')")
    con.close()
    assert SCHEMA_VERSION >= 3
    with correlate.open_store(path) as store:
        assert store.run_names() == ["old"]
        for table in TABLES.values():
            assert store.con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        migrated = store.con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name LIKE 'db_%' ORDER BY table_name, ordinal_position"
        ).fetchall()
    with correlate.open_store(tmp_path / "new.duckdb") as fresh:
        created = fresh.con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name LIKE 'db_%' ORDER BY table_name, ordinal_position"
        ).fetchall()
    assert migrated == created and len(created) > 40


# -- reader ----------------------------------------------------------------------------------


def test_reader_gives_every_record_in_order_with_its_watch(tmp_path: Path) -> None:
    records = _records()
    path = _write(tmp_path / "a.jsonl", [*records, _header(), _sample(1, 0)])
    items = list(read_activity(path))
    assert all(isinstance(i, Record) for i in items)
    assert [i.kind for i in items] == [r["record"] for r in records] + ["watch", "sample"]
    assert [i.line for i in items] == list(range(1, 10))
    assert [i.watch for i in items] == [1] * 7 + [2, 2]
    first = items[2]
    assert isinstance(first, Record)
    assert first.fields == {k: v for k, v in records[2].items() if k != "record"}


def test_reader_reports_a_cut_last_line_and_bad_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "a.jsonl",
        [_header(), _sample(1), {"record": "sample", "sample": "x"}],
        tail='not json\n\n[1]\n{"record": "session", "sample": 2, "time_un',
    )
    items = list(read_activity(path))
    problems = [(p.line, p.reason) for p in items if isinstance(p, Problem)]
    assert [i.line for i in items if isinstance(i, Record)] == [1, 2]
    assert problems[0] == (3, "sample field sample should be int, not 'x'")
    assert problems[1][0] == 4 and problems[1][1].startswith("not JSON")
    assert problems[2] == (6, "not a JSON object but list")
    assert problems[3] == (7, CUT_SHORT)
    assert len(problems) == 4


def test_reader_wants_a_header_first_and_refuses_newer_formats(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [_sample(1), _header(format_version=99)])
    items = list(read_activity(path))
    assert items == [
        Problem(1, "a sample record before any watch header line"),
        Problem(2, "watch format 99 is newer than this correlate reads (1): upgrade correlate"),
    ]


def test_reader_takes_gzip_and_names_an_unreadable_file(tmp_path: Path) -> None:
    plain = _write(tmp_path / "a.jsonl", _records())
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(read_activity(packed)) == list(read_activity(plain))
    with pytest.raises(InputError, match="missing.jsonl: cannot read"):
        list(read_activity(tmp_path / "missing.jsonl"))


_GOOD_LINES = [json.dumps(r).encode() for r in _records()]


def _damage(line: bytes, how: int, data: st.DataObject) -> bytes:
    if how == 0:  # cut somewhere
        return line[: data.draw(st.integers(0, max(0, len(line) - 1)))]
    if how == 1:  # flip a byte
        i = data.draw(st.integers(0, len(line) - 1))
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != 0x0A))  # not a line break
        return line[:i] + bytes([byte]) + line[i + 1 :]
    if how == 2:  # a field of the wrong type (or any JSON at all)
        obj = json.loads(line)
        key = data.draw(st.sampled_from(sorted(obj)))
        obj[key] = data.draw(any_json())
        try:
            return json.dumps(obj).encode()
        except ValueError:
            return b"{"
    return data.draw(st.binary(max_size=40)).replace(b"\n", b" ")  # noise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_lines_never_crash_and_every_good_line_arrives(data: st.DataObject) -> None:
    # The header stays whole (without it nothing after is a record), the rest may be damaged.
    lines = [_GOOD_LINES[0]]
    damaged: set[int] = set()
    for line in _GOOD_LINES[1:] * 2:
        if data.draw(st.booleans()):
            lines.append(_damage(line, data.draw(st.integers(0, 3)), data))
            damaged.add(len(lines))
        else:
            lines.append(line)
    cut_end = data.draw(st.booleans())
    raw = b"\n".join(lines) + (b"" if cut_end else b"\n")
    items = list(parse_lines(raw))
    records = [i for i in items if isinstance(i, Record)]
    problem_lines = [i.line for i in items if isinstance(i, Problem)]
    # a last line without its newline is still whole when it parses (an object cannot be cut
    # and stay JSON), so undamaged lines arrive even there
    good = {n for n in range(1, len(lines) + 1) if n not in damaged}
    # every undamaged line arrives as a record, with its number; nothing is reported twice
    assert good <= {r.line for r in records}
    assert len(problem_lines) == len(set(problem_lines))
    assert not set(problem_lines) & {r.line for r in records}
    # every non-blank line is accounted for
    nonblank = {n for n, line in enumerate(lines, 1) if line.strip()}
    assert {r.line for r in records} | set(problem_lines) == nonblank
    if cut_end and len(lines) in damaged and lines[-1].strip():
        last = items[-1]
        assert last.line == len(lines)
        try:
            json.loads(lines[-1])
        except ValueError:
            assert last == Problem(len(lines), CUT_SHORT)


# -- writer ----------------------------------------------------------------------------------


def test_writer_appends_on_a_new_line_after_a_cut_one(tmp_path: Path) -> None:
    path = tmp_path / "db" / "activity.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(_header()) + "\n" + '{"record": "sam')
    with ActivityWriter(path) as writer:
        writer.write([_header(), _sample(1, 0)])
    kinds = [(type(i).__name__, i.line) for i in read_activity(path)]
    assert kinds == [("Record", 1), ("Problem", 2), ("Record", 3), ("Record", 4)]
    assert path.read_bytes().endswith(b"\n")


# -- loader ----------------------------------------------------------------------------------


def test_load_activity_fills_the_tables_in_one_go(tmp_path: Path, store: Store) -> None:
    path = _write(tmp_path / "activity.jsonl", _records(), tail='{"record": "ses')
    result = load_activity(store, path, "r1")
    assert result.rows == {"db_watch": 1, "db_samples": 2, "db_activity": 3, "db_lock_waits": 1}
    assert [p.line for p in result.problems] == [8]
    assert "3 db_activity" in result.summary() and "activity.jsonl:8: last line" in result.summary()
    ages = store.sql(
        "SELECT sample, xact_age_ns, activity FROM db_activity WHERE session_id = 100 ORDER BY sample"
    )
    assert ages["xact_age_ns"].tolist() == [10**9 + 5000, 2 * 10**9 + 5000]
    waits = store.sql(
        "SELECT w.blocked_id, w.blocking_id, a.activity AS blocker FROM db_lock_waits w "
        "JOIN db_activity a ON a.file_id = w.file_id AND a.watch = w.watch "
        "AND a.sample = w.sample AND a.session_id = w.blocking_id"
    )
    assert waits.to_dict("records") == [
        {"blocked_id": 101, "blocking_id": 100, "blocker": "idle_in_transaction"}
    ]
    files = store.sql("SELECT format, records_added, skipped FROM files")
    assert files.to_dict("records") == [
        {"format": "correlate-watch", "records_added": 7, "skipped": 1}
    ]
    assert store.sql("SELECT line FROM problems")["line"].tolist() == [8]
    again = load_activity(store, path, "r1")
    assert again.duplicate and "already in the run" in again.summary()
    assert store.sql("SELECT count(*) AS n FROM db_activity")["n"][0] == 3


def test_strict_load_keeps_nothing(tmp_path: Path, store: Store) -> None:
    path = _write(tmp_path / "activity.jsonl", _records(), tail="oops\n")
    with pytest.raises(InputError, match=r"activity.jsonl:8: not JSON"):
        load_activity(store, path, "r1", strict=True)
    assert store.run_names() == []
    for table in ("files", *TABLES.values()):
        assert store.sql(f"SELECT count(*) AS n FROM {table}")["n"][0] == 0


# -- samplers' row handling ------------------------------------------------------------------


def test_postgres_rows_become_sessions_and_lock_waits() -> None:
    now_us = T0 // 1000
    base = (now_us, None) + (None,) * 17
    idle = (
        now_us, 100, "idle in transaction", "Client", "ClientRead",
        now_us - 9_000_000, now_us - 5_000_000, now_us - 4_000_000, now_us - 4_000_000,
        "shop", "10.0.0.5:5123", "app", "shop", "client backend",
        "UPDATE t SET v = 1 WHERE id = 1", None, None, None, None,
    )  # fmt: skip
    blocked = (
        now_us, 101, "active", "Lock", "transactionid",
        now_us - 8_000_000, now_us - 2_000_000, now_us - 2_000_000, now_us - 2_000_000,
        "shop", None, "app", "shop", "client backend",
        "UPDATE t SET v = 2 WHERE id = 1", [100], "transactionid", "ShareLock", None,
    )  # fmt: skip
    assert pg_snapshot([base]).sessions == []
    snap = pg_snapshot([idle, blocked])
    assert snap.server_time_unix_nano == T0
    first, second = snap.sessions
    assert first["activity"] == "idle_in_transaction" and first["xact_age_ns"] == 5 * 10**9
    assert second["activity"] == "active" and second["wait_event_type"] == "Lock"
    assert snap.lock_waits == [
        {
            "blocked_id": 101,
            "blocking_id": 100,
            "lock_type": "transactionid",
            "lock_mode": "ShareLock",
            "relation": None,
            "wait_started_unix_nano": None,
            "blocked_query": "UPDATE t SET v = 2 WHERE id = 1",
            "blocked_fingerprint": fingerprint_id("UPDATE t SET v = 2 WHERE id = 1", "postgresql"),
            "blocking_query": "UPDATE t SET v = 1 WHERE id = 1",
        }
    ]
    assert set(first) | {"sample", "time_unix_nano", "server_time_unix_nano"} == {
        f.name for f in FIELDS["session"]
    }


def test_mysql_rows_become_sessions_and_lock_waits() -> None:
    now_us = T0 // 1000
    idle = (
        now_us, 7, "app", "10.0.0.5:4000", "shop", "Sleep", 3000, "", None,
        now_us - 4_000_000, "RUNNING", None, None, None, None, None,
    )  # fmt: skip
    waiting = (
        now_us, 8, "app", "10.0.0.5:4001", "shop", "Query", 1500, "Updating",
        "UPDATE t SET v = 2 WHERE id = 1", now_us - 2_000_000, "LOCK WAIT",
        now_us - 1_500_000, 7, "RECORD", "X", b"`shop`.`t`",
    )  # fmt: skip
    sleeping = (now_us, 9, "app", "h", None, "Sleep", 10, "", None) + (None,) * 7
    snap = mysql_snapshot([idle, waiting, sleeping], "mariadb")
    activities = {s["session_id"]: s["activity"] for s in snap.sessions}
    assert activities == {7: "idle_in_transaction", 8: "active", 9: "idle"}
    assert snap.sessions[0]["xact_age_ns"] == 4 * 10**9
    assert snap.sessions[0]["state"] is None and snap.sessions[1]["wait_event_type"] == "Lock"
    assert snap.sessions[1]["query_start_unix_nano"] == T0 - 1_500_000_000
    (wait,) = snap.lock_waits
    assert (wait["blocked_id"], wait["blocking_id"], wait["relation"]) == (8, 7, "`shop`.`t`")
    assert wait["wait_started_unix_nano"] == T0 - 1_500_000_000
    assert wait["blocking_query"] is None  # the blocker is idle: no statement running


# -- API and CLI edges -----------------------------------------------------------------------


def test_api_refuses_bad_intervals_and_foreign_databases(tmp_path: Path) -> None:
    with pytest.raises(CorrelateError, match="interval must be positive"):
        watch("postgresql://x@localhost/db", tmp_path, interval=0)
    with pytest.raises(DatabaseConnectionError, match="not 'sqlite'") as info:
        open_target("sqlite:///x.db", connect_timeout=1, statement_timeout_ms=500)
    assert info.value.url == "sqlite:///x.db"


def test_unreachable_server_fails_without_showing_the_password(tmp_path: Path) -> None:
    secret = "pa:ss/w@rd-1"
    from urllib.parse import quote

    dsn = f"postgresql+psycopg://watcher:{quote(secret, safe='')}@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["watch", "--dsn", dsn, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: cannot connect to postgresql+psycopg://watcher:***@127.0.0.1:1/none: "
    )
    assert secret not in result.output and quote(secret, safe="") not in result.output
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("0.2s", 0.2), ("500ms", 0.5), ("2", 2.0), ("1m", 60.0)]
)
def test_interval_units(text: str, seconds: float) -> None:
    assert _interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "-1s", "fast", "ms"])
def test_bad_interval_is_a_usage_error(tmp_path: Path, text: str) -> None:
    result = CliRunner().invoke(
        cli, ["watch", "--dsn", "postgresql://x@h/db", "--out", str(tmp_path), "--interval", text]
    )
    assert result.exit_code == 2


def test_correlate_ingest_reads_a_watch_file_found_in_a_run_directory(tmp_path: Path) -> None:
    # the watch file is recognised by its header record, wherever it sits
    run_dir = tmp_path / "run"
    (run_dir / "spans").mkdir(parents=True)
    (run_dir / "db").mkdir()
    shutil.copy(DATA / "otlp" / "checkout.jsonl", run_dir / "spans" / "spans.jsonl")
    shutil.copy(DATA / "watch" / "activity.jsonl", run_dir / "db" / "activity.jsonl")
    with correlate.open_store(":memory:") as store:
        report = store.ingest([run_dir], run="r")
        assert report.database_rows == {"watch-activity": 5}
        assert "database's own view (rows): watch-activity 5" in report.summary()
        assert report.spans_added > 0 and report.passed_over == []
        got = store.sql("SELECT count(*) AS n, max(wait_event) AS w FROM db_activity")
        assert got.values.tolist() == [[2, "PgSleep"]]
        again = store.ingest([run_dir], run="r")
        assert again.database_rows == {}  # the same file adds nothing twice
