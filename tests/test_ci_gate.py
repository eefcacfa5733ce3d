"""The documented CI gate (docs/ci/correlate-gate.yml): valid, and its steps work when run here.

The steps that need GitHub (checkout, cache, the PR comment) are checked for
shape only; the load, analyse and diff steps run as written, with bash as
GitHub runs them, against the local PostgreSQL: a baseline recorded from the
fixed demo, then a candidate with the faults in, which the gate must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "ci" / "correlate-gate.yml"


def _workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def _steps() -> dict[str, dict[str, Any]]:
    (job,) = _workflow()["jobs"].values()
    return {s["id"]: s for s in job["steps"] if "id" in s}


def test_workflow_shape() -> None:
    doc = _workflow()
    # PyYAML reads the key `on` as the boolean True (YAML 1.1)
    triggers = doc.get("on", doc.get(True))
    assert set(triggers) == {"push", "pull_request"}
    (job,) = doc["jobs"].values()
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)
    names = [s.get("name", "") for s in job["steps"]]
    assert "Post the comparison" in names and "Fail on a regression" in names
    assert {"load", "analyze", "diff"} <= set(_steps())
    assert "gh pr comment" in next(
        s["run"] for s in job["steps"] if s.get("name") == "Post the comparison"
    )


def _run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    # what GitHub runs for `shell: bash`, the job's default (test_steps_run_in_bash_with_pipefail)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gate_steps_fail_a_regressing_candidate(tmp_path: Path, pg_dsn: str) -> None:
    steps = _steps()
    bin_dir = str(Path(sys.executable).parent)
    output = tmp_path / "github_output"
    env = {
        **os.environ,
        **{k: str(v) for k, v in _workflow()["env"].items()},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "CORRELATE_DSN": pg_dsn,
        "SMOKE_DURATION": "8s",
        "SMOKE_USERS": "6",
        "GITHUB_OUTPUT": str(output),
    }
    # main: the fixed service becomes the baseline
    baseline = _run_step(steps["load"], tmp_path, {**env, "DEMO_FLAGS": "--fixed"})
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    shutil.move(tmp_path / "candidate", tmp_path / "baseline")
    # the pull request: the faults are back
    candidate = _run_step(steps["load"], tmp_path, {**env, "DEMO_FLAGS": ""})
    assert candidate.returncode == 0, candidate.stderr[-2000:]
    analyzed = _run_step(steps["analyze"], tmp_path, env)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    verdict = (tmp_path / "verdict.txt").read_text()
    assert verdict.startswith("correlate analyze candidate")
    assert "SELECT … FROM correlate_demo.order_it" in verdict  # the queries table
    compared = _run_step(steps["diff"], tmp_path, env)
    assert compared.returncode == 0, compared.stderr[-2000:]  # the status goes to the output
    assert output.read_text().strip() == "status=1"
    comment = (tmp_path / "diff.md").read_text()
    assert comment.startswith("### 🔴 correlate: REGRESSION")
    # at smoke scale the N+1's queries are too fast for the N+1 rule's 50 ms, but the
    # gate's queries-per-request rule catches the loop the PR brought back
    assert "queries-per-request:+1: /orders/recent runs" in comment
    assert len(comment.encode()) < 6000


@pytest.mark.parametrize("missing", [True])
def test_diff_step_without_baseline_passes(tmp_path: Path, missing: bool) -> None:
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "out")}
    result = _run_step(_steps()["diff"], tmp_path, env)
    assert result.returncode == 0
    assert "No baseline run yet" in result.stdout
    assert not (tmp_path / "out").exists()


def test_steps_run_in_bash_with_pipefail() -> None:
    # GitHub's shell when none is set is `bash -e`: `correlate analyze | tee` would pass
    # when analyze fails; `shell: bash` is `bash --noprofile --norc -eo pipefail`
    (job,) = _workflow()["jobs"].values()
    assert job["defaults"]["run"]["shell"] == "bash"
    assert all("shell" not in s for s in job["steps"])


def test_a_comparison_that_could_not_run_fails_with_its_reason(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sample_traces" / "checkout-fixed", tmp_path / "baseline")
    (tmp_path / "candidate").mkdir()
    (tmp_path / "candidate" / "spans.jsonl").write_text('{"resourceSpans": []}\n')
    bin_dir = str(Path(sys.executable).parent)
    output = tmp_path / "github_output"
    env = {
        **os.environ,
        **{k: str(v) for k, v in _workflow()["env"].items()},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "GITHUB_OUTPUT": str(output),
    }
    compared = _run_step(_steps()["diff"], tmp_path, env)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert output.read_text().strip() == "status=2"
    assert "no spans" in compared.stderr
    assert not (tmp_path / "diff.md").exists()
    # no comment is posted without a diff.md, and the failing step says where the error is
    post = next(
        s
        for s in _workflow()["jobs"]["load-gate"]["steps"]
        if s.get("name") == "Post the comparison"
    )
    assert "hashFiles('diff.md') != ''" in post["if"]
    failed = _run_step(_steps()["fail"], tmp_path, {**env, "STATUS": "2"})
    assert failed.returncode == 1
    assert "could not compare the runs (exit 2)" in failed.stdout
    assert "No such file" not in failed.stderr
