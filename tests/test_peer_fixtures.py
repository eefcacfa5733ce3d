"""The peer-tool fixtures in ``tests/data/peers`` ingest cleanly, as ``expected.json`` counts them.

No detector is asserted here (``tests/test_repeated.py`` checks every pattern
``expected.json`` lists); this only pins that every file reads without a problem and
holds what it claims.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import correlate

from .conftest import DATA

PEERS = DATA / "peers"
EXPECTED: dict[str, Any] = json.loads((PEERS / "expected.json").read_text())
FILES: list[dict[str, Any]] = EXPECTED["files"]
GENERATOR = Path(__file__).parent / "helpers" / "make_peer_fixtures.py"
MAX_BYTES = 60 * 1024


@pytest.mark.parametrize("entry", FILES, ids=[f["file"] for f in FILES])
def test_fixture_ingests_without_problems(entry: dict[str, Any]) -> None:
    with correlate.open_store(":memory:") as store:
        report = store.ingest([PEERS / entry["file"]], run="peer")
        assert [str(p) for p in report.problems] == []
        assert report.passed_over == []
        assert (report.skipped, report.duplicates) == (0, 0)
        assert {f.format for f in report.files} == {entry["format"]}
        assert report.spans_added == entry["spans"]
        traces, roots = store.con.execute(
            "SELECT count(DISTINCT trace_id), count(*) FILTER (WHERE parent_id IS NULL) FROM spans"
        ).fetchone()
        assert traces == entry["traces"]
        # one root per request: callees' spans hang under their callers
        assert roots == entry["requests"]


def test_every_file_is_described_and_small() -> None:
    on_disk = {
        p.relative_to(PEERS).as_posix()
        for p in PEERS.rglob("*")
        if p.is_file() and p.name not in ("expected.json", "EXPECTED.md")
    }
    described = {f["file"] for f in FILES if not f["file"].endswith("/")}
    assert on_disk == described
    assert all((PEERS / f).stat().st_size < MAX_BYTES for f in on_disk)
    parts = [f for f in FILES if f["part_of"]]
    for whole in (f for f in FILES if f["file"].endswith("/")):
        mine = [f for f in parts if f["part_of"] == whole["file"]]
        assert sum(f["spans"] for f in mine) == whole["spans"]
        assert sum(f["requests"] for f in mine) == whole["requests"]


def test_patterns_are_consistent() -> None:
    kinds = {
        "n_plus_one_db",
        "n_plus_one_http",
        "redundant",
        "fan_out",
        "slow_query",
        "slow_downstream",
    }
    for entry in FILES:
        for p in entry["patterns"]:
            assert p["kind"] in kinds, entry["file"]
            assert p["requests"] == len(p["calls_per_request"]) <= entry["requests"]
            if p["kind"].startswith("n_plus_one"):
                assert min(p["calls_per_request"]) >= EXPECTED["thresholds"]["n_plus_one_min"]
            if p["kind"] == "fan_out":
                assert min(p["calls_per_request"]) > EXPECTED["thresholds"]["fan_out_max"]


def test_generator_reproduces_the_committed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("make_peer_fixtures", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up by name: a fresh copy, so FIXTURES starts empty
    monkeypatch.setitem(sys.modules, "make_peer_fixtures", module)
    spec.loader.exec_module(module)
    module.OUT = tmp_path
    module.main()
    capsys.readouterr()
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(PEERS).as_posix() for p in PEERS.rglob("*") if p.is_file())
    assert made == committed
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (PEERS / rel).read_bytes(), rel
