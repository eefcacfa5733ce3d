"""What `correlate diff` compares: the two runs its arguments name, and how it says so.

Two run directories with the same base name stay two runs; a path is never appended to
a run of a reused store that holds other files; the PR comment fits GitHub's limit; the
JSON is the same bytes for the same runs; misused arguments get errors that say what to do.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.diff import QueryChange, RouteChange, RunDiff
from correlate.diff.rules import parse_rules
from correlate.errors import InputError
from correlate.render.diff import MAX_COMMENT

ROOT = Path(__file__).resolve().parents[1]
SAMPLES, DOCS = ROOT / "sample_traces", ROOT / "docs"
FIXED, BF = SAMPLES / "checkout-fixed", SAMPLES / "checkout-blackfriday"


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_run_directories_with_one_base_name_stay_two_runs(tmp_path: Path) -> None:
    main = _copy(FIXED, tmp_path / "main" / "run")
    pr = _copy(BF, tmp_path / "pr" / "run")
    with correlate.open_store(":memory:") as store:
        result = correlate.diff(main, pr, store=store)
        assert (result.baseline, result.candidate) == ("main/run", "pr/run")
        assert sorted(store.run_names()) == ["main/run", "pr/run"]
    assert result.regressed and not result.unchanged
    out = CliRunner().invoke(cli, ["diff", str(main), str(pr), "--db", str(tmp_path / "s.duckdb")])
    assert out.exit_code == 1, out.output
    assert "REGRESSION" in out.output and "pr/run against main/run" in out.output


def test_one_path_given_twice_is_one_run(tmp_path: Path) -> None:
    with correlate.open_store(":memory:") as store:
        same = correlate.diff(FIXED, Path(str(FIXED) + "/"), store=store)
        assert store.run_names() == ["checkout-fixed"]
    assert same.unchanged


def test_dot_names_the_folder_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy(FIXED, tmp_path / "base")
    _copy(BF, tmp_path / "cand")
    monkeypatch.chdir(tmp_path / "base")
    with correlate.open_store(":memory:") as store:
        result = correlate.diff(Path("."), Path("../cand"), store=store)
    assert (result.baseline, result.candidate) == ("base", "cand")


def _gate(db: Path, baseline: Path, candidate: Path) -> tuple[int, str]:
    out = CliRunner().invoke(
        cli, ["diff", str(baseline), str(candidate), "--db", str(db), "--format", "json"]
    )
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, "\n".join(json.loads(out.stdout)["failures"])


def test_a_reused_store_gives_the_verdict_of_a_fresh_one(tmp_path: Path) -> None:
    baseline = _copy(FIXED, tmp_path / "baseline")
    candidate = _copy(FIXED, tmp_path / "candidate")
    reused = tmp_path / "reused.duckdb"
    assert _gate(reused, baseline, candidate) == (0, "")
    # the next local run writes a slower candidate into the same directory
    shutil.rmtree(candidate)
    _copy(BF, candidate)
    again = _gate(reused, baseline, candidate)
    fresh = _gate(tmp_path / "fresh.duckdb", baseline, candidate)
    assert again[0] == 1
    assert again == fresh
    # and the same files once more reuse that run rather than make another
    with correlate.open_store(reused, read_only=True) as runs:
        before = runs.run_names()
    assert _gate(reused, baseline, candidate) == fresh
    with correlate.open_store(reused, read_only=True) as runs:
        assert runs.run_names() == before


def test_one_directory_is_one_run_of_a_reused_store_whatever_it_is_called(
    tmp_path: Path,
) -> None:
    main = _copy(FIXED, tmp_path / "main" / "run")
    pr = _copy(BF, tmp_path / "pr" / "run")
    other = _copy(BF, tmp_path / "other")
    db = tmp_path / "reused.duckdb"
    assert _gate(db, main, pr)[0] == 1  # named main/run and pr/run
    with correlate.open_store(db) as store:
        before = store.run_names()
        # here main/run would be called "run": it is the run the store holds from it
        result = correlate.diff(main, other, store=store)
        assert result.baseline == "main/run"
        assert any("main/run" in n and "already holds" in n for n in result.notes)
        assert store.run_names() == [*before, "other"]  # no second copy named "run"
    # and gives the verdict a fresh store gives
    assert _gate(db, main, other) == _gate(tmp_path / "fresh.duckdb", main, other)
    with correlate.open_store(db, read_only=True) as store:
        assert store.run_names() == [*before, "other"]


def test_a_directory_rewritten_since_is_a_new_run_though_the_store_knows_it(
    tmp_path: Path,
) -> None:
    main = _copy(FIXED, tmp_path / "main" / "run")
    pr = _copy(FIXED, tmp_path / "pr" / "run")
    other = _copy(FIXED, tmp_path / "other")
    db = tmp_path / "reused.duckdb"
    assert _gate(db, main, pr) == (0, "")
    shutil.rmtree(pr)
    _copy(BF, pr)  # the next run of the pull request, slower, in the same directory
    again = _gate(db, other, pr)
    assert again[0] == 1 and again == _gate(tmp_path / "fresh.duckdb", other, pr)
    with correlate.open_store(db, read_only=True) as store:
        assert store.run_names() == ["main/run", "pr/run", "other", "run"]


def test_a_path_into_a_run_holding_other_files_is_a_fresh_run_and_says_so() -> None:
    with correlate.open_store(":memory:") as store:
        store.ingest([BF], "checkout-fixed")  # an old run of that name, other files
        result = correlate.diff(FIXED, FIXED, store=store)
        assert result.baseline == result.candidate != "checkout-fixed"
        assert result.unchanged
        assert any("already holds other files" in n for n in result.notes)


def _route(name: str) -> RouteChange:
    return RouteChange(
        route=name,
        baseline_requests=200,
        candidate_requests=200,
        baseline_ms={"p50": 10.0, "p95": 20.0},
        candidate_ms={"p50": 30.0, "p95": 60.0},
        ratios={"p95": (3.0, 2.5, 3.5)},
    )


def test_the_comment_fits_githubs_limit_with_long_names() -> None:
    routes = [_route(f"/r{i}/" + "x" * 20_000) for i in range(12)]
    queries = [
        QueryChange(
            f"{i:016x}", r.route, "SELECT " + "y" * 20_000, None, 1.0, None, 2.0, None, 200.0
        )
        for i, r in enumerate(routes)
    ]
    d = RunDiff(
        baseline="main",
        candidate="pr",
        routes=routes,
        queries=queries,
        new_findings=[],
        resolved_findings=[],
        rules=parse_rules(["p95:+10%"]),
        failures=[f"p95:+10%: {r.route} p95 +200%" for r in routes],
        notes=["n" * 30_000],
    )
    md = d.to_markdown()
    assert len(md) <= MAX_COMMENT < 65_536
    assert "…" in md
    assert "/r11/xxx" in md  # every route keeps a row
    assert md.startswith("### 🔴 correlate: REGRESSION")


def test_a_comment_over_the_cap_says_what_it_left_out() -> None:
    routes = [_route(f"/r{i}") for i in range(3)]
    notes = [f"note {i}: " + "z" * 3000 for i in range(300)]
    d = RunDiff("main", "pr", routes, [], [], [], parse_rules(["p95:+10%"]), [], notes=notes)
    md = d.to_markdown()
    assert len(md) <= MAX_COMMENT
    assert "left out" in md and "--format json" in md
    assert md.rstrip().endswith("rules: p95:+10%_")  # the footer stays


def test_json_is_the_same_bytes_for_sums_that_differ_in_the_last_digits() -> None:
    def one(total: float) -> str:
        q = QueryChange("f", "/a", "SELECT 1", 1.0, 1.0, 2.0, 2.0, total, total)
        return RunDiff("a", "b", [], [q], [], [], [], []).to_json()

    assert 0.1 + 0.2 != 0.3
    assert one(0.1 + 0.2) == one(0.3)


def test_json_is_identical_between_invocations(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    first = runner.invoke(cli, ["diff", str(FIXED), str(BF), "--db", str(db), "--format", "json"])
    second = runner.invoke(cli, ["diff", str(FIXED), str(BF), "--db", str(db), "--format", "json"])
    assert first.exit_code == second.exit_code == 1
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["failures"]


def test_a_store_file_as_a_run_says_to_use_db(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([FIXED], "checkout-fixed")
    refused = pytest.raises(InputError, match="is a correlate store: pass a run name with --db")
    with correlate.open_store(":memory:") as other, refused:
        correlate.diff(db, FIXED, store=other)
    out = CliRunner().invoke(cli, ["diff", str(db), str(FIXED), "--db", str(tmp_path / "o.duckdb")])
    assert out.exit_code == 2
    assert "is a correlate store" in out.output and "UTF-16" not in out.output


def test_fail_on_as_one_string_is_one_rule() -> None:
    with correlate.open_store(":memory:") as store:
        result = correlate.diff(FIXED, BF, store=store, fail_on="p95:+25%")
    assert [str(r) for r in result.rules] == ["p95:+25%"]
    assert result.regressed


def test_fail_on_empty_means_no_rules_and_says_so() -> None:
    with correlate.open_store(":memory:") as store:
        result = correlate.diff(FIXED, BF, store=store, fail_on=[])
    assert result.rules == [] and not result.regressed
    for text in (result.to_text(), result.to_markdown()):
        assert "no rules given: nothing can fail" in text
    assert "breaks none of the rules" not in result.to_text()


def test_every_json_key_is_documented() -> None:
    documented = set(re.findall(r"`([a-z0-9_]+)`", (DOCS / "diff-json.md").read_text()))
    with correlate.open_store(":memory:") as store:
        doc = json.loads(correlate.diff(FIXED, BF, store=store).to_json())
    keys = set(doc) | set(doc["routes"][0]) | set(doc["queries"][0]) | set(doc["load"])
    assert keys - documented == set()


def test_analyze_of_a_store_file_says_it_is_a_store(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with correlate.open_store(db) as store:
        store.ingest([FIXED], "x")
    out = CliRunner().invoke(cli, ["analyze", str(db), "--db", str(tmp_path / "other.duckdb")])
    assert out.exit_code != 0
    assert "a DuckDB database (a correlate store?)" in out.output and "UTF-16" not in out.output
