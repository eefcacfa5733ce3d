"""A run, analysed: the notebook and CLI entry point to attribution and findings.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> _ = store.ingest(["sample_traces/checkout-fixed"], run="fixed")
>>> run = correlate.open_run(store, "fixed")
>>> int(run.routes().requests.sum()) == len(run.requests()) > 1000
True
>>> [f.severity for f in run.findings() if f.severity != "info"]
[]
>>> store.close()
"""

from __future__ import annotations

import itertools
import json
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from correlate.analysis import aggregates, requests, timeline
from correlate.analysis.findings import Finding, rank

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.detectors import Detector
    from correlate.analysis.settings import SettingsLike
    from correlate.store import Store

_prefixes = itertools.count(1)


def open_run(store: Store | str | os.PathLike[str], name: str | None = None) -> Run:
    """The run ``name`` of a store (a :class:`~correlate.Store` or a store path).

    ``name`` may be left out when the store holds exactly one run. A path is
    opened read-only and closed with the run (:meth:`Run.close`).
    """
    from correlate.store import Store, open_store

    owned = not isinstance(store, Store)
    st = open_store(store, read_only=True) if not isinstance(store, Store) else store
    try:
        if name is None:
            names = st.run_names()
            if len(names) != 1:
                from correlate.errors import CorrelateError

                listed = ", ".join(names) or "none"
                raise CorrelateError(
                    f"the store holds {len(names)} runs ({listed}); name the one to analyse"
                )
            name = names[0]
        return Run(st, name, owns_store=owned)
    except BaseException:
        if owned:
            st.close()
        raise


class Run:
    """The analysis of one run. Tables are built once, on first use.

    Methods return pandas DataFrames computed in DuckDB:
    :meth:`requests`, :meth:`routes`, :meth:`breakdown`, :meth:`queries`,
    :meth:`timeline`, :meth:`route_timeline`; :meth:`findings` returns
    :class:`Finding` objects, most urgent first.
    """

    def __init__(self, store: Store, name: str, *, owns_store: bool = False) -> None:
        self.store = store
        self.name = name
        self.run_id = store.run_id(name)
        self.prefix = f"correlate_a{next(_prefixes)}"
        self._owns_store = owns_store
        self._built = False
        self._cache: dict[str, pd.DataFrame] = {}
        #: tables named beyond requests.TABLES (made on first use by an analysis step)
        self._named: set[str] = set()

    def __repr__(self) -> str:
        return f"<Run {self.name!r} of {self.store.path}>"

    def close(self) -> None:
        """Drop the run's analysis tables, and close the store if the run opened it."""
        if self._built:
            for table in (*requests.TABLES, *sorted(self._named - set(requests.TABLES))):
                self.store.con.execute(f"DROP TABLE IF EXISTS {self.prefix}_{table}")
            self._named.clear()
            self._built = False
            self._cache.clear()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the building blocks -----------------------------------------------------

    @property
    def con(self) -> Any:
        """The store's DuckDB connection, with the run's tables built."""
        if not self._built:
            requests.build(self.store.con, self.run_id, self.prefix)
            self._built = True
        return self.store.con

    def table(self, name: str) -> str:
        """The name of one of the run's analysis tables (``requests``, ``parts``, …); a
        table of another name made under it is dropped with the others by :meth:`close`."""
        self.con  # noqa: B018 - builds the tables
        self._named.add(name)
        return f"{self.prefix}_{name}"

    @cached_property
    def span(self) -> tuple[int, int]:
        """(start_ns, end_ns) covering the requests and the load generator's requests."""
        row = self.con.execute(
            f"""
            SELECT least(min(r0), min(c0)), greatest(max(r1), max(c1)) FROM
                (SELECT min(start_ns) r0, max(end_ns) r1 FROM {self.prefix}_requests),
                (SELECT min(start_unix_nano) c0, max(start_unix_nano + duration_ns) c1
                 FROM client_requests WHERE run_id = $run)
            """,
            {"run": self.run_id},
        ).fetchone()
        if row is None or row[0] is None:
            return (0, 0)
        return (int(row[0]), int(row[1]))

    @property
    def seconds(self) -> float:
        start, end = self.span
        return (end - start) / 1e9

    @cached_property
    def info(self) -> dict[str, Any]:
        """run.json as recorded, or ``{}``."""
        row = self.store.con.execute(
            "SELECT info FROM run_info WHERE run_id = ? ORDER BY file_id DESC LIMIT 1",
            [self.run_id],
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    @cached_property
    def unattributed_spans(self) -> int:
        """Spans that belong to no request (no SERVER span in their trace)."""
        return requests.unattributed(self.con, self.run_id, self.prefix)

    @cached_property
    def doubled_db_spans(self) -> int:
        """DB spans recording a call another span of the run records too (an ORM's
        instrumentation and the driver's both on): each call is counted once."""
        return requests.doubled(self.con, self.prefix)

    # -- what notebooks and renderers use -----------------------------------------

    def requests(self) -> pd.DataFrame:
        """One row per request: route, status, duration and its parts in milliseconds."""
        return self.con.execute(
            f"SELECT * FROM {self.prefix}_requests ORDER BY start_ns, request_id"
        ).df()

    def routes(self) -> pd.DataFrame:
        """Per route: count, throughput, error rate, p50/p90/p95/p99/max and mean parts."""
        return aggregates.routes(self.con, self.prefix, self.seconds)

    def breakdown(self, route: str) -> pd.DataFrame:
        """Typical (p40–p60) against tail (≥ p95) requests of ``route``, per component."""
        return aggregates.breakdown(self.con, self.prefix, route)

    def queries(self) -> pd.DataFrame:
        """Per fingerprint: calls, time, p50/p95, busiest route and share, plan insights."""
        if "queries" not in self._cache:
            self._cache["queries"] = aggregates.queries(self.con, self.prefix, self.run_id)
        return self._cache["queries"].copy()

    def timeline(self) -> pd.DataFrame:
        """The run in windows: throughput, in flight, latency, parts, errors, pool, offered load."""
        if "timeline" not in self._cache:
            start, end = self.span
            self._cache["timeline"] = timeline.timeline(
                self.con, self.prefix, self.run_id, start, end
            )
        return self._cache["timeline"].copy()

    def route_timeline(self) -> pd.DataFrame:
        """Per window and route: requests, p50 and p95."""
        start, end = self.span
        return timeline.route_timeline(self.con, self.prefix, start, end)

    def findings(
        self,
        detectors: tuple[Detector, ...] | None = None,
        *,
        settings: SettingsLike | None = None,
    ) -> list[Finding]:
        """Every detector's findings, most urgent first (``detectors`` defaults to all).

        ``settings`` tunes their thresholds (:mod:`correlate.analysis.settings`): a
        :class:`~correlate.analysis.settings.Settings`, or keys mapped to values
        layered over the project file's; by default the project file's, if any.
        """
        from correlate.analysis.detectors import DETECTORS
        from correlate.analysis.settings import resolve_settings

        chosen = DETECTORS if detectors is None else detectors
        resolved = resolve_settings(settings, detectors=chosen)
        found: list[Finding] = []
        for detect in chosen:
            found.extend(detect(self, **resolved.arguments(detect)))
        from correlate.analysis.verdict import reconcile  # verdict imports this module

        return reconcile(rank(found))
