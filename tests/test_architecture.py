"""The shape of the code, checked: packages depend one way, ``__init__`` files only
re-export, and modules stay small enough to read (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "correlate"

#: Modules allowed past MAX_LINES, each with the reason splitting would hurt.
LONG_MODULES: dict[str, str] = {}
#: About 600 lines: a few over is not worth a split.
MAX_LINES = 620


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue  # an entry point, like the CLI: nothing imports it
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _unit(module: str) -> str:
    """The unit a module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


#: A result object shows itself (a notebook's ``_repr_html_``, ``to_text()``): these
#: methods call the renderers, lazily. They are the one way up the layers; nothing a
#: result is computed from imports ``correlate.render``.
PRESENTATION_HOOKS = frozenset(
    ("_repr_html_", "_repr_pretty_", "to_text", "to_markdown", "to_json", "to_html")
)


def _imports(module: str, path: Path) -> set[str]:
    """Every correlate module ``module`` imports at run time, at any depth (lazy ones too),
    except the renderers a presentation hook calls."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST, hook: bool = False) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, hook)
            return
        if isinstance(node, ast.FunctionDef) and node.name in PRESENTATION_HOOKS:
            hook = True
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("correlate"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("correlate") and not (
                hook and target.startswith("correlate.render")
            ):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, hook)

    visit(tree)
    return found


def _unit_graph() -> dict[str, set[str]]:
    modules = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(_unit(module), set())
        for target in _imports(module, path):
            if target in modules and _unit(target) != _unit(module):
                edges.add(_unit(target))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_packages_import_each_other_one_way() -> None:
    cycle = _cycle(_unit_graph())
    assert cycle is None, "import cycle between packages: " + " → ".join(cycle or [])


def test_a_presentation_hook_is_the_only_way_to_the_renderers(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "class R:\n"
        "    def _repr_html_(self):\n"
        "        from correlate.render.html import fragment\n"
        "    def compute(self):\n"
        "        from correlate.render.text import render\n"
    )
    assert _imports("correlate.analysis.m", module) == {
        "correlate.render.text",
        "correlate.render.text.render",
    }


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_package_init_files_only_re_export(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            # __all__, a registry tuple of imported names, or a type alias
            if names <= {"__all__", "__version__"} or isinstance(
                node.value, ast.Name | ast.Attribute | ast.Tuple | ast.Subscript
            ):
                continue
        pytest.fail(f"{path.relative_to(PACKAGE)}:{node.lineno}: logic in a package __init__")


def test_modules_stay_readable() -> None:
    long = {
        module: len(path.read_text().splitlines())
        for module, path in _modules()
        if len(path.read_text().splitlines()) > MAX_LINES and module not in LONG_MODULES
    }
    assert long == {}, f"modules over {MAX_LINES} lines (split them, or say why not): {long}"
