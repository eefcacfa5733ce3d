"""OTLP/JSON records whose parts have the wrong JSON type: reported, and read leniently
where that is unambiguous.

DuckDB's ``from_json`` turns a value of the wrong type into NULL, so a record
with ``"spans": "nope"`` would lose its spans without a word. Before a record
is parsed there, :func:`repair` looks at the parts that hold spans and
attributes (a cheap pattern first, the JSON only when the pattern hits):

- a part that should be a list or an object and is not (``"spans": "nope"``,
  ``"resourceSpans": 3``) is a **problem**: what it held is lost, the record's
  other parts are still read;
- ``attributes`` given as an object (``{"http.route": "/x"}``) instead of a
  list of ``{"key", "value"}`` pairs is read as those pairs when every value is
  a plain JSON value (string, number, boolean, a list of them) or already an
  OTLP ``AnyValue``; the span is kept and a **note** says it was read leniently.
  Anything else there (nested objects, nulls) is dropped, with a note; the span
  is kept.

Both kinds land in the ``problems`` table with the record's line; only problems
count as skipped records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Repaired", "repair"]

#: A key that holds a list or an object, followed by something that starts neither.
_SUSPECT = re.compile(
    r'"(?:resourceSpans|scopeSpans|instrumentationLibrarySpans|spans|attributes|events|links)"'
    r"\s*:\s*[^\[\sn]"
    r'|"(?:resource|scope|status|result)"\s*:\s*[^{\sn]'
)

_ANY_VALUE_KEYS = frozenset(
    {
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "bytesValue",
        "arrayValue",
        "kvlistValue",
    }
)


@dataclass
class Repaired:
    """A record's text after repair, with what was wrong in it."""

    text: str
    #: parts whose spans were lost (each a skipped record)
    problems: list[str] = field(default_factory=list)
    #: parts read leniently or dropped while their span was kept
    notes: list[str] = field(default_factory=list)


def repair(text: str) -> Repaired | None:
    """``text`` with every wrongly typed part reported; None when nothing is wrong.

    Text that is not JSON is left to the caller's parser, which says where it breaks.
    """
    if _SUSPECT.search(text) is None:
        return None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    found = Repaired(text)
    root, where = doc, ""
    if "resourceSpans" not in doc and isinstance(doc.get("result"), dict):
        root, where = doc["result"], "result."
    _walk_request(root, where, found)
    if not found.problems and not found.notes:
        return None
    found.text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return found


# ``where`` below is the prefix of a part's name: a path ending in "." ("resourceSpans[0].")
# or a span ending in ": " ("span 5b8efff798038103: ").


def _walk_request(root: dict[str, Any], where: str, found: Repaired) -> None:
    for rs_path, rs in _objects(root, "resourceSpans", where, found, problem=True):
        resource = _object(rs, "resource", rs_path + ".", found)
        if resource is not None:
            _attributes(resource, f"{rs_path}.resource.", found)
        for key in ("scopeSpans", "instrumentationLibrarySpans"):
            for ss_path, ss in _objects(rs, key, rs_path + ".", found, problem=True):
                _object(ss, "scope", ss_path + ".", found)
                for span_path, span in _objects(ss, "spans", ss_path + ".", found, problem=True):
                    _span(span, span_path + ".", found)


def _span(span: dict[str, Any], where: str, found: Repaired) -> None:
    if isinstance(span.get("spanId"), str):
        where = f"span {span['spanId']}: "
    _attributes(span, where, found)
    _object(span, "status", where, found)
    for key in ("events", "links"):
        for path, item in _objects(span, key, where, found, problem=False):
            _attributes(item, path + ".", found)


def _objects(
    parent: dict[str, Any], key: str, where: str, found: Repaired, *, problem: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The objects of list ``parent[key]``; wrong types reported and removed."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        lost = f"{where}{key} is {_json_kind(value)}, not a list"
        if problem:
            found.problems.append(f"{lost}: nothing under it was read")
        else:
            found.notes.append(f"{lost}: the span is kept without them")
        parent[key] = []
        return []
    kept = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            kept.append((f"{where}{key}[{i}]", item))
            continue
        lost = f"{where}{key}[{i}] is {_json_kind(item)}, not an object"
        if problem:
            found.problems.append(f"{lost}: nothing in it was read")
        else:
            found.notes.append(f"{lost}: the span is kept without it")
    if len(kept) < len(value):
        parent[key] = [item for _, item in kept]
    return kept


def _object(parent: dict[str, Any], key: str, where: str, found: Repaired) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None or isinstance(value, dict):
        return value
    found.notes.append(f"{where}{key} is {_json_kind(value)}, not an object: left out")
    del parent[key]
    return None


def _attributes(holder: dict[str, Any], where: str, found: Repaired) -> None:
    value = holder.get("attributes")
    if value is None or isinstance(value, list):
        return
    if isinstance(value, dict):
        pairs = [{"key": k, "value": _any_value(v)} for k, v in value.items()]
        if all(p["value"] is not None for p in pairs):
            holder["attributes"] = pairs
            found.notes.append(
                f"{where}attributes given as an object, not a list of key/value pairs; "
                f"read leniently as {len(pairs)} attribute(s)"
            )
            return
        found.notes.append(
            f"{where}attributes given as an object whose values are not all plain values; "
            "the span is kept without them"
        )
    else:
        found.notes.append(
            f"{where}attributes is {_json_kind(value)}, not a list; the span is kept without them"
        )
    del holder["attributes"]


def _any_value(value: Any) -> dict[str, Any] | None:
    """A plain JSON value as an OTLP AnyValue; None when that would be a guess."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, dict) and len(value) == 1 and set(value) <= _ANY_VALUE_KEYS:
        return value  # already an AnyValue: {"stringValue": "x"}
    if isinstance(value, list):
        items = [_any_value(v) for v in value]
        if all(i is not None and "arrayValue" not in i and "kvlistValue" not in i for i in items):
            return {"arrayValue": {"values": items}}
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
