"""Ingest keeps to what a file says: its own name, its own records, its own lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from correlate.store import Store

from .conftest import DATA

FAITHFUL = DATA / "faithful"


def names(store: Store) -> list[str]:
    return [r[0] for r in store.con.execute("SELECT name FROM spans ORDER BY name").fetchall()]


# -- 1. a file name is a name, never a glob pattern ---------------------------------------


@pytest.mark.parametrize("name", ["*.jsonl", "[ab]bc.jsonl", "?.jsonl", "{a,b}.jsonl"])
def test_file_name_with_glob_characters_reads_only_that_file(
    store: Store, tmp_path: Path, name: str
) -> None:
    shutil.copy(FAITHFUL / "one_span.jsonl", tmp_path / name)
    # Neighbours the pattern would match: abc.jsonl for [ab]bc, a.jsonl for ?, a.jsonl for {a,b}.
    for neighbour in ("abc.jsonl", "a.jsonl", "other.jsonl"):
        shutil.copy(FAITHFUL / "neighbour.jsonl", tmp_path / neighbour)
    report = store.ingest([tmp_path / name], run="r")
    assert (report.spans_read, report.spans_added) == (1, 1)
    assert names(store) == ["GET /one"]


def test_folder_with_glob_characters_reads_its_own_files(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "run[1]"
    folder.mkdir()
    (tmp_path / "run1").mkdir()
    shutil.copy(FAITHFUL / "one_span.jsonl", folder / "spans.jsonl")
    shutil.copy(FAITHFUL / "neighbour.jsonl", tmp_path / "run1" / "spans.jsonl")
    report = store.ingest([folder], run="r")
    assert report.spans_added == 1
    assert names(store) == ["GET /one"]
