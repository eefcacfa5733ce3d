"""Numbers for people: milliseconds, shares, counts, and evidence values with their units.

Every renderer formats through these, so a finding's evidence reads the same
in the terminal, Markdown and HTML. A value's unit is read from its evidence
key: ``*_ms`` is a duration, ``*_rps`` a rate, ``*_s`` a time in the run,
``*share*`` and ``*rate*`` (floats) are shares.

>>> evidence_items({"pool_wait_ms": 318403.2, "share_of_request_time": 0.83, "timeouts": 105})
[('pool wait', '318.40 s'), ('share of request time', '83%'), ('timeouts', '105')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The detectors write ``ms``/``pct`` into their sentences; renderers use the same two.
from correlate.analysis.findings import ms, pct


def count(value: int | float) -> str:
    """A count with thousands separators: ``'1,183'``."""
    return f"{value:,.0f}"


def number(value: Any) -> str:
    """A value without a known unit: yes/no, three significant digits below 10, else whole.

    >>> number(True), number(1.3912), number(2507.4), number(1183), number("x")
    ('yes', '1.39', '2,507', '1,183', 'x')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def evidence_value(key: str, value: Any) -> tuple[str, str]:
    """One evidence entry as ``(name, shown)``, its unit read from ``key``.

    >>> evidence_value("throughput_first_rps", 33.6), evidence_value("from_s", 42)
    (('throughput first', '33.6/s'), ('from', '42 s'))
    """
    name = key.replace("_", " ")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return name, number(value)
    if ("share" in key or "rate" in key) and isinstance(value, float) and "rps" not in key:
        return name, pct(value)
    if key.endswith("_ms"):
        return key[:-3].replace("_", " "), ms(float(value))
    if key.endswith("_rps"):
        return key[:-4].replace("_", " "), f"{value:,.1f}/s"
    if key.endswith("_s"):
        return key[:-2].replace("_", " "), f"{value:,.0f} s"
    return name, number(value)


#: A pool finding's failed checkouts, named for what they were when its pool refused them
#: at once rather than let them time out (``checkouts_timed_out`` false): the keys keep
#: their names for readers of the JSON report.
REFUSED_CHECKOUTS = {
    "timeouts": "failed checkouts",
    "requests_failed_by_timeout": "requests failed at checkout",
    "timeout_exception": "pool error",
}


def evidence_items(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A finding's scalar evidence, in order, as ``(name, shown)`` pairs.

    Lists, tables, the statement (shown on its own) and missing values are left out.

    >>> evidence_items({"timeouts": 68, "checkouts_timed_out": False})
    [('failed checkouts', '68'), ('checkouts timed out', 'no')]
    """
    refused = evidence.get("checkouts_timed_out") is False
    items = []
    for key, value in evidence.items():
        if isinstance(value, (dict, list, tuple)) or key == "statement" or value is None:
            continue
        name, shown = evidence_value(key, value)
        items.append(
            (REFUSED_CHECKOUTS[key] if refused and key in REFUSED_CHECKOUTS else name, shown)
        )
    return items


__all__ = ["count", "evidence_items", "evidence_value", "ms", "number", "pct"]
