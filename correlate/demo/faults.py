"""Which faults the demo service has planted."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Faults:
    """Flags for the planted faults; all on is the Black Friday service.

    * ``missing_index``: no index on ``orders.customer_id``, so
      ``GET /customers/<id>/orders`` scans the whole table.
    * ``n_plus_one``: ``GET /orders/recent`` lazy-loads each order's items,
      one query per order.
    * ``pool_leak``: ``POST /checkout`` keeps the session of a declined payment,
      and with it a pooled connection.
    * ``hot_row``: ``POST /checkout`` updates one stock row and calls the slow
      fraud-check service while holding its row lock, so checkouts queue.
    """

    missing_index: bool = True
    n_plus_one: bool = True
    pool_leak: bool = True
    hot_row: bool = True

    @classmethod
    def all(cls) -> Faults:
        return cls(True, True, True, True)

    @classmethod
    def none(cls) -> Faults:
        return cls(False, False, False, False)

    @classmethod
    def only(cls, names: tuple[str, ...] | list[str]) -> Faults:
        """These faults on, every other off.

        >>> Faults.only(["missing_index"]).enabled()
        ['missing_index']
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {sorted(known)}")
        return cls(**{name: name in names for name in known})

    def enabled(self) -> list[str]:
        names = ("missing_index", "n_plus_one", "pool_leak", "hot_row")
        return [name for name in names if getattr(self, name)]
