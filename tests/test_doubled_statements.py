"""A statement two instrumentations record is one execution, counted once.

Auto-instrumentation turns on SQLAlchemy's instrumentation and the driver's (psycopg,
PyMySQL through the DB-API integration, asyncpg): each execution is then a SQLAlchemy span
and, within it, the driver's span of the same statement. Real runs recorded by
``tests/helpers/doubled_producer.py``; small constructed runs for what must stay apart
(sequential executions, queries awaited together).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.analysis.requests import DOUBLED_SLACK_NS
from correlate.analysis.run import Run
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .helpers.produce import produce

PRODUCER = Path(__file__).parent / "helpers" / "doubled_producer.py"
READS, REQUESTS = 6, 8
SQLALCHEMY = "opentelemetry.instrumentation.sqlalchemy"


def _sqlalchemy_ms(out: Path) -> float:
    """The summed durations of SQLAlchemy's spans of the items query, from the export."""
    total = 0
    for line in out.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                if ss["scope"]["name"] != SQLALCHEMY:
                    continue
                for span in ss["spans"]:
                    if "dtest_items" in json.dumps(span.get("attributes", [])):
                        total += int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])
    return total / 1e6


def _check(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "both.jsonl"
    produce(PRODUCER, dsn, out, "both")
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(out, store=store)
        recorded = store.con.execute(
            "SELECT count(*) FROM spans WHERE db_statement LIKE '%dtest_items%'"
        ).fetchone()
    assert recorded == (2 * READS * REQUESTS,), "both instrumentations record each read"
    (items,) = [q for q in analysis.queries.itertuples() if "dtest_items" in q.normalized]
    assert (items.calls, items.calls_per_request) == (READS * REQUESTS, READS)
    # the time is the outer (SQLAlchemy's) spans', not the sum of both records
    assert items.total_ms == pytest.approx(_sqlalchemy_ms(out), rel=1e-6)
    (n1,) = [f for f in analysis.findings if f.kind == FindingKind.N_PLUS_ONE]
    assert n1.evidence["calls_per_request"] == READS
    said = [g for g in analysis.gaps if "recorded twice" in g]
    assert said == [
        f"{READS * REQUESTS} statement(s) were recorded twice (an ORM's and the driver's "
        "instrumentation both on, as SQLAlchemy's and psycopg's, or knex's and pg's): each is "
        "counted once, as the driver's span where it lies under the other."
    ]


@pytest.mark.postgres
def test_postgresql_statement_recorded_by_sqlalchemy_and_psycopg_counts_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    _check(pg_dsn, tmp_path)


@pytest.mark.mariadb
def test_mariadb_statement_recorded_by_sqlalchemy_and_dbapi_counts_once(
    mysql_dsn: str, tmp_path: Path
) -> None:
    _check(mysql_dsn, tmp_path)


SQL = "SELECT name FROM items WHERE id = 1"


def _query(b: RunBuilder, parent: str, start: float, end: float, scope: str) -> str:
    sid = b.query("t1", parent, start, end, SQL)
    b.spans[-1]["scope_name"] = scope
    return sid


def _calls(b: RunBuilder) -> tuple[int, float, int]:
    """The request's DB calls and DB time, and how many spans were left out as doubled."""
    store = b.build()
    run = Run(store, "r")
    row = run.con.execute(f"SELECT db_calls, db_ms FROM {run.table('requests')}").fetchone()
    doubled = run.doubled_db_spans
    run.close()
    store.close()
    assert row is not None
    return int(row[0]), float(row[1]), doubled


def _request(b: RunBuilder) -> str:
    r = b.request("t1", 0, 100)
    b.spans[-1]["scope_name"] = "web"
    return r


@pytest.mark.parametrize(("nested", "db_ms"), [(False, 20), (True, 19.85)])
def test_driver_span_within_sqlalchemy_span_counts_once_as_sibling_or_child(
    nested: bool, db_ms: float
) -> None:
    # a sibling lying within SQLAlchemy's span is the copy; a child makes SQLAlchemy's
    # span a wrapper of the driver's call, whose own time is the call's
    b = RunBuilder()
    r = _request(b)
    outer = _query(b, r, 10, 30, SQLALCHEMY)
    _query(b, outer if nested else r, 10.05, 29.9, "opentelemetry.instrumentation.psycopg")
    assert _calls(b) == (1, pytest.approx(db_ms), 1)


def test_sequential_executions_of_one_statement_stay_two() -> None:
    b = RunBuilder()
    r = _request(b)
    _query(b, r, 10, 20, SQLALCHEMY)
    _query(b, r, 21, 30, "opentelemetry.instrumentation.psycopg")
    assert _calls(b) == (2, pytest.approx(19), 0)


def test_queries_awaited_together_stay_three() -> None:
    # asyncio.gather of three identical reads: one instrumentation, overlapping siblings,
    # the quicker ones lying within the first
    b = RunBuilder()
    r = _request(b)
    for start, end in ((10, 40), (10.2, 30), (10.4, 35)):
        _query(b, r, start, end, "opentelemetry.instrumentation.asyncpg")
    assert _calls(b) == (3, pytest.approx(30), 0)


def test_queries_awaited_together_with_both_instrumentations_stay_three() -> None:
    # each read recorded by SQLAlchemy and, within it, asyncpg; the second and third
    # reads' records lie within the first's SQLAlchemy span
    b = RunBuilder()
    r = _request(b)
    for start, end in ((10, 40), (10.2, 30), (10.4, 35)):
        _query(b, r, start, end, SQLALCHEMY)
        _query(b, r, start + 0.05, end - 0.05, "opentelemetry.instrumentation.asyncpg")
    assert _calls(b) == (3, pytest.approx(30), 3)


def _copies_pair_by_pair(rows: list[tuple[Any, ...]]) -> set[int]:
    """The rule stated pair by pair, as a reference: ``rows`` are (span, parent, scope,
    start, end, fingerprint) of the DB spans; a span is a copy when a record of the same
    fingerprint, a sibling of another scope, holds it (first in order, within the slack),
    a record no other holds; and a span with a DB span below it is a wrapper."""

    def holds(o: tuple[Any, ...], i: tuple[Any, ...]) -> bool:
        slack = min(DOUBLED_SLACK_NS, (i[4] - i[3]) // 10)
        first = (o[3], -o[4], o[0]) < (i[3], -i[4], i[0])
        return o[5] == i[5] and o[3] <= i[3] and i[4] - slack <= o[4] and first

    within = {
        (i[0], o[0])
        for i in rows
        for o in rows
        if o[1] == i[1] and None not in (o[2], i[2]) and o[2] != i[2] and holds(o, i)
    }
    held = {i for i, _ in within}
    wrappers = {o[0] for o in rows for i in rows if i[1] == o[0]}
    return {i for i, o in within if o not in held} | wrappers


copies = st.lists(
    st.tuples(
        st.sampled_from([-1, -1, -1, 0, 1, 2]),  # parent: mostly the request, or a record
        st.sampled_from([SQLALCHEMY, "opentelemetry.instrumentation.psycopg", None]),
        st.integers(0, 20),  # start, in 0.05 ms steps: ties and the slack both come up
        st.integers(0, 30),  # length, likewise
        st.sampled_from([SQL, "SELECT 2"]),
    ),
    max_size=10,
)


@settings(max_examples=80, deadline=None)
@given(copies)
def test_copies_are_those_the_rule_names_pair_by_pair(
    spans: list[tuple[int, str | None, int, int, str]],
) -> None:
    b = RunBuilder()
    ids = [_request(b)]
    for parent, scope, start, length, sql in spans:
        ids.append(b.query("t1", ids[min(parent + 1, len(ids) - 1)], 10 + start * 0.05,
                           10 + (start + length) * 0.05, sql))  # fmt: skip
        b.spans[-1]["scope_name"] = scope
    run = Run(b.build(), "r")
    rows = run.con.execute(
        f"""SELECT t.sh, t.ph, t.scope_name, t.start_ns, t.end_ns, f.fingerprint
            FROM {run.table("tree")} t JOIN {run.table("fingerprints")} f USING (db_system, qh)"""
    ).fetchall()
    found = run.con.execute(f"SELECT sh FROM {run.table('doubled')}").fetchall()
    run.close()
    assert sorted(sh for (sh,) in found) == sorted(_copies_pair_by_pair(rows))
