"""Load-generator results: which file is which, from its content, and which reader loads it.

A k6 or Locust result file found among the given paths (or named on its own)
is read into the canonical tables — ``client_requests``, ``load_samples``,
``load_summary``, ``load_thresholds``, ``load_failures`` — so the analysis
stays SQL. What each format gives: :mod:`correlate.ingest.k6`,
:mod:`correlate.ingest.locust`.

>>> detect_load_format(Path("tests/data/load/k6.json"))
'k6-json'
>>> detect_load_format(Path("tests/data/load/locust_stats_history.csv"))
'locust-history'
>>> detect_load_format(Path("README.md")) is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.fileio import looks_binary, read_head
from correlate.ingest import k6, locust

if TYPE_CHECKING:
    from correlate.store import Store

Loader = Callable[["Store", int, int, Path], tuple[int, list[tuple[int | None, str]]]]

#: Each load-generator format: its reader, and a line of help.
LOAD_FORMATS: dict[str, tuple[Loader, str]] = {
    "k6-json": (k6.load_json, "k6 --out json (NDJSON, or gzipped)"),
    "k6-csv": (k6.load_csv, "k6 --out csv, any timeFormat"),
    "k6-summary": (k6.load_summary, "k6 --summary-export or handleSummary() JSON"),
    "locust-history": (locust.load_history, "Locust --csv PREFIX_stats_history.csv"),
    "locust-stats": (locust.load_stats, "Locust --csv PREFIX_stats.csv"),
    "locust-failures": (locust.load_failures, "Locust --csv PREFIX_failures.csv"),
    "locust-exceptions": (locust.load_exceptions, "Locust --csv PREFIX_exceptions.csv"),
    "locust-json": (locust.load_json, "Locust --json output"),
}

#: CSV header starts that say which tool wrote the file.
_CSV_HEADERS = {
    "metric_name,timestamp,metric_value,": "k6-csv",
    "Timestamp,User Count,Type,Name,": "locust-history",
    "Type,Name,Request Count,Failure Count,": "locust-stats",
    "Method,Name,Error,Occurrences": "locust-failures",
    "Count,Message,Traceback,Nodes": "locust-exceptions",
}


def detect_load_format(path: Path) -> str | None:
    """The load-generator format of ``path`` (a key of :data:`LOAD_FORMATS`), or None."""
    head = read_head(path)
    if not head.strip() or looks_binary(head):
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first = text.split("\n", 1)[0].rstrip("\r")
    for start, kind in _CSV_HEADERS.items():
        if first.startswith(start):
            return kind
    if text.startswith("{"):
        try:
            line = json.loads(first)
        except ValueError:
            line = None
        if isinstance(line, dict) and line.get("type") in ("Metric", "Point") and "metric" in line:
            return "k6-json"
        # k6's own metric names too: a summary cut short may have lost root_group at its end.
        if re.search(r'"metrics"\s*:\s*\{', text) and re.search(
            r'"(root_group|state|options|vus|http_reqs|iterations|iteration_duration)"\s*:', text
        ):
            return "k6-summary"
    if text.startswith("[") and '"num_requests"' in text and '"num_reqs_per_sec"' in text:
        return "locust-json"
    return None


def load_results(
    store: Store, run_id: int, file_id: int, kind: str, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Insert the rows of load-generator file ``path`` (of ``kind``): (rows added, problems).

    As :func:`correlate.ingest.rundir.load_companion`: the caller owns the
    transaction and the ``files`` and ``problems`` rows.
    """
    if kind not in LOAD_FORMATS:
        raise InputError(
            f"unknown load-generator format {kind!r}; one of: {', '.join(LOAD_FORMATS)}", path
        )
    return LOAD_FORMATS[kind][0](store, run_id, file_id, Path(path))


__all__ = ["LOAD_FORMATS", "detect_load_format", "load_results"]
