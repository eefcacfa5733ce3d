"""Time ingesting big PostgreSQL auto_explain logs: plans/s and MB/s per log format.

    python benchmarks/bench_plans.py [--plans 20000] [--dir /tmp/correlate-bench-plans]

The logs are the committed real ones (tests/data/pglog), their four commented
plans repeated with a fresh traceparent each, one non-plan line after every
plan: many plans of few fingerprints, as a load test with
auto_explain.log_min_duration = 0 leaves. Each format is ingested into a new
in-memory store in a child process, so peak RSS is the ingest's own.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PGLOG = ROOT / "tests" / "data" / "pglog"
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-03")


def _fresh(rnd: random.Random) -> str:
    return f"00-{rnd.getrandbits(128):032x}-{rnd.getrandbits(64):016x}-03"


def make_logs(n: int, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(1)
    paths = {
        "pg-stderr": out / "big.log",
        "pg-csvlog": out / "big.csv",
        "pg-jsonlog": out / "big.json",
    }
    text = (PGLOG / "postgresql.log").read_text()
    blocks = re.findall(r"^\S.* LOG:  duration: .*?plan:\n(?:\t.*\n)+", text, re.M)[1:]
    noise = "2026-11-25 12:29:09.864 UTC [1] postgres@test LOG:  duration: 0.1 ms  statement: SELECT 1\n"
    with paths["pg-stderr"].open("w") as f:
        for i in range(n):
            f.write(TRACEPARENT.sub(lambda _: _fresh(rnd), blocks[i % len(blocks)]) + noise)
    lines = (PGLOG / "postgresql.json").read_text().splitlines()
    plans = [line for line in lines if "plan:" in line][1:]
    with paths["pg-jsonlog"].open("w") as f:
        for i in range(n):
            f.write(TRACEPARENT.sub(lambda _: _fresh(rnd), plans[i % len(plans)]) + "\n")
            f.write(lines[0] + "\n")
    with (PGLOG / "postgresql.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    plan_rows = [r for r in rows if r[13].startswith("duration:")][1:]
    with paths["pg-csvlog"].open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        for i in range(n):
            row = list(plan_rows[i % len(plan_rows)])
            row[13] = TRACEPARENT.sub(lambda _: _fresh(rnd), row[13])
            writer.writerow(row)
            writer.writerow(rows[0])
    return paths


def _child(path: str) -> None:
    import correlate

    with correlate.open_store(":memory:") as store:
        start = time.perf_counter()
        report = store.ingest([path], run="bench")
        seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{report.plans_added} {seconds:.3f} {rss_mb:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/correlate-bench-plans"))
    args = parser.parse_args()
    paths = make_logs(args.plans, args.dir)
    print("| format | plans | MB | s | plans/s | MB/s | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, path in paths.items():
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        plans, seconds, rss = int(out[0]), float(out[1]), out[2]
        mb = path.stat().st_size / 1e6
        print(
            f"| {kind} | {plans:,} | {mb:.0f} | {seconds:.2f} | {plans / seconds:,.0f} "
            f"| {mb / seconds:.1f} | {rss} |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
