"""Write ``plans/`` into the committed sample runs, from a real PostgreSQL (run by hand).

    .venv/bin/python tests/helpers/make_sample_plans.py [DSN]

For each sample run it re-creates the demo shop exactly as the run had it
(``run.json``: the same seed, row counts and ``missing_index`` fault) in the
``correlate_demo`` schema, then runs ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``
on every SELECT the run's spans hold, with representative values bound to its
placeholders, and writes what a performance engineer would paste from psql:
``plans/<name>.json`` (the server's JSON, untouched) beside ``plans/<name>.sql``
(the statement exactly as the span has it, so it gets the span's
fingerprint). The schema is dropped afterwards.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import psycopg

from correlate.demo.shop import seed

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ("checkout-blackfriday", "checkout-fixed")
DSN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: statement file name → (text the statement starts with, values for its placeholders)
QUERIES: dict[str, tuple[str, dict[str, object]]] = {
    "customer_orders": (
        "SELECT correlate_demo.orders.id, correlate_demo.orders.status",
        {"customer_id_1": 1699, "param_1": 20},
    ),
    "order_items_by_order": (
        "SELECT correlate_demo.order_items.id AS order_items_id",
        {"param_1": 150_000},
    ),
    "recent_orders": (
        "SELECT correlate_demo.orders.id, correlate_demo.orders.customer_id",
        {"param_1": 20},
    ),
    "customer_by_id": ("SELECT correlate_demo.customers.id", {"pk_1": 1699}),
    "product_by_id": ("SELECT correlate_demo.products.id AS", {"pk_1": 42}),
    "products_by_ids": (
        "SELECT correlate_demo.products.id, correlate_demo.products.name",
        # the first text found has one to three ids (a checkout of one to three items)
        {"id_1_1": 42, "id_1_2": 43, "id_1_3": 44},
    ),
}


def _statements(run_dir: Path) -> dict[str, str]:
    """Each SELECT text the run's spans hold, once."""
    found: dict[str, str] = {}
    for path in sorted((run_dir / "spans").glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                for rs in json.loads(line).get("resourceSpans", []):
                    for ss in rs.get("scopeSpans", []):
                        for span in ss.get("spans", []):
                            for attr in span.get("attributes", []):
                                if attr["key"] in ("db.statement", "db.query.text"):
                                    text = attr["value"]["stringValue"]
                                    for name, (prefix, _) in QUERIES.items():
                                        if text.startswith(prefix):
                                            found.setdefault(name, text)
    return found


def main(dsn: str = DSN) -> None:
    plain = dsn.replace("postgresql+psycopg://", "postgresql://")
    for sample in SAMPLES:
        run_dir = ROOT / "sample_traces" / sample
        info = json.loads((run_dir / "run.json").read_text())
        demo = info["demo"]
        seconds = seed(
            dsn,
            orders=demo["orders"],
            seed=demo["seed"],
            missing_index=demo["faults"]["missing_index"],
            schema=demo["schema"],
        )
        print(f"{sample}: seeded {demo['schema']} in {seconds:.1f}s", file=sys.stderr)
        out = run_dir / "plans"
        out.mkdir(exist_ok=True)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"ANALYZE {demo['schema']}.orders")
            for name, text in sorted(_statements(run_dir).items()):
                values = QUERIES[name][1]
                row = conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text,  # type: ignore[arg-type]
                    values,
                ).fetchone()
                assert row is not None
                (out / f"{name}.sql").write_text(text + "\n")
                (out / f"{name}.json").write_text(json.dumps(row[0], indent=2) + "\n")
                print(f"  plans/{name}.json", file=sys.stderr)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{demo["schema"]}" CASCADE')


if __name__ == "__main__":
    main(*sys.argv[1:2])
