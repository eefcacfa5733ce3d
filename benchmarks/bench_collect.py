#!/usr/bin/env python
"""Receiver benchmark: spans/s that ``correlate collect`` acknowledges, and its peak RSS.

It generates realistic spans (``gen_otlp.py``, 512 per request), encodes each
request as OTLP protobuf once, starts ``correlate collect`` in its own process
(OTLP/HTTP on a free port, gRPC off) and sends the requests from client
processes, each over one keep-alive connection, as fast as the receiver
answers, for ``--seconds``. Every request is counted only when answered 200
(written and flushed). Then it stops the receiver with SIGTERM, reads its peak
RSS (``VmHWM``) just before, and checks the files hold every acknowledged
span. Targets: at least 50,000 spans/s, at most 300 MB RSS. Usage::

    python benchmarks/bench_collect.py [--seconds 15] [--clients 2] [--dir /tmp/correlate-bench]

Nothing here is a test: it prints figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_SPANS_PER_S = 50_000
TARGET_RSS_MB = 300


def _requests(directory: Path, spans: int) -> list[bytes]:
    """Realistic trace requests of 512 spans, as OTLP protobuf."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    sys.path.insert(0, str(HERE))
    from gen_otlp import generate

    source = directory / f"collect-{spans}.jsonl"
    if not source.exists():
        generate(source, spans=spans, seed=3, batch=512)
    out = []
    for line in source.read_text().splitlines():
        document = json.loads(line)
        for rs in document["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                    for link in span.get("links", []):
                        for key in ("traceId", "spanId"):
                            link[key] = base64.b64encode(bytes.fromhex(link[key])).decode()
        message = ParseDict(document, ExportTraceServiceRequest())
        out.append(message.SerializeToString())
    return out


def _count(body: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)


def _client(port: int, bodies: list[bytes], until: float, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    sizes = [_count(b) for b in bodies]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    acked = requests = refused = 0
    i = 0
    while time.monotonic() < until:
        body = bodies[i % len(bodies)]
        conn.request(
            "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
        )
        answer = conn.getresponse()
        answer.read()
        requests += 1
        if answer.status == 200:
            acked += sizes[i % len(bodies)]
        else:
            refused += 1
        i += 1
    conn.close()
    result.put((acked, requests, refused))


def _peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--spans", type=int, default=51_200, help="distinct spans to cycle")
    parser.add_argument("--keep", action="store_true", help="keep the receiver's run directory")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "correlate-bench")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    bodies = _requests(args.dir, args.spans)
    size = sum(len(b) for b in bodies) / sum(_count(b) for b in bodies)
    run_dir = Path(tempfile.mkdtemp(prefix="collect-run-", dir=args.dir))
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "correlate",
            "collect",
            "--out",
            str(run_dir),
            "--http-port",
            "0",
            "--no-grpc",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert receiver.stderr is not None
    match = re.search(r"OTLP/HTTP http://127\.0\.0\.1:(\d+)", receiver.stderr.readline())
    assert match, "the receiver did not say where it listens"
    port = int(match.group(1))
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    share = [bodies[i :: args.clients] for i in range(args.clients)]
    started = time.monotonic()
    until = started + args.seconds
    clients = [
        multiprocessing.Process(target=_client, args=(port, share[i], until, results))
        for i in range(args.clients)
    ]
    for c in clients:
        c.start()
    totals = [results.get() for _ in clients]
    elapsed = time.monotonic() - started
    for c in clients:
        c.join()
    rss = _peak_rss_mb(receiver.pid)
    receiver.send_signal(signal.SIGTERM)
    out, _ = receiver.communicate(timeout=60)
    acked = sum(t[0] for t in totals)
    requests = sum(t[1] for t in totals)
    refused = sum(t[2] for t in totals)
    written = sum(
        len(p.read_bytes()) if not p.name.endswith(".gz") else 0
        for p in (run_dir / "spans").iterdir()
    )
    rate = acked / elapsed
    per_request = sum(_count(b) for b in bodies) / len(bodies)
    print(
        f"{args.clients} client process(es), {args.seconds:g} s, up to 512 spans per request "
        f"(mean {per_request:.0f}), ~{size:.0f} protobuf bytes per span, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"requests: {requests:,} ({refused:,} refused)")
    print(f"spans acknowledged: {acked:,} = {rate:,.0f} spans/s (target ≥ {TARGET_SPANS_PER_S:,})")
    print(f"receiver peak RSS: {rss:,.0f} MB (target ≤ {TARGET_RSS_MB})")
    print(f"receiver summary: {out.strip().splitlines()[1] if out.strip() else '?'}")
    print(f"plain bytes still on disk (the rest rotated and gzipped): {written / 1e6:,.0f} MB")
    if not args.keep:
        shutil.rmtree(run_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
