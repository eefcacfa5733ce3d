"""``--window START..END``: the stretch of time of a ClickHouse source to analyse.

Each end is an ISO-8601 timestamp (UTC when it has no offset) or seconds since
the epoch; either may be left out (``START..`` runs to the last span). Both ends
are inclusive, in nanoseconds since the epoch.

A window selects whole traces (:func:`window_condition`): every span of each trace
whose first span started in it, spans that started after its end too, and nothing of
a trace that began before it. The traces are looked for within
:data:`TRACE_SLACK_NS` of the window, so the scan stays bounded on ``Timestamp``.

>>> parse_window("2026-11-27T10:00..2026-11-27T10:05:30.5")
(1795773600000000000, 1795773930500000000)
>>> parse_window("1795773600..")
(1795773600000000000, None)
>>> format_ns(1795773930500000000)
'2026-11-27T10:05:30.5Z'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from correlate.clickhouse.otel_schema import quote_string
from correlate.errors import CorrelateError

#: How far around a window its traces are looked for: spans up to this long after its
#: end (a request that started just before the end still runs its queries), and first
#: spans up to this long before its start (a trace that began there is not the
#: window's, though some of its spans fall in it). A trace lasting longer loses its
#: spans past the slack, or has its spans in the window taken as the window's.
TRACE_SLACK_NS = 60 * 1_000_000_000
#: The first and last instants ClickHouse's ``DateTime64(9)`` holds (1900-01-01,
#: 2262-04-11): a time outside would wrap around in ``toInt64``.
_FIRST_NS = -2_208_988_800 * 1_000_000_000
_LAST_NS = 2**63 - 1
#: A span without a trace id, as the views read it (:func:`correlate.ingest.canonical.stable_id`).
_NO_TRACE = "empty(trimBoth(TraceId))"

_EXAMPLE = (
    "2026-11-27T10:00..2026-11-27T11:00 (UTC unless an offset is given) or 1795773600..1795777200"
)


class WindowError(CorrelateError):
    """A ``--window`` that does not read as START..END."""


def parse_window(text: str) -> tuple[int | None, int | None]:
    """``(start_ns, end_ns)`` of ``START..END``; an end left out is None."""
    if ".." not in text:
        raise WindowError(f"--window {text!r} is not START..END; for example {_EXAMPLE}")
    first, _, second = text.partition("..")
    start = _instant(first, text)
    end = _instant(second, text)
    if start is None and end is None:
        raise WindowError(f"--window {text!r} has neither a start nor an end; e.g. {_EXAMPLE}")
    if start is not None and end is not None and end < start:
        raise WindowError(
            f"--window {text!r} ends before it starts ({format_ns(end)} < {format_ns(start)})"
        )
    return start, end


def _instant(part: str, text: str) -> int | None:
    part = part.strip()
    if not part:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", part):
        whole, _, fraction = part.partition(".")
        return _held(int(whole) * 1_000_000_000 + int((fraction + "0" * 9)[:9]), part, text)
    iso = part[:-1] + "+00:00" if part.endswith(("Z", "z")) else part
    # nanosecond digits would not fit datetime: keep them apart
    match = re.match(r"^(.*?\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", iso)
    nanos = 0
    if match:
        iso = match.group(1) + match.group(3)
        nanos = int((match.group(2) + "0" * 9)[:9])
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise WindowError(
            f"--window {text!r}: {part!r} is neither an ISO-8601 time nor epoch seconds; "
            f"for example {_EXAMPLE}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return _held(seconds * 1_000_000_000 + nanos, part, text)


def _held(ns: int, part: str, text: str) -> int:
    if not _FIRST_NS <= ns <= _LAST_NS:
        raise WindowError(
            f"--window {text!r}: {part!r} is outside 1900-01-01..2262-04-11, the times "
            "ClickHouse holds to the nanosecond; leave that end out for no bound"
        )
    return ns


def format_ns(ns: int) -> str:
    """An instant in nanoseconds as ISO-8601 UTC, sub-seconds only when there are any."""
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def window_condition(
    table: str,
    window: tuple[int, int] | None,
    services: tuple[str, ...] = (),
    slack_ns: int = TRACE_SLACK_NS,
) -> str:
    """ClickHouse condition on the exporter's traces ``table``: the spans of ``services``
    (all when empty) of each trace whose first span of those services started in
    ``window`` (ns, inclusive); ``''`` when there is neither.

    Both reads stay on ``Timestamp``, the table's partition and order key: the traces
    are chosen from the spans between ``slack_ns`` before the window and its end, and
    their spans read from the window's start to ``slack_ns`` after its end.

    >>> print(window_condition("t", (10**12, 2 * 10**12), ("api",), slack_ns=10**9))
    Timestamp >= fromUnixTimestamp64Nano(toInt64(1000000000000))
    AND Timestamp <= fromUnixTimestamp64Nano(toInt64(2001000000000))
    AND ServiceName IN ('api') AND (TraceId IN (SELECT TraceId FROM t
    WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(999000000000))
    AND Timestamp <= fromUnixTimestamp64Nano(toInt64(2000000000000)) AND ServiceName IN ('api')
    AND empty(trimBoth(TraceId)) = 0
    GROUP BY TraceId HAVING min(Timestamp) >= fromUnixTimestamp64Nano(toInt64(1000000000000)))
    OR empty(trimBoth(TraceId)) AND Timestamp <= fromUnixTimestamp64Nano(toInt64(2000000000000)))
    """
    service = ""
    if services:
        service = f" AND ServiceName IN ({', '.join(quote_string(s) for s in services)})"
    if window is None:
        return service.removeprefix(" AND ")
    start, end = (int(t) for t in window)
    # a trace is the window's when it has a span between the window's start and end and
    # none in the slack before it: its first span is then in the window
    traces = (
        f"SELECT TraceId FROM {table} WHERE {_between(max(start - slack_ns, 0), end)}{service} "
        f"AND {_NO_TRACE} = 0 GROUP BY TraceId HAVING min(Timestamp) >= {_instant_sql(start)}"
    )
    late = min(end + slack_ns, _LAST_NS)
    # a span without a trace id is a trace of its own (the views' trace_id is NULL), not
    # one with every other such span
    return (
        f"{_between(start, late)}{service} AND (TraceId IN ({traces}) "
        f"OR {_NO_TRACE} AND Timestamp <= {_instant_sql(end)})"
    )


def _between(start: int, end: int) -> str:
    return f"Timestamp >= {_instant_sql(start)} AND Timestamp <= {_instant_sql(end)}"


def _instant_sql(ns: int) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({int(ns)}))"


__all__ = ["TRACE_SLACK_NS", "WindowError", "format_ns", "parse_window", "window_condition"]
