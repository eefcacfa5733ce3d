"""Which format a file is in, from its first bytes (never from its name alone)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from correlate.errors import InputError
from correlate.fileio import codec_of, looks_binary, read_head

#: Formats ``--format`` accepts, with a line of help each.
FORMATS: dict[str, str] = {
    "otlp-json": "OTLP/JSON: Collector file exporter lines, SDK json-file exporter, one document, Jaeger API v3",
    "otlp-proto": "OTLP protobuf as the Collector file exporter writes it (4-byte length before each message)",
    "jaeger": 'Jaeger JSON: UI download or query API v1 ({"data": [traces]})',
    "zipkin": "Zipkin v2 JSON: a list of spans, or a list of traces",
}

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


def detect_format(path: Path) -> str:
    """The format of ``path``; :class:`NotTraceFile` saying why when none fits."""
    head = read_head(path)
    if not head.strip():
        raise NotTraceFile("empty file: no spans to read", path, brief="empty")
    if looks_binary(head):
        if _looks_otlp_proto(head):
            return "otlp-proto"
        codec = codec_of(path)
        kind = f"a {codec.name} file whose content is binary" if codec else "a binary file"
        raise NotTraceFile(
            f"{kind} that is not OTLP protobuf (first bytes {head[:8].hex(' ')}); "
            f"correlate reads: {', '.join(FORMATS)}",
            path,
            brief="binary",
        )
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        if '"resourceSpans"' in text or '"resource_spans"' in text:
            return "otlp-json"
        if re.search(r'"data"\s*:\s*\[', text) and ('"traceID"' in text or '"spans"' in text):
            return "jaeger"
        if '"context"' in text and '"SpanKind.' in text:
            raise NotTraceFile(CONSOLE_HINT, path, 1, brief="ConsoleSpanExporter output, not OTLP")
        if '"data"' in text and text.count("\n") <= 1 and '"traceID"' not in text:
            return "jaeger"  # an empty Jaeger search result
    if text.startswith("["):
        if '"traceId"' in text and ('"localEndpoint"' in text or '"id"' in text):
            return "zipkin"
        if re.fullmatch(r"\[\s*(\[\s*\]\s*,?\s*)*\]\s*", text):
            return "zipkin"  # an empty list of traces
    what = _describe(text)
    raise NotTraceFile(
        f"not a trace format correlate knows ({what}); "
        f"pass --format with one of: {', '.join(FORMATS)} (spans); {_other_formats()}",
        path,
        brief=what,
    )


def _other_formats() -> str:
    """The plan and load-generator formats ``--format`` also takes (imported late: they
    import the ingest package that imports this module)."""
    from correlate.ingest.loadgen import LOAD_FORMATS
    from correlate.plans.files import PLAN_FILE_FORMATS
    from correlate.plans.pglog import LOG_FORMATS

    plans = ", ".join([*PLAN_FILE_FORMATS, *LOG_FORMATS])
    return f"{plans} (plans); {', '.join(LOAD_FORMATS)} (load-generator results)"


def _describe(text: str) -> str:
    first = text.split("\n", 1)[0].rstrip("\r")
    try:
        value = json.loads(first)
    except ValueError:
        if first.count(",") >= 2 and '"' not in first[:1]:
            return f"CSV with columns {', '.join(first.split(',')[:4])}, …"
        if first.strip() == "{":
            return "a JSON document of another kind"
        return f"text starting {first[:40]!r}"
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:5])
        return f"JSON object with keys {keys}" if keys else "an empty JSON object"
    return f"JSON {type(value).__name__}"


def _looks_otlp_proto(head: bytes) -> bool:
    # Collector framing: big-endian uint32 length, then an ExportTraceServiceRequest
    # whose first field is resource_spans (field 1, length-delimited: tag 0x0a).
    if len(head) < 5:
        return False
    length = int.from_bytes(head[:4], "big")
    return 0 < length < (1 << 30) and head[4] == 0x0A
