"""Loading a watch file into the store: ``db_watch``, ``db_samples``, ``db_activity``, ``db_lock_waits``.

:func:`insert_activity` adds one file's rows for a caller that owns the run,
the ``files`` row and the transaction (an ingest of a whole run directory);
:func:`load_activity` does all of it for one file, in one transaction.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.errors import InputError
from correlate.watch.reader import Problem, read_activity
from correlate.watch.records import FIELDS, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

    from correlate.store import Store

#: The ``files.format`` of a watch file.
FORMAT = "correlate-watch"
#: Problems listed in a summary; the rest are counted ("… and N more").
_SHOWN = 10


@dataclass
class ActivityLoad:
    """What :func:`load_activity` did with one file."""

    path: Path
    run: str
    #: rows added per table
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: the file was already in the run (same content): nothing added
    duplicate: bool = False

    @property
    def rows_added(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        """One line of counts, then the problems (at most ten)."""
        if self.duplicate:
            return f"run {self.run!r}: {self.path} is already in the run; nothing added\n"
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        lines = [f"run {self.run!r}: {counts} from {self.path}"]
        if self.problems:
            lines[0] += f"; {len(self.problems)} line(s) skipped"
            lines.extend(f"  {self.path}:{p.line}: {p.reason}" for p in self.problems[:_SHOWN])
            if len(self.problems) > _SHOWN:
                lines.append(f"  … and {len(self.problems) - _SHOWN} more")
        return "\n".join(lines) + "\n"


def insert_activity(
    store: Store, run_id: int, file_id: int, path: str | os.PathLike[str]
) -> tuple[dict[str, int], list[Problem]]:
    """Insert the records of watch file ``path``; return rows added per table, and problems.

    Every non-blank line is a row or a problem. Nothing here commits: the
    caller owns the transaction and the ``files`` and ``problems`` rows.

    >>> import tempfile, pathlib, correlate
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "activity.jsonl"
    >>> _ = p.write_text('{"record": "sample"}\\n')
    >>> with correlate.open_store(":memory:") as store:
    ...     insert_activity(store, 1, 1, p)
    ({'db_watch': 0, 'db_samples': 0, 'db_activity': 0, 'db_lock_waits': 0}, [Problem(line=1, reason='a sample record before any watch header line')])
    """
    columns: dict[str, dict[str, list[Any]]] = {
        kind: {"watch": [], **{f.name: [] for f in FIELDS[kind]}} for kind in FIELDS
    }
    problems: list[Problem] = []
    for item in read_activity(path):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        table = columns[item.kind]
        table["watch"].append(item.watch)
        for name, value in item.fields.items():
            table[name].append(value)
    rows: dict[str, int] = {}
    with store.atomic() as con:
        for kind, data in columns.items():
            count = len(data["watch"])
            rows[TABLES[kind]] = count
            if not count:
                continue
            view = f"_watch_{kind}"
            con.register(view, _arrow(kind, data))
            try:
                con.execute(
                    f"INSERT INTO {TABLES[kind]} SELECT {int(run_id)}, {int(file_id)}, * FROM {view}"
                )
            finally:
                con.unregister(view)
    return rows, problems


def load_activity(
    store: Store,
    path: str | os.PathLike[str],
    run: str,
    *,
    strict: bool = False,
    labels: dict[str, str] | None = None,
) -> ActivityLoad:
    """Read watch file ``path`` into run ``run`` (created when new), in one transaction.

    Bad lines are skipped and kept in ``problems`` with their line numbers;
    with ``strict`` the first one fails the load and nothing is kept. A file
    already in the run (same SHA-256) is not added twice.
    """
    source = Path(path)
    store.require_writable()
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source) from None
    sha = hashlib.sha256(data).hexdigest()
    result = ActivityLoad(source, run)
    with store.atomic() as con:
        run_id = store.ensure_run(run, source=str(source), labels=labels)
        known = con.execute(
            "SELECT 1 FROM files WHERE run_id = ? AND sha256 = ?", [run_id, sha]
        ).fetchone()
        if known:
            result.duplicate = True
            return result
        row = con.execute(
            "INSERT INTO files (run_id, path, size, sha256, format, records_read, records_added, "
            "duplicates, skipped) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING file_id",
            [run_id, str(source.resolve()), len(data), sha, FORMAT],
        ).fetchone()
        assert row is not None
        file_id = int(row[0])
        rows, problems = insert_activity(store, run_id, file_id, source)
        if strict and problems:
            first = problems[0]
            raise InputError(first.reason, source, first.line)
        if problems:
            con.executemany(
                "INSERT INTO problems VALUES (?, ?, ?)",
                [[file_id, p.line, p.reason] for p in problems],
            )
        added = sum(rows.values())
        con.execute(
            "UPDATE files SET records_read = ?, records_added = ?, skipped = ? WHERE file_id = ?",
            [added + len(problems), added, len(problems), file_id],
        )
        store.refresh_run_stats(run_id)
    result.rows, result.problems = rows, problems
    return result


def _arrow(kind: str, data: dict[str, list[Any]]) -> pa.Table:
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
    arrays = {"watch": pa.array(data["watch"], type=pa.int32())}
    for spec in FIELDS[kind]:
        arrays[spec.name] = pa.array(data[spec.name], type=types[spec.type])
    return pa.table(arrays)
