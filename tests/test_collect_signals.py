"""correlate collect as a process: SIGTERM under load loses no acknowledged span."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .collect_helpers import ingested_rows, proto_request


def _start(run_dir: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
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
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"OTLP/HTTP http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    return process, int(match.group(1))


def _sender(port: int, seed0: int, acknowledged: list[int], stop: threading.Event) -> None:
    """Send 50-span requests on one keep-alive connection until refused or stopped."""
    seed = seed0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while not stop.is_set():
            conn.request(
                "POST",
                "/v1/traces",
                body=proto_request(50, seed),
                headers={"Content-Type": "application/x-protobuf"},
            )
            answer = conn.getresponse()
            answer.read()
            if answer.status == 200:
                acknowledged.append(seed)
            elif answer.status != 503:
                raise AssertionError(f"unexpected status {answer.status}")
            seed += 1
    except OSError:
        pass  # the receiver closed the connection while stopping: that request was not acked
    finally:
        conn.close()


@pytest.mark.slow
def test_sigterm_under_load_keeps_every_acknowledged_span(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process, port = _start(run_dir)
    stop = threading.Event()
    acknowledged: list[list[int]] = [[], [], []]
    senders = [
        threading.Thread(target=_sender, args=(port, 1000 * (i + 1), acknowledged[i], stop))
        for i in range(3)
    ]
    for thread in senders:
        thread.start()
    deadline = time.monotonic() + 20
    while sum(map(len, acknowledged)) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    stop.set()
    for thread in senders:
        thread.join(timeout=10)
    assert process.returncode == 0, err
    assert "stopped by signal" in out
    acked = {seed for seeds in acknowledged for seed in seeds}
    assert len(acked) >= 60
    expected = {(seed * 1_000_003 + i + 1) for seed in acked for i in range(50)}
    present = {int(span_id, 16) for _, span_id, *_ in ingested_rows(run_dir)}
    assert expected <= present
    # nothing beyond what was sent, and the status line stayed off (not a terminal)
    assert "\r" not in err
    assert os.listdir(run_dir / "spans")
