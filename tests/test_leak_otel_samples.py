"""Acceptance on the otel-only samples (recorded by sample_traces/record-otel.sh).

``checkout-blackfriday-otel``: stock OpenTelemetry spans, the SQLAlchemy pool
metric and ``correlate watch``'s samples of a run whose pool leaks on declined
payments. The leak is named from the spans alone, and each further source adds
its evidence. ``checkout-saturation-otel``: a surge above a small pool that
passes, no leak.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import correlate
from correlate.analysis.verdict import Analysis
from correlate.kinds import FindingKind

from .test_leak import causes

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"
BLACK_FRIDAY = SAMPLES / "checkout-blackfriday-otel"
SATURATION = SAMPLES / "checkout-saturation-otel"

#: which of the run's sources each variant keeps besides its spans
VARIANTS = {"spans": (), "metrics": ("metrics",), "watch": ("db",), "all": ("metrics", "db")}


@pytest.fixture(scope="module")
def black_friday(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Analysis]]:
    out = {}
    with correlate.open_store(":memory:") as store:
        for variant, keep in VARIANTS.items():
            run = tmp_path_factory.mktemp(variant) / "checkout-blackfriday-otel"
            shutil.copytree(BLACK_FRIDAY, run)
            for source in ("metrics", "db"):
                if source not in keep:
                    shutil.rmtree(run / source)
            out[variant] = correlate.analyze(run, store=store, run=f"bf-{variant}")
        yield out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_top_finding_is_the_leak_on_the_402_path_of_post_checkout(
    black_friday: dict[str, Analysis], variant: str
) -> None:
    analysis = black_friday[variant]
    top = analysis.findings[0]
    assert top.kind == FindingKind.POOL_LEAK and top.severity == "critical"
    assert top.route == "/checkout"
    assert "POST /checkout that answered 402" in top.title
    culprit = top.evidence["checkout_spans"]["culprit"]
    assert (culprit["method"], culprit["route"], culprit["status"]) == ("POST", "/checkout", 402)
    assert culprit["p_value"] < 0.01
    assert (
        f"{culprit['drops_followed']} of {culprit['drops']} capacity drops follow a "
        "POST /checkout that answered 402" in top.explanation
    )
    # nothing of correlate.instrument's in the run, and one cause named across findings
    assert analysis.summary["pool_checkouts"] == 0
    assert causes(analysis.findings) == {"pool_leak"}


def test_spans_alone_cite_neither_metrics_nor_sessions(black_friday: dict[str, Analysis]) -> None:
    top = black_friday["spans"].findings[0]
    assert "used_at_max_while_database_idle" not in top.evidence
    assert "database_sessions" not in top.evidence
    assert "Decisive" not in top.explanation


@pytest.mark.parametrize("variant", ["metrics", "all"])
def test_with_metrics_the_leak_cites_used_at_max_while_the_database_was_idle(
    black_friday: dict[str, Analysis], variant: str
) -> None:
    top = black_friday[variant].findings[0]
    idle = top.evidence["used_at_max_while_database_idle"]
    assert idle["from_metrics"] and idle["ceiling"] == 10  # pool_size 5 + max_overflow 5
    assert idle["seconds"] >= 10
    assert (
        f"The pool metrics show all 10 connections in use while no query ran anywhere "
        f"(the database idle) for {idle['seconds']:.0f} s of the run, from "
        f"{idle['first_at_s']:.0f} s on" in top.explanation
    )


@pytest.mark.parametrize("variant", ["watch", "all"])
def test_with_watch_the_leak_cites_sessions_held_idle_in_transaction(
    black_friday: dict[str, Analysis], variant: str
) -> None:
    top = black_friday[variant].findings[0]
    held = top.evidence["database_sessions"]
    # every leaked connection is a session left in its transaction
    assert 5 <= held["held_sessions"] <= 10
    assert held["longest_held_s"] > 10 * held["longest_request_s"]
    assert held["held_clients"] == "127.0.0.1"
    assert (
        f"the database saw {held['held_sessions']} sessions of the service sit idle in "
        f"transaction for up to {held['longest_held_s']:.0f} s" in top.explanation.lower()
    )
    assert "(client 127.0.0.1, no application_name set)" in top.explanation


def test_the_metrics_variant_says_nothing_of_sessions(black_friday: dict[str, Analysis]) -> None:
    assert "database_sessions" not in black_friday["metrics"].findings[0].evidence
    assert "used_at_max_while_database_idle" not in black_friday["watch"].findings[0].evidence


@pytest.fixture(scope="module")
def saturation() -> Iterator[Analysis]:
    with correlate.open_store(":memory:") as store:
        yield correlate.analyze(SATURATION, store=store)


def test_the_saturation_sample_is_saturation_with_its_capacity_not_a_leak(
    saturation: Analysis,
) -> None:
    pool = [f for f in saturation.findings if f.kind.startswith("pool_")]
    assert [f.kind for f in pool] == [FindingKind.POOL_SATURATION]
    (f,) = pool
    spans = f.evidence["checkout_spans"]
    assert spans["verdict"] == "saturation"
    # pool_size 3, max_overflow 0: the capacity seen while waiting, first to last
    assert spans["capacity_first"] == spans["capacity_last"] == 3
    assert "held all 3 connections" in f.explanation
    assert causes(saturation.findings) == {"pool_saturation"}
    # the pool metrics show connections in use, but never with the database idle
    assert "used_at_max_while_database_idle" not in f.evidence
    sessions = f.evidence["database_sessions"]
    assert sessions["held_sessions"] == 0 and 1 <= sessions["active_max"] <= 3
    assert f"up to {sessions['active_max']} of the service's sessions active at once" in (
        f.explanation
    )


def test_the_saturation_sample_recovers_when_the_surge_passes(saturation: Analysis) -> None:
    info = saturation.summary
    assert info["requests"] > 1000
    timeline = saturation.timeline
    busy = timeline[timeline.requests > 0]
    peak = busy.pool_ms.max()
    # the last quarter of the run (a quarter of the users, then none) waits far less
    tail = busy.iloc[-(len(busy) // 4) :]
    assert tail.pool_ms.fillna(0).max() < 0.25 * peak


def test_the_saturation_sample_from_spans_alone_is_saturation_too(tmp_path: Path) -> None:
    run = tmp_path / "checkout-saturation-otel"
    shutil.copytree(SATURATION, run)
    shutil.rmtree(run / "metrics")
    shutil.rmtree(run / "db")
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(run, store=store)
    pool = [f for f in analysis.findings if f.kind.startswith("pool_")]
    assert [f.kind for f in pool] == [FindingKind.POOL_SATURATION]
    assert pool[0].evidence["checkout_spans"]["capacity_last"] == 3
    assert "database_sessions" not in pool[0].evidence


@pytest.mark.parametrize("sample", [BLACK_FRIDAY, SATURATION], ids=lambda p: p.name)
def test_an_otel_sample_is_a_run_directory_with_its_client_requests(sample: Path) -> None:
    # run.json written by the demo alone (no correlate.instrument process) must still
    # name its format, or load/requests.jsonl is passed over and the verdict says the
    # load-generator results are missing while they sit in the run.
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(sample, store=store)
        clients = store.con.execute("SELECT count(*) FROM client_requests").fetchone()
    assert clients is not None and clients[0] > 1000
    assert not [g for g in analysis.gaps if "load-generator" in g]


def test_run_json_written_without_an_instrumented_process_names_its_format(
    tmp_path: Path,
) -> None:
    from correlate.ingest.rundir import is_run_directory
    from correlate.instrument.runinfo import update_run_json

    update_run_json(tmp_path, {"demo": {"instrument": "otel"}})
    assert is_run_directory(tmp_path)
    (tmp_path / "run.json").write_text("[1, 2]\n")  # not an object: rewritten whole
    assert update_run_json(tmp_path, {"load": {}})["format"] == "correlate-run"


@pytest.mark.parametrize("ran_the_services_query", [False, True])
def test_an_idle_transaction_beside_a_saturated_pool_is_never_denied_nor_a_leak(
    tmp_path: Path, ran_the_services_query: bool
) -> None:
    import gzip
    import json

    run = tmp_path / "checkout-saturation-otel"
    shutil.copytree(SATURATION, run)
    activity = run / "db" / "activity.jsonl.gz"
    records = [json.loads(line) for line in gzip.decompress(activity.read_bytes()).splitlines()]
    service = next(
        r for r in records if r.get("record") == "session" and r["query"].startswith("SELECT")
    )
    # a session left in a transaction the whole run: a psql that ran BEGIN only, or a
    # session that ran one of the service's statements (the samples cannot tell it apart)
    query = (service["query"], service["fingerprint"]) if ran_the_services_query else ("BEGIN", "b")
    out = []
    for r in records:
        out.append(r)
        if r.get("record") == "sample":
            out.append(
                {
                    **service,
                    "sample": r["sample"],
                    "time_unix_nano": r["time_unix_nano"],
                    "session_id": 99999,
                    "activity": "idle_in_transaction",
                    "state": "idle in transaction",
                    "application": "psql",
                    "client": "10.1.2.3:5555",
                    "state_age_ns": (r["sample"] + 60) * 1_000_000_000,
                    "query": query[0],
                    "fingerprint": query[1],
                }
            )
    activity.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in out).encode()))
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(run, store=store)
    (f,) = [f for f in analysis.findings if f.kind.startswith("pool_")]
    assert f.kind == FindingKind.POOL_SATURATION
    held = f.evidence["database_sessions"]["held_sessions"]
    if ran_the_services_query:
        assert held == 1 and "none held idle" not in f.explanation
        assert "1 session of the database sat idle in transaction" in f.explanation
        assert "application_name psql" in f.explanation
    else:  # not one of the service's sessions
        assert held == 0 and "psql" not in f.explanation


def test_an_error_burst_ends_within_the_run() -> None:
    """The last window reaches past the run's last request; the burst is said to end with
    the run ("from 40 s to 91 s" of a 91 s run, never "to 92 s")."""
    with correlate.open_store(":memory:") as store:
        analysis = correlate.analyze(SAMPLES / "checkout-blackfriday-otel", store=store)
    (burst,) = [f for f in analysis.findings if f.kind == FindingKind.ERROR_BURST]
    assert burst.evidence["from_s"] < burst.evidence["to_s"] <= analysis.summary["seconds"]
