"""``correlate watch``'s file as an input format: ``correlate ingest`` reads it with the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.inputs import Head, TableFormat
from correlate.watch.loader import insert_activity

if TYPE_CHECKING:
    from correlate.store import Store


def _sniff(head: Head) -> bool:
    # Every watch file starts with its header record.
    if not head.text_like or not head.stripped.startswith("{"):
        return False
    try:
        first = json.loads(head.first_line)
    except (ValueError, RecursionError):
        return False
    return isinstance(first, dict) and first.get("record") == "watch"


def _load(
    store: Store, run_id: int, file_id: int, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    rows, problems = insert_activity(store, run_id, file_id, path)
    return sum(rows.values()), [(p.line, p.reason) for p in problems]


FORMAT = TableFormat(
    name="watch-activity",
    family="database",
    help="correlate watch's samples of the database's sessions and lock waits (db/activity.jsonl)",
    sniff=_sniff,
    load=_load,
)
