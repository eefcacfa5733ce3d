"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs`` on a threaded stdlib server.

Facts relied on (the OTLP specification, "OTLP/HTTP"):

- Bodies are ``application/x-protobuf`` or ``application/json``, optionally
  ``Content-Encoding: gzip``; the response uses the request's content type. The
  Collector's ``otlphttp`` exporter may also send ``zstd`` (its ``compression``
  setting), which is taken too.
- Success is 200 with an ``Export…ServiceResponse`` (``partial_success`` when
  items were rejected). A bad request is 400, and its body is a
  ``google.rpc.Status``; 429, 502, 503 and 504 are the codes a client retries,
  honouring ``Retry-After``. Any other 4xx is not retried.

Here: 400 for a body that is not the request (or is cut short), 404 for
another path, 405 for another method, 411 for a body of unknown length, 413
past the size limit (before reading it, when ``Content-Length`` says so; while
inflating gzip or zstd otherwise), 415 for another content type or encoding, and 503
with ``Retry-After`` when the memory budget is spent or the receiver is
stopping. Chunked bodies (Node's exporter sends gzip that way) are read.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from correlate.collect.signals import BadRequest, Decoded, decode_json, decode_protobuf, status_body
from correlate.collect.signals import response as export_response
from correlate.collect.spool import NotStored

PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Seconds a client is told to wait before retrying a 503.
RETRY_AFTER_S = 1
#: Seconds a connection may sit between requests, or stall inside one, before it is closed.
IDLE_TIMEOUT_S = 30.0

# google.rpc.Code values for the Status bodies
_CODES = {400: 3, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 500: 13, 503: 14}


class Refused(Exception):
    """A request answered with an error status; ``read_body`` says whether its body was read."""

    def __init__(self, status: int, message: str, *, body_read: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body_read = body_read


class Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 with keep-alive, one request at a time."""

    protocol_version = "HTTP/1.1"
    server: OtlpHttpServer
    timeout = IDLE_TIMEOUT_S
    server_version = "correlate-collect"

    def setup(self) -> None:
        super().setup()
        self.idle = True
        self.server.connections.add(self)

    def finish(self) -> None:
        self.server.connections.discard(self)
        super().finish()

    def handle_one_request(self) -> None:
        self.idle = True
        super().handle_one_request()
        self.idle = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # counted instead; a status line shows them

    # -- methods -----------------------------------------------------------------------

    def do_POST(self) -> None:
        self.idle = False
        as_json = False
        reserved = 0
        try:
            signal = PATHS.get(self.path.split("?", 1)[0])
            if signal is None:
                raise Refused(
                    404,
                    f"no such path {self.path}; OTLP/HTTP takes {', '.join(PATHS)}",
                    body_read=False,
                )
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type not in (PROTOBUF, JSON):
                raise Refused(
                    415,
                    f"content type {content_type or '(none)'} is not {PROTOBUF} or {JSON}",
                    body_read=False,
                )
            as_json = content_type == JSON
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", "gzip", "zstd"):
                raise Refused(
                    415, f"content encoding {encoding} is not gzip or zstd", body_read=False
                )
            body, reserved = self._read_body()
            if encoding == "gzip":
                body, reserved = self._gunzip(body, reserved)
            elif encoding == "zstd":
                body, reserved = self._unzstd(body, reserved)
            decoded = self._decode(signal, body, as_json)
            try:
                self.server.store(decoded)
            except NotStored as exc:
                raise Refused(503, str(exc)) from None
            self._reply(200, export_response(signal, decoded, as_json=as_json), as_json)
        except Refused as refusal:
            self.server.counters.refused(refusal.status)
            if not refusal.body_read:
                self.close_connection = True
            self._reply(
                refusal.status,
                status_body(_CODES.get(refusal.status, 2), refusal.message, as_json=as_json),
                as_json,
            )
        finally:
            if reserved:
                self.server.budget.give(reserved)

    def _decode(self, signal: str, body: bytes, as_json: bool) -> Decoded:
        try:
            return decode_json(signal, body) if as_json else decode_protobuf(signal, body)
        except BadRequest as exc:
            raise Refused(400, str(exc)) from None

    def do_GET(self) -> None:
        self._not_post()

    def do_PUT(self) -> None:
        self._not_post()

    def _not_post(self) -> None:
        self.idle = False
        self.close_connection = True
        self.server.counters.refused(405)
        self._reply(405, b"OTLP/HTTP takes POST only\n", None, extra={"Allow": "POST"})

    # -- bodies ------------------------------------------------------------------------

    def _reserve(self, n: int, reserved: int) -> int:
        if self.server.stopping.is_set():
            raise Refused(503, "the receiver is stopping", body_read=False)
        if not self.server.budget.take(n):
            raise Refused(503, "the receiver is busy: try again", body_read=False)
        return reserved + n

    def _read_body(self) -> tuple[bytes, int]:
        limit = self.server.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise Refused(411, "a body needs Content-Length or chunked encoding", body_read=False)
        try:
            length = int(length_text)
        except ValueError:
            raise Refused(
                400, f"Content-Length {length_text!r} is not a number", body_read=False
            ) from None
        if length > limit:
            raise Refused(
                413, f"body of {length} bytes is over the limit of {limit}", body_read=False
            )
        reserved = self._reserve(length, 0)
        try:
            body = self.rfile.read(length)
        except OSError:
            body = b""
        if len(body) < length:
            self.server.budget.give(reserved)
            # the client went away mid-body: nothing was acknowledged, nothing is kept
            self.server.counters.aborted()
            self.close_connection = True
            raise Refused(400, f"body cut short at {len(body)} of {length} bytes", body_read=False)
        return body, reserved

    def _read_chunked(self, limit: int) -> tuple[bytes, int]:
        parts: list[bytes] = []
        reserved = 0
        try:
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise Refused(400, "chunked body cut short", body_read=False)
                size = int(line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                if reserved + size > limit:
                    raise Refused(413, f"body over the limit of {limit} bytes", body_read=False)
                reserved = self._reserve(size, reserved)
                chunk = self.rfile.read(size)
                self.rfile.readline(1024)
                if len(chunk) < size:
                    raise Refused(400, "chunked body cut short", body_read=False)
                parts.append(chunk)
        except ValueError:
            self.server.budget.give(reserved)
            raise Refused(400, "bad chunk size in a chunked body", body_read=False) from None
        except BaseException:
            self.server.budget.give(reserved)
            raise
        return b"".join(parts), reserved

    def _gunzip(self, body: bytes, reserved: int) -> tuple[bytes, int]:
        limit = self.server.max_body_bytes
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise Refused(400, f"not gzip: {exc}") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise Refused(413, f"body inflates past the limit of {limit} bytes")
        if not inflater.eof:
            raise Refused(400, "gzip body cut short")
        return self._inflated(data, reserved)

    def _unzstd(self, body: bytes, reserved: int) -> tuple[bytes, int]:
        from correlate.fileio.codecs import codec_named, expand_bytes

        limit = self.server.max_body_bytes
        codec = codec_named("zstd")
        try:
            data = expand_bytes(codec, body, limit)
        except codec.errors() as exc:
            raise Refused(400, f"not zstd, or cut short: {exc}") from None
        if len(data) > limit:
            raise Refused(413, f"body inflates past the limit of {limit} bytes")
        return self._inflated(data, reserved)

    def _inflated(self, data: bytes, reserved: int) -> tuple[bytes, int]:
        """The budget moved from the compressed body (``reserved``) to ``data``."""
        if not self.server.budget.take(len(data)):
            raise Refused(503, "the receiver is busy: try again")
        self.server.budget.give(reserved)
        return data, len(data)

    # -- answers -----------------------------------------------------------------------

    def _reply(
        self, status: int, body: bytes, as_json: bool | None, *, extra: dict[str, str] | None = None
    ) -> None:
        content_type = "text/plain" if as_json is None else (JSON if as_json else PROTOBUF)
        if self.server.stopping.is_set():
            self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 503:
                self.send_header("Retry-After", str(RETRY_AFTER_S))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client is gone; what it sent was handled


class OtlpHttpServer(ThreadingHTTPServer):
    """The listening socket; each connection on a thread of its own, at most ``max_connections``."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store: Callable[[Decoded], None],
        counters: Any,
        budget: Any,
        max_body_bytes: int,
        max_connections: int,
    ) -> None:
        self.store = store
        self.counters = counters
        self.budget = budget
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.connections: set[Handler] = set()
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if len(self.connections) >= self.max_connections:
            self.counters.refused(503)
            body = b"too many connections\n"
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                    b"Content-Type: text/plain\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def close_idle(self) -> None:
        """Close keep-alive connections waiting between requests, so stopping need not wait."""
        for handler in list(self.connections):
            if handler.idle:
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
