"""Value helpers shared by the plan parsers: numbers as servers write them, names in snake case."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


def num(value: Any) -> float | None:
    """Numbers, and MySQL's numbers-as-strings ("3.67"); None otherwise, and for a string
    no server writes for a count or a time (``"NaN"``, ``"inf"``), which would poison every
    sum and ratio read from the plan. A JSON number past float range is valid JSON and stays
    infinite; an integer past it is None.

    >>> num(3), num("3.67"), num("NaN"), num("-Infinity"), num(float("inf")), num(True)
    (3.0, 3.67, None, None, inf, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        out = float(value)
    except (OverflowError, ValueError):
        return None
    return out if math.isfinite(out) or not isinstance(value, str) else None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer past float range is no count a server wrote
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def snake(name: str) -> str:
    """``"Index Only Scan"`` → ``"index_only_scan"``; ``"ModifyTable"`` → ``"modify_table"``.

    >>> snake("Bitmap Heap Scan"), snake("ModifyTable"), snake("block-nl-join")
    ('bitmap_heap_scan', 'modify_table', 'block_nl_join')
    """
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def text_or_none(v: Any) -> Any:
    return v if isinstance(v, str) else None


def str_list(v: Any) -> Any:
    return [str(x) for x in v] if isinstance(v, list) else None


def has_key(obj: Any, keys: tuple[str, ...]) -> bool:
    if isinstance(obj, Mapping):
        return any(k in obj for k in keys) or any(has_key(v, keys) for v in obj.values())
    if isinstance(obj, list):
        return any(has_key(v, keys) for v in obj)
    return False
