"""``correlate record``: run a command with correlate as its OTLP endpoint, then analyse.

The receiver (and, given a database URL, ``correlate watch``) starts first;
the command runs with ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` in its environment, and
``CORRELATE_RUN_DIR`` / ``CORRELATE_LOAD_DIR`` saying where load-generator
results belong. When it exits, the receiver waits ``linger`` seconds for
exports still on their way, everything stops (files flushed), load results the
command named on its command line are copied into ``RUN_DIR/load/``, and the
run directory is analysed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from correlate.collect.collector import CollectResult
from correlate.collect.receiver import (
    DEFAULT_HOST,
    GRPC_PORT,
    HTTP_PORT,
    MAX_BODY_BYTES,
    Receiver,
)
from correlate.errors import CorrelateError

if TYPE_CHECKING:
    from correlate.analysis.verdict import Analysis
    from correlate.store import Store
    from correlate.watch import WatchResult

LOAD_FOLDER = "load"


@dataclass
class RecordResult:
    """What one :func:`record` did: the command's exit code, what arrived, the verdict."""

    out: Path
    command: list[str]
    returncode: int
    collected: CollectResult
    watched: WatchResult | None = None
    #: load-generator results the command named, copied into RUN_DIR/load/
    load_files: list[Path] = field(default_factory=list)
    analysis: Analysis | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What ran and what arrived, in a few lines (the analysis is separate)."""
        lines = [f"command exited with {self.returncode}: {' '.join(self.command)}"]
        lines.append(self.collected.summary().rstrip("\n"))
        if self.watched is not None:
            lines.append(self.watched.summary().rstrip("\n"))
        if self.load_files:
            lines.append("load results: " + ", ".join(str(p) for p in self.load_files))
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<RecordResult exit {self.returncode}, {self.collected.spans} spans>"


def record(
    out: str | os.PathLike[str],
    command: Sequence[str],
    *,
    store: Store | None = None,
    dsn: str | None = None,
    host: str = DEFAULT_HOST,
    http_port: int | None = HTTP_PORT,
    grpc_port: int | None = GRPC_PORT,
    allow_remote: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    linger: float = 1.0,
    watch_interval: float = 1.0,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> RecordResult:
    """Run ``command`` with a receiver as its OTLP endpoint; analyse what it sent into ``store``.

    ``out`` becomes the run directory. With ``dsn``, ``correlate watch``
    samples the database beside the command. Without ``store`` nothing is
    analysed (``RecordResult.analysis`` is None). SIGTERM is passed to the
    command (Ctrl-C reaches it from the terminal); recording stops when it exits. Raises
    :class:`~correlate.errors.CorrelateError` when no span arrived, saying
    how to point the service at the receiver.
    """
    argv = [str(a) for a in command]
    if not argv:
        raise CorrelateError("no command to run: give it after --, e.g. -- k6 run load.js")
    run_dir = Path(out)
    receiver = Receiver(
        run_dir,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        allow_remote=allow_remote,
        max_body_bytes=max_body_bytes,
        run_info={"command": argv},
    )
    receiver.start()
    watcher: _Watcher | None = None
    try:
        (run_dir / LOAD_FOLDER).mkdir(parents=True, exist_ok=True)
        if dsn is not None:
            watcher = _Watcher(dsn, run_dir, watch_interval)
        started_wall = time.time()
        started = time.monotonic()
        child_env = {**os.environ, **(env or {}), **_otel_env(receiver, run_dir)}
        try:
            process = subprocess.Popen(argv, env=child_env)
        except OSError as exc:
            raise CorrelateError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        with _forward_signals(process):
            returncode = process.wait()
        time.sleep(max(0.0, linger))
    finally:
        try:
            watched = watcher.stop() if watcher is not None else None
        finally:  # a watcher that failed still leaves no receiver running (its threads
            receiver.stop()  # would keep the process alive after the error)
    collected = CollectResult.of(receiver, time.monotonic() - started, "command")
    result = RecordResult(run_dir, argv, returncode, collected, watched)
    result.load_files = pick_up_load_files(argv, run_dir, since=started_wall)
    if not any((run_dir / LOAD_FOLDER).iterdir()):
        result.notes.append(
            f"no load-generator results: write them to {run_dir / LOAD_FOLDER} "
            "($CORRELATE_LOAD_DIR), e.g. k6 run --out json=$CORRELATE_LOAD_DIR/k6.json, "
            "or locust --csv $CORRELATE_LOAD_DIR/locust"
        )
    if collected.spans == 0:
        raise CorrelateError(
            f"no spans arrived at {receiver.http_endpoint or receiver.grpc_endpoint} while "
            f"{argv[0]} ran (exit {returncode}); does the service export OTLP to "
            "OTEL_EXPORTER_OTLP_ENDPOINT? (Java agent, Node and Go SDKs do by default; "
            "Python needs an OTLP exporter installed)"
        )
    if store is not None:
        from correlate.analysis.verdict import analyze

        result.analysis = analyze(run_dir, store=store, settings=settings)
    return result


def _otel_env(receiver: Receiver, run_dir: Path) -> dict[str, str]:
    env = {
        "CORRELATE_RUN_DIR": str(run_dir.resolve()),
        "CORRELATE_LOAD_DIR": str((run_dir / LOAD_FOLDER).resolve()),
    }
    if receiver.http_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.http_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    elif receiver.grpc_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.grpc_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    return env


def _candidates(argv: Sequence[str]) -> Iterator[Path]:
    """Paths an argument may name: itself, what follows ``=`` (``--out json=k6.json``),
    and files it is the prefix of (``locust --csv run`` writes ``run_stats.csv``)."""
    for arg in argv[1:]:
        for text in {arg, arg.rsplit("=", 1)[-1]}:
            if not text or text.startswith("-"):
                continue
            path = Path(text)
            if path.is_file():
                yield path
            elif path.parent.is_dir() and path.name:
                yield from (p for p in path.parent.glob(path.name + "_*") if p.is_file())


def pick_up_load_files(argv: Sequence[str], run_dir: Path, *, since: float) -> list[Path]:
    """Copy into ``run_dir/load/`` the load-generator results ``argv`` names and wrote.

    A file counts when an argument names it (or is its prefix), it changed
    after ``since`` (a Unix time), and its content reads as k6 or Locust results.
    """
    from correlate.ingest.detect import NotTraceFile, detect

    target = run_dir / LOAD_FOLDER
    copied: list[Path] = []
    seen: set[Path] = set()
    for path in _candidates(argv):
        resolved = path.resolve()
        if resolved in seen or resolved.is_relative_to(run_dir.resolve()):
            continue
        seen.add(resolved)
        try:
            if path.stat().st_mtime < since - 1 or detect(path).family != "load":
                continue
        except (NotTraceFile, OSError):
            continue
        destination = target / path.name
        shutil.copy2(path, destination)
        copied.append(destination)
    return copied


class _Watcher:
    """``correlate watch`` on a thread of its own, stopped with the recording."""

    def __init__(self, dsn: str, run_dir: Path, interval: float) -> None:
        from correlate.watch import watch
        from correlate.watch.connection import open_target

        # A DSN it cannot use (a typo, a driver not installed) is an error now, before the
        # command runs its load for nothing; nothing is connected here.
        open_target(dsn, connect_timeout=1, statement_timeout_ms=1000).engine.dispose()
        self.event = threading.Event()
        self.result: WatchResult | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = watch(
                    dsn, run_dir, interval=interval, stop=self.event, handle_signals=False
                )
            except BaseException as exc:  # handed to the caller in stop()
                self.error = exc

        self.thread = threading.Thread(target=run, name="correlate-record-watch")
        self.thread.start()

    def stop(self) -> WatchResult | None:
        self.event.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def _forward_signals(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Pass stop requests to the command (main thread only); recording stops when it exits.

    SIGTERM is forwarded. A Ctrl-C reaches the command from the terminal by itself, so
    the first SIGINT is not sent again (a load generator stopping gracefully would take a
    second one as "abort"); a second SIGINT sends SIGTERM, a third SIGKILL.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        if process.poll() is not None:
            return
        if signum == signal.SIGTERM:
            process.send_signal(signal.SIGTERM)
            return
        interrupts += 1
        if interrupts == 2:
            process.send_signal(signal.SIGTERM)
        elif interrupts > 2:
            process.kill()

    previous: dict[int, Any] = {
        s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
