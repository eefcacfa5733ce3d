"""The demo's slow external service: a fraud-check stub and its traced HTTP client.

The stub is a tiny HTTP server in a daemon thread of the demo process (its own
port on 127.0.0.1), answering ``POST /fraud-check`` after
:data:`FRAUD_LATENCY_S`, as a third-party scoring API would. The client is plain
:mod:`urllib.request`; the service traces it with the official urllib
instrumentation (see :func:`correlate.demo.app.serve`).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from correlate.demo.errors import DemoError

#: How long the pretend fraud-scoring provider takes to answer.
FRAUD_LATENCY_S = 0.06
FRAUD_PATH = "/fraud-check"


class _Handler(BaseHTTPRequestHandler):
    server: _StubServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != FRAUD_PATH:
            self.send_error(404)
            return
        self.server.on_call()
        time.sleep(self.server.latency_s)
        body = b'{"verdict":"ok","score":0.02}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per checkout would drown the service log; the spans tell it.
        return


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency_s: float, on_call: Callable[[], None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.on_call = on_call


@dataclass
class FraudStub:
    """A running stub; ``url`` is its fraud-check endpoint. ``close()`` stops it."""

    url: str
    _server: _StubServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_fraud_stub(
    latency_s: float = FRAUD_LATENCY_S, on_call: Callable[[], None] | None = None
) -> FraudStub:
    """Serve the fraud-check stub on a free port of 127.0.0.1 in a daemon thread."""
    try:
        server = _StubServer(latency_s, on_call or (lambda: None))
    except OSError as exc:
        raise DemoError(f"cannot start the fraud-check stub: {exc}") from exc
    thread = threading.Thread(target=server.serve_forever, name="fraud-stub", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    return FraudStub(f"http://{host!s}:{port}{FRAUD_PATH}", server, thread)


class FraudClient:
    """Calls the fraud-check endpoint with :mod:`urllib.request`.

    The demo service traces the call with the official urllib instrumentation
    (opentelemetry-instrumentation-urllib), so its CLIENT span is stock
    OpenTelemetry. With no ``url`` the check is simulated in process (a sleep, no
    call): what :func:`correlate.demo.app.create_app` uses when nobody started a stub.
    """

    def __init__(self, url: str | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def check(self, order: dict[str, Any]) -> bool:
        """True when the provider lets the order through."""
        if self.url is None:
            time.sleep(FRAUD_LATENCY_S)
            return True
        request = urllib.request.Request(
            self.url,
            data=json.dumps(order).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return bool(response.status == 200)
