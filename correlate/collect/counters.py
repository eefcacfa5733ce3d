"""What a receiver has taken in and turned away, counted across its threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from correlate.collect.signals import Decoded


@dataclass
class CollectStatus:
    """A receiver's totals so far; given to the ``status`` callback about once a second."""

    elapsed_s: float
    spans: int
    metric_points: int
    log_records: int
    #: bytes written to the run directory's files
    bytes: int
    #: spans per second over the last interval
    spans_per_s: float
    #: requests refused (4xx/5xx) and items rejected inside accepted requests
    refused: int
    rejected: int

    def line(self) -> str:
        """A one-line summary, for a terminal's status line.

        >>> CollectStatus(12.5, 51234, 120, 0, 3_400_000, 4100.0, 0, 0).line()
        'collect 12.5s: 51,234 spans (4,100/s), 120 metric points, 0 log records, 3.4 MB, 0 dropped'
        """
        dropped = self.refused + self.rejected
        return (
            f"collect {self.elapsed_s:.1f}s: {self.spans:,} spans ({self.spans_per_s:,.0f}/s), "
            f"{self.metric_points:,} metric points, {self.log_records:,} log records, "
            f"{self.bytes / 1e6:.1f} MB, {dropped:,} dropped"
        )


@dataclass
class Counters:
    """Thread-safe totals: accepted items per signal, refusals per HTTP status."""

    items: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("traces", "metrics", "logs"), 0)
    )
    requests: int = 0
    rejected: int = 0
    bytes: int = 0
    refusals: dict[int, int] = field(default_factory=dict)
    #: requests whose client went away before its body was read whole
    aborted_requests: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: tuple[float, int] = (0.0, 0)

    def accepted(self, decoded: Decoded, nbytes: int) -> None:
        with self._lock:
            self.items[decoded.signal] += decoded.items
            self.rejected += decoded.rejected
            self.requests += 1
            self.bytes += nbytes

    def refused(self, status: int) -> None:
        with self._lock:
            self.refusals[status] = self.refusals.get(status, 0) + 1

    def aborted(self) -> None:
        with self._lock:
            self.aborted_requests += 1

    def status(self) -> CollectStatus:
        now = time.monotonic()
        with self._lock:
            last_time, last_spans = self._last
            spans = self.items["traces"]
            self._last = (now, spans)
            elapsed = now - self.started
            window = now - (last_time or self.started)
            rate = (spans - last_spans) / window if window > 0 else 0.0
            return CollectStatus(
                elapsed,
                spans,
                self.items["metrics"],
                self.items["logs"],
                self.bytes,
                rate,
                sum(self.refusals.values()),
                self.rejected,
            )
