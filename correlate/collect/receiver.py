"""The receiver: OTLP/HTTP and OTLP/gRPC listeners feeding one spool, started and stopped as one.

>>> import tempfile
>>> with Receiver(tempfile.mkdtemp(), http_port=0, grpc_port=None) as receiver:
...     receiver.http_endpoint.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.collect.counters import Counters
from correlate.collect.files import frame
from correlate.collect.signals import Decoded
from correlate.collect.spool import Budget, NotStored, Spool
from correlate.errors import CorrelateError

if TYPE_CHECKING:
    from correlate.collect.http import OtlpHttpServer

DEFAULT_HOST = "127.0.0.1"
HTTP_PORT = 4318
GRPC_PORT = 4317
#: The Collector's default limit on a request body.
MAX_BODY_BYTES = 20 * 1024 * 1024
#: Bytes that requests being read or written may hold at once (back-pressure past it).
BUDGET_BYTES = 128 * 1024 * 1024
ROTATE_BYTES = 64 * 1024 * 1024
MAX_CONNECTIONS = 64
#: Seconds a stop waits for requests already being handled.
STOP_GRACE_S = 10.0
#: Seconds a request waits for its write before it is refused (a stuck disk, say).
WRITE_TIMEOUT_S = 60.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("")
    (False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Receiver:
    """Listens for OTLP and writes it under ``out``; ``start()``/``stop()`` or a ``with`` block.

    ``grpc_port=None`` leaves gRPC off; so does a missing grpcio
    (:attr:`grpc_skipped` says why). A port of 0 binds any free port
    (:attr:`http_port`/:attr:`grpc_port` tell which). Binding an address other
    than loopback is refused unless ``allow_remote``: the receiver has no
    authentication.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        host: str = DEFAULT_HOST,
        http_port: int | None = HTTP_PORT,
        grpc_port: int | None = GRPC_PORT,
        allow_remote: bool = False,
        max_body_bytes: int = MAX_BODY_BYTES,
        budget_bytes: int = BUDGET_BYTES,
        rotate_bytes: int = ROTATE_BYTES,
        compress: bool = True,
        max_connections: int = MAX_CONNECTIONS,
        run_info: dict[str, Any] | None = None,
    ) -> None:
        if not is_loopback(host) and not allow_remote:
            raise CorrelateError(
                f"refusing to listen on {host}: the receiver has no authentication, so anyone "
                "who can reach it could write into the run; pass --allow-remote "
                "(allow_remote=True) if that is what you want"
            )
        if http_port is None and grpc_port is None:
            raise CorrelateError("nothing to listen on: give an HTTP port, a gRPC port or both")
        self.out = Path(out)
        self.host = host
        self.requested = (http_port, grpc_port)
        self.max_body_bytes = max_body_bytes
        self.budget = Budget(max(budget_bytes, max_body_bytes))
        self.rotate_bytes = rotate_bytes
        self.compress = compress
        self.max_connections = max_connections
        self.run_info = dict(run_info or {})
        self.counters = Counters()
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.grpc_skipped: str | None = None
        self._http: OtlpHttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: Any = None
        self._spool: Spool | None = None
        self.started_ns = 0
        self.stopped = False

    # -- starting ------------------------------------------------------------------------

    def start(self) -> Receiver:
        self.out.mkdir(parents=True, exist_ok=True)
        self.started_ns = time.time_ns()
        self._spool = Spool(self.out, rotate_bytes=self.rotate_bytes, compress=self.compress)
        try:
            http_port, grpc_port = self.requested
            if http_port is not None:
                self._start_http(http_port)
            if grpc_port is not None:
                # grpcio and http.server cost ~100 ms to import: only when listening
                from correlate.collect.grpc_server import grpc_available, start_grpc

                if grpc_available():
                    self._grpc, self.grpc_port = start_grpc(
                        self.host,
                        grpc_port,
                        store=self.store,
                        counters=self.counters,
                        budget=self.budget,
                        max_body_bytes=self.max_body_bytes,
                    )
                else:
                    self.grpc_skipped = (
                        "OTLP/gRPC is off: grpcio is not installed "
                        "(pip install 'correlate[grpc]'); OTLP/HTTP works without it"
                    )
        except BaseException:
            self.stop()
            raise
        self._write_run_info()
        return self

    def _start_http(self, port: int) -> None:
        from correlate.collect.http import OtlpHttpServer

        try:
            self._http = OtlpHttpServer(
                (self.host, port),
                store=self.store,
                counters=self.counters,
                budget=self.budget,
                max_body_bytes=self.max_body_bytes,
                max_connections=self.max_connections,
            )
        except OSError as exc:
            raise CorrelateError(
                f"cannot listen for OTLP/HTTP on {self.host}:{port}: {exc.strerror or exc}; "
                "pass another --http-port, or 0 for any free port"
            ) from None
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="correlate-collect-http",
        )
        self._http_thread.start()

    @property
    def http_endpoint(self) -> str | None:
        """The URL to give ``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. ``http://127.0.0.1:4318``."""
        if self.http_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str | None:
        if self.grpc_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.grpc_port}"

    # -- what the listeners call ---------------------------------------------------------

    def store(self, decoded: Decoded) -> None:
        """Write a checked request; returns once it is in its file. Raises NotStored if not."""
        if self._spool is None:
            raise NotStored("the receiver is not running")
        ticket = self._spool.submit(decoded)
        if not ticket.wait(WRITE_TIMEOUT_S):
            raise NotStored(ticket.error or f"not written within {WRITE_TIMEOUT_S:g} s")
        nbytes = len(frame(decoded.payload, decoded.encoding)) if decoded.payload else 0
        self.counters.accepted(decoded, nbytes)

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop listening, answer the requests already in hand, write them, close the files."""
        if self.stopped:
            return
        self.stopped = True
        if self._http is not None:
            self._http.stopping.set()
            self._http.shutdown()  # no new connections after serve_forever returns
            self._http.close_idle()
            deadline = time.monotonic() + STOP_GRACE_S
            while self._http.connections and time.monotonic() < deadline:
                self._http.close_idle()
                time.sleep(0.02)
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join()
        if self._grpc is not None:
            self._grpc.stop(grace=STOP_GRACE_S).wait()
        if self._spool is not None:
            self._spool.close()
        if self.started_ns:
            self._write_run_info(ended=True)

    def files(self) -> list[Path]:
        return self._spool.written() if self._spool is not None else []

    def errors(self) -> list[str]:
        return self._spool.errors() if self._spool is not None else []

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- run.json ------------------------------------------------------------------------

    def _write_run_info(self, *, ended: bool = False) -> None:
        """Make ``out`` a run directory (docs/run-directory.md) unless something else did.

        A run.json another recorder wrote is left alone.
        """
        from correlate.version import __version__

        path = self.out / "run.json"
        if path.exists():
            try:
                current = json.loads(path.read_bytes())
            except (OSError, ValueError):
                return
            if not isinstance(current, dict) or current.get("recorder") != "correlate collect":
                return
            if current.get("started_unix_nano") != self.started_ns:
                return
        info: dict[str, Any] = {
            "format": "correlate-run",
            "format_version": 1,
            "recorder": "correlate collect",
            "started_unix_nano": self.started_ns,
            "started_at": _iso(self.started_ns),
            "ended_unix_nano": None,
            "ended_at": None,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "packages": {"correlate": __version__},
            "otlp_http": self.http_endpoint,
            "otlp_grpc": self.grpc_endpoint,
            **self.run_info,
        }
        if ended:
            now = time.time_ns()
            c = self.counters
            info.update(
                ended_unix_nano=now,
                ended_at=_iso(now),
                received={
                    "spans": c.items["traces"],
                    "metric_points": c.items["metrics"],
                    "log_records": c.items["logs"],
                    "requests": c.requests,
                    "rejected_items": c.rejected,
                    "refused_requests": {str(k): v for k, v in sorted(c.refusals.items())},
                },
            )
        temporary = path.with_name(".run.json.tmp")
        temporary.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(temporary, path)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")
