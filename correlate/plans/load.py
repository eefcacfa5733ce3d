"""Plans read from files and logs, into a run: parsed, fingerprinted, linked and stored.

Each plan gets the statement it was made for (a ``.sql`` file or the plan's own
``Query Text``), that statement's fingerprint, and, when the statement carries
a sqlcommenter ``traceparent``, the exact span: ``link = 'traceparent'`` with
``trace_id``/``span_id`` from the comment. With the OpenTelemetry SQLAlchemy
instrumentation that span id is the DB CLIENT span's own id (the comment is
written inside that span). Without a comment the plan stands for every span of its shape
(``link = 'fingerprint'``); without any statement it is still stored, with a
NULL fingerprint, and counted as unlinked.

Work is done in chunks: one DuckDB pass computes the literal-free statement key
of every text in a chunk, so each statement shape is fingerprinted once however
many plans of it a log holds, and plans, nodes and insights go in as one
columnar insert per chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from correlate.errors import InputError
from correlate.fingerprint import Fingerprint, fingerprint, parse_comment, traceparent_ids
from correlate.plans.insights import find_insights
from correlate.plans.parse import parse_plan, plan_json

if TYPE_CHECKING:
    from correlate.plans.model import Plan
    from correlate.store import Store

__all__ = ["CHUNK", "PlanCounts", "PlanItem", "load_plans"]

#: Plans parsed and inserted together.
CHUNK = 2000


@dataclass(frozen=True)
class PlanItem:
    """One plan as a file holds it, before parsing."""

    #: 1-based line where it starts (None when the file has no lines to speak of)
    line: int | None
    #: the plan: JSON text, or already decoded JSON
    data: Any
    #: the statement from a ``.sql`` file next to the plan
    statement: str | None = None
    #: the duration the server logged with the plan
    duration_ms: float | None = None
    #: the log's timestamp of the plan
    logged_at: str | None = None
    #: why the plan cannot be read; it is then counted and reported, not stored
    problem: str | None = None


@dataclass
class PlanCounts:
    """What reading one file's plans did."""

    read: int = 0
    added: int = 0
    #: tied to the exact span by the statement's sqlcommenter traceparent
    traceparent: int = 0
    #: tied to the spans of the statement's shape
    fingerprint: int = 0
    #: stored without a statement: no fingerprint, tied to no span
    unlinked: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    plan_ids: list[int] = field(default_factory=list)


@dataclass
class _Parsed:
    item: PlanItem
    plan: Plan
    raw: str
    statement: str | None


def load_plans(
    store: Store,
    run_id: int,
    source: str,
    method: str,
    items: Iterable[PlanItem],
    *,
    strict: bool = False,
) -> PlanCounts:
    """Parse, link and store ``items`` as plans of run ``run_id``; ``source`` names the file.

    A plan that cannot be read is counted in ``problems`` as ``(line, reason)``;
    with ``strict`` the first one raises :class:`InputError` instead.
    """
    counts = PlanCounts()
    cache: dict[tuple[str, str], Fingerprint] = {}
    iterator: Iterator[PlanItem] = iter(items)
    while chunk := list(islice(iterator, CHUNK)):
        parsed: list[_Parsed] = []
        for item in chunk:
            counts.read += 1
            result = _parse(item)
            if isinstance(result, str):
                if strict:
                    raise InputError(
                        result + " (--strict: nothing from this file was kept)", None, item.line
                    )
                counts.problems.append((item.line, result))
                continue
            parsed.append(result)
        if parsed:
            _store_chunk(store, run_id, source, method, parsed, cache, counts)
    return counts


def _parse(item: PlanItem) -> _Parsed | str:
    if item.problem is not None:
        return item.problem
    raw: str | None = None
    try:
        if isinstance(item.data, str):
            try:  # a logged plan is plain JSON: keep its text as the raw plan
                data = json.loads(item.data, parse_constant=_not_json)
                raw = item.data
            except ValueError:
                data = plan_json(item.data)
        else:
            data = item.data
        plan = parse_plan(data)
    except InputError as exc:
        return exc.reason
    except RecursionError:
        return "not a plan: nested too deeply"
    if raw is None:
        try:
            raw = json.dumps(data, default=str, allow_nan=False)
        except ValueError:  # NaN or Infinity: Python's json reads them, JSON has neither
            return "not a plan: NaN or Infinity in the JSON"
    statement = item.statement or plan.query_text
    return _Parsed(item, plan, raw, statement)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fingerprints(
    store: Store, parsed: list[_Parsed], cache: dict[tuple[str, str], Fingerprint]
) -> list[Fingerprint | None]:
    """Each plan's statement fingerprint; one per literal-free statement key."""
    texts = [p.statement for p in parsed]
    # the plan's source names the dialect as db.system does (postgresql, mysql, …)
    dialects = [p.plan.source for p in parsed]
    keys: list[str | None] = [
        row[0]
        for row in store.con.execute(
            "SELECT CASE WHEN t IS NULL THEN NULL ELSE statement_key(d, t) END "
            "FROM (SELECT unnest($texts) AS t, unnest($dialects) AS d, "
            "generate_subscripts($texts, 1) AS i) ORDER BY i",
            {"texts": texts, "dialects": dialects},
        ).fetchall()
    ]
    out: list[Fingerprint | None] = []
    for text, dialect, key in zip(texts, dialects, keys, strict=True):
        if text is None or key is None:
            out.append(None)
            continue
        found = cache.get((dialect, key))
        if found is None:
            found = cache[(dialect, key)] = fingerprint(text, dialect)
        out.append(found)
    return out


def _store_chunk(
    store: Store,
    run_id: int,
    source: str,
    method: str,
    parsed: list[_Parsed],
    cache: dict[tuple[str, str], Fingerprint],
    counts: PlanCounts,
) -> None:
    import pyarrow as pa

    con = store.con
    prints = _fingerprints(store, parsed, cache)
    ids = [
        int(r[0])
        for r in con.execute(
            "SELECT nextval('plan_id_seq') FROM range(?)", [len(parsed)]
        ).fetchall()
    ]
    plans: dict[str, list[Any]] = {
        name: []
        for name in (
            "plan_id", "fingerprint", "link", "trace_id", "span_id", "method", "logged_at",
            "settings", "statement", "analyzed", "planning_ms", "execution_ms", "raw",
        )
    }  # fmt: skip
    nodes: list[dict[str, Any]] = []
    insights: list[tuple[Any, ...]] = []
    for plan_id, entry, found in zip(ids, parsed, prints, strict=True):
        plan, item = entry.plan, entry.item
        ids_in_comment = None
        if entry.statement is not None and "traceparent" in entry.statement:
            traceparent = parse_comment(entry.statement)[1].get("traceparent")
            ids_in_comment = traceparent_ids(traceparent) if traceparent else None
        link = "traceparent" if ids_in_comment else "fingerprint"
        if ids_in_comment:
            counts.traceparent += 1
        elif found is not None:
            counts.fingerprint += 1
        else:
            counts.unlinked += 1
        row = {
            "plan_id": plan_id,
            "fingerprint": found.id if found else None,
            "link": link,
            "trace_id": ids_in_comment[0] if ids_in_comment else None,
            "span_id": ids_in_comment[1] if ids_in_comment else None,
            "method": method,
            "logged_at": item.logged_at,
            "settings": json.dumps(plan.settings, default=str) if plan.settings else None,
            "statement": entry.statement,
            "analyzed": plan.analyzed,
            "planning_ms": plan.planning_time,
            # the server's own duration for a logged plan; EXPLAIN ANALYZE's otherwise
            "execution_ms": item.duration_ms
            if item.duration_ms is not None
            else plan.execution_time,
            "raw": entry.raw,
        }
        for name, value in row.items():
            plans[name].append(value)
        for record in plan.to_records():
            record.pop("source")
            record.pop("analyzed")
            record["plan_id"] = plan_id
            nodes.append(record)
        insights.extend(
            (
                plan_id, i.rule, i.severity, i.node_id, i.relation, i.message, i.suggestion,
                json.dumps(i.evidence, default=str), i.measured,
            )
            for i in find_insights(plan)
        )  # fmt: skip
    con.register("_new_plans", pa.table(plans))
    con.execute(
        """
        INSERT INTO plans BY NAME
        SELECT plan_id, $run AS run_id, fingerprint, link, trace_id, span_id, $source AS source,
               method, coalesce(try_cast(logged_at AS TIMESTAMPTZ), current_timestamp) AS captured,
               settings::JSON AS settings, statement, analyzed, planning_ms, execution_ms,
               raw::JSON AS raw
        FROM _new_plans
        """,
        {"run": run_id, "source": source},
    )
    con.unregister("_new_plans")
    columns = list(nodes[0])
    con.register("_new_nodes", pa.table({c: [n[c] for n in nodes] for c in columns}))
    con.execute(f"INSERT INTO plan_nodes BY NAME SELECT {', '.join(columns)} FROM _new_nodes")
    con.unregister("_new_nodes")
    if insights:
        names = ("plan_id", "rule", "severity", "node_id", "relation", "message", "suggestion",
                 "evidence", "measured")  # fmt: skip
        table = pa.table({n: [row[k] for row in insights] for k, n in enumerate(names)})
        con.register("_new_insights", table)
        con.execute(
            f"INSERT INTO plan_insights BY NAME SELECT {', '.join(names[:-2])}, "
            "evidence::JSON AS evidence, measured FROM _new_insights"
        )
        con.unregister("_new_insights")
    counts.added += len(parsed)
    counts.plan_ids.extend(ids)
