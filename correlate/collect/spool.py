"""Between a request and its file: a memory budget, a bounded queue and one writer thread.

A request is acknowledged only after its records are in the file and
flushed to the operating system, so a receiver that is stopped (or killed
with SIGKILL) after answering 200 has lost nothing it answered for. The
writer takes whatever is queued, writes it, flushes once and then wakes
every request it wrote (a group commit), so a busy receiver flushes once
per batch of requests, not once per request.

Memory is bounded by :class:`Budget`: a request reserves its bytes before
its body is read, and gives them back once written. When the budget is
spent the request is refused (HTTP 503 with ``Retry-After``, gRPC
``UNAVAILABLE``), which OTLP clients retry: back-pressure, never an
unbounded queue.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from correlate.collect.files import FOLDERS, RotatingFile, frame
from correlate.collect.signals import Decoded


class Budget:
    """Bytes that requests in flight may hold, taken and given back.

    >>> b = Budget(10)
    >>> b.take(8), b.take(3), b.take(2)
    (True, False, True)
    >>> b.give(10); b.free
    10
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n

    @property
    def free(self) -> int:
        return self.limit - self.used


@dataclass
class Ticket:
    """One request's records on their way to a file; ``wait()`` returns once they are written."""

    decoded: Decoded
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True when written; False when writing failed or did not finish in ``timeout``."""
        return self.done.wait(timeout) and self.error is None


class NotStored(Exception):
    """Records that were not written, so must not be acknowledged (the client may retry)."""


class Spool:
    """The writer thread and its files, one :class:`RotatingFile` per (signal, encoding)."""

    def __init__(self, run_dir: Path, *, rotate_bytes: int, compress: bool) -> None:
        self.run_dir = run_dir
        self.rotate_bytes = rotate_bytes
        self.compress = compress
        self.files: dict[tuple[str, str], RotatingFile] = {}
        # Bounded by the Budget of the bytes its tickets hold, not by a count.
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="correlate-collect-writer")
        self._thread.start()

    def submit(self, decoded: Decoded) -> Ticket:
        """Queue a request's records; raises :class:`NotStored` once :meth:`close` began."""
        ticket = Ticket(decoded)
        with self._lock:
            if self._closed:
                raise NotStored("the receiver is stopping")
            self._queue.put(ticket)
        return ticket

    def _file(self, decoded: Decoded) -> RotatingFile:
        key = (decoded.signal, decoded.encoding)
        if key not in self.files:
            folder = self.run_dir / FOLDERS[decoded.signal]
            self.files[key] = RotatingFile(
                folder, decoded.encoding, self.rotate_bytes, self.compress
            )
        return self.files[key]

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Ticket] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
                if len(batch) >= 256:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[Ticket]) -> None:
        touched: set[RotatingFile] = set()
        error: str | None = None
        try:
            for ticket in batch:
                if ticket.decoded.payload:
                    target = self._file(ticket.decoded)
                    target.write(frame(ticket.decoded.payload, ticket.decoded.encoding))
                    touched.add(target)
            for target in touched:
                target.flush()
        except OSError as exc:  # disk full, folder removed: the requests are not acknowledged
            error = f"could not write: {exc}"
        for ticket in batch:
            ticket.error = error
            ticket.done.set()

    def close(self) -> None:
        """Write everything queued, then close every file; later :meth:`submit` calls fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        for target in self.files.values():
            target.close()

    def written(self) -> list[Path]:
        """Every file written, in order of stream then number."""
        return [p for f in self.files.values() for p in f.files]

    def errors(self) -> list[str]:
        return [e for f in self.files.values() for e in f.errors]
