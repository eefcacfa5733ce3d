"""Other libraries' log records kept off the terminal.

With no logging configured, Python prints a library's warnings to stderr through its
last-resort handler, in the middle of correlate's own output: sqlglot's "contains
unsupported syntax" for every text it reads as an opaque command, clickhouse-connect's
"Unexpected Http Driver Exception" just before the error correlate then explains. A
handler that drops records stops that printing; the handlers a program configures (on
the root logger or the library's) still receive every record.
"""

from __future__ import annotations

import logging


def quiet(library: str) -> None:
    """Keep the log records of ``library`` (its logger's name) from the terminal.

    >>> quiet("sqlglot"); quiet("sqlglot")
    >>> sum(isinstance(h, logging.NullHandler) for h in logging.getLogger("sqlglot").handlers)
    1
    """
    logger = logging.getLogger(library)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
