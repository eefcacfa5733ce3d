"""Every DB span's statement fingerprint, stored with its run.

Fingerprinting runs in Python (a SQL parser per dialect), so it works on the
run's statement *shapes*, a few hundred even for millions of spans: the
schema's ``statement_key`` macro removes a trailing sqlcommenter comment (which
makes every text unique), replaces literal values in SQL and collapses lists of them
and of the dialect's placeholders (``IN (:1, :2)`` in Oracle, ``IN (@P0, @P1)`` in
SQL Server: the key takes the span's ``db_system``), then one real text of each key is
fingerprinted. The ``db_spans`` view joins each span to its
fingerprint by the same key.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> fingerprint_run(store, 1)
0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from correlate.store import Store


def fingerprint_run(store: Store, run_id: int) -> int:
    """Fingerprint the run's statement shapes not fingerprinted yet; return how many were new."""
    return fingerprint_missing(store.con, run_id)


def fingerprint_missing(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """:func:`fingerprint_run` on a connection: a migration that re-keys statements calls it
    for the keys that have no row."""
    from correlate.fingerprint import fingerprint_many

    texts = con.execute(
        """
        SELECT db_system, key, any_value(strip_sqlcommenter(db_statement)) AS text
        FROM (SELECT db_system, db_statement, statement_key(db_system, db_statement) AS key
              -- the key of each distinct text, not of each span: a few
              -- thousand texts against hundreds of thousands of spans
              FROM (SELECT DISTINCT db_system, db_statement FROM spans
                    WHERE run_id = $run AND db_statement IS NOT NULL)) s
        WHERE NOT EXISTS (SELECT 1 FROM statements st WHERE st.run_id = $run
                          AND st.db_system IS NOT DISTINCT FROM s.db_system AND st.key = s.key)
        GROUP BY db_system, key
        """,
        {"run": run_id},
    ).fetchall()
    if not texts:
        return 0
    found = fingerprint_many((text, system) for system, _, text in texts)
    rows = [found[(text, system)] for system, _, text in texts]
    # Bound as list parameters and unnested in step: no pyarrow import (a third
    # of a second) for a few hundred rows.
    con.execute(
        "INSERT INTO statements SELECT $run, unnest($system), unnest($key), unnest($text), "
        "unnest($fingerprint), unnest($normalized), unnest($method), unnest($operation), "
        "unnest($tables)",
        {
            "run": run_id,
            "system": [system for system, _, _ in texts],
            "key": [key for _, key, _ in texts],
            "text": [text for _, _, text in texts],
            "fingerprint": [f.id for f in rows],
            "normalized": [f.normalized for f in rows],
            "method": [f.method for f in rows],
            "operation": [f.operation or None for f in rows],
            "tables": [list(f.tables) for f in rows],
        },
    )
    return len(rows)
