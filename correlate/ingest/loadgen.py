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

from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError
from correlate.ingest import k6, locust
from correlate.inputs import Head, LoadFormat

if TYPE_CHECKING:
    from correlate.store import Store

#: The load-generator formats (each declared by its reader module), in the order tried.
LOAD_FORMATS: tuple[LoadFormat, ...] = (*k6.FORMATS, *locust.FORMATS)


def detect_load_format(path: Path) -> str | None:
    """The load-generator format of ``path`` (a name in :data:`LOAD_FORMATS`), or None."""
    head = Head.of(path)
    return next((f.name for f in LOAD_FORMATS if f.sniff is not None and f.sniff(head)), None)


def load_results(
    store: Store, run_id: int, file_id: int, kind: str, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Insert the rows of load-generator file ``path`` (of ``kind``): (rows added, problems).

    As :func:`correlate.ingest.rundir.load_companion`: the caller owns the
    transaction and the ``files`` and ``problems`` rows.
    """
    for fmt in LOAD_FORMATS:
        if fmt.name == kind:
            return fmt.load(store, run_id, file_id, Path(path))
    names = ", ".join(f.name for f in LOAD_FORMATS)
    raise InputError(f"unknown load-generator format {kind!r}; one of: {names}", path)


__all__ = ["LOAD_FORMATS", "detect_load_format", "load_results"]
