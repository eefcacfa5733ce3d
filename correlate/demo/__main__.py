"""``python -m correlate.demo``: run the demo and record it (regenerates the samples).

A thin entry point over :func:`correlate.demo.run_demo`, usable before and
besides ``correlate demo``; it takes the same options. Progress and the summary
go to stderr through logging.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from correlate.demo.faults import Faults
from correlate.demo.runner import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m correlate.demo",
        description="Run the demo checkout service under Locust load and record the run.",
    )
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--dsn", help="SQLAlchemy URL; default: SQLite file OUT/demo.sqlite")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=20, help="peak Locust users (default 20)")
    parser.add_argument("--fixed", action="store_true", help="turn every planted fault off")
    parser.add_argument(
        "--orders", type=int, default=200_000, help="rows in orders (default 200000)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the data and the load")
    parser.add_argument("--sqlcommenter", action="store_true", help="append sqlcommenter comments")
    parser.add_argument(
        "--no-record", action="store_true", help="serve without correlate.instrument"
    )
    parser.add_argument("--constant", action="store_true", help="all users at once, no ramps")
    parser.add_argument("--compress", action="store_true", help="gzip the JSON Lines files")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_demo(
        args.out,
        dsn=args.dsn,
        duration=args.duration,
        users=args.users,
        fixed=args.fixed,
        faults=None if not args.fixed else Faults.none(),
        orders=args.orders,
        seed_value=args.seed,
        record=not args.no_record,
        sqlcommenter=args.sqlcommenter,
        shape="constant" if args.constant else "stages",
        compress=args.compress,
        overwrite=args.overwrite,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
