"""Query fingerprints: one stable id per statement shape, from span ``db.statement`` text.

The pipeline: read the sqlcommenter comment (:mod:`.sqlcommenter`), tokenize, run the
normalisation passes (:data:`.normalize.PASSES`), then give the result to a real parser for
a canonical form: pglast (libpg_query) for PostgreSQL, sqlglot for MySQL/MariaDB/SQLite and
other dialects. Text no parser accepts keeps the passes' own rendering: method
``"fallback"``. It is still fingerprinted, never dropped, and :meth:`FingerprintMap.counts`
reports how many took that road. The commands of key-value and document stores are never
given to a SQL parser; Redis's have their variadic arguments and a pipeline's repeated
commands folded first (:mod:`.commands`).

``Fingerprint.id`` is the first 16 hex digits of the BLAKE2b hash of ``normalized``. It is
stable across processes and machines, but it is a function of this package's normalisation
and of the parser's rendering: changing a pass (or a pglast/sqlglot upgrade that renders
differently) changes ids. ``tests/data/fingerprints/`` holds the expected normalised texts
so such a change shows up as a test diff (regenerate with ``CORRELATE_REGEN_GOLDEN=1``).
The id does not encode the dialect: the same normalised text from a PostgreSQL and a SQLite
span gets the same id, so group by ``(db.system, id)`` when the databases differ.

``normalized`` uses ``$1, $2, …`` placeholders numbered in order of appearance, in every
dialect (see :mod:`.normalize` for why).
"""

from __future__ import annotations

from correlate.fingerprint.shape import (
    Fingerprint,
    FingerprintMap,
    Method,
    fingerprint,
    fingerprint_many,
    table_free_calls,
)
from correlate.fingerprint.sqlcommenter import parse_comment, traceparent_ids

__all__ = [
    "Fingerprint",
    "FingerprintMap",
    "Method",
    "fingerprint",
    "fingerprint_many",
    "parse_comment",
    "table_free_calls",
    "traceparent_ids",
]
