"""A loopback TCP proxy that can be cut, to give a service a database outage on cue.

The service connects to the proxy's port instead of the database's; ``cut()`` closes the
listener (a new connect is then refused: nothing listens on the port) and aborts every
connection it carried, both ends, as a database that went down would leave them. The
database itself keeps running for everyone else.

    with CuttableProxy("127.0.0.1", 5432) as proxy:
        ...  # point the service at 127.0.0.1:proxy.port
        proxy.cut()

``when_up()`` acts on cue, once the service answers and its load has run a while.

``freeze()`` is a network partition instead: nothing is closed, but nothing passes either
way any more (bytes already read are dropped), and new connections are taken and never
answered; a caller waiting on a reply waits until its own timeout, if it has one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Callable
from types import TracebackType


class CuttableProxy:
    """Forward 127.0.0.1:``port`` to ``host``:``target_port`` on a thread of its own."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host, self.target_port = host, target_port
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._silent = False
        self._frozen: asyncio.Event | None = None

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def cut(self, *, refuse: bool = True) -> None:
        """Drop every open connection, and refuse new ones (``refuse``) or take them and
        answer nothing, as a host that drops packets; safe to call more than once."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._cut(refuse), self._loop).result(timeout=10)

    def freeze(self) -> None:
        """Stop every byte both ways and answer no new connection, closing nothing."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._freeze(), self._loop).result(timeout=10)

    async def _freeze(self) -> None:
        self._silent = True
        self._frozen = asyncio.Event()  # never set: the pipes wait on it for good

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self, refuse: bool = True) -> None:
        self._silent = not refuse
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._silent:
            self._writers.add(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None or self._silent:  # cut while this one was connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, writer), self._pipe(up_reader, writer, up_writer)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        try:
            while data := await reader.read(65536):
                if self._frozen is not None:
                    await self._frozen.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, other):
                self._writers.discard(end)
                end.transport.abort()


def when_up(
    health_url: str, after_s: float, act: Callable[[], None], at: list[int], *, wait_s: float = 120
) -> threading.Thread:
    """On a thread: once ``health_url`` first answers (the load starts then), wait
    ``after_s``, note the moment in ``at`` (ns) and ``act`` (cut or freeze a proxy). Gives up
    without acting when the service never answers within ``wait_s``."""

    def run() -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health_url, timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            return
        time.sleep(after_s)
        at.append(time.time_ns())
        act()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
