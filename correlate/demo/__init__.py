"""A demo checkout service with planted faults, its load test, and a runner.

Run it (about 75 s; PostgreSQL, MariaDB or, with no ``dsn``, SQLite)::

    from correlate.demo import run_demo
    result = run_demo("runs/bf", dsn="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    print(result.summary())

Faults (each off with ``fixed=True``, or one by one with ``faults=Faults(...)``):
a missing index (sequential scan), an N+1 listing, a connection-pool leak
on the payment-declined path, and a hot row updated while a slow external call
holds its lock. See :mod:`correlate.demo.app`.
"""

from __future__ import annotations

from correlate.demo.errors import DemoError
from correlate.demo.faults import Faults
from correlate.demo.runner import DemoResult, load_stages, run_demo

__all__ = ["DemoError", "DemoResult", "Faults", "load_stages", "run_demo"]
