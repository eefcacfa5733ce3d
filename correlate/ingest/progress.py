"""What ingest tells a progress display, and DuckDB's progress on a long statement."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["Progress", "polled_progress"]


class Progress(Protocol):
    """What ingest tells a progress display. The CLI passes a rich one on a terminal."""

    def start(self, total_bytes: int) -> None: ...

    def file(self, path: Path) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class polled_progress:
    """Forward DuckDB's progress on the running statement to ``progress``, from a thread."""

    def __init__(self, con: object, nbytes: int, progress: Progress | None) -> None:
        import threading

        self._con = con
        self._nbytes = nbytes
        self._progress = progress
        self._done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> None:
        if self._progress is not None:
            self._thread.start()

    def __exit__(self, *exc: object) -> None:
        if self._progress is None:
            return
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._progress.advance(self._nbytes - self._done)
        else:
            self._progress.advance(-self._done)

    def _poll(self) -> None:
        assert self._progress is not None
        while not self._stop.wait(0.25):
            try:
                share = float(self._con.query_progress())  # type: ignore[attr-defined]
            except Exception:  # the statement finished between checks
                continue
            reached = int(self._nbytes * max(0.0, min(share, 100.0)) / 100)
            if reached > self._done:
                self._progress.advance(reached - self._done)
                self._done = reached
