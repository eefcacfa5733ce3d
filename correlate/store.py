"""The run store: one DuckDB file holding many load-test runs.

>>> store = open_store(":memory:")
>>> store.runs().empty
True
>>> store.close()
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from correlate.errors import (
    CorrelateError,
    QueryError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
)
from correlate.schema import DDL, MIGRATIONS, REKEYED, SCHEMA_VERSION

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from correlate.clickhouse.source import ClickHouseStore
    from correlate.ingest import IngestReport, Progress
    from correlate.plans.coverage import PlanCoverage
    from correlate.plans.store import PlanCaptureReport

DEFAULT_PATH = "correlate.duckdb"
ENV_VAR = "CORRELATE_DB"
#: DuckDB's memory cap; past it, it spills to disk. Its own default is 80% of
#: RAM, which a shared CI machine or laptop rarely has to spare.
MEMORY_LIMIT_VAR = "CORRELATE_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1500MB"


def default_store_path() -> str:
    """``$CORRELATE_DB`` when set, else ``./correlate.duckdb``."""
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


def open_store(path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> Store:
    """Open (creating when needed) the run store at ``path``.

    ``path`` defaults to :func:`default_store_path`; ``":memory:"`` gives a
    throwaway store. A read-only open never creates or migrates a file.
    """
    import duckdb

    location = str(path) if path is not None else default_store_path()
    in_memory = location == ":memory:"
    if read_only and not in_memory and not Path(location).exists():
        raise StoreError(
            f"no store at {location}: ingest a run first (correlate ingest PATH --run NAME), "
            "or pass --db / set CORRELATE_DB to the store you mean"
        )
    try:
        con = duckdb.connect(location, read_only=read_only and not in_memory)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(location, _lock_holder(str(exc))) from None
        raise StoreError(f"cannot open store {location}: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open store {location}: {exc}") from None
    # DuckDB's own bar would print into our output; keep the tracking that
    # query_progress() reads, drop the printing.
    try:
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
    except duckdb.InvalidInputException:
        # In Jupyter without ipywidgets DuckDB refuses any progress-bar setting;
        # ingest then reports no progress within a query, and nothing else changes.
        pass
    limit = os.environ.get(MEMORY_LIMIT_VAR) or DEFAULT_MEMORY_LIMIT
    try:
        con.execute("SET memory_limit = ?", [limit])
    except duckdb.Error as exc:
        con.close()
        raise StoreError(
            f"{MEMORY_LIMIT_VAR}={limit!r} is not a memory size DuckDB takes ({exc})"
        ) from None
    try:
        _prepare_schema(con, location, read_only=read_only and not in_memory)
    except BaseException:
        con.close()
        raise
    return Store(con, location, read_only=read_only)


def _lock_holder(message: str) -> str:
    marker = "Conflicting lock is held in "
    if marker not in message:
        return ""
    holder = message.split(marker, 1)[1].split(". See also", 1)[0]
    return f"held by {holder}"


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {r[0] for r in rows}


def _prepare_schema(con: duckdb.DuckDBPyConnection, location: str, *, read_only: bool) -> None:
    tables = _tables(con)
    if not tables:
        if read_only:
            raise StoreError(f"{location} is an empty database, not a correlate store")
        con.execute("BEGIN")
        con.execute(DDL)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
        return
    if "meta" not in tables:
        raise StoreError(
            f"{location} is a DuckDB file but not a correlate store (no meta table); "
            "pass --db with another path"
        )
    version = _schema_version(con, location)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{location} was written by a newer correlate (store schema {version}, this "
            f"correlate reads {SCHEMA_VERSION}): upgrade correlate to read it"
        )
    if read_only:
        raise SchemaVersionError(
            f"{location} has store schema {version}; this correlate needs {SCHEMA_VERSION}. "
            "Open it once with a writing command (e.g. correlate ingest) to migrate it"
        )
    _migrate(con, location, version)


def _schema_version(con: duckdb.DuckDBPyConnection, location: str) -> int:
    """The store's recorded schema version (0 when none is recorded)."""
    import duckdb

    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.Error as exc:
        raise SchemaVersionError(
            f"{location} has a meta table correlate cannot read ({exc}); "
            "it is not a correlate store, or a damaged one: pass --db with another path"
        ) from None
    if row is None:
        return 0
    try:
        return int(str(row[0]).strip())
    except ValueError:
        raise SchemaVersionError(
            f"{location} records store schema {str(row[0])[:40]!r}, which is not a number; "
            "it is not a store correlate wrote: pass --db with another path"
        ) from None


def _migrate(con: duckdb.DuckDBPyConnection, location: str, version: int) -> None:
    import duckdb

    recorded = version
    con.execute("BEGIN")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            con.execute("ROLLBACK")
            raise SchemaVersionError(
                f"{location} has store schema {version}, which this correlate cannot migrate; "
                "re-ingest the runs into a new store"
            )
        try:
            con.execute(step)
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise SchemaVersionError(
                f"{location} records store schema {recorded}, but its tables are not that "
                f"schema's (migrating to {version + 1} failed: {str(exc).strip()}); "
                "the version was changed by hand or the file is damaged: "
                "re-ingest the runs into a new store"
            ) from None
        version += 1
    if recorded < REKEYED:
        # a re-keying migration may split a key: texts whose new key has no statement
        # row yet would leave db_spans
        from correlate.statements import fingerprint_missing

        for (run_id,) in con.execute("SELECT DISTINCT run_id FROM spans").fetchall():
            fingerprint_missing(con, run_id)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    con.execute("COMMIT")


class Store:
    """An open run store. Use :func:`open_store` to get one."""

    #: Where the spans analysed are: ``"local"`` (this DuckDB file) or ``"clickhouse"``
    #: (a source read in place), for advice that names the options that apply.
    spans_at = "local"
    #: The environment variable that sets DuckDB's memory limit, for advice to raise it.
    memory_limit_var = MEMORY_LIMIT_VAR

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, *, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._depth = 0

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<correlate.Store {self.path} ({mode})>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # -- queries -----------------------------------------------------------------

    def sql(
        self, query: str, params: Iterable[Any] | Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Run ad-hoc SQL over the store and return the result as a DataFrame.

        >>> with open_store(":memory:") as s:
        ...     int(s.sql("SELECT count(*) AS n FROM spans")["n"][0])
        0
        """
        import duckdb

        try:
            cursor = (
                self.con.execute(query, params) if params is not None else self.con.execute(query)
            )
            return cursor.df()
        except duckdb.Error as exc:
            raise QueryError(str(exc).strip()) from None

    def runs(self) -> pd.DataFrame:
        """One row per run: counts, time range and services, oldest first.

        Counted from the spans and files themselves, not from the totals an ingest
        stores at its end, so a failed or killed ingest cannot leave them stale.
        """
        return self.sql(
            """
            SELECT r.name, coalesce(s.spans, 0) AS spans, coalesce(s.traces, 0) AS traces,
                   coalesce(f.files, 0) AS files, coalesce(f.skipped, 0) AS skipped,
                   coalesce(f.duplicates, 0) AS duplicates,
                   make_timestamp(s.start_ns // 1000) AS start,
                   make_timestamp(s.end_ns // 1000) AS "end",
                   round((s.end_ns - s.start_ns) / 1e9, 3) AS duration_s,
                   array_to_string(s.services, ', ') AS services,
                   r.labels, r.source, r.created
            FROM runs r
            LEFT JOIN (
                SELECT run_id, count(*) AS spans, count(DISTINCT trace_id) AS traces,
                       min(start_ns) AS start_ns, max(end_ns) AS end_ns,
                       list_sort(list_distinct(list(service))) AS services
                FROM spans GROUP BY run_id
            ) s USING (run_id)
            LEFT JOIN (
                SELECT run_id, count(*) AS files, sum(skipped)::BIGINT AS skipped,
                       sum(duplicates)::BIGINT AS duplicates
                FROM files GROUP BY run_id
            ) f USING (run_id)
            ORDER BY r.run_id
            """
        )

    def run_names(self) -> list[str]:
        """The names of the store's runs, oldest first."""
        return [
            str(r[0]) for r in self.con.execute("SELECT name FROM runs ORDER BY run_id").fetchall()
        ]

    def run_id(self, name: str) -> int:
        """The id of run ``name``; :class:`RunNotFoundError` naming the known runs if absent."""
        row = self.con.execute("SELECT run_id FROM runs WHERE name = ?", [name]).fetchone()
        if row is None:
            known = self.run_names()
            hint = f"known runs: {', '.join(known)}" if known else "the store holds no runs yet"
            raise RunNotFoundError(f"no run named {name!r} in {self.path} ({hint})")
        return int(row[0])

    # -- writing -----------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        run: str,
        *,
        format: str | None = None,
        strict: bool = False,
        labels: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        max_expanded_bytes: int | None = None,
    ) -> IngestReport:
        """Read trace files (or directories of them) into run ``run``.

        See :func:`correlate.ingest.ingest` for the rules; this is the same call.
        """
        from correlate.ingest import ingest

        return ingest(
            self,
            paths,
            run,
            format=format,
            strict=strict,
            labels=labels,
            progress=progress,
            max_expanded_bytes=max_expanded_bytes,
        )

    def capture_plans(
        self,
        run: str,
        dsn: str,
        *,
        analyze: bool = False,
        statement_timeout_ms: int = 5000,
        source: ClickHouseStore | None = None,
    ) -> PlanCaptureReport:
        """Explain each statement shape of ``run`` (or of a ClickHouse ``source``'s spans,
        into run ``run``) on the database at ``dsn`` and keep the plans.

        See :func:`correlate.plans.store.capture_plans`; this is the same call.
        """
        from correlate.plans.store import capture_plans

        return capture_plans(
            self,
            run,
            dsn,
            analyze=analyze,
            statement_timeout_ms=statement_timeout_ms,
            source=source,
        )

    def plans_coverage(self, run: str, *, top: int = 10) -> PlanCoverage:
        """The share of ``run``'s DB span time covered by a plan: exactly, by shape, or not.

        See :func:`correlate.plans.coverage.plans_coverage`; this is the same call.
        """
        from correlate.plans.coverage import plans_coverage

        return plans_coverage(self, run, top=top)

    def require_writable(self) -> None:
        """:class:`StoreError` when the store was opened read-only."""
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction: everything inside commits together, or nothing does.

        Nested blocks join the outermost transaction (DuckDB has no savepoints), so
        a helper can always wrap its writes in ``atomic()`` whether or not its caller
        already did; an exception anywhere rolls the whole outer block back.

        >>> with open_store(":memory:") as s:
        ...     with s.atomic() as con:
        ...         _ = con.execute("INSERT INTO meta VALUES ('k', 'v')")
        ...     s.sql("SELECT value FROM meta WHERE key = 'k'")["value"].tolist()
        ['v']
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN")
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    def ensure_run(self, name: str, *, source: str | None, labels: Mapping[str, str] | None) -> int:
        """The id of run ``name``, created when new. Labels given are merged in."""
        self.require_writable()
        if not name or not name.strip():
            raise CorrelateError("a run needs a non-empty name (--run NAME)")
        row = self.con.execute("SELECT run_id FROM runs WHERE name = ?", [name]).fetchone()
        if row is None:
            row = self.con.execute(
                "INSERT INTO runs (name, source, labels) VALUES (?, ?, ?) RETURNING run_id",
                [name, source, dict(labels or {})],
            ).fetchone()
            assert row is not None
        elif labels:
            current = self.con.execute(
                "SELECT labels FROM runs WHERE run_id = ?", [row[0]]
            ).fetchone()
            merged = {**dict(current[0] or {}), **labels} if current else dict(labels)
            self.con.execute("UPDATE runs SET labels = ? WHERE run_id = ?", [merged, row[0]])
        return int(row[0])

    def refresh_run_stats(self, run_id: int) -> None:
        """Recompute a run's counts and time range from its spans and files."""
        self.con.execute(
            """
            UPDATE runs SET
                span_count = s.spans, trace_count = s.traces,
                start_ns = s.start_ns, end_ns = s.end_ns, services = s.services,
                skipped_count = f.skipped, duplicate_count = f.duplicates
            FROM (
                SELECT count(*) AS spans, count(DISTINCT trace_id) AS traces,
                       min(start_ns) AS start_ns, max(end_ns) AS end_ns,
                       list_sort(list_distinct(list(service))) AS services
                FROM spans WHERE run_id = $run
            ) s, (
                SELECT coalesce(sum(skipped), 0) AS skipped,
                       coalesce(sum(duplicates), 0) AS duplicates
                FROM files WHERE run_id = $run
            ) f
            WHERE runs.run_id = $run
            """,
            {"run": run_id},
        )
