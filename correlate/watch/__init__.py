"""The database's own view during a run: sample its sessions and lock waits, read them back.

``correlate watch`` (:func:`watch`) runs beside a load test and polls the
database every interval: PostgreSQL's ``pg_stat_activity`` and
``pg_blocking_pids``, MariaDB/MySQL's process list with InnoDB transactions
and lock waits. It writes ``RUN_DIR/db/activity.jsonl`` (format in
docs/run-directory.md); :func:`read_activity` reads it back record by record
and :func:`load_activity` puts it into the store's ``db_*`` tables.

Modules: :mod:`.watcher` (the loop), :mod:`.postgres` and :mod:`.mysql` (one
sampler per database), :mod:`.connection` (the one connection, redaction),
:mod:`.writer`, :mod:`.reader`, :mod:`.loader`, :mod:`.records` (the fields).
"""

from __future__ import annotations

from correlate.watch.loader import ActivityLoad, insert_activity, load_activity
from correlate.watch.reader import Problem, Record, read_activity
from correlate.watch.watcher import WatchResult, WatchStatus, watch

__all__ = [
    "ActivityLoad",
    "Problem",
    "Record",
    "WatchResult",
    "WatchStatus",
    "insert_activity",
    "load_activity",
    "read_activity",
    "watch",
]
