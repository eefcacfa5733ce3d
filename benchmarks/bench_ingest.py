#!/usr/bin/env python
"""Ingest benchmark: spans/s, MB/s and peak memory, against DuckDB's own floor.

For each size it generates a deterministic OTLP/JSON lines file
(``gen_otlp.py``), then measures, each in a fresh process so peak RSS is its own:

- the floor: DuckDB alone reading the file with the same explicit schema and
  unnesting every span (``SELECT count(*)`` over the unnested spans);
- ``correlate ingest`` of the same file into a new store.

It prints one row per size and the ratio ingest / floor (target ≤ 2), and
how time grows with size (target: linear). Usage::

    python benchmarks/bench_ingest.py [--sizes 1000000,5000000] [--dir /tmp/correlate-bench]

Files are kept in ``--dir`` between runs (they are deterministic), so a second
run skips generation. Nothing here is a test: it prints figures.
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

_FLOOR = """
import json, resource, sys, time, duckdb
from correlate.ingest.jsonschema import duckdb_type, sql_string
from correlate.ingest.otlp_json import DOCUMENT
path = sys.argv[1]
columns = "{" + ", ".join(f"{sql_string(k)}: {sql_string(duckdb_type(v))}" for k, v in DOCUMENT.items()) + "}"
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
start = time.perf_counter()
n = con.execute(f'''
    SELECT count(*) FROM (
        SELECT unnest(ss.spans) FROM (
            SELECT unnest(rs.scopeSpans) AS ss FROM (
                SELECT unnest(resourceSpans) AS rs
                FROM read_json({sql_string(path)}, format = 'newline_delimited',
                               columns = {columns}, maximum_object_size = 1073741824))))
''').fetchone()[0]
elapsed = time.perf_counter() - start
print(json.dumps({"spans": n, "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_INGEST = """
import json, resource, sys, time
import correlate
path, db = sys.argv[1], sys.argv[2]
start = time.perf_counter()
with correlate.open_store(db) as store:
    report = store.ingest([path], run="bench")
elapsed = time.perf_counter() - start
print(json.dumps({"spans": report.spans_added, "skipped": report.skipped, "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(script: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(64 * 1024 * 1024):
            pass


def _ensure_file(directory: Path, spans: int) -> Path:
    path = directory / f"otlp-{spans}.jsonl"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from gen_otlp import generate

        start = time.perf_counter()
        partial = path.with_suffix(".partial")
        generate(str(partial), spans=spans, seed=1)
        partial.rename(path)
        print(f"  generated {path} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000", help="span counts, comma-separated")
    parser.add_argument("--dir", default="/tmp/correlate-bench", type=Path)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"correlate ingest benchmark on {os.cpu_count()} cores")
    header = (
        f"{'spans':>10} {'MB':>8} {'floor s':>8} {'ingest s':>9} {'ratio':>6} "
        f"{'spans/s':>10} {'MB/s':>7} {'peak RSS MB':>12} {'floor RSS MB':>13}"
    )
    print(header)
    results = []
    for spans in sizes:
        path = _ensure_file(args.dir, spans)
        mb = path.stat().st_size / 1e6
        _warm(path)  # both sides then read from the page cache, not one from disk
        floor = _measure(_FLOOR, str(path))
        db = args.dir / f"bench-{spans}.duckdb"
        for stale in (db, db.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        ingest = _measure(_INGEST, str(path), str(db))
        assert ingest["spans"] == spans == floor["spans"], (ingest, floor)
        ratio = ingest["seconds"] / floor["seconds"]
        results.append((spans, ingest["seconds"]))
        print(
            f"{spans:>10,} {mb:>8.0f} {floor['seconds']:>8.2f} {ingest['seconds']:>9.2f} "
            f"{ratio:>6.2f} {spans / ingest['seconds']:>10,.0f} {mb / ingest['seconds']:>7.1f} "
            f"{ingest['peak_rss_mb']:>12.0f} {floor['peak_rss_mb']:>13.0f}"
        )
        db.unlink(missing_ok=True)
    if len(results) > 1:
        (n0, t0), (n1, t1) = results[0], results[-1]
        print(
            f"growth: {n1 / n0:.1f}x the spans took {t1 / t0:.2f}x the time "
            f"(linear would be {n1 / n0:.1f}x)"
        )


if __name__ == "__main__":
    main()
