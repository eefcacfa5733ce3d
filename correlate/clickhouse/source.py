"""A ClickHouse source as a store: the whole analysis, run where the spans are.

:func:`open_source` connects to a ``clickhouse://`` or ``chdb://`` URL and gives a
:class:`ClickHouseStore`, which the analysis (:class:`~correlate.analysis.run.Run`,
:func:`correlate.analyze`, :func:`correlate.report`, :func:`correlate.diff`) uses
as it uses a local :class:`~correlate.Store`: its ``con`` runs every statement of
the analysis inside ClickHouse (:class:`~correlate.clickhouse.engine.Engine`), so
the per-span work stays there and only aggregates come back
(:attr:`ClickHouseStore.bytes_fetched` counts them).

The store lives in private databases, made for this analysis and dropped by
:meth:`ClickHouseStore.close`: ``…_src_views`` holds the canonical views over the
exporter's tables (:mod:`correlate.clickhouse.views`), ``…_src`` the window's spans
and pool samples derived from them once, and the statement fingerprints; the work
database, the current database of the analysis, names them as the local store does
(``spans``, ``statements``, ``pool_samples``, ``db_spans``) beside the store's other
tables. Those are empty, or hold a local run's plans, load results and companion
files when ``local`` and ``run`` are given (they are small, and are joined by
fingerprint and time).

The source run is named from the source and the window
(``clickhouse:otel.otel_traces 2026-11-27T10:00:00Z..2026-11-27T11:00:00Z``)
unless ``name`` or ``run`` is given. For :func:`correlate.diff`, a ``baseline``
local run is uploaded whole (its spans too, a local run being small), or a
``baseline_window`` of the same source is derived beside the first (``…_base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from correlate.clickhouse.otel_schema import quote_identifier, quote_string
from correlate.clickhouse.window import WindowError, format_ns, parse_window, window_condition
from correlate.errors import CorrelateError, RunNotFoundError
from correlate.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from correlate.clickhouse.connection import Connection, Source
    from correlate.clickhouse.engine import Engine

__all__ = [
    "SOURCE_RUN_ID",
    "ClickHouseStore",
    "EmptyWindowError",
    "WindowError",
    "open_source",
]

#: The run id of the source's spans (the canonical views give this id).
SOURCE_RUN_ID = 1
#: The run id of a diff's baseline (a local run uploaded, or another window).
BASELINE_RUN_ID = 2
#: Tables of a local run uploaded for the source run: what the spans cannot say
#: (plans, the load generator's results, the run directory's companion files).
LOCAL_TABLES = (
    "client_requests",
    "db_activity",
    "db_lock_waits",
    "db_samples",
    "db_watch",
    "load_failures",
    "load_samples",
    "load_summary",
    "load_thresholds",
    "plan_insights",
    "plan_nodes",
    "plans",
    "pool_checkouts",
    "pool_leaks",
    "run_info",
)
#: A baseline run is uploaded whole: these too.
BASELINE_TABLES = (*LOCAL_TABLES, "files", "problems")


class EmptyWindowError(CorrelateError):
    """The source holds no span in the window (and services) asked for."""


class ClickHouseStore(Store):
    """A ClickHouse source, opened for analysis (see the module docstring).

    A :class:`~correlate.Store` whose ``con`` is an
    :class:`~correlate.clickhouse.engine.Engine`: the analysis, reports and diff run
    their DuckDB SQL through it unchanged. It is read-only.
    """

    spans_at = "clickhouse"

    def __init__(
        self, conn: Connection, engine: Engine, work_db: str, src_db: str, display: str
    ) -> None:
        # not Store.__init__: there is no DuckDB connection; the engine stands in for it
        self.con = engine  # type: ignore[assignment]
        self.engine = engine
        self.read_only = True
        self._depth = 0
        self.conn = conn
        self.work_db = work_db
        self.src_db = src_db
        #: every database made for this analysis, dropped on close
        self.databases = [work_db, src_db, f"{src_db}_views"]
        self.path = display
        #: the source run's name, its spans and its window (ns, inclusive)
        self.name = ""
        self.spans = 0
        self.window: tuple[int, int] = (0, 0)
        #: the local run whose plans and load results came with the spans (``--run``)
        self.local_run: str | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<correlate.ClickHouseStore {self.path}>"

    @property
    def bytes_fetched(self) -> int:
        """Bytes of result rows ClickHouse sent back so far (Arrow sizes)."""
        return int(self.engine.bytes_fetched)

    def close(self) -> None:
        """Drop the work databases and close the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            _use(self.conn, self.conn.source.tables.database)
            for database in self.databases:
                self.conn.command(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
        finally:
            self.conn.close()

    def sql(self, query: str, params: Any = None) -> pd.DataFrame:
        """Ad-hoc SQL (DuckDB dialect, as for a local store) run in ClickHouse."""
        return self.engine.execute(query, params).df()

    def run_names(self) -> list[str]:
        """The source run's name, and the baseline's when there is one."""
        rows = self.con.execute("SELECT name FROM runs ORDER BY run_id").fetchall()
        return [str(r[0]) for r in rows]

    def run_id(self, name: str) -> int:
        row = self.con.execute("SELECT run_id FROM runs WHERE name = ?", [name]).fetchone()
        if row is None:
            raise RunNotFoundError(
                f"no run named {name!r} in {self.path} (runs there: {', '.join(self.run_names())})"
            )
        return int(row[0])

    def ingest(self, *args: Any, **kwargs: Any) -> Any:
        raise CorrelateError(
            f"{self.path} is a ClickHouse source: it is read, never ingested into; "
            "ingest into a local store (--db) instead"
        )


def open_source(
    url: str | Source,
    *,
    window: str | tuple[int | None, int | None] | None = None,
    services: tuple[str, ...] | list[str] = (),
    local: Store | None = None,
    run: str | None = None,
    name: str | None = None,
    baseline: str | None = None,
    baseline_window: str | tuple[int | None, int | None] | None = None,
) -> ClickHouseStore:
    """Open a ClickHouse source for analysis (see the module docstring).

    ``window`` is ``START..END`` (:func:`~correlate.clickhouse.window.parse_window`) or
    a pair of nanosecond instants, and keeps the traces that started in it, whole
    (:func:`~correlate.clickhouse.window.window_condition`); ``services`` keeps those services' spans only;
    ``local`` and ``run`` name a local run whose plans and load results go with the
    spans; ``baseline`` names a run of ``local`` uploaded whole, to diff against, and
    ``baseline_window`` another window of the same source (and services) instead.
    """
    from correlate.clickhouse.connection import connect

    bounds = parse_window(window) if isinstance(window, str) else (window or (None, None))
    base_bounds = (
        parse_window(baseline_window) if isinstance(baseline_window, str) else baseline_window
    )
    if baseline is not None and base_bounds is not None:
        raise CorrelateError("a baseline is a local run or a window of the source, not both")
    if (run or baseline) and local is None:
        raise CorrelateError("naming a local run (--run, a baseline) needs a local store (--db)")
    conn = connect(url)
    try:
        return _open(conn, bounds, tuple(services), local, run, name, baseline, base_bounds)
    except BaseException:
        conn.close()
        raise


def _open(
    conn: Connection,
    bounds: tuple[int | None, int | None],
    services: tuple[str, ...],
    local: Store | None,
    run: str | None,
    name: str | None,
    baseline: str | None,
    base_bounds: tuple[int | None, int | None] | None = None,
) -> ClickHouseStore:
    from correlate.clickhouse import views, work
    from correlate.clickhouse.engine import Engine

    conn.require_traces()
    spans, window = _check_window(conn, bounds, services)
    if base_bounds is not None:
        base_spans, base_window = _check_window(conn, base_bounds, services, "the baseline window")
    display = conn.source.display
    work_db = work.work_database_name()
    src_db = f"{work_db}_src"
    engine = Engine(conn)
    store = ClickHouseStore(conn, engine, work_db, src_db, display)
    store.spans, store.window = spans, window
    try:
        for database in (src_db, work_db):
            conn.command(f"CREATE DATABASE {quote_identifier(database)}")
        _derive_spans(conn, src_db, bounds, services)
        views.fingerprint_statements(conn, src_db)
        base_db = None
        if base_bounds is not None:
            base_db = f"{work_db}_base"
            store.databases += [base_db, f"{base_db}_views"]
            conn.command(f"CREATE DATABASE {quote_identifier(base_db)}")
            _derive_spans(conn, base_db, base_bounds, services, BASELINE_RUN_ID)
            views.fingerprint_statements(conn, base_db)
        _use(conn, work_db)
        _build_work(store, local, run, baseline, base_db)
        store.name = name or run or _run_name(conn, window)
        store.local_run = run
        _add_run(store, SOURCE_RUN_ID, store.name, display, window, spans, services)
        if base_bounds is not None:
            base_name = _run_name(conn, base_window)
            if base_name == store.name:
                base_name += " (baseline)"
            _add_run(store, BASELINE_RUN_ID, base_name, display, base_window, base_spans, services)
    except BaseException:
        store.close()
        raise
    return store


#: An open end of a window, as ClickHouse's DateTime64(9) can hold it (year 2255).
_FAR = 9_000_000_000_000_000_000


def _view_window(bounds: tuple[int | None, int | None]) -> tuple[int, int] | None:
    """The window the views filter on: an open end stays open (pool samples after the
    last span start belong to the run too)."""
    if bounds == (None, None):
        return None
    return (bounds[0] or 0, bounds[1] if bounds[1] is not None else _FAR)


def _derive_spans(
    conn: Connection,
    src_db: str,
    bounds: tuple[int | None, int | None],
    services: tuple[str, ...],
    run_id: int = SOURCE_RUN_ID,
) -> None:
    """The window's canonical spans and pool samples as tables of ``src_db``, as run
    ``run_id``.

    The canonical views derive each span's columns from the exporter's maps (and
    join HTTP client spans to their callees); the analysis reads ``spans`` a few
    dozen times, so they are derived once, in one scan of the window, into a
    MergeTree table (on disk, compressed), not once per statement.
    """
    from correlate.clickhouse import views

    derived = f"{src_db}_views"
    src, view_db = quote_identifier(src_db), quote_identifier(derived)
    views.create_canonical_views(
        conn, None, derived, window=_view_window(bounds), services=services
    )
    conn.command(
        f"CREATE TABLE {src}.spans ENGINE = MergeTree ORDER BY tuple() "
        f"AS SELECT * REPLACE (toInt32({int(run_id)}) AS run_id) FROM {view_db}.spans"
    )
    conn.command(
        f"CREATE TABLE {src}.pool_samples ENGINE = MergeTree ORDER BY tuple() "
        f"AS SELECT * REPLACE (toInt32({int(run_id)}) AS run_id) FROM {view_db}.pool_samples"
    )


def _use(conn: Connection, database: str) -> None:
    """Make ``database`` the one unqualified names mean, for every later statement.

    chDB keeps a ``USE`` for the session. clickhouse-connect names a database in every
    request (its client's ``database``), which would override a ``USE``: the client's is
    set too, or the analysis' tables would land in the source's database.
    """
    client = getattr(conn, "_client", None)  # the HTTP connection's; chDB has none
    if client is not None:
        client.database = database
    conn.command(f"USE {quote_identifier(database)}")


def _check_window(
    conn: Connection,
    bounds: tuple[int | None, int | None],
    services: tuple[str, ...],
    option: str = "--window",
) -> tuple[int, tuple[int, int]]:
    """The spans of the window's traces (as the views read them) and the window with open
    ends closed on the data; :class:`EmptyWindowError` or an unknown service's error
    when there is nothing."""
    table = conn.source.tables.traces_table
    shown = f"{conn.source.tables.database}.{conn.source.tables.traces}"
    conditions = []
    if bounds[0] is not None:
        conditions.append(f"Timestamp >= fromUnixTimestamp64Nano(toInt64({int(bounds[0])}))")
    if bounds[1] is not None:
        conditions.append(f"Timestamp <= fromUnixTimestamp64Nano(toInt64({int(bounds[1])}))")
    in_window = " AND ".join(conditions) or "1"
    if services:
        known = (
            conn.query_arrow(
                f"SELECT DISTINCT ServiceName AS s FROM {table} WHERE {in_window} ORDER BY s"
            )
            .column("s")
            .to_pylist()
        )
        unknown = [s for s in services if s not in known]
        if unknown:
            where = "" if in_window == "1" else " in that window"
            raise CorrelateError(
                f"no service {unknown[0]!r} in {shown} of {conn.source.display}{where}; "
                f"services there: {', '.join(map(str, known)) or 'none'}"
            )
    selected = window_condition(table, _view_window(bounds), services) or "1"
    row = conn.query_arrow(
        "SELECT count() AS n, toUnixTimestamp64Nano(min(Timestamp)) AS lo, "
        f"max(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)) AS hi FROM {table} "
        f"WHERE {selected}"
    ).to_pylist()[0]
    if not row["n"]:
        raise EmptyWindowError(
            _empty_message(conn, bounds, services, shown, table, option, in_window)
        )
    start = bounds[0] if bounds[0] is not None else int(row["lo"])
    end = bounds[1] if bounds[1] is not None else int(row["hi"])
    return int(row["n"]), (start, end)


def _empty_message(
    conn: Connection,
    bounds: tuple[int | None, int | None],
    services: tuple[str, ...],
    shown: str,
    table: str,
    option: str,
    in_window: str,
) -> str:
    start = format_ns(bounds[0]) if bounds[0] is not None else "the first span"
    end = format_ns(bounds[1]) if bounds[1] is not None else "the last span"
    of = f" of {', '.join(services)}" if services else ""
    service = f" AND ServiceName IN ({', '.join(map(quote_string, services))})" if services else ""
    earlier = conn.query_arrow(
        f"SELECT count() AS n FROM {table} WHERE {in_window}{service}"
    ).to_pylist()[0]["n"]
    if earlier:
        # spans there, but none began a trace: the window's traces started before it
        spans = f"{earlier} spans there are" if earlier != 1 else "1 span there is"
        return (
            f"no trace started{of} in {shown} of {conn.source.display} between {start} and "
            f"{end}: its {spans} of traces that began before it (a window keeps the traces "
            f"whose first span started in it); start {option} earlier"
        )
    whole = conn.query_arrow(
        "SELECT count() AS n, toUnixTimestamp64Nano(min(Timestamp)) AS lo, "
        f"toUnixTimestamp64Nano(max(Timestamp)) AS hi FROM {table}"
    ).to_pylist()[0]
    held = (
        f"the table holds spans from {format_ns(whole['lo'])} to {format_ns(whole['hi'])}"
        if whole["n"]
        else "the table is empty"
    )
    return (
        f"no spans{of} in {shown} of {conn.source.display} between {start} and {end}: "
        f"check {option}, timezone is UTC ({held})"
    )


def _run_name(conn: Connection, window: tuple[int, int]) -> str:
    tables = conn.source.tables
    return (
        f"{conn.source.scheme}:{tables.database}.{tables.traces} "
        f"{format_ns(window[0])}..{format_ns(window[1])}"
    )


def _build_work(
    store: ClickHouseStore,
    local: Store | None,
    run: str | None,
    baseline: str | None,
    base_db: str | None,
) -> None:
    """The work database: the source's views under the store's names, the store's other
    tables, a local run's plans and load results, and a baseline (a local run uploaded, or
    another window's tables in ``base_db``)."""
    from correlate.clickhouse import work
    from correlate.clickhouse.statements import db_spans_sql

    conn, w, src = store.conn, quote_identifier(store.work_db), quote_identifier(store.src_db)
    work.create_tables(conn, store.work_db)
    for table in ("spans", "statements", "pool_samples"):
        union = ""
        if baseline is not None:
            conn.command(
                f"CREATE TABLE {w}.`baseline_{table}` ENGINE = Memory "
                f"AS SELECT * FROM {src}.{table} LIMIT 0"
            )
            union = f" UNION ALL SELECT * FROM {w}.`baseline_{table}`"
        elif base_db is not None:
            # the fingerprints of another window are written as run 1: renumbered here
            union = (
                f" UNION ALL SELECT * REPLACE (toInt32({BASELINE_RUN_ID}) AS run_id) "
                f"FROM {quote_identifier(base_db)}.{table}"
            )
        conn.command(f"CREATE VIEW {w}.{table} AS SELECT * FROM {src}.{table}{union}")
    conn.command(f"CREATE VIEW {w}.db_spans AS {db_spans_sql(store.work_db)}")
    if local is not None and run is not None:
        tables = tuple(t for t in LOCAL_TABLES if t in work.store_tables())
        work.upload_run(local.con, local.run_id(run), conn, store.work_db, SOURCE_RUN_ID, tables)
    if local is not None and baseline is not None:
        _upload_baseline(store, local, baseline)


def _upload_baseline(store: ClickHouseStore, local: Store, name: str) -> None:
    from correlate.clickhouse import work

    local_id = local.run_id(name)
    tables = tuple(t for t in BASELINE_TABLES if t in work.store_tables())
    work.upload_run(local.con, local_id, store.conn, store.work_db, BASELINE_RUN_ID, tables)
    for table in ("spans", "statements", "pool_samples"):
        work.upload_like(
            local.con,
            local_id,
            store.conn,
            store.work_db,
            f"baseline_{table}",
            table,
            BASELINE_RUN_ID,
        )
    row = local.con.execute(
        "SELECT source, start_ns, end_ns, span_count FROM runs WHERE run_id = ?", [local_id]
    ).fetchone()
    assert row is not None
    _add_run(store, BASELINE_RUN_ID, name, row[0], (row[1] or 0, row[2] or 0), row[3] or 0, ())


def _add_run(
    store: ClickHouseStore,
    run_id: int,
    name: str,
    source: str | None,
    window: tuple[int, int],
    spans: int,
    services: tuple[str, ...],
) -> None:
    import pyarrow as pa

    row = pa.table(
        {
            "run_id": pa.array([run_id], pa.int32()),
            "name": [name],
            "source": [source],
            "start_ns": pa.array([window[0]], pa.int64()),
            "end_ns": pa.array([window[1]], pa.int64()),
            "span_count": pa.array([spans], pa.int64()),
            "services": pa.array([list(services)], pa.list_(pa.string())),
        }
    )
    store.conn.insert_arrow(f"{quote_identifier(store.work_db)}.`runs`", row)
