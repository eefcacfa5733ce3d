"""Every DB span's statement fingerprint, stored with its run.

Fingerprinting runs in Python (a SQL parser per dialect), so it works on the
run's *distinct* statement texts, a few hundred or thousand even for millions
of spans. A trailing sqlcommenter comment would make every text unique, so it
is removed in SQL first (the ``strip_sqlcommenter`` macro of the schema); the
``db_spans`` view joins each span to its fingerprint the same way.

>>> import correlate
>>> store = correlate.open_store(":memory:")
>>> fingerprint_run(store, 1)
0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from correlate.store import Store


def fingerprint_run(store: Store, run_id: int) -> int:
    """Fingerprint the run's statement texts not fingerprinted yet; return how many were new."""
    import pyarrow as pa

    from correlate.fingerprint import fingerprint_many

    con = store.con
    texts = con.execute(
        """
        SELECT DISTINCT db_system, strip_sqlcommenter(db_statement) AS text
        FROM spans WHERE run_id = $run AND db_statement IS NOT NULL
        EXCEPT
        SELECT db_system, text FROM statements WHERE run_id = $run
        """,
        {"run": run_id},
    ).fetchall()
    if not texts:
        return 0
    found = fingerprint_many((text, system) for system, text in texts)
    rows = [found[(text, system)] for system, text in texts]
    table = pa.table(
        {
            "db_system": [system for system, _ in texts],
            "text": [text for _, text in texts],
            "fingerprint": [f.id for f in rows],
            "normalized": [f.normalized for f in rows],
            "method": [f.method for f in rows],
            "operation": [f.operation or None for f in rows],
            "tables": [list(f.tables) for f in rows],
        }
    )
    con.register("_new_statements", table)
    con.execute(
        "INSERT INTO statements SELECT ?, db_system, text, fingerprint, normalized, method, "
        "operation, tables FROM _new_statements",
        [run_id],
    )
    con.unregister("_new_statements")
    return len(rows)
