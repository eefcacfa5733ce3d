"""Facts about the committed sample runs, read from their files rather than pinned.

The samples are re-recorded when the demo changes; tests compare what correlate
reads or reports with what the files themselves hold, so they check behaviour
(nothing lost, nothing invented) and survive a re-recording.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [line for line in fh if line.strip()]


def span_count(sample: str) -> int:
    """Spans in the sample's OTLP files."""
    return sum(
        len(scope.get("spans", []))
        for path in sorted((SAMPLES / sample / "spans").glob("*.jsonl.gz"))
        for line in _lines(path)
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource.get("scopeSpans", [])
    )


def line_count(sample: str, relative: str) -> int:
    """Records in one of the sample's gzipped JSON Lines files (``pool/checkouts.jsonl.gz``)."""
    return len(_lines(SAMPLES / sample / relative))


def locust_csv(sample: str, name: str) -> list[dict[str, str]]:
    """Rows of one of Locust's CSV files of the sample (``stats_history``, ``failures``)."""
    with (SAMPLES / sample / "load" / f"locust_{name}.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))
