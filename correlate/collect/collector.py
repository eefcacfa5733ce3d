"""``correlate collect``: be the OTLP endpoint for the length of a run.

>>> import tempfile, threading
>>> stop = threading.Event(); stop.set()
>>> collect(tempfile.mkdtemp(), http_port=0, grpc_port=None, stop=stop).spans
0
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from correlate.collect.counters import CollectStatus
from correlate.collect.receiver import (
    BUDGET_BYTES,
    DEFAULT_HOST,
    GRPC_PORT,
    HTTP_PORT,
    MAX_BODY_BYTES,
    ROTATE_BYTES,
    Receiver,
)

#: How often the status callback is called, and a stop request looked for.
STATUS_INTERVAL_S = 1.0
_TICK_S = 0.05


@dataclass
class CollectResult:
    """What one receiver took in, where it wrote it, and what it refused."""

    out: Path
    http_endpoint: str | None
    grpc_endpoint: str | None
    spans: int = 0
    metric_points: int = 0
    log_records: int = 0
    requests: int = 0
    #: items inside accepted requests that were rejected (partial success)
    rejected: int = 0
    #: refused requests by HTTP status (gRPC refusals counted as their HTTP twin)
    refused: dict[int, int] = field(default_factory=dict)
    bytes_written: int = 0
    files: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: "duration", "signal" (SIGINT/SIGTERM), "stop" (the event) or "command" (record)
    stopped_by: str = "stop"
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, receiver: Receiver, elapsed_s: float, stopped_by: str) -> CollectResult:
        c = receiver.counters
        notes = [receiver.grpc_skipped] if receiver.grpc_skipped else []
        return cls(
            receiver.out,
            receiver.http_endpoint,
            receiver.grpc_endpoint,
            spans=c.items["traces"],
            metric_points=c.items["metrics"],
            log_records=c.items["logs"],
            requests=c.requests,
            rejected=c.rejected,
            refused=dict(sorted(c.refusals.items())),
            bytes_written=c.bytes,
            files=receiver.files(),
            elapsed_s=elapsed_s,
            stopped_by=stopped_by,
            notes=notes + receiver.errors(),
        )

    def summary(self) -> str:
        """What happened, in a few lines."""
        where = ", ".join(
            f"{name} {url}"
            for name, url in (("OTLP/HTTP", self.http_endpoint), ("OTLP/gRPC", self.grpc_endpoint))
            if url
        )
        lines = [
            f"collected for {self.elapsed_s:.1f}s on {where} (stopped by {self.stopped_by})",
            f"{self.spans:,} spans, {self.metric_points:,} metric points, "
            f"{self.log_records:,} log records in {self.requests:,} requests; "
            f"{self.bytes_written / 1e6:.1f} MB in {len(self.files)} file(s) under {self.out}",
        ]
        if self.refused or self.rejected:
            statuses = ", ".join(f"{n} × {code}" for code, n in self.refused.items())
            lines.append(
                f"dropped: {sum(self.refused.values())} request(s) refused"
                + (f" ({statuses})" if statuses else "")
                + f", {self.rejected} item(s) rejected"
            )
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (
            f"<CollectResult {self.spans} spans, {self.metric_points} metric points, "
            f"{self.log_records} log records, {self.elapsed_s:.1f}s>"
        )


def collect(
    out: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    http_port: int | None = HTTP_PORT,
    grpc_port: int | None = GRPC_PORT,
    allow_remote: bool = False,
    duration: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    budget_bytes: int = BUDGET_BYTES,
    rotate_bytes: int = ROTATE_BYTES,
    compress: bool = True,
    stop: threading.Event | None = None,
    status: Callable[[CollectStatus], None] | None = None,
    ready: Callable[[Receiver], None] | None = None,
    handle_signals: bool = True,
) -> CollectResult:
    """Receive OTLP on ``host`` (HTTP ``http_port``, gRPC ``grpc_port``) into run directory ``out``.

    Traces go to ``out/spans/`` (protobuf bodies in the Collector file exporter's
    framing, JSON bodies as OTLP/JSON lines), metrics to ``out/metrics/`` and
    logs to ``out/logs/`` as OTLP/JSON lines; ``correlate ingest out`` reads the
    spans. A request is answered only once it is written. Runs until
    ``duration`` seconds pass, ``stop`` is set, or (with ``handle_signals``, in
    the main thread) SIGINT or SIGTERM arrives; then stops listening, finishes
    the requests in hand, closes the files and returns. ``ready`` is called
    once listening (with the :class:`Receiver`, whose ports say where);
    ``status`` about once a second. A port of None turns that protocol off; 0
    binds any free port.
    """
    receiver = Receiver(
        out,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        allow_remote=allow_remote,
        max_body_bytes=max_body_bytes,
        budget_bytes=budget_bytes,
        rotate_bytes=rotate_bytes,
        compress=compress,
    )
    signalled = threading.Event()
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    with _signals(handle_signals, signalled):
        receiver.start()
        try:
            if ready is not None:
                ready(receiver)
            next_status = started + STATUS_INTERVAL_S
            while not signalled.is_set() and not (stop is not None and stop.is_set()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if status is not None and now >= next_status:
                    status(receiver.counters.status())
                    next_status = now + STATUS_INTERVAL_S
                time.sleep(_TICK_S)
        finally:
            receiver.stop()
    if signalled.is_set():
        stopped_by = "signal"
    elif stop is not None and stop.is_set():
        stopped_by = "stop"
    else:
        stopped_by = "duration"
    return CollectResult.of(receiver, time.monotonic() - started, stopped_by)


@contextmanager
def _signals(enabled: bool, flag: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``flag`` (main thread only), then are restored."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()  # only a flag: the loop sees it within a tick and stops cleanly

    previous: dict[int, Any] = {
        s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
