"""What does ``correlate.instrument.record()`` cost the service under test?

Runs the demo service (faults off, so nothing collapses) under the same
closed-loop Locust load with and without ``record()``, alternating the two so
that drift of the machine hits both alike, and reports throughput and p50/p95
from Locust's own CSV, plus the with/without ratio. Target: at most 10 %
throughput loss.

    python benchmarks/overhead.py --dsn postgresql+psycopg://postgres@127.0.0.1:5432/test

    python benchmarks/overhead.py --users 20 --think 0.25 0.75   # the demo's paced load

Not a test: it takes minutes and its numbers depend on the machine. Note that
Locust runs on the same machine and competes for the same cores.

Closed loop (no think time) measures the cost at saturation, where every CPU
millisecond the instrumentation adds is lost throughput; most of that is the
standard OpenTelemetry Flask and SQLAlchemy instrumentation plus OTLP/JSON
encoding, not correlate's pool telemetry. Paced load (think time) is what a
load test usually is: throughput is then set by the users, and the overhead
shows up in latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from correlate.demo import run_demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=None, help="SQLAlchemy URL (default: SQLite in --out)")
    parser.add_argument("--duration", type=float, default=30, help="seconds per run (default 30)")
    parser.add_argument("--users", type=int, default=10, help="Locust users (default 10)")
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("MIN", "MAX"),
        help="think time range per user, s (default 0 0: closed loop, saturates the service; "
        "0.25 0.75 is the demo's own paced load)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--out", default="benchmarks/data/overhead", help="where runs are kept")
    args = parser.parse_args()

    out = Path(args.out)
    results: dict[str, list[dict[str, float | None]]] = {"off": [], "on": []}
    for round_no in range(1, args.rounds + 1):
        order = ("off", "on") if round_no % 2 else ("on", "off")
        for mode in order:
            began = time.monotonic()
            result = run_demo(
                out / f"round{round_no}-{mode}",
                dsn=args.dsn,
                duration=args.duration,
                users=args.users,
                fixed=True,
                orders=args.orders,
                record=(mode == "on"),
                shape="constant",
                think_time=(args.think[0], args.think[1]),
                overwrite=True,
            )
            row = {"rps": result.rps, "p50_ms": result.p50_ms, "p95_ms": result.p95_ms,
                   "requests": result.requests, "failures": result.failures}  # fmt: skip
            results[mode].append(row)
            print(
                f"round {round_no} record={mode:3}: {result.rps:7.1f} req/s  "
                f"p50 {result.p50_ms} ms  p95 {result.p95_ms} ms  "
                f"({result.requests} requests, {result.failures} failed, "
                f"{time.monotonic() - began:.0f} s)",
                file=sys.stderr,
            )

    def median(mode: str, key: str) -> float:
        values = [r[key] for r in results[mode] if r[key] is not None]
        return statistics.median(values) if values else float("nan")

    summary = {
        mode: {key: median(mode, key) for key in ("rps", "p50_ms", "p95_ms")} for mode in results
    }
    ratio = summary["on"]["rps"] / summary["off"]["rps"]
    summary["throughput_ratio_on_off"] = ratio
    summary["throughput_loss_pct"] = (1 - ratio) * 100
    summary["settings"] = vars(args)
    (out / "overhead.json").write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    print(
        "\n| record() | req/s | p50 ms | p95 ms |\n|---|---|---|---|\n"
        + "\n".join(
            f"| {mode} | {summary[mode]['rps']:.1f} | {summary[mode]['p50_ms']:g} | "
            f"{summary[mode]['p95_ms']:g} |"
            for mode in ("off", "on")
        )
        + f"\n\nthroughput with/without: {ratio:.3f} ({(1 - ratio) * 100:.1f} % loss; target <= 10 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
