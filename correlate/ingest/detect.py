"""Which format a file is in, from its first bytes (never from its name alone).

The sniffing itself lives with each format (see :mod:`correlate.ingest.registry`);
this module asks the registry and, when no format takes a file, says what the
file looks like instead and what to do about it.
"""

from __future__ import annotations

import json
from pathlib import Path

from correlate.errors import InputError
from correlate.fileio import codec_of, looks_utf16, open_bytes
from correlate.ingest.registry import SNIFF_ORDER, format_names, sniff
from correlate.inputs import FAMILIES, Family, Head, InputFormat

__all__ = ["CONSOLE_HINT", "NotTraceFile", "detect", "detect_format"]

CONSOLE_HINT = (
    "this is ConsoleSpanExporter output (Python's repr of each span), not OTLP; "
    "export OTLP/JSON instead: use correlate.instrument.record(), or "
    "opentelemetry-exporter-otlp-json-file's FileSpanExporter (OTEL_TRACES_EXPORTER=otlp_json_file)"
)


class NotTraceFile(InputError):
    """A file that is not in any format correlate reads.

    ``brief`` is a few words on what it is instead, for listing the files a
    directory ingest passed over.
    """

    def __init__(
        self, message: str, path: Path, line: int | None = None, *, brief: str = ""
    ) -> None:
        super().__init__(message, path, line)
        self.brief = brief or message


def detect(path: Path, families: tuple[Family, ...] = SNIFF_ORDER) -> InputFormat:
    """The format of ``path`` (of one of ``families``); :class:`NotTraceFile` saying why
    when none fits."""
    head = Head.of(path)
    found = sniff(head, families) or _after_a_cut_first_line(head, path, families)
    if found is None:
        raise _refusal(head, path)
    return found


#: How far :func:`_after_a_cut_first_line` looks for the end of the first line.
FIRST_LINE_BYTES = 64 << 20


def _after_a_cut_first_line(
    head: Head, path: Path, families: tuple[Family, ...]
) -> InputFormat | None:
    """OTLP/JSON lines whose first line is damaged: known by the line after it.

    A Collector file rotated or tailed mid-line starts with the tail of a record,
    often longer than the head sniffed; the rest of the file is good, and its
    reader reports line 1 as bad. Only OTLP/JSON lines are recognised this way.
    """
    if head.empty or head.binary:
        return None
    try:
        with open_bytes(path) as f:
            skipped = 0
            while skipped < FIRST_LINE_BYTES:
                part = f.readline(1 << 20)
                skipped += len(part)
                if not part or part.endswith(b"\n"):
                    break
            rest = f.read(len(head.data))
    except (OSError, InputError):
        return None
    found = sniff(Head(rest, path), families)
    return found if found is not None and found.name == "otlp-json" else None


def detect_format(path: Path) -> str:
    """The name of the span format of ``path``; :class:`NotTraceFile` when it holds no spans."""
    return detect(path, ("spans",)).name


def is_duckdb_database(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a DuckDB database (a correlate store):
    its magic bytes stand at offset 8."""
    return head[8:12] == b"DUCK"


def _refusal(head: Head, path: Path) -> NotTraceFile:
    spans = ", ".join(format_names("spans"))
    if head.empty:
        return NotTraceFile("empty file: no spans to read", path, brief="empty")
    if is_duckdb_database(head.data):
        return NotTraceFile(
            "a DuckDB database (a correlate store?), not a trace file: analyse its runs with "
            f"--db {path} and a run name (correlate runs --db {path} lists them)",
            path,
            brief="a DuckDB database",
        )
    if looks_utf16(head.data):
        return NotTraceFile(
            "UTF-16 text, which correlate does not read; convert it to UTF-8 "
            f"(e.g. iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix})",
            path,
            brief="UTF-16 text (convert it to UTF-8)",
        )
    if head.binary:
        codec = codec_of(path)
        kind = f"a {codec.name} file whose content is binary" if codec else "a binary file"
        return NotTraceFile(
            f"{kind} that is not OTLP protobuf (first bytes {head.data[:8].hex(' ')}); "
            f"correlate reads: {spans}",
            path,
            brief="binary",
        )
    text = head.stripped
    if text.startswith("{") and '"context"' in text and '"SpanKind.' in text:
        return NotTraceFile(CONSOLE_HINT, path, 1, brief="ConsoleSpanExporter output, not OTLP")
    what = _describe(text)
    families = "; ".join(
        f"{', '.join(format_names(family))} ({title})"
        for family, title in FAMILIES.items()
        if family != "spans"
    )
    return NotTraceFile(
        f"not a trace format correlate knows ({what}); "
        f"pass --format with one of: {spans} (spans); {families}",
        path,
        brief=what,
    )


def _describe(text: str) -> str:
    first = text.split("\n", 1)[0].rstrip("\r")
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        if first.count(",") >= 2 and '"' not in first[:1]:
            return f"CSV with columns {', '.join(first.split(',')[:4])}, …"
        if first.strip() == "{":
            return "a JSON document of another kind"
        return f"text starting {first[:40]!r}"
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:5])
        return f"JSON object with keys {keys}" if keys else "an empty JSON object"
    return f"JSON {type(value).__name__}"
