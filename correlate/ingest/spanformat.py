"""What a span format declares: how a file is split into records and flattened.

A span format turns a file into batches of numbered JSON texts (lines, or one
whole document), and gives the SQL that turns parsed texts into the ``raw``
relation of :mod:`correlate.ingest.canonical`. Each reader module declares
its own (``otlp_json.FORMAT``, …); :mod:`correlate.ingest.registry` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.fileio import LineBatch, iter_line_batches, json_error, read_all
from correlate.ingest.docsplit import RecordPath, split_document
from correlate.ingest.jsonschema import Schema, structure
from correlate.inputs import Family, InputFormat

if TYPE_CHECKING:
    from correlate.ingest.otlp_shape import Repaired


@dataclass(frozen=True, kw_only=True)
class SpanFormat(InputFormat):
    """A span format: the sniffing of :class:`~correlate.inputs.InputFormat`, and the reading."""

    family: Family = "spans"
    #: the from_json schema of one record
    schema: Schema
    #: SQL for ``raw`` from ``docs(line_no, doc)``
    raw_sql: Callable[[str], str]
    #: SQL for (line_no, reason) of parsed records that lack the format's envelope
    envelope_problems_sql: Callable[[str], str]
    batches: Callable[[Path], Iterator[LineBatch]]
    #: SQL for ``docs`` read straight from the file by DuckDB, when the file
    #: suits it (the fast path for big, clean files); None otherwise
    fast_docs: Callable[[Path], str | None] | None = None
    #: a record's text with its wrongly typed parts reported (and read leniently
    #: where unambiguous), or None when nothing is wrong; see otlp_shape
    repair: Callable[[str], Repaired | None] | None = None
    #: for formats whose small files are read many in one statement: the key
    #: files must share to be read together (DuckDB's ``compression =``), or None
    #: when this file cannot be; and the ``docs`` SQL of such a group of files
    fast_compression: Callable[[Path], str | None] | None = None
    fast_files_docs: Callable[[list[Path], str], str] | None = None
    #: the ``docs`` SQL of uncompressed pieces of one big file read as one
    #: (``correlate.ingest.salvage``), strict or lenient
    pieces_docs: Callable[..., str] | None = None
    #: SQL true for a parsed doc that lacks the envelope or holds a span likely to
    #: fail the span checks (may say true too often, must rarely say false wrongly)
    suspect_doc_sql: Callable[[str], str] | None = None
    #: bytes every record of the format holds (its envelope's key), for judging pieces
    #: of a damaged file by their bytes before reading them; None: they are read
    envelope_key: bytes | None = None

    @property
    def structure(self) -> str:
        return structure(self.schema)


def json_batches(path: Path, record_paths: tuple[RecordPath, ...] = ()) -> Iterator[LineBatch]:
    """JSON lines, or a single (pretty-printed) document.

    A file is one document when its first line is not JSON on its own (e.g.
    just ``{``) and the whole file is. A document is cut into one record per
    span along the first of ``record_paths`` it follows, each numbered with its
    span's line (:mod:`correlate.ingest.docsplit`); else it is one record at
    line 1. A document that is broken is reported once, where the JSON parser
    stopped, rather than line by line.
    """
    lines = iter_line_batches(path)
    first = next(lines, None)
    if first is None:
        return
    if (
        len(first.numbers) > 1
        and not _is_json(first.lines[0])
        and path.stat().st_size <= DOCUMENT_LIMIT
    ):
        document = _whole_document(path)
        if document.bad:
            yield document
            return
        if _is_json(document.lines[0]):
            records = split_document(document.lines[0], record_paths) if record_paths else None
            if records is None:
                yield document
            else:
                numbers, texts = zip(*records, strict=True)
                yield LineBatch(list(numbers), list(texts), position=document.position)
            return
        if first.lines[0].strip() in ("{", "["):
            error = json_error(document.lines[0]) or (1, "not valid JSON")
            yield LineBatch([], [], bad=[error], position=document.position)
            return
    yield first
    yield from lines


#: Whole documents are parsed twice (to decide, then by DuckDB); past this size
#: (as stored, compressed or not) a file is taken to be JSON lines.
DOCUMENT_LIMIT = 256 * 1024 * 1024


def _whole_document(path: Path) -> LineBatch:
    data = read_all(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return LineBatch([], [], bad=[(line, f"not UTF-8 text (byte 0x{data[exc.start]:02x})")])
    unterminated = None if text.endswith("\n") else text.count("\n") + 1
    return LineBatch([1], [text], position=len(data), unterminated_line=unterminated)


def _is_json(text: str) -> bool:
    return json_error(text) is None


__all__ = ["DOCUMENT_LIMIT", "SpanFormat", "json_batches"]
