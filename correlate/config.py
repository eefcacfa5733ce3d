"""The project configuration file: ``correlate.toml``, or ``[tool.correlate]`` in ``pyproject.toml``.

Looked up from a directory (the current one by default) towards the root; the first
directory holding ``correlate.toml``, or a ``pyproject.toml`` with a ``[tool.correlate]``
table, wins, and ``correlate.toml`` wins over ``pyproject.toml`` in the same directory (the
pyproject.toml is then not read). Nothing is read at import time.

A file that cannot be read as correlate's is a :class:`~correlate.errors.ConfigError`
naming it: not UTF-8, not TOML, or not a file at all (a directory named
``correlate.toml``). One exception: a ``pyproject.toml`` that does not mention
``correlate`` anywhere cannot hold correlate's table, so when it is broken it is passed
over like one without the table; its own tools report it.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = (pathlib.Path(tmp) / "correlate.toml").write_text("[n_plus_one]\\nmin_calls = 3\\n")
...     found = find_config(tmp)
...     found.path.name, found.table
('correlate.toml', {'n_plus_one': {'min_calls': 3}})
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlate.errors import ConfigError

#: The file names looked for, in order of preference within one directory.
CONFIG_FILES = ("correlate.toml", "pyproject.toml")


@dataclass(frozen=True)
class ProjectConfig:
    """The correlate table of one configuration file."""

    path: Path
    #: correlate's table: the whole of correlate.toml, or pyproject.toml's [tool.correlate]
    table: dict[str, Any] = field(default_factory=dict)

    def where(self, section: str = "") -> str:
        """Where ``section`` is, for messages: ``/p/pyproject.toml [tool.correlate.pool]``."""
        if self.path.name == "pyproject.toml":
            return f"{self.path} [tool.correlate{'.' + section if section else ''}]"
        return f"{self.path} [{section}]" if section else str(self.path)


def find_config(start: str | os.PathLike[str] | None = None) -> ProjectConfig | None:
    """The configuration that applies in ``start`` (default: the current directory), or None."""
    here = Path.cwd() if start is None else Path(start)
    for directory in (here.resolve(), *here.resolve().parents):
        for name in CONFIG_FILES:
            path = directory / name
            if not path.is_file():
                if path.exists():  # a directory or a pipe: not silently another file's place
                    raise ConfigError(
                        "not a file; correlate reads its settings from a file of this name "
                        "(rename or remove it)",
                        path,
                    )
                continue
            config = read_config(path)
            if config is not None:
                return config
    return None


def read_config(path: str | os.PathLike[str]) -> ProjectConfig | None:
    """correlate's table in the file ``path``; None for a pyproject.toml without one."""
    import tomllib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", path) from None
    # another tool's pyproject.toml: if it never says "correlate", it holds nothing of ours
    ours = path.name != "pyproject.toml" or b"correlate" in raw
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        if not ours:
            return None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8", path, line
        ) from None
    except tomllib.TOMLDecodeError as exc:
        if not ours:
            return None
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    if path.name == "pyproject.toml":
        tool = data.get("tool")
        table = tool.get("correlate") if isinstance(tool, dict) else None
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError("[tool.correlate] must be a table", path)
        return ProjectConfig(path, table)
    return ProjectConfig(path, data)


__all__ = ["CONFIG_FILES", "ProjectConfig", "find_config", "read_config"]
