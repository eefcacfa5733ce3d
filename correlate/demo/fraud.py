"""The demo's slow external service: a fraud-check stub and its traced HTTP client.

The stub is a tiny HTTP server in a daemon thread of the demo process (its own
port on 127.0.0.1), answering ``POST /fraud-check`` after
:data:`FRAUD_LATENCY_S`, as a third-party scoring API would. The client makes the
call with :mod:`urllib.request` inside an OpenTelemetry CLIENT span with the
stable HTTP semantic-convention attributes (``http.request.method``,
``url.full``, ``server.address``, ``server.port``,
``http.response.status_code``) and a W3C ``traceparent`` header, as an HTTP
client instrumentation would write it; with no tracer provider it makes the
same call untraced.
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
from urllib.parse import urlsplit

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
    """Calls the fraud-check endpoint; traced when given a tracer provider.

    With no ``url`` the check is simulated in process (sleep only, no span): what
    :func:`correlate.demo.app.create_app` uses when nobody started a stub.
    """

    def __init__(
        self, url: str | None = None, tracer_provider: Any = None, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._tracer: Any = None
        if tracer_provider is not None:
            from opentelemetry import trace

            self._tracer = trace.get_tracer("correlate.demo.fraud", tracer_provider=tracer_provider)

    def check(self, order: dict[str, Any]) -> bool:
        """True when the provider lets the order through."""
        if self.url is None:
            time.sleep(FRAUD_LATENCY_S)
            return True
        body = json.dumps(order).encode()
        if self._tracer is None:
            return self._post(body, {})
        from opentelemetry.propagate import inject
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parts = urlsplit(self.url)
        attributes = {
            "http.request.method": "POST",
            "url.full": self.url,
            "server.address": parts.hostname or "",
            "server.port": parts.port or 80,
        }
        with self._tracer.start_as_current_span(
            "POST", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            headers: dict[str, str] = {}
            inject(headers)
            try:
                ok = self._post(body, headers)
            except OSError as exc:
                span.set_attribute("error.type", exc.__class__.__name__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise
            span.set_attribute("http.response.status_code", 200 if ok else 500)
            return ok

    def _post(self, body: bytes, headers: dict[str, str]) -> bool:
        assert self.url is not None
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return bool(response.status == 200)
