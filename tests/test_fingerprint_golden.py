"""Golden fingerprint classes: tests/data/fingerprints/classes.sql and classes.expected.

Set CORRELATE_REGEN_GOLDEN=1 to rewrite classes.expected from the current code, then review
the diff: any change there changes fingerprint ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from correlate.fingerprint import Fingerprint, fingerprint

GOLDEN = Path(__file__).parent / "data" / "fingerprints"
CLASSES = GOLDEN / "classes.sql"
EXPECTED = GOLDEN / "classes.expected"
REGEN = os.environ.get("CORRELATE_REGEN_GOLDEN", "") not in ("", "0")


@dataclass(frozen=True)
class Group:
    name: str
    dialect: str | None
    statements: tuple[str, ...]
    line: int  # of the `-- class:` header, for failure messages


def load_classes(path: Path = CLASSES) -> list[Group]:
    """Parse the classes file: headers, then statements separated by blank lines."""
    groups: list[Group] = []
    dialect: str | None = None
    name: str | None = None
    header_line = 0
    statements: list[str] = []
    block: list[str] = []

    def end_block() -> None:
        if block:
            statements.append("\n".join(block))
            block.clear()

    def end_group() -> None:
        end_block()
        if name is not None:
            assert statements, f"{path.name}:{header_line}: class {name} has no statements"
            groups.append(Group(name, dialect, tuple(statements), header_line))
        statements.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("-- dialect:"):
            end_group()
            name = None
            value = line.split(":", 1)[1].strip()
            dialect = None if value == "none" else value
        elif line.startswith("-- class:"):
            end_group()
            name, header_line = line.split(":", 1)[1].strip(), number
        elif name is None:
            continue  # the file's own preamble
        elif not line.strip():
            end_block()
        else:
            block.append(line)
    end_group()
    names = [g.name for g in groups]
    assert len(names) == len(set(names)), "class names must be unique"
    return groups


GROUPS = load_classes()


def _render_expected(groups: list[Group]) -> str:
    out = [
        "-- Expected normalised text per class in classes.sql (one per class, since all",
        "-- members share it). Generated: CORRELATE_REGEN_GOLDEN=1 pytest "
        "tests/test_fingerprint_golden.py",
        "",
    ]
    for g in groups:
        f = fingerprint(g.statements[0], g.dialect)
        tables = ", ".join(f.tables) or "-"
        out += [
            f"-- class: {g.name}",
            f"-- method: {f.method}  operation: {f.operation}  tables: {tables}  id: {f.id}",
            f.normalized,
            "",
        ]
    return "\n".join(out)


@pytest.mark.parametrize("group", GROUPS, ids=[g.name for g in GROUPS])
def test_class_members_share_a_fingerprint(group: Group) -> None:
    prints = [fingerprint(s, group.dialect) for s in group.statements]
    first = prints[0]
    for stmt, f in zip(group.statements, prints, strict=True):
        assert f.normalized == first.normalized, (
            f"classes.sql:{group.line} {group.name}: {stmt!r} normalised differently"
        )
        assert (f.id, f.method) == (first.id, first.method)


def test_classes_differ() -> None:
    seen: dict[str, str] = {}
    for g in GROUPS:
        f = fingerprint(g.statements[0], g.dialect)
        assert f.id not in seen, f"{g.name} and {seen[f.id]} share {f.id}: {f.normalized}"
        seen[f.id] = g.name


def test_expected_normalised_texts() -> None:
    text = _render_expected(GROUPS)
    if REGEN:
        EXPECTED.write_text(text, encoding="utf-8")
    assert EXPECTED.exists(), "no classes.expected: run with CORRELATE_REGEN_GOLDEN=1"
    assert EXPECTED.read_text(encoding="utf-8") == text, (
        "normalisation changed (and with it fingerprint ids); if intended, regenerate with "
        "CORRELATE_REGEN_GOLDEN=1 and review the diff"
    )


def test_unparseable_class_is_fallback() -> None:
    [group] = [g for g in GROUPS if g.name == "unparseable_fallback"]
    assert all(fingerprint(s, group.dialect).method == "fallback" for s in group.statements)


def _by_name(name: str) -> Fingerprint:
    [group] = [g for g in GROUPS if g.name == name]
    return fingerprint(group.statements[0], group.dialect)


def test_methods_follow_dialect() -> None:
    assert _by_name("orders_by_customer").method == "pglast"
    assert _by_name("mysql_orders_by_status").method == "sqlglot"
    assert _by_name("sqlite_carts_by_customer").method == "sqlglot"
