"""What one poll of a database returns, and the bits every sampler shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from correlate.watch.records import QUERY_TEXT_LIMIT

Row = dict[str, Any]


@dataclass
class Snapshot:
    """The sessions and lock waits a server showed at ``server_time_unix_nano``.

    Session and lock-wait dicts hold the fields of ``session`` and ``lock_wait``
    records (correlate.watch.records) except the sample key.
    """

    server_time_unix_nano: int
    sessions: list[Row] = field(default_factory=list)
    lock_waits: list[Row] = field(default_factory=list)


class Sampler(Protocol):
    """One database's way of being polled."""

    #: "postgresql", "mariadb" or "mysql"
    database: str
    server_version: str | None
    #: the view lock waits come from, None when the server offers none
    lock_view: str | None
    #: statements run by :meth:`prepare`, and per :meth:`sample`
    prepare_queries: int
    sample_queries: int

    def prepare(self, cursor: Any, statement_timeout_ms: int) -> None:
        """Set the session up (timeouts) and find out what the server offers."""

    def sample(self, cursor: Any) -> Snapshot:
        """Poll once."""


@lru_cache(maxsize=4096)
def fingerprint_id(text: str, dialect: str) -> str | None:
    """The statement fingerprint id of ``text``, None for no statement at all.

    Cached: a watcher sees the same few texts over and over.

    >>> fingerprint_id("SELECT 1 FROM t WHERE id = 42", "postgresql") == fingerprint_id(
    ...     "select 1 from t where id = 7", "postgresql")
    True
    >>> fingerprint_id("<insufficient privilege>", "postgresql") is None
    True
    """
    from correlate.fingerprint import fingerprint

    stripped = text.strip()
    if not stripped or stripped == "<insufficient privilege>":
        return None
    return fingerprint(stripped, dialect).id


def us_to_ns(value: Any) -> int | None:
    """Microseconds since the epoch (as the servers are asked for them) in nanoseconds."""
    return None if value is None else int(value) * 1000


def age(now_ns: int, then_ns: int | None) -> int | None:
    return None if then_ns is None else now_ns - then_ns


def cut(text: Any) -> str | None:
    """A query text as kept: a string of at most QUERY_TEXT_LIMIT characters, or None."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text)[:QUERY_TEXT_LIMIT]
