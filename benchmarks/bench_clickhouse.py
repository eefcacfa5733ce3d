#!/usr/bin/env python
"""`correlate analyze` where the spans are (ClickHouse, in chDB) against a local DuckDB store.

Usage::

    python benchmarks/bench_clickhouse.py [--spans 200000[,10000000,...]] [--dir /tmp/chbench]

For each size, ``gen_clickhouse.generate`` writes that many spans of a
Black-Friday-like load into the exporter's ``otel_traces`` table of a chDB session
directory (MergeTree, ordered as the exporter orders it). The same spans then go
into a local DuckDB store (:func:`load_duckdb`), and ``correlate analyze`` runs on
each, in a fresh process timed from outside with its peak RSS (with chDB, ClickHouse
runs inside that process, so its memory counts there; against a server it would be
the server's). The ClickHouse run also reports the bytes it brought back
(``Engine.bytes_fetched``) and the size of the run's per-span tables it built there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gen_clickhouse import (  # noqa: E402
    DEFAULT_RATE,
    START_NS,
    generate,
    mean_spans_per_request,
)

from correlate.clickhouse.otel_schema import quote_string  # noqa: E402

# -- the analysis on each engine ---------------------------------------------------

WORK_DB = "correlate_work"
RUN = "bench"


def export_parquet(url: str, path: Path) -> int:
    """The canonical span rows ClickHouse's views derive, written to ``path``; return spans."""
    from correlate.clickhouse.connection import connect
    from correlate.clickhouse.views import create_canonical_views

    with connect(url) as conn:
        create_canonical_views(conn, work_db=WORK_DB)
        # Parquet has no Variant: a view whose mapped_from is one gives its array
        mapped_from = "mapped_from"
        if conn.columns("spans", WORK_DB)["mapped_from"].startswith("Variant"):
            mapped_from = "variantElement(mapped_from, 'Array(Nullable(String))')"
        conn.command(
            f"SELECT * EXCEPT (mapped_from), {mapped_from} AS mapped_from "
            f"FROM {WORK_DB}.spans INTO OUTFILE {quote_string(str(path))} TRUNCATE FORMAT Parquet"
        )
        rows = conn.query_arrow(f"SELECT count() AS n FROM {WORK_DB}.spans").to_pylist()
    return int(rows[0]["n"])


def load_duckdb(parquet: Path, store_path: Path) -> int:
    """Load the spans of ``parquet`` into a new local store as run ``bench``; return spans.

    A direct load, not ``correlate ingest``: the rows are already canonical (ClickHouse's
    views derive them with local ingest's own SQL), so they go into ``spans`` as they
    are, and the store then does what ingest does after: fingerprints the statement
    shapes (:func:`correlate.statements.fingerprint_run`) and the run's statistics.
    """
    import correlate
    from correlate.statements import fingerprint_run

    with correlate.open_store(store_path) as store:
        run_id = store.ensure_run(RUN, source=str(parquet), labels=None)
        store.con.execute(
            "INSERT INTO spans BY NAME SELECT * REPLACE ("
            "  CAST($run AS INTEGER) AS run_id,"
            "  CASE WHEN len(mapped_from) > 0 THEN mapped_from END AS mapped_from)"
            " FROM read_parquet($path)",
            {"run": run_id, "path": str(parquet)},
        )
        fingerprint_run(store, run_id)
        store.refresh_run_stats(run_id)
        row = store.con.execute("SELECT span_count FROM runs WHERE run_id = ?", [run_id])
        return int(row.fetchone()[0])


def analyze(target: str, window: str | None = None) -> dict[str, Any]:
    """Analyse run ``bench`` of ``target`` (a DuckDB store path, or a ``chdb://`` URL, then
    only ``window`` of it when given) as ``correlate analyze`` does, rendering included;
    what it found, and what it cost."""
    import correlate
    from correlate.analysis.run import Run
    from correlate.analysis.settings import resolve_settings
    from correlate.analysis.verdict import _collect

    t = time.perf_counter()
    clickhouse = "://" in target
    store: Any
    if clickhouse:
        from correlate.clickhouse.source import open_source

        _count_all_bytes()
        store = open_source(target, window=window, name=RUN)
        _count_per_statement(store.con)
    else:
        store = correlate.open_store(target, read_only=True)
    setup = time.perf_counter() - t
    run = Run(store, RUN)
    result = _collect(run, None, resolve_settings(None))
    text = result.to_text(width=120)
    out: dict[str, Any] = {
        "setup_s": setup,
        "spans_analysed": store.spans if clickhouse else _span_count(store, run.run_id),
        "requests": result.summary["requests"],
        "findings": [
            {
                "kind": str(f.kind),
                "route": f.route,
                "severity": str(f.severity),
                "fingerprint": f.fingerprint,
            }
            for f in result.findings
        ],
        "text_chars": len(text),
    }
    if clickhouse:
        out["bytes_fetched"] = store.con.bytes_fetched
        out["statements"] = store.con.statements
        sizes = store.conn.query_arrow(
            "SELECT name, total_bytes AS b FROM system.tables "
            f"WHERE database = {quote_string(store.work_db)} AND engine = 'Memory' "
            f"AND name LIKE {quote_string(run.prefix + '%')}"
        ).to_pylist()
        out["memory_tables_bytes"] = {r["name"][len(run.prefix) + 1 :]: r["b"] for r in sizes}
    run.close()
    store.close()
    if clickhouse:
        # everything that came back, the source's setup included (the window check,
        # one text per statement shape to fingerprint, these size queries)
        out["bytes_fetched_all"] = _BYTES_BACK[0]
        # statements that read the source's spans (the views over otel_traces) rather
        # than the run's own tables: each is a scan of the window in otel_traces
        source = re.compile(r"\b(FROM|JOIN)\s+(db_)?spans\b", re.I)
        out["statements_reading_spans"] = sum(1 for sql in _PER_STATEMENT if source.search(sql))
        ranked = sorted(_PER_STATEMENT.values(), key=lambda v: -v[0])
        out["bytes_back_rest"] = sum(v[0] for v in ranked[6:])
        for key, what in (("heaviest", 0), ("slowest", 2)):
            top = sorted(_PER_STATEMENT.items(), key=lambda kv: -kv[1][what])[:6]
            out[key] = [
                {"bytes": b, "rows": n, "s": round(sec, 2), "sql": " ".join(sql.split())[:200]}
                for sql, (b, n, sec) in top
            ]
    return out


_PER_STATEMENT: dict[str, tuple[int, int, float]] = {}


def _count_per_statement(engine: Any) -> None:
    """Keep the bytes, rows and seconds of each statement of the analysis."""
    plain = engine.execute

    def counted(sql: str, params: Any = None) -> Any:
        before, t = engine.bytes_fetched, time.perf_counter()
        result = plain(sql, params)
        took = time.perf_counter() - t
        table = result.arrow()
        b, n, sec = _PER_STATEMENT.get(sql, (0, 0, 0.0))
        rows = 0 if table is None else table.num_rows
        _PER_STATEMENT[sql] = (b + engine.bytes_fetched - before, n + rows, sec + took)
        return result

    engine.execute = counted


def _span_count(store: Any, run_id: int) -> int:
    row = store.con.execute("SELECT span_count FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return int(row[0])


_BYTES_BACK = [0]


def _count_all_bytes() -> None:
    """Count the bytes of every result the chDB connection returns, not only the engine's."""
    from correlate.clickhouse import connection

    plain = connection._ChdbConnection.query_arrow

    def counted(self: Any, sql: str) -> Any:
        table = plain(self, sql)
        _BYTES_BACK[0] += table.nbytes
        return table

    connection._ChdbConnection.query_arrow = counted  # type: ignore[method-assign]


# -- the driver: each step in a fresh process, timed from outside -------------------


def _child(step: str, *args: str) -> tuple[dict[str, Any], float, float]:
    """Run ``step`` of this script in a new process: (its JSON, wall seconds, peak RSS MB)."""
    command = [sys.executable, __file__, f"--step={step}", *args]
    t = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"step {step} {' '.join(args)} failed (exit {proc.returncode})")
    return json.loads(output.strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def _step(step: str, args: list[str]) -> dict[str, Any]:
    if step == "generate":
        from correlate.clickhouse.connection import connect

        url, spans, seed, rate = args[0], int(args[1]), int(args[2]), int(args[3])
        with connect(url) as conn:
            requests = generate(conn, spans, seed=seed, rate=rate)
            row = conn.query_arrow(
                "SELECT sum(rows) AS rows, sum(data_compressed_bytes) AS disk, "
                "sum(data_uncompressed_bytes) AS raw, count() AS parts FROM system.parts "
                f"WHERE active AND table = {quote_string(conn.source.tables.traces)}"
            ).to_pylist()[0]
        return {"requests": requests, **row}
    if step == "export":
        return {"spans": export_parquet(args[0], Path(args[1]))}
    if step == "load":
        return {"spans": load_duckdb(Path(args[0]), Path(args[1]))}
    if step == "analyze":
        return analyze(args[0], args[1] if len(args) > 1 else None)
    raise SystemExit(f"unknown step {step!r}")


def bench(
    spans: int,
    root: Path,
    *,
    seed: int,
    rate: int,
    engines: tuple[str, ...],
    window_spans: int = 1_000_000,
) -> dict[str, Any]:
    """Generate, load and analyse ``spans`` spans under ``root``; the figures.

    ``engines`` names the analyses: ``clickhouse`` (the whole run), ``window`` (about
    ``window_spans`` spans' worth of time from the middle of the run, with ``--window``)
    and ``duckdb`` (the whole run, loaded into a local store).
    """
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url = f"chdb://{root / 'chdb'}"
    gen, gen_s, gen_rss = _child("generate", url, str(spans), str(seed), str(rate))
    out: dict[str, Any] = {
        "spans": int(gen["rows"]),
        "requests": gen["requests"],
        "generate_s": gen_s,
        "generate_rss_mb": gen_rss,
        "disk_bytes": int(gen["disk"]),
        "raw_bytes": int(gen["raw"]),
    }
    if "clickhouse" in engines:
        out["clickhouse"] = _measure(url)
    if "window" in engines:
        seconds = window_spans / (rate * mean_spans_per_request())
        middle = START_NS / 1e9 + gen["requests"] / rate / 2
        out["window"] = _measure(url, f"{middle - seconds / 2:.3f}..{middle + seconds / 2:.3f}")
    if "duckdb" in engines:
        parquet, store = root / "spans.parquet", root / "store.duckdb"
        _, out["export_s"], _ = _child("export", url, str(parquet))
        _, out["load_s"], out["load_rss_mb"] = _child("load", str(parquet), str(store))
        parquet.unlink()
        out["duckdb"] = _measure(str(store))
    return out


def _measure(target: str, window: str | None = None) -> dict[str, Any]:
    result, wall, rss = _child("analyze", target, *([window] if window else []))
    return {**result, "wall_s": wall, "peak_rss_mb": rss}


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| spans in table | analysis | spans analysed | wall s | peak RSS MB | bytes back "
        "| bytes back / span analysed | per-span tables MB | findings |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {"clickhouse": "ClickHouse", "window": "ClickHouse --window", "duckdb": "DuckDB"}
    for row in rows:
        for engine, shown in names.items():
            if engine not in row:
                continue
            r = row[engine]
            back, analysed = r.get("bytes_fetched_all"), r["spans_analysed"]
            tables = sum(r.get("memory_tables_bytes", {}).values()) / 2**20
            kinds = ", ".join(f"{f['kind']} {f['route'] or ''}".strip() for f in r["findings"])
            lines.append(
                f"| {row['spans']:,} | {shown} | {analysed:,} | {r['wall_s']:.1f} "
                f"| {r['peak_rss_mb']:,.0f} | {'' if back is None else f'{back:,}'} "
                f"| {'' if back is None else f'{back / analysed:.1f}'} "
                f"| {f'{tables:,.0f}' if tables else ''} | {kinds} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", default="200000", help="sizes, comma-separated")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/chbench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="requests a second")
    parser.add_argument(
        "--engines",
        default="clickhouse,window,duckdb",
        help="clickhouse (whole run), window (a slice with --window), duckdb",
    )
    parser.add_argument(
        "--window-spans", type=int, default=1_000_000, help="spans' worth of time in the window"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.step:
        print(json.dumps(_step(args.step, rest), default=str))
        return
    engines = tuple(args.engines.split(","))
    rows = []
    for spans in (int(s.replace("_", "")) for s in args.spans.split(",")):
        root = args.dir / f"spans-{spans}"
        row = bench(
            spans,
            root,
            seed=args.seed,
            rate=args.rate,
            engines=engines,
            window_spans=args.window_spans,
        )
        rows.append(row)
        print(json.dumps(row, default=str), file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    print(_table(rows))
    for engine in ("clickhouse", "window"):
        backs = [
            (r[engine]["spans_analysed"], r[engine]["bytes_fetched_all"])
            for r in rows
            if engine in r
        ]
        if len(backs) > 1:
            (s0, b0), (s1, b1) = backs[0], backs[-1]
            print(
                f"\n{names_of(engine)}: bytes back per span analysed {b0 / s0:.1f} at {s0:,}, "
                f"{b1 / s1:.1f} at {s1:,} (grew {b1 / b0:.2f}x for {s1 / s0:.2f}x the spans)"
            )


def names_of(engine: str) -> str:
    return {"clickhouse": "ClickHouse", "window": "ClickHouse --window"}[engine]


if __name__ == "__main__":
    main()
