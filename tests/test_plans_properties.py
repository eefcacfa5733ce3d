"""Property tests for the plan-file and server-log readers: hostile input is refused or counted."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlate
from correlate.errors import CorrelateError, InputError
from correlate.plans.files import plan_file_kind
from correlate.plans.parse import plan_json
from correlate.plans.pglog import csvlog_plans, detect_log, jsonlog_plans, stderr_plans

from .conftest import DATA
from .strategies import any_json, hostile_text

PGLOG = DATA / "pglog"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: A PostgreSQL plan node: a type, some keys, children.
NODE = st.recursive(
    st.fixed_dictionaries(
        {"Node Type": st.sampled_from(["Seq Scan", "Index Scan", "Result", "Sort"])},
        optional={
            "Relation Name": hostile_text(),
            "Filter": hostile_text(),
            "Actual Rows": st.integers(0, 10**6),
            "Actual Loops": st.integers(1, 5),
        },
    ),
    lambda children: st.fixed_dictionaries(
        {"Node Type": st.just("Nested Loop"), "Plans": st.lists(children, min_size=1, max_size=2)}
    ),
    max_leaves=4,
)
PLAN = st.builds(lambda node, text: {"Query Text": text, "Plan": node}, NODE, hostile_text(40))
DURATION = st.decimals(min_value=0, max_value=10**6, places=3).map(float)


def _psql(value: object) -> str:
    """``value`` as psql prints a one-column EXPLAIN result."""
    lines = json.dumps(value, indent=2).splitlines()
    width = max(len(line) for line in lines) + 1
    body = [f" {line:<{width}}+" for line in lines[:-1]] + [f" {lines[-1]}"]
    return "\n".join([" QUERY PLAN ".center(width), "-" * (width + 2), *body, "(1 row)", ""])


@SETTINGS
@given(st.lists(PLAN, min_size=1, max_size=2))
def test_psql_printed_plans_decode_to_the_same_json(plans: list[dict]) -> None:
    text = _psql(plans)
    assert plan_file_kind(text) == "pg-explain"
    assert plan_json(text) == json.loads(json.dumps(plans))


def _stderr(plans: list[tuple[float, dict]], noise: list[str]) -> str:
    out = []
    for i, (ms, plan) in enumerate(plans):
        out.append(f"2026-11-25 12:29:09.{i:03d} UTC [7] u@d LOG:  duration: {ms} ms  plan:\n")
        out.extend(f"\t{line}\n" for line in json.dumps(plan, indent=2).splitlines())
        if i < len(noise):
            out.append(f"2026-11-25 12:29:09.{i:03d} UTC [7] u@d LOG:  {noise[i]}\n")
    return "".join(out)


NOISE = st.lists(hostile_text(30).map(lambda t: t.replace("\n", " ").replace("\r", " ")))


@SETTINGS
@given(st.lists(st.tuples(DURATION, PLAN), min_size=1, max_size=4), NOISE)
def test_stderr_blocks_give_back_every_plan_and_duration(
    plans: list[tuple[float, dict]], noise: list[str]
) -> None:
    text = _stderr(plans, noise)
    found = list(stderr_plans(text.split("\n")))
    assert [p.duration_ms for p in found] == [ms for ms, _ in plans]
    assert [json.loads(p.text) for p in found] == [plan for _, plan in plans]
    assert all(p.problem is None for p in found)
    lines = text.split("\n")
    assert all("  plan:" in lines[p.line - 1] for p in found)


@SETTINGS
@given(st.lists(st.tuples(DURATION, PLAN), min_size=1, max_size=3), st.data())
def test_a_stderr_log_cut_anywhere_loses_only_the_plan_it_cuts(
    plans: list[tuple[float, dict]], data: st.DataObject
) -> None:
    text = _stderr(plans, [])
    cut = data.draw(st.integers(0, len(text)))
    found = list(stderr_plans(text[:cut].split("\n")))
    assert len(found) <= len(plans)
    # every plan before the cut comes back whole, in order ...
    for got, (ms, plan) in zip(found[:-1], plans, strict=False):
        assert (got.duration_ms, json.loads(got.text)) == (ms, plan)
    # ... and the one the cut falls in is whole, or is no JSON at all (the loader counts it)
    if found:
        try:
            last = json.loads(found[-1].text)
        except ValueError:
            return
        assert last == plans[len(found) - 1][1]


@SETTINGS
@given(st.lists(st.text(max_size=80), max_size=12))
def test_stderr_reader_never_raises_on_any_lines(lines: list[str]) -> None:
    for plan in stderr_plans(lines):
        assert 1 <= plan.line <= len(lines)


@SETTINGS
@given(st.lists(any_json(), max_size=6), st.lists(st.text(max_size=60), max_size=4))
def test_jsonlog_reader_never_raises(records: list[object], junk: list[str]) -> None:
    lines = [json.dumps({"message": r} if isinstance(r, str) else r) for r in records] + [
        '{"message":"duration: 1.0 ms  plan:\\n' + j for j in junk
    ]
    for plan in jsonlog_plans(lines):
        assert plan.problem is not None or plan.text


@SETTINGS
@given(st.data())
def test_csvlog_cut_anywhere_never_raises_but_input_error(data: st.DataObject) -> None:
    text = (PGLOG / "postgresql.csv").read_text()
    cut = data.draw(st.integers(0, len(text)))
    try:
        found = list(csvlog_plans(io.StringIO(text[:cut], newline="")))
    except InputError:
        return
    assert len(found) <= 5
    assert all(p.line >= 1 for p in found)


@SETTINGS
@given(hostile_text(200))
def test_detection_never_raises(text: str) -> None:
    assert plan_file_kind(text) in (None, "pg-explain", "mysql-explain")
    assert detect_log(text) in (None, "pg-stderr", "pg-csvlog", "pg-jsonlog")


@SETTINGS
@given(st.one_of(st.text(max_size=300), any_json().map(json.dumps), PLAN.map(_psql)))
def test_plan_text_decodes_or_says_why(text: str) -> None:
    try:
        plan_json(text)
    except InputError as exc:
        assert exc.reason.startswith("not a plan")


#: A PostgreSQL plan whose node values are any JSON at all.
WILD_PLAN = st.builds(
    lambda node, extra: [{"Plan": {"Node Type": "Seq Scan", **node, "Plans": [extra]}}],
    st.dictionaries(
        st.sampled_from(["Plan Rows", "Actual Rows", "Actual Loops", "Actual Total Time",
                         "Rows Removed by Filter", "Filter", "Relation Name", "Sort Key",
                         "Hash Batches", "Total Cost", "Settings"]),
        any_json(),
    ),
    any_json(),
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(WILD_PLAN, any_json()), min_size=1, max_size=4))
def test_loading_any_plan_json_stores_it_or_counts_it(plans: list[object]) -> None:
    from correlate.plans.load import PlanItem, load_plans

    with correlate.open_store(":memory:") as store:
        run_id = store.ensure_run("r", source=None, labels=None)
        items = [PlanItem(i + 1, json.dumps(p)) for i, p in enumerate(plans)]
        items += [PlanItem(9, p) for p in plans]
        counts = load_plans(store, run_id, "x", "file", items)
        assert counts.read == counts.added + len(counts.problems) == 2 * len(plans)
        assert int(store.sql("SELECT count(*) AS n FROM plans")["n"][0]) == counts.added


HOSTILE_FILES = st.one_of(
    # a real log, cut at any byte
    st.sampled_from(["postgresql.log", "postgresql.csv", "postgresql.json"]).flatmap(
        lambda name: st.integers(0, len((PGLOG / name).read_bytes())).map(
            lambda n, name=name: (PGLOG / name).read_bytes()[:n]
        )
    ),
    # a plan, as psql prints it, cut anywhere
    PLAN.map(lambda p: _psql([p]).encode()).flatmap(
        lambda b: st.integers(0, len(b)).map(lambda n, b=b: b[:n])
    ),
    # plan-looking starts followed by anything
    st.tuples(
        st.sampled_from([b'[{"Plan": ', b'{"query_block": ', b"QUERY PLAN\n---\n [{", b""]),
        st.binary(max_size=100),
    ).map(lambda t: t[0] + t[1]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_FILES)
def test_ingest_of_any_cut_or_hostile_plan_input_counts_or_refuses(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp, correlate.open_store(":memory:") as store:
        path = Path(tmp) / "input"
        path.write_bytes(content)
        try:
            report = store.ingest([path], run="r")
        except CorrelateError:
            return
        plans = int(store.sql("SELECT count(*) AS n FROM plans")["n"][0])
        assert plans == report.plans_added
        problems = int(store.sql("SELECT count(*) AS n FROM problems")["n"][0])
        assert problems == report.skipped
