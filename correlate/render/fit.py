"""Terminal tables that fit the terminal: the least important columns leave first.

rich shrinks every column of a table too wide for the console, so at 80 columns a
figure such as ``300.4 ms`` printed as ``300.4 …`` and the route column vanished.
A figure cut short reads as another figure, so instead whole columns are left out,
least important first, and the table says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.table import Table
    from rich.text import Text

#: What each column costs beside its text: rich's padding and the space between columns.
GUTTER = 3


@dataclass(eq=False)
class Column:
    """One column: its cells already formatted, and how much it matters.

    ``rank`` 0 is never left out; higher ranks leave first. A ``flexible`` column holds
    text that may wrap or shorten (a route, a statement) and needs only ``floor``
    characters; any other column needs its widest cell.
    """

    name: str
    cells: Sequence[Text | str] = field(default_factory=list)
    rank: int = 0
    flexible: bool = False
    floor: int = 0
    #: the widest a flexible column gets (None: as wide as its text)
    ceiling: int | None = None
    justify: str = "right"

    def need(self) -> int:
        if self.flexible:
            return max(len(self.name), self.floor) + GUTTER
        widest = max((len(str(c)) for c in self.cells), default=0)
        return max(len(self.name), widest) + GUTTER


def fit(columns: list[Column], width: int) -> tuple[list[Column], list[str]]:
    """The columns that fit ``width``, in their order, and the names of those left out.

    Of two columns of the same rank, the one further right leaves first.
    """
    kept = list(columns)
    while sum(c.need() for c in kept) > width and any(c.rank > 0 for c in kept):
        last = max((c for c in kept if c.rank > 0), key=lambda c: (c.rank, kept.index(c)))
        kept.remove(last)
    return kept, [c.name for c in columns if c not in kept]


def table(title: str | Text, columns: list[Column], width: int) -> tuple[Table, list[str]]:
    """A rich table of the columns that fit, and the names of those left out."""
    from rich import box
    from rich.table import Table

    kept, left_out = fit(columns, width)
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for c in kept:
        if c.flexible:
            out.add_column(c.name, min_width=c.floor, max_width=c.ceiling, overflow="fold")
        else:
            need = c.need() - GUTTER
            out.add_column(c.name, justify=c.justify, no_wrap=True, min_width=need)  # type: ignore[arg-type]
    rows = max((len(c.cells) for c in kept), default=0)
    for i in range(rows):
        out.add_row(*(c.cells[i] for c in kept))
    return out, left_out


def left_out_note(left_out: list[str]) -> str:
    """What a narrow terminal hid, said so the reader knows to widen it."""
    return f"not shown at this width: {', '.join(left_out)} (a wider terminal shows them)"
