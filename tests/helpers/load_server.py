"""A tiny HTTP service on 127.0.0.1 for producing real load-generator outputs.

``/orders/<id>`` answers 200 after a few milliseconds, ``/fail`` answers 500,
everything else 404. Used by ``make_load_fixtures.py``; nothing here touches
the network beyond loopback.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/orders/"):
            time.sleep(0.005)
            self._answer(200, b'{"order": "ok"}')
        elif self.path == "/fail":
            self._answer(500, b'{"error": "planted"}')
        else:
            self._answer(404, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the load generator's own output is what matters


def serve() -> tuple[ThreadingHTTPServer, str]:
    """Start the server on a free loopback port in a daemon thread; (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
