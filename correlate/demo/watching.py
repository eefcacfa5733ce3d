"""``correlate watch`` beside a demo run: started with the load, stopped before the service.

The watcher is a process of its own (as a user would run it), given the DSN
through ``CORRELATE_WATCH_DSN`` so the password never shows in a process list.
Its cost is measured from outside: CPU time from ``/proc/<pid>/stat`` (Linux;
None elsewhere) just before it is stopped, samples from its file afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from correlate.demo.errors import DemoError

#: Time between the watcher's samples in a demo run.
WATCH_INTERVAL = "1s"


@dataclass
class Watcher:
    """A running ``correlate watch`` and what is needed to tell its cost."""

    proc: subprocess.Popen[bytes]
    started: float

    def cpu_s(self) -> float | None:
        """User + system CPU seconds the watcher used so far (None where /proc is not)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # after the command: state is field 3, utime 14 and stime 15 (proc(5))
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_watcher(dsn: str, out: Path, log: IO[bytes]) -> Watcher:
    """Start ``correlate watch`` on ``dsn`` writing into run directory ``out``."""
    if dsn.startswith("sqlite"):
        raise DemoError("--watch needs a PostgreSQL or MariaDB/MySQL --dsn, not SQLite")
    env = dict(os.environ, CORRELATE_WATCH_DSN=dsn)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "correlate",
            "watch",
            "--out",
            str(out),
            "--interval",
            WATCH_INTERVAL,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Watcher(proc, time.monotonic())


def watch_cost(watcher: Watcher, cpu_s: float | None, activity: Path) -> dict[str, float | None]:
    """Samples per second and CPU share of the watcher over its life, for run.json."""
    elapsed = max(time.monotonic() - watcher.started, 1e-9)
    samples = 0
    if activity.exists():
        with activity.open("rb") as fh:
            samples = sum(1 for line in fh if b'"record":"sample"' in line.replace(b" ", b""))
    return {
        "elapsed_s": round(elapsed, 3),
        "samples": samples,
        "queries_per_s": round(samples / elapsed, 3),
        "cpu_s": None if cpu_s is None else round(cpu_s, 3),
        "cpu_percent": None if cpu_s is None else round(100 * cpu_s / elapsed, 2),
    }
