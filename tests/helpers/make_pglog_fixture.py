"""Regenerate tests/data/pglog/ from a real PostgreSQL 15 server (run once, by hand, as root).

    .venv/bin/python tests/helpers/make_pglog_fixture.py [DSN]

What it does, in order:

1. keeps a byte copy of the cluster's ``postgresql.auto.conf``;
2. ``ALTER SYSTEM`` turns on ``logging_collector`` with ``log_destination =
   'stderr,csvlog,jsonlog'`` into a scratch directory, and restarts the cluster
   (``pg_ctlcluster --skip-systemctl-redirect 15 main restart``);
3. runs ``autoexplain_producer.py``: real OpenTelemetry SDK spans of
   SQLAlchemy with sqlcommenter, each session with auto_explain logging JSON
   plans; then one failing statement, so the logs also hold lines that are not
   plans;
4. copies the three logs the server wrote and the spans into tests/data/pglog/;
5. **always** puts ``postgresql.auto.conf`` back as it was and restarts again,
   then checks that ``logging_collector`` is off once more.

The fixture files are the server's own output, untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "pglog"
DSN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AUTO_CONF = Path("/var/lib/postgresql/15/main/postgresql.auto.conf")
LOGDIR = Path("/tmp/correlate-pglog")


def _psql(sql: str) -> str:
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-AtX", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def _restart() -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"], check=True
    )
    for _ in range(50):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit("the server did not come back after the restart")


def main(dsn: str = DSN) -> None:
    saved = AUTO_CONF.read_bytes()
    shutil.rmtree(LOGDIR, ignore_errors=True)
    LOGDIR.mkdir()
    shutil.chown(LOGDIR, "postgres", "postgres")
    try:
        for setting, value in (
            ("logging_collector", "on"),
            ("log_destination", "stderr,csvlog,jsonlog"),
            ("log_directory", str(LOGDIR)),
            ("log_filename", "postgresql"),
            ("log_rotation_age", "0"),
            ("log_rotation_size", "0"),
        ):
            _psql(f"ALTER SYSTEM SET {setting} = '{value}'")
        _restart()
        assert _psql("SHOW logging_collector") == "on"
        with tempfile.TemporaryDirectory() as tmp:
            spans = Path(tmp) / "spans.jsonl"
            subprocess.run(
                [sys.executable, str(HERE / "autoexplain_producer.py"), dsn, str(spans)],
                check=True,
            )
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-X", "-c",
                 "SELECT * FROM no_such_table"],
                capture_output=True,
            )  # fmt: skip
            time.sleep(1.0)  # the collector writes asynchronously
            OUT.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(spans, OUT / "spans.jsonl")
        # "postgresql" as log_filename: stderr keeps it, csvlog/jsonlog add .csv/.json
        shutil.copyfile(LOGDIR / "postgresql", OUT / "postgresql.log")
        shutil.copyfile(LOGDIR / "postgresql.csv", OUT / "postgresql.csv")
        shutil.copyfile(LOGDIR / "postgresql.json", OUT / "postgresql.json")
    finally:
        AUTO_CONF.write_bytes(saved)
        _restart()
        shutil.rmtree(LOGDIR, ignore_errors=True)
    assert _psql("SHOW logging_collector") == "off", "settings were not restored"
    print(f"wrote {OUT}; server settings restored")


if __name__ == "__main__":
    main(*sys.argv[1:])
