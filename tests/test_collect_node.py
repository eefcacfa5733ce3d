"""The Node.js SDK over OTLP/HTTP: every span it reports exported arrives once, ids and times
intact. Uses the official packages from examples/node-shop/node_modules (``npm ci`` there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from correlate.collect import Receiver

from .collect_helpers import ingested_rows
from .conftest import DATA, _no_skip

NODE_MODULES = Path(__file__).parent.parent / "examples" / "node-shop" / "node_modules"
SCRIPT = DATA / "collect" / "node_spans.js"


def _node() -> str:
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed (the Node SDK test needs Node 20)"
    elif not (NODE_MODULES / "@opentelemetry" / "exporter-trace-otlp-proto").is_dir():
        reason = "examples/node-shop has no node_modules: run `npm ci` there (make test does)"
    if reason is not None:
        if _no_skip():
            pytest.fail(reason + " and CORRELATE_NO_SKIP is set", pytrace=False)
        pytest.skip(reason)
    assert node is not None
    return node


@pytest.mark.parametrize("traces", [1, 400])
def test_node_sdk_spans_arrive_once_with_ids_and_times(tmp_path: Path, traces: int) -> None:
    node = _node()
    run_dir = tmp_path / "run"
    with Receiver(run_dir, http_port=0, grpc_port=None) as receiver:
        done = subprocess.run(
            [node, str(SCRIPT), str(traces)],
            env={
                **os.environ,
                "NODE_PATH": str(NODE_MODULES),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint or "",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    *lines, last = done.stdout.splitlines()
    codes = json.loads(last)["exported"]
    assert codes and set(codes) == {0}  # every export acknowledged (ExportResultCode.SUCCESS)
    sent = [json.loads(line) for line in lines]
    assert len(sent) == 3 * traces
    expected = sorted(
        (s["trace_id"], s["span_id"], s["parent_id"], int(s["start_ns"]), int(s["end_ns"]))
        for s in sent
    )
    assert ingested_rows(run_dir) == expected
    assert receiver.counters.status().spans == 3 * traces


def test_node_sdk_retries_a_503_and_every_span_arrives_once(tmp_path: Path) -> None:
    """Back-pressure: while the receiver's memory budget is spent it answers 503 with
    Retry-After; the Node exporter retries, and once there is room every span arrives once."""
    import threading
    import time

    node = _node()
    run_dir = tmp_path / "run"
    with Receiver(run_dir, http_port=0, grpc_port=None) as receiver:
        held = receiver.budget.free
        assert receiver.budget.take(held)
        process = subprocess.Popen(
            [node, str(SCRIPT), "50"],
            env={
                **os.environ,
                "NODE_PATH": str(NODE_MODULES),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint or "",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not receiver.counters.refusals.get(503) and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = dict(receiver.counters.refusals)
        threading.Timer(0.2, receiver.budget.give, args=(held,)).start()
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert refused.get(503, 0) >= 1
    *lines, last = out.splitlines()
    assert set(json.loads(last)["exported"]) == {0}
    sent = sorted(
        (s["trace_id"], s["span_id"], s["parent_id"], int(s["start_ns"]), int(s["end_ns"]))
        for s in map(json.loads, lines)
    )
    assert len(sent) == 150
    assert ingested_rows(run_dir) == sent
