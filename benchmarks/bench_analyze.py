#!/usr/bin/env python
"""How long `correlate analyze` takes on runs of 1M and 5M spans (target: 1M in under 10 s).

Usage::

    python benchmarks/bench_analyze.py [--sizes 1000000,5000000] [--dir /tmp/correlate-bench]

Each size's spans come from ``gen_otlp.py --seed 1`` (three services, SERVER
spans with SQLAlchemy ``connect`` and query children, N+1 shapes), ingested
once into ``DIR/analyze-N.duckdb`` and kept for re-runs. The analysis then runs
in a fresh process against that store, read-only, with the default
``CORRELATE_MEMORY_LIMIT``: building the request tables (ownership through the
span tree, the interval sweep, per-fingerprint shares), the aggregates, the
timeline, every detector and the text rendering. Each phase's time and the
peak RSS are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_ingest import _ensure_file  # noqa: E402

_ANALYZE = r"""
import json, resource, sys, time
import correlate
from correlate.analysis.run import Run
from correlate.analysis.settings import Settings
from correlate.analysis.verdict import _collect

store = correlate.open_store(sys.argv[1], read_only=True)
phases = {}
t = time.perf_counter()
run = Run(store, "bench")
run.con
phases["requests"] = time.perf_counter() - t
s = time.perf_counter()
analysis = _collect(run, None, Settings())
phases["aggregates+findings"] = time.perf_counter() - s
s = time.perf_counter()
text = analysis.to_text()
phases["render"] = time.perf_counter() - s
total = time.perf_counter() - t
print(json.dumps({"phases": phases, "total": total, "requests": analysis.summary["requests"],
                  "findings": [f.kind for f in analysis.findings],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_INGEST = r"""
import sys, correlate
with correlate.open_store(sys.argv[2]) as store:
    store.ingest([sys.argv[1]], run="bench")
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--dir", default="/tmp/correlate-bench", type=Path)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"correlate analyze benchmark on {os.cpu_count()} cores")
    for spans in (int(s) for s in args.sizes.split(",")):
        db = args.dir / f"analyze-{spans}.duckdb"
        if not db.exists():
            path = _ensure_file(args.dir, spans)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _INGEST, str(path), str(db)], check=True)
            print(f"  ingested {spans:,} spans in {time.perf_counter() - start:.1f}s")
        # a store from an older correlate is brought up to date first (read-only cannot)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, correlate; correlate.open_store(sys.argv[1]).close()",
                str(db),
            ],
            check=True,
        )
        out = subprocess.run(
            [sys.executable, "-c", _ANALYZE, str(db)], check=True, capture_output=True, text=True
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in result["phases"].items())
        print(
            f"{spans:>10,} spans, {result['requests']:,} requests: analyse {result['total']:.2f}s "
            f"({phases}); peak RSS {result['peak_rss_mb']:.0f} MB; findings: "
            f"{', '.join(result['findings']) or 'none'}"
        )


if __name__ == "__main__":
    main()
