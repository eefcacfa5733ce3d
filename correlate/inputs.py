"""What every input format declares: its name, family, help line and how to tell it.

Each reader module declares its formats once, as an :class:`InputFormat` of
its family (:class:`correlate.ingest.spanformat.SpanFormat`,
:class:`correlate.ingest.loadgen.LoadFormat`, :class:`PlanFormat`), and
:data:`correlate.ingest.registry.INPUT_FORMATS` lists them all: ``ingest``
loops over it, ``--format`` and its help are built from it. This module
imports no reader, so readers anywhere (ingest, plans) can declare formats
without an import cycle.

A format tells itself from a :class:`Head`, the first 64 KiB of a file's
(decompressed) content, never from the file's name:

>>> head = Head(b'{"resourceSpans": []}\\n')
>>> head.stripped.startswith("{"), head.binary
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from correlate.fileio import looks_binary, read_head

if TYPE_CHECKING:
    from correlate.plans.load import PlanItem
    from correlate.store import Store

#: Reads one file into the store's tables: (store, run id, file id, path) →
#: (rows added, [(line, problem)]). The caller owns the transaction and the
#: ``files`` and ``problems`` rows.
Loader = Callable[["Store", int, int, Path], tuple[int, list[tuple[int | None, str]]]]

__all__ = [
    "FAMILIES",
    "Family",
    "Head",
    "InputFormat",
    "LoadFormat",
    "Loader",
    "PlanFormat",
    "TableFormat",
]

Family = Literal["spans", "metrics", "plans", "load", "database"]

#: The families, with what ``--help`` calls each.
FAMILIES: dict[Family, str] = {
    "spans": "spans",
    "metrics": "metrics",
    "plans": "query plans",
    "load": "load-generator results",
    "database": "the database's own view",
}

T = TypeVar("T")


class Head:
    """The first bytes of a file's content, as every sniffer sees them.

    ``text`` is decoded leniently; ``stripped`` is that without a leading BOM
    and whitespace; ``first_line`` is the first line of ``stripped``.
    """

    def __init__(self, data: bytes, path: Path | None = None) -> None:
        self.data = data
        self.path = path
        self.empty = not data.strip()
        self.binary = looks_binary(data) and not _json_then_nuls(data)
        self.text = data.decode("utf-8", errors="replace")
        self.stripped = self.text.lstrip("\ufeff \t\r\n")
        self.first_line = self.stripped.split("\n", 1)[0].rstrip("\r")
        self._memo: dict[Callable[[Head], Any], Any] = {}

    @classmethod
    def of(cls, path: Path) -> Head:
        """The head of the file at ``path`` (decompressed when it is compressed)."""
        return cls(read_head(path), path)

    def once(self, work: Callable[[Head], T]) -> T:
        """``work(self)``, computed once per head: for sniffers that share one parse."""
        if work not in self._memo:
            self._memo[work] = work(self)
        return self._memo[work]

    @property
    def text_like(self) -> bool:
        """Not empty and not binary: where text formats look."""
        return not self.empty and not self.binary


def _json_then_nuls(data: bytes) -> bool:
    """JSON text followed only by NUL bytes: a text file padded with zeros by a crash (the
    file system had allocated its blocks, the writes never landed). Text, not binary; the
    reader reports the padding as a bad last line."""
    body = data.rstrip(b"\x00")
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return len(body) < len(data) and start in (b"{", b"[") and not looks_binary(body)


@dataclass(frozen=True, kw_only=True)
class InputFormat:
    """One input format: a name for ``--format``, its family, one line of help, a sniffer.

    ``sniff`` says whether a file's :class:`Head` is in this format; None when
    the format is never detected, only named with ``--format``.
    """

    name: str
    family: Family
    help: str
    sniff: Callable[[Head], bool] | None


@dataclass(frozen=True, kw_only=True)
class PlanFormat(InputFormat):
    """Query plans in a file: EXPLAIN output, or the plans in a server log."""

    family: Family = "plans"
    #: the plans of a file, each with the line it starts on (a broken one with its problem)
    items: Callable[[Path], Iterable[PlanItem]]
    #: how the plans were obtained, as the ``plans.method`` column says it
    method: str


@dataclass(frozen=True, kw_only=True)
class TableFormat(InputFormat):
    """Records read straight into tables of their own by ``load``."""

    load: Loader


@dataclass(frozen=True, kw_only=True)
class LoadFormat(TableFormat):
    """A load generator's results, read into the load tables (``client_requests``, …)."""

    family: Family = "load"
