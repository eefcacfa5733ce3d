"""A run directory's companion files: pool telemetry, the client's view, run.json.

A run directory (``docs/run-directory.md``) holds, next to its spans, JSON
Lines files that say what the connection pool and the load generator saw.
This module loads each into its own table so the analysis is plain SQL:

>>> from correlate import open_store
>>> store = open_store(":memory:")
>>> run_id = store.ensure_run("bf", source=None, labels=None)
>>> kinds = companion_files(Path("sample_traces/checkout-blackfriday"))
>>> [(kind, len(paths)) for kind, paths in kinds.items()]
[('run_info', 1), ('pool_checkouts', 1), ('pool_samples', 1), ('pool_leaks', 1), ('client_requests', 1)]
>>> load_companion(store, run_id, 1, "pool_leaks", kinds["pool_leaks"][0])
(10, [])
>>> store.con.execute("SELECT DISTINCT route FROM pool_leaks").fetchall()
[('/checkout',)]
>>> store.close()

Tables (columns are the file's fields, in the file's order, after
``run_id INTEGER`` and ``file_id INTEGER``, which say which run and which
``files`` row each row came from). Times are BIGINT Unix epoch nanoseconds
(``*_unix_nano``), durations BIGINT nanoseconds (``*_ns``), ids lowercase hex
VARCHAR (trace ids 32 digits, span ids 16). A column marked * is never NULL.

``pool_checkouts`` (``pool/checkouts.jsonl``), one row per checkout or timeout:
    pid* BIGINT, pool* VARCHAR, trace_id, request_span_id, connect_span_id,
    span_id, route, request_name VARCHAR, start_unix_nano* BIGINT (wait began),
    acquired_unix_nano, returned_unix_nano BIGINT, wait_ns* BIGINT,
    hold_ns BIGINT, new_connection* BOOLEAN, location, thread*, outcome*
    (``returned``, ``invalidated``, ``timeout``, ``open_at_shutdown``),
    error VARCHAR, leak_suspect* BOOLEAN, request_end_unix_nano BIGINT.

``pool_samples`` (``pool/samples.jsonl``), one row per pool per tick:
    time_unix_nano* BIGINT, pid* BIGINT, pool*, pool_class* VARCHAR,
    size, max_overflow, capacity INTEGER, checked_out* INTEGER,
    checked_in, overflow INTEGER, waiters INTEGER, timeouts_total,
    checkouts_total BIGINT (cumulative), leak_suspects_open INTEGER
    (``correlate.instrument`` always writes the last four; pool samples read
    from OpenTelemetry metrics leave NULL what the metrics do not give).

``pool_leaks`` (``pool/leaks.jsonl``), one row per leak suspect:
    detected_unix_nano* BIGINT, pid* BIGINT, pool* VARCHAR, trace_id,
    request_span_id, connect_span_id, span_id, route, request_name, location
    VARCHAR, thread* VARCHAR, checked_out_unix_nano*,
    request_end_unix_nano*, held_ns* BIGINT.

``client_requests`` (``load/requests.jsonl``; also k6 results, see
:mod:`correlate.ingest.k6`), one row per client request:
    trace_id, span_id (the ``traceparent`` parent: the server span's
    ``parent_id``; null when the request carried no trace context), method*, name* (= the server span's ``http_route``),
    path* VARCHAR, start_unix_nano*, duration_ns* BIGINT, status_code*
    INTEGER (0: no response), ok* BOOLEAN, error VARCHAR, response_bytes*
    BIGINT, user* INTEGER (0: not known).

``run_info`` (``run.json``): ``info JSON``, the whole object as written.

Questions these answer, for example::

    -- checked-out connections over time
    SELECT time_unix_nano, pool, checked_out, waiters FROM pool_samples ORDER BY 1;
    -- pool wait per route per 10 s window
    SELECT route, start_unix_nano // 10_000_000_000 AS w, sum(wait_ns) / 1e9 AS wait_s
    FROM pool_checkouts GROUP BY ALL;
    -- leaks by code location
    SELECT location, count(*) FROM pool_leaks GROUP BY 1;
    -- client duration minus server span duration, per trace
    SELECT c.trace_id, c.duration_ns - s.duration_ns AS outside_server_ns
    FROM client_requests c JOIN spans s
      ON s.run_id = c.run_id AND s.trace_id = c.trace_id AND s.parent_id = c.span_id;

A record whose required field is missing, or any field of the wrong type (a
time that is not an integer, an id that is not lowercase hex) is not loaded:
it comes back as a problem with its line number. Unknown fields are ignored,
since the format may add fields within a version.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from correlate.errors import InputError
from correlate.fileio import (
    CODECS,
    LineBatch,
    duckdb_compression,
    iter_line_batches,
    json_error,
    read_all,
    without_codec_suffix,
)
from correlate.ingest.jsonschema import sql_string

if TYPE_CHECKING:
    from correlate.store import Store

RUN_FORMAT = "correlate-run"
#: The columns every companion table starts with, before the file's fields.
_TABLE_PREFIX = "run_id, file_id, "


class Field(NamedTuple):
    """One field of a companion record: its name, how it is checked, and whether it may be null."""

    name: str
    #: ``int`` (BIGINT), ``int32`` (INTEGER), ``bool``, ``str``, ``trace_id``, ``span_id``
    check: str
    required: bool


def _fields(spec: str) -> tuple[Field, ...]:
    # "name:check" and a trailing "*" for required: keeps the lists below one line a field.
    out = []
    for item in spec.split():
        name, check = item.rstrip("*").split(":")
        out.append(Field(name, check, item.endswith("*")))
    return tuple(out)


_IDS = "trace_id:trace_id request_span_id:span_id connect_span_id:span_id span_id:span_id"

#: The fields of each JSON Lines kind, in file (and table) order.
FIELDS: dict[str, tuple[Field, ...]] = {
    "pool_checkouts": _fields(
        f"pid:int* pool:str* {_IDS} route:str request_name:str start_unix_nano:int* "
        "acquired_unix_nano:int returned_unix_nano:int wait_ns:int* hold_ns:int "
        "new_connection:bool* location:str thread:str* outcome:str* error:str "
        "leak_suspect:bool* request_end_unix_nano:int"
    ),
    "pool_samples": _fields(
        "time_unix_nano:int* pid:int* pool:str* pool_class:str* size:int32 max_overflow:int32 "
        "capacity:int32 checked_out:int32* checked_in:int32 overflow:int32 waiters:int32 "
        "timeouts_total:int checkouts_total:int leak_suspects_open:int32"
    ),
    "pool_leaks": _fields(
        f"detected_unix_nano:int* pid:int* pool:str* {_IDS} route:str request_name:str "
        "location:str thread:str* checked_out_unix_nano:int* request_end_unix_nano:int* "
        "held_ns:int*"
    ),
    "client_requests": _fields(
        "trace_id:trace_id span_id:span_id method:str* name:str* path:str* "
        "start_unix_nano:int* duration_ns:int* status_code:int32* ok:bool* error:str "
        "response_bytes:int* user:int32*"
    ),
}

#: Where each kind lives in a run directory, and what one record is called in messages.
_LOCATIONS: dict[str, tuple[str, str]] = {
    "pool_checkouts": ("pool/checkouts", "checkout"),
    "pool_samples": ("pool/samples", "pool sample"),
    "pool_leaks": ("pool/leaks", "leak suspect"),
    "client_requests": ("load/requests", "client request"),
}

#: Every kind :func:`companion_files` returns, in the order to load them.
KINDS: tuple[str, ...] = ("run_info", *FIELDS)

_TYPES = {
    "int": "BIGINT",
    "int32": "INTEGER",
    "bool": "BOOLEAN",
    "str": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
}


def column_type(field: Field) -> str:
    """The field's column type in its table, e.g. ``BIGINT NOT NULL``."""
    return _TYPES[field.check] + (" NOT NULL" if field.required else "")


def is_run_directory(path: Path) -> bool:
    """True when ``path`` is a directory with a ``run.json`` saying ``"format": "correlate-run"``.

    >>> is_run_directory(Path("sample_traces/checkout-fixed"))
    True
    >>> is_run_directory(Path("sample_traces"))
    False
    """
    run_json = Path(path) / "run.json"
    try:
        # A small file read once to decide what a directory is: no store involved yet.
        info = json.loads(run_json.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == RUN_FORMAT


#: ``.jsonl`` plain, and with each compression codec's suffixes.
_JSONL_SUFFIXES = (".jsonl", *(f".jsonl{s}" for c in CODECS for s in c.suffixes))


def companion_files(run_dir: Path) -> dict[str, list[Path]]:
    """The companion files of a run directory, by kind (every kind of :data:`KINDS`, in order).

    Each JSON Lines kind is read from ``NAME.jsonl``, or compressed as
    ``NAME.jsonl.gz`` (or another codec's suffix), and from per-process
    ``NAME-*.jsonl[.gz]`` when a recorder wrote one file per process; a kind
    without files maps to an empty list. The same file both plain and
    compressed is an :class:`~correlate.errors.InputError`, since
    loading both would count every record twice.
    """
    run_dir = Path(run_dir)
    found: dict[str, list[Path]] = {"run_info": []}
    if (run_dir / "run.json").is_file():
        found["run_info"].append(run_dir / "run.json")
    for kind, (stem, _) in _LOCATIONS.items():
        folder, base = (run_dir / stem).parent, (run_dir / stem).name
        paths = {
            p
            for name in (base, f"{base}-*")
            for suffix in _JSONL_SUFFIXES
            for p in folder.glob(name + suffix)
            if p.is_file()
        }
        for p in paths:
            plain = p.with_name(without_codec_suffix(p.name))
            if plain != p and plain in paths:
                raise InputError(
                    f"both {plain.name} and {p.name} are present: they hold the same "
                    "records; remove one and ingest again",
                    p.parent,
                )
        found[kind] = sorted(paths)
    return found


def load_companion(
    store: Store, run_id: int, file_id: int, kind: str, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Insert the records of companion file ``path`` (of ``kind``) into the kind's table.

    Returns (rows added, problems), a problem being (1-based line or None,
    reason) for a record that was not loaded. Every non-blank line is either
    a row or a problem. The caller owns the transaction and the ``files`` and
    ``problems`` rows: nothing here commits, and a record with a problem never
    aborts the caller's transaction.

    >>> from correlate import open_store
    >>> with open_store(":memory:") as store:
    ...     load_companion(store, 1, 1, "run_info", Path("sample_traces/checkout-fixed/run.json"))
    (1, [])
    """
    path = Path(path)
    if kind == "run_info":
        return _load_run_info(store, run_id, file_id, path)
    if kind not in FIELDS:
        raise InputError(f"unknown companion kind {kind!r}; one of: {', '.join(KINDS)}", path)
    added = _load_clean(store, run_id, file_id, kind, path)
    if added is not None:
        return added, []
    return _load_careful(store, run_id, file_id, kind, path)


# -- run.json ------------------------------------------------------------------------


def _load_run_info(
    store: Store, run_id: int, file_id: int, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    data = read_all(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return 0, [(line, f"not UTF-8 text (byte 0x{data[exc.start]:02x})")]
    valid, jtype = store.con.execute(
        "SELECT json_valid($t), CASE WHEN json_valid($t) THEN json_type($t) END", {"t": text}
    ).fetchone() or (False, None)
    if not valid:
        error = json_error(text)
        if error is None:  # Python's parser is laxer here (NaN, say) than DuckDB's
            return 0, [(None, "not valid JSON")]
        return 0, [(error[0], f"run.json is {error[1]}")]
    if jtype != "OBJECT":
        return 0, [(1, f"run.json is a JSON {str(jtype).lower()}, not an object")]
    store.con.execute(
        "INSERT INTO run_info VALUES (?, ?, CAST(? AS JSON))", [run_id, file_id, text]
    )
    return 1, []


# -- JSON Lines: shared SQL ----------------------------------------------------------


def _value_sql(field: Field, j: str) -> str:
    """The typed value of JSON expression ``j``; NULL when it does not fit (then it is a problem)."""
    if field.check in ("str", "trace_id", "span_id"):
        return f"CASE WHEN json_type({j}) = 'VARCHAR' THEN json_extract_string({j}, '$') END"
    return f"TRY_CAST({j} AS {_TYPES[field.check]})"


def _problem_sql(field: Field, j: str) -> str:
    """SQL giving a reason when the field is not acceptable, else NULL."""
    shown = f"left(CAST({j} AS VARCHAR), 60)"
    name = field.name
    missing = f"'{name} is missing (null)'" if field.required else "NULL"
    if field.check in ("int", "int32"):
        type_ = _TYPES[field.check]
        # An integer too large even for UBIGINT is typed DOUBLE by DuckDB: the
        # digits tell it from a fraction.
        bad = (
            f"WHEN json_type({j}) NOT IN ('BIGINT', 'UBIGINT') "
            f"AND NOT regexp_full_match(CAST({j} AS VARCHAR), '-?[0-9]+') "
            f"THEN '{name} is not an integer: ' || {shown} "
            f"WHEN TRY_CAST({j} AS {type_}) IS NULL "
            f"THEN '{name} is out of range for {type_}: ' || {shown}"
        )
    elif field.check == "bool":
        bad = f"WHEN json_type({j}) <> 'BOOLEAN' THEN '{name} is not true or false: ' || {shown}"
    elif field.check == "str":
        bad = f"WHEN json_type({j}) <> 'VARCHAR' THEN '{name} is not a string: ' || {shown}"
    else:
        digits = 32 if field.check == "trace_id" else 16
        value = f"json_extract_string({j}, '$')"
        bad = (
            f"WHEN json_type({j}) <> 'VARCHAR' "
            f"OR NOT regexp_full_match({value}, '[0-9a-f]{{{digits}}}') "
            f"THEN '{name} is not {digits} lowercase hex digits: ' || {shown} "
            f"WHEN {value} = repeat('0', {digits}) "
            f"THEN '{name} is all zeros, which is no id (an absent id is null)'"
        )
    return f"CASE WHEN {j} IS NULL THEN {missing} {bad} END"


def _checked_columns(kind: str, source: str) -> str:
    """Select-list of typed columns plus ``problem``, over JSON columns ``{source}."field"``."""
    fields = FIELDS[kind]
    values = [f"{_value_sql(f, f'{source}.{_q(f.name)}')} AS {_q(f.name)}" for f in fields]
    problems = ", ".join(_problem_sql(f, f"{source}.{_q(f.name)}") for f in fields)
    # Every field's problem, not just the first, so one look at a line says all that is wrong.
    return ", ".join([*values, f"nullif(concat_ws('; ', {problems}), '') AS problem"])


def _column_list(kind: str) -> str:
    return ", ".join(_q(f.name) for f in FIELDS[kind])


def _q(name: str) -> str:
    return '"' + name + '"'


# -- JSON Lines: the fast path -------------------------------------------------------


def _load_clean(store: Store, run_id: int, file_id: int, kind: str, path: Path) -> int | None:
    """Read a whole file with ``read_json``; None when any record has a problem.

    The read runs on a cursor of its own: in DuckDB a failed statement aborts
    the transaction it ran in, and the caller's transaction must survive a
    malformed file so the careful path can load its good lines into it.
    """
    import duckdb

    # Fields are read as JSON, not as their column types: read_json would round
    # 1.5 to a BIGINT 2 or turn "7" into 7, and the checks must see the real value.
    columns = "{" + ", ".join(f"{sql_string(f.name)}: 'JSON'" for f in FIELDS[kind]) + "}"
    compression = duckdb_compression(path)
    if compression is None:
        return None  # DuckDB cannot read it by name: the careful path reads it
    query = (
        f"SELECT {_column_list(kind)} FROM ("
        f"SELECT {_checked_columns(kind, 'src')} FROM read_json(?, format = 'newline_delimited', "
        f"records = 'true', compression = '{compression}', columns = {columns}) AS src"
        ") WHERE CASE WHEN problem IS NULL THEN true ELSE error('correlate: bad record') END"
    )
    cursor = store.con.cursor()
    try:
        table = cursor.sql(query, params=[str(path)]).to_arrow_table()
    except (duckdb.Error, UnicodeDecodeError):
        # DuckDB quotes the bad line in its message, cut at a byte count: mid-character,
        # that message itself fails to decode. Either way the careful path says where.
        return None
    finally:
        cursor.close()
    if table.num_rows == 0:
        return 0
    store.con.register("_rundir_rows", table)
    try:
        store.con.execute(
            f"INSERT INTO {kind} ({_TABLE_PREFIX}{_column_list(kind)}) "
            f"SELECT ?, ?, {_column_list(kind)} FROM _rundir_rows",
            [run_id, file_id],
        )
    finally:
        store.con.unregister("_rundir_rows")
    return table.num_rows


# -- JSON Lines: the careful path ----------------------------------------------------


def _load_careful(
    store: Store, run_id: int, file_id: int, kind: str, path: Path
) -> tuple[int, list[tuple[int | None, str]]]:
    """Read the file line by line (in large batches), keeping good records, reporting bad ones."""
    added = 0
    problems: list[tuple[int | None, str]] = []
    try:
        for batch in iter_line_batches(path):
            problems.extend(batch.bad)
            if batch.lines:
                n, found = _load_batch(store, run_id, file_id, kind, batch)
                added += n
                problems.extend(found)
    finally:
        store.con.execute("DROP TABLE IF EXISTS _rundir_checked")
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return added, problems


def _load_batch(
    store: Store, run_id: int, file_id: int, kind: str, batch: LineBatch
) -> tuple[int, list[tuple[int | None, str]]]:
    import pyarrow as pa

    con = store.con
    record = _LOCATIONS[kind][1]
    structure = json.dumps({f.name: "JSON" for f in FIELDS[kind]})
    lines = pa.table(
        {
            "line_no": pa.array(batch.numbers, pa.int64()),
            "text": pa.array(batch.lines, pa.large_string()),
        }
    )
    con.register("_rundir_lines", lines)
    try:
        # try() everywhere: hostile text must become a reported problem, never an
        # error that would abort the caller's transaction.
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _rundir_checked AS
            WITH shaped AS (
                SELECT line_no, valid,
                       CASE WHEN valid THEN try(json_type(text)) END AS jtype,
                       CASE WHEN valid THEN try(len(json_keys(text))
                            <> len(list_distinct(json_keys(text)))) END AS duplicate_key,
                       CASE WHEN valid THEN try(from_json(text, {sql_string(structure)})) END AS doc
                FROM (SELECT line_no, text, coalesce(try(json_valid(text)), false) AS valid
                      FROM _rundir_lines)
            )
            SELECT line_no, valid, {_checked_columns(kind, "doc")},
                   CASE
                       WHEN NOT valid THEN NULL
                       WHEN jtype IS DISTINCT FROM 'OBJECT'
                       THEN 'not a JSON object but a JSON ' || lower(coalesce(jtype, 'value'))
                            || '; each line must be one {record} record'
                       WHEN duplicate_key IS DISTINCT FROM false
                       THEN 'a JSON object with a key given twice'
                       WHEN doc IS NULL THEN 'could not be read as a {record} record'
                   END AS shape_problem
            FROM shaped
            """
        )
    finally:
        con.unregister("_rundir_lines")
    found: list[tuple[int | None, str]] = [
        _malformed(int(line), batch)
        for (line,) in con.execute(
            "SELECT line_no FROM _rundir_checked WHERE NOT valid ORDER BY line_no"
        ).fetchall()
    ]
    found.extend(
        (int(line), str(reason))
        for line, reason in con.execute(
            "SELECT line_no, coalesce(shape_problem, problem) FROM _rundir_checked "
            "WHERE valid AND (shape_problem IS NOT NULL OR problem IS NOT NULL) ORDER BY line_no"
        ).fetchall()
    )
    row = con.execute(
        f"INSERT INTO {kind} ({_TABLE_PREFIX}{_column_list(kind)}) "
        f"SELECT ?, ?, {_column_list(kind)} FROM _rundir_checked "
        "WHERE valid AND shape_problem IS NULL AND problem IS NULL ORDER BY line_no",
        [run_id, file_id],
    ).fetchone()
    return (int(row[0]) if row else 0), found


def _malformed(line: int, batch: LineBatch) -> tuple[int, str]:
    if line == batch.unterminated_line:
        return line, "last line is cut short (no final newline; was the file still being written?)"
    # Line numbers in a batch ascend, so bisect finds the text without a scan per bad line.
    error = json_error(batch.lines[bisect_left(batch.numbers, line)])
    return line, error[1] if error else "not valid JSON"


__all__ = [
    "FIELDS",
    "KINDS",
    "Field",
    "column_type",
    "companion_files",
    "is_run_directory",
    "load_companion",
]
