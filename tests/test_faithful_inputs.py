"""Ingest keeps to what a file says, part two: wrong JSON types, every OTLP protobuf
framing, csvlog as PostgreSQL writes it, a file that gives nothing, lines inside
documents, and plans read through their Gather nodes."""

from __future__ import annotations

import json

from .conftest import DATA

FAITHFUL = DATA / "faithful"


# -- a Gather's own time is waiting on its workers: name the work under it ------------------


def test_dominant_node_looks_through_gather_merge_to_the_work_under_it() -> None:
    from correlate.plans import find_insights, parse_plan

    plan = parse_plan(json.loads((FAITHFUL / "plans" / "pg-gather-merge.json").read_text()))
    [insight] = [i for i in find_insights(plan) if i.rule == "dominant_node"]
    assert insight.relation == "orders"
    assert plan.node(insight.node_id).node_type == "Seq Scan"
    assert insight.message == (
        "measured: Seq Scan on orders, run in parallel under Gather Merge, takes 100% "
        "(13.10 ms of 13.12 ms: 3.96 ms in Seq Scan per process, "
        "9.09 ms in Gather Merge waiting and merging)"
    )
    assert insight.severity.name == "CRITICAL"
    assert "Gather Merge takes" not in insight.message


def test_dominant_node_outside_a_gather_is_unchanged() -> None:
    from correlate.plans import find_insights, parse_plan

    raw = json.loads((FAITHFUL / "plans" / "pg-gather-merge.json").read_text())
    gather = raw[0]["Plan"]["Plans"][0]
    sort = gather["Plans"][0]  # the same work, run by one process
    sort["Actual Loops"] = sort["Plans"][0]["Actual Loops"] = 1
    sort["Actual Total Time"], sort["Plans"][0]["Actual Total Time"] = 13.09, 13.0
    raw[0]["Plan"]["Plans"] = [sort]
    [insight] = [i for i in find_insights(parse_plan(raw)) if i.rule == "dominant_node"]
    assert insight.message == "measured: Seq Scan on orders takes 99% (13.00 ms of 13.12 ms)"
