"""Golden outputs on the committed samples: what users see must not change by accident.

The verdict text, the report JSON's findings and route table, its schema (the set of
key paths), the diff's exit codes and its failed rules are compared with files in
``tests/golden``. After an intended change, regenerate them and read the diff::

    CORRELATE_REGENERATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from correlate.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_traces"
GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("CORRELATE_REGENERATE_GOLDEN", "") not in ("", "0")
RUNS = ("checkout-blackfriday", "checkout-fixed")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("golden") / "store.duckdb"
    for name in RUNS:
        result = CliRunner().invoke(
            cli, ["ingest", str(SAMPLES / name), "--run", name, "--db", str(path)]
        )
        assert result.exit_code == 0, result.output
    yield path


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.write_text(actual)
        return
    assert path.exists(), f"no golden file {path}; run with CORRELATE_REGENERATE_GOLDEN=1"
    assert actual == path.read_text()


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document, lists folded to ``[]``."""
    paths = {prefix} if prefix else set()
    if isinstance(value, dict):
        for key, item in value.items():
            paths |= _key_paths(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for item in value:
            paths |= _key_paths(item, f"{prefix}[]")
    return paths


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


@pytest.mark.parametrize("name", RUNS)
def test_verdict_text_is_unchanged(db: Path, name: str) -> None:
    result = CliRunner().invoke(cli, ["analyze", name, "--db", str(db), "--no-color"])
    assert result.exit_code == 0, result.output
    # the store's path differs between machines
    _check(f"{name}.verdict.txt", result.output.replace(str(db), "STORE"))


@pytest.mark.parametrize("name", RUNS)
def test_report_json_findings_routes_and_schema_are_unchanged(
    db: Path, name: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["report", name, "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    findings = [
        {k: f[k] for k in ("kind", "severity", "route", "fingerprint", "title", "threshold")}
        | {"impact_ms": round(f["impact_ms"])}
        for f in document["findings"]
    ]
    kept = {
        "schema": document["schema"],
        "findings": findings,
        "routes": _rounded(document["routes"]),
        "key_paths": sorted(_key_paths(document)),
    }
    _check(f"{name}.report.json", json.dumps(kept, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize(
    ("baseline", "candidate", "code"),
    [
        ("checkout-fixed", "checkout-blackfriday", 1),
        ("checkout-blackfriday", "checkout-blackfriday", 0),
        ("checkout-fixed", "checkout-fixed", 0),
    ],
)
def test_diff_exit_codes_and_failed_rules_are_unchanged(
    db: Path, baseline: str, candidate: str, code: int, tmp_path: Path
) -> None:
    out = tmp_path / "diff.json"
    result = CliRunner().invoke(cli, ["diff", baseline, candidate, "--db", str(db), "-o", str(out)])
    assert result.exit_code == code, result.output
    document = json.loads(out.read_text())
    lines = [f"regressed: {document['regressed']}", *document["failures"]]
    _check(f"diff.{baseline}.{candidate}.txt", "\n".join(lines) + "\n")
