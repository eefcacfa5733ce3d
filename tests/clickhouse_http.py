"""ClickHouse's HTTP interface served from chDB, so clickhouse-connect meets the real engine.

What clickhouse-connect needs of a server (seen on the wire): ``POST /?…`` with the
query as the body (``… FORMAT Native`` or ``FORMAT Arrow``), or for an insert the
statement in the ``query`` URL parameter (``INSERT INTO t (cols) FORMAT Arrow``) and
the data as the body; a 200 with the result bytes, or an error status with
ClickHouse's error text. URL parameters (settings, session id) are ignored here.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from correlate.clickhouse.connection import ClickHouseError, Connection

#: The ports these tests may listen on (127.0.0.1 only).
PORTS = range(18150, 18200)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(.+?)\s*(\([^)]*\))?\s*FORMAT\s+Arrow\s*$", re.I | re.S)
_FORMAT = re.compile(r"FORMAT\s+(\w+)\s*$", re.I)


def _handler(conn: Connection, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            statement = query.get("query", [""])[0]
            try:
                with lock:
                    payload = self._run(statement, body)
            except ClickHouseError as exc:
                self.send_response(500)
                self.send_header("X-ClickHouse-Exception-Code", "1")
                self.end_headers()
                self.wfile.write(str(exc).encode())
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST

        def _run(self, statement: str, body: bytes) -> bytes:
            import pyarrow as pa

            insert = _INSERT.match(statement) if statement else None
            if insert:
                # clickhouse-connect sends the Arrow file format (magic "ARROW1")
                data = pa.ipc.open_file(pa.BufferReader(body)).read_all()
                conn.insert_arrow(insert.group(1), data)
                return b""
            sql = statement + body.decode("utf-8") if statement else body.decode("utf-8")
            match = _FORMAT.search(sql)
            fmt = match.group(1) if match else "TabSeparated"
            result = conn._run(sql, fmt)  # type: ignore[attr-defined]
            return bytes(result.bytes())

    return Handler


@contextmanager
def http_server(conn: Connection) -> Iterator[int]:
    """Serve ``conn``'s chDB session over HTTP on a free port of :data:`PORTS`; yield the port."""
    server = None
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                continue
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _handler(conn, threading.Lock()))
            break
        except OSError:
            continue
    assert server is not None, "no free port in 18150-18199"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
