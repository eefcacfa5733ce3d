"""Explicit JSON schemas for DuckDB, declared once in Python.

DuckDB's ``read_json`` auto-detection samples *lines*, and one OTLP line can
hold hundreds of spans, so on a big file it reads the data twice. Declaring
the schema avoids that, and also makes parsing lenient: a field of the wrong
type becomes NULL instead of failing the whole file. A schema here is a
nested Python value: a type name (``"VARCHAR"``), a dict (a struct) or a
one-item list (a list of that).
"""

from __future__ import annotations

import json
from typing import TypeAlias

Schema: TypeAlias = "str | dict[str, Schema] | list[Schema]"


def duckdb_type(schema: Schema) -> str:
    """The DuckDB type string: ``{"a": "VARCHAR"}`` -> ``STRUCT("a" VARCHAR)``."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return f"{duckdb_type(schema[0])}[]"
    fields = ", ".join(f'"{name}" {duckdb_type(sub)}' for name, sub in schema.items())
    return f"STRUCT({fields})"


def structure(schema: Schema) -> str:
    """The structure argument of DuckDB's ``from_json``, as JSON text."""
    return json.dumps(schema, separators=(",", ":"))


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
