"""``--window START..END``: the stretch of time of a ClickHouse source to analyse.

Each end is an ISO-8601 timestamp (UTC when it has no offset) or seconds since
the epoch; either may be left out (``START..`` runs to the last span). Both ends
are inclusive, in nanoseconds since the epoch.

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

from correlate.errors import CorrelateError

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
        return int(whole) * 1_000_000_000 + int((fraction + "0" * 9)[:9])
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
    return seconds * 1_000_000_000 + nanos


def format_ns(ns: int) -> str:
    """An instant in nanoseconds as ISO-8601 UTC, sub-seconds only when there are any."""
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


__all__ = ["WindowError", "format_ns", "parse_window"]
