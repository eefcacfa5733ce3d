"""A result table (``correlate sql``, ``correlate runs``) as terminal text, Markdown, CSV or JSON.

Cells hold whatever the store holds, trace text included: the terminal table
puts each cell in a rich ``Text`` with control characters escaped (so
``[null]`` or ``[/x]`` prints as written and no escape sequence reaches the
terminal), and Markdown escapes each cell. CSV and JSON keep values exact.
"""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING

from correlate.render.escape import markdown, terminal

if TYPE_CHECKING:
    import pandas as pd


def _rows_line(frame: pd.DataFrame) -> str:
    return f"({len(frame)} row{'s' if len(frame) != 1 else ''})"


def _is_missing(value: object) -> bool:
    try:
        return bool(value != value) or value is None  # NaN, NaT, None
    except (TypeError, ValueError):
        return False


def _cell(value: object) -> str:
    return "" if _is_missing(value) else str(value)


def render_text(frame: pd.DataFrame, *, width: int = 200) -> str:
    """The table for a terminal, with a row count under it.

    >>> import pandas as pd
    >>> print(render_text(pd.DataFrame({"name": ["[/x]", "a\\x1b[2Jb"]})), end="")
     name
    ───────────
     [/x]
     a\\x1b[2Jb
    (2 rows)
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    for column in frame.columns:
        numeric = is_numeric_dtype(frame[column]) and not is_bool_dtype(frame[column])
        table.add_column(
            Text(terminal(column)), overflow="fold", justify="right" if numeric else "left"
        )
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(terminal(_cell(v))) for v in row))
    buffer = StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False, emoji=False).print(table)
    lines = [line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n")]
    return "\n".join(lines) + f"\n{_rows_line(frame)}\n"


def render_markdown(frame: pd.DataFrame) -> str:
    """The table as a GitHub-flavoured Markdown table, every cell escaped."""
    head = "| " + " | ".join(markdown(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = [
        "| " + " | ".join(markdown(_cell(v)) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows, "", _rows_line(frame)]) + "\n"


def render_csv(frame: pd.DataFrame) -> str:
    """The table as CSV with a header row, values exact."""
    return str(frame.to_csv(index=False))


def render_json(frame: pd.DataFrame) -> str:
    """The table as JSON Lines, one object per row, values exact (NaN and NULL are null).

    ASCII only, so no line separator inside a string splits a line for a reader.

    >>> import pandas as pd
    >>> print(render_json(pd.DataFrame({"a\\x00b": ["x", None], "n": [1.5, float("nan")]})), end="")
    {"a\\u0000b": "x", "n": 1.5}
    {"a\\u0000b": null, "n": null}
    """
    import json

    from correlate.render.json import plain

    columns = [str(c) for c in frame.columns]
    return "".join(
        json.dumps(dict(zip(columns, plain(list(row)), strict=True))) + "\n"
        for row in frame.itertuples(index=False)
    )


__all__ = ["render_csv", "render_json", "render_markdown", "render_text"]
