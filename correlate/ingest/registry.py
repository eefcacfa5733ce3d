"""The input-format registry: every format ``correlate ingest`` reads, in one ordered tuple.

Each reader module declares its formats (an :class:`~correlate.inputs.InputFormat`
with its name, family, help line and sniffer); this module only lists them.
Adding a format is its declaration in its reader module and one line here.
``--format``'s choices and ``correlate ingest --help`` are built from
:data:`INPUT_FORMATS`, so they cannot drift from what ingest reads.

Detection tries the families in :data:`SNIFF_ORDER` — plans, the database's
own view, spans, metrics, then load-generator results — and within a family the formats in registry order;
the first sniffer that says yes names the format.

>>> [f.name for f in INPUT_FORMATS if f.family == "spans"]
['otlp-json', 'otlp-proto', 'jaeger', 'zipkin', 'tempo']
>>> sniff(Head(b'{"resourceSpans": []}')).name
'otlp-json'
"""

from __future__ import annotations

from correlate.errors import InputError
from correlate.ingest import (
    jaeger,
    k6,
    locust,
    metricsformat,
    otlp_json,
    otlp_proto,
    tempo,
    zipkin,
)
from correlate.inputs import FAMILIES, Family, Head, InputFormat
from correlate.plans import files as plan_files
from correlate.plans import pglog
from correlate.watch import inputformat as watch_activity

__all__ = [
    "INPUT_FORMATS",
    "SNIFF_ORDER",
    "format_named",
    "format_names",
    "formats_help",
    "sniff",
    "sniff_order",
]

#: Every input format, grouped by family, in the order ``--format`` lists them.
INPUT_FORMATS: tuple[InputFormat, ...] = (
    otlp_json.FORMAT,
    otlp_proto.FORMAT,
    jaeger.FORMAT,
    zipkin.FORMAT,
    tempo.FORMAT,
    metricsformat.FORMAT,
    metricsformat.PROTO_FORMAT,
    *plan_files.PLAN_FILE_FORMATS,
    *pglog.LOG_FORMATS,
    *k6.FORMATS,
    *locust.FORMATS,
    watch_activity.FORMAT,
)

#: The order families are tried in when a file's format is detected. Where two
#: sniffers could both say yes, this decides: a PostgreSQL jsonlog line is JSON
#: before it is a log, and one short JSON line with a "data" key passes for an
#: empty Jaeger search result before it is looked at as a k6 point.
SNIFF_ORDER: tuple[Family, ...] = ("plans", "database", "spans", "metrics", "load")


def sniff_order() -> list[InputFormat]:
    """The detectable formats in the order they are tried."""
    return [
        f
        for family in SNIFF_ORDER
        for f in INPUT_FORMATS
        if f.family == family and f.sniff is not None
    ]


def sniff(head: Head, families: tuple[Family, ...] = SNIFF_ORDER) -> InputFormat | None:
    """The first format (of ``families``) whose sniffer takes ``head``; None when none does."""
    for fmt in sniff_order():
        if fmt.family in families and fmt.sniff is not None and fmt.sniff(head):
            return fmt
    return None


def format_names(family: Family | None = None) -> list[str]:
    """The registered names (of one family), in registry order."""
    return [f.name for f in INPUT_FORMATS if family is None or f.family == family]


def format_named(name: str) -> InputFormat:
    """The format called ``name``; :class:`InputError` listing the names when there is none."""
    for fmt in INPUT_FORMATS:
        if fmt.name == name:
            return fmt
    raise InputError(f"unknown format {name!r}; choose one of: {', '.join(format_names())}")


def formats_help() -> str:
    """One line per format, under a heading per family, for ``correlate ingest --help``."""
    lines = []
    for family, title in FAMILIES.items():
        lines.append(f"{title[0].upper()}{title[1:]}:")
        lines.extend(f"  {f.name}: {f.help}" for f in INPUT_FORMATS if f.family == family)
    return "\n".join(lines)
