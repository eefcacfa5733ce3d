"""The watch file's records: their kinds and fields, shared by writer, reader and loader.

``RUN_DIR/db/activity.jsonl`` holds one JSON object per line, each with a
``record`` field naming its kind (documented in docs/run-directory.md):

- ``watch``: one line when a watcher starts; what it watches and how.
- ``sample``: one line per poll, whether it succeeded or not.
- ``session``: one line per database session per successful sample.
- ``lock_wait``: one line per (blocked, blocking) session pair per sample.

Each kind's fields are listed once here, in store column order; the store's
``db_watch``, ``db_samples``, ``db_activity`` and ``db_lock_waits`` tables
have exactly these columns after ``run_id, file_id, watch``.
"""

from __future__ import annotations

from typing import NamedTuple

#: Bumped when a field is renamed or removed; new fields may be added without.
FORMAT_VERSION = 1

#: Where the watcher writes, relative to the run directory.
ACTIVITY_FILE = "db/activity.jsonl"

#: Query texts are cut to this many characters (server side, before transfer).
QUERY_TEXT_LIMIT = 2048


class Field(NamedTuple):
    name: str
    #: JSON type: "int", "float", "str" or "bool"
    type: str
    #: a required field may not be null
    required: bool = False


def _f(spec: str) -> tuple[Field, ...]:
    fields = []
    for item in spec.split():
        name, type_ = item.split(":")
        required = type_.endswith("!")
        fields.append(Field(name, type_.rstrip("!"), required))
    return tuple(fields)


#: The same three fields start every record but ``watch``.
_SAMPLE_KEY = "sample:int! time_unix_nano:int! server_time_unix_nano:int "

FIELDS: dict[str, tuple[Field, ...]] = {
    "watch": _f(
        "format_version:int! time_unix_nano:int! database:str! server_version:str "
        "url:str! interval_s:float! watcher_pid:int! lock_view:str "
        "statement_timeout_ms:int query_text_limit:int!"
    ),
    "sample": _f(
        _SAMPLE_KEY + "query_ns:int sessions:int! lock_waits:int! error:str reconnected:bool!"
    ),
    "session": _f(
        _SAMPLE_KEY + "session_id:int! activity:str! state:str command:str "
        "wait_event_type:str wait_event:str user:str database:str client:str "
        "application:str backend_type:str session_start_unix_nano:int "
        "xact_start_unix_nano:int query_start_unix_nano:int state_change_unix_nano:int "
        "xact_age_ns:int state_age_ns:int query:str fingerprint:str"
    ),
    "lock_wait": _f(
        _SAMPLE_KEY + "blocked_id:int! blocking_id:int! lock_type:str lock_mode:str "
        "relation:str wait_started_unix_nano:int blocked_query:str blocked_fingerprint:str "
        "blocking_query:str"
    ),
}

#: The store table each kind is loaded into.
TABLES: dict[str, str] = {
    "watch": "db_watch",
    "sample": "db_samples",
    "session": "db_activity",
    "lock_wait": "db_lock_waits",
}

#: ``activity`` values: what a session is doing, the same words for every database.
ACTIVITIES = (
    "active",
    "idle",
    "idle_in_transaction",
    "idle_in_transaction_aborted",
    "other",
)

COLUMN_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "bool": "BOOLEAN"}
