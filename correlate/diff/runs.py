"""The two runs a comparison is between: run names, or paths ingested into runs of their own.

A path the store already holds a run from (the run's ``source``, the path resolved) is
that run, whatever the comparison would name it now, as long as the run holds no file the
path does not: ``main/run``, compared once with ``pr/run``, is ``main/run`` again when
compared with ``other``, not a second copy named ``run``.

Any other path is ingested under its directory's name (a trace file's stem), with two
exceptions that would otherwise compare a run with itself or with a mix of two runs:

- two different paths with the same base name (``main/run`` and ``pr/run``) are named by
  the shortest path tails that tell them apart (``main/run``, ``pr/run``);
- a run of that name already in the store that holds files the path does not (a store
  reused between local runs, the directory since overwritten) is left alone, and the path
  goes into a fresh run (``candidate (2)``), so a reused store gives a fresh store's verdict.
  The same files again find their run and are not read twice.

A correlate store file named as a run is refused with what to pass instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from correlate.errors import InputError

if TYPE_CHECKING:
    from correlate.store import Store

__all__ = ["resolve_runs"]


def resolve_runs(
    store: Store, baseline: str | os.PathLike[str], candidate: str | os.PathLike[str]
) -> tuple[str, str, list[str]]:
    """(baseline run, candidate run, notes on how paths were named), ingesting paths first."""
    base, cand = Path(baseline), Path(candidate)
    base_name, cand_name = _path_name(base), _path_name(cand)
    if (
        base.exists()
        and cand.exists()
        and base_name == cand_name
        and base.resolve() != cand.resolve()
    ):
        base_name, cand_name = _distinct_tails(base.resolve(), cand.resolve())
    from correlate.analysis.verdict import resolve_run

    notes: list[str] = []
    names = []
    for target, name in ((base, base_name), (cand, cand_name)):
        if target.exists():
            names.append(_ingest(store, target, name, notes))
        else:
            names.append(resolve_run(store, target)[0])
    return names[0], names[1], notes


def _path_name(path: Path) -> str:
    """A run's name from its path; ``.`` and ``..`` are named by the folder they are."""
    path = path.resolve() if path.name in ("", ".", "..") else path
    return path.name if path.is_dir() else path.stem.split(".")[0]


def _distinct_tails(a: Path, b: Path) -> tuple[str, str]:
    """The shortest tails of two different paths that differ: ``main/run``, ``pr/run``."""
    for n in range(2, max(len(a.parts), len(b.parts)) + 1):
        tail_a, tail_b = "/".join(a.parts[-n:]), "/".join(b.parts[-n:])
        if tail_a != tail_b:
            return tail_a, tail_b
    return str(a), str(b)


def _ingest(store: Store, path: Path, name: str, notes: list[str]) -> str:
    """Ingest ``path`` into run ``name``, or into a fresh run when ``name`` holds other files."""
    _refuse_store_file(path)
    digests = _digests(path)
    known = _run_from(store, path, digests)
    if known is not None:
        if known != name:
            notes.append(f"{path} compared as run {known!r}: the store already holds it")
        store.ingest([path], known)  # its new files, if any
        return known
    taken = set(store.run_names())
    wanted, n = name, 1
    while wanted in taken and not _held_files(store, wanted) <= digests:
        n += 1
        wanted = f"{name} ({n})"
    if wanted != name:
        notes.append(
            f"run {name!r} in the store already holds other files than {path}: "
            f"compared as run {wanted!r}"
        )
    store.ingest([path], wanted)  # files the run holds already are not read again
    return wanted


def _run_from(store: Store, path: Path, digests: set[str]) -> str | None:
    """The newest run ingested from ``path`` that holds no file ``path`` no longer has."""
    rows = store.con.execute(
        "SELECT name FROM runs WHERE source = ? ORDER BY run_id DESC", [str(path.resolve())]
    ).fetchall()
    return next((str(n) for (n,) in rows if _held_files(store, str(n)) <= digests), None)


def _held_files(store: Store, run: str) -> set[str]:
    rows = store.con.execute(
        "SELECT f.sha256 FROM files f JOIN runs r USING (run_id) WHERE r.name = ?", [run]
    ).fetchall()
    return {str(sha) for (sha,) in rows}


def _digests(path: Path) -> set[str]:
    """The SHA-256 of every file ingest would read under ``path``."""
    from correlate.ingest.bookkeeping import file_digest
    from correlate.ingest.pipeline import files_under

    if not path.is_dir():
        return {file_digest(path)} if path.is_file() else set()
    return {file_digest(child) for child in files_under(path, [])}


def _refuse_store_file(path: Path) -> None:
    if not path.is_file():
        return
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return  # ingest says why it cannot read it
    from correlate.ingest.detect import is_duckdb_database

    if is_duckdb_database(head):
        raise InputError(
            f"{path} is a correlate store: pass a run name with --db {path} "
            f"(in Python: a run name, with store=open_store({str(path)!r}))"
        )
