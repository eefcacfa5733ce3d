"""The examples in docstrings run, so they stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import correlate

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(correlate.__path__, "correlate.")
    # The demo's service and load modules start servers when imported as scripts.
    if not m.name.startswith(
        ("correlate.demo.app", "correlate.demo.locustfile", "correlate.demo.__main__")
    )
    and m.name != "correlate.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
