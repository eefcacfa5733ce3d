"""A FastAPI shop on SQLAlchemy 2.0 async and asyncpg, as such a service is instrumented.

Only the standard instrumentations: opentelemetry-instrumentation-fastapi (the SERVER
span and its ASGI ``http send`` spans) and opentelemetry-instrumentation-asyncpg (a
CLIENT span per statement, its text with asyncpg's ``$1`` markers); no SQLAlchemy
instrumentation, so waiting for the pool has no span. Served by uvicorn on loopback and
driven by concurrent requests from threads, one route after the other:

- ``GET /orders``: the 12 latest orders, then ``await session.get(Customer, …)`` per
  order — an async N+1;
- ``GET /dashboard``: five different counts awaited together with ``asyncio.gather``,
  each on a session (a connection) of its own, so their spans overlap;
- ``GET /report``: a slow aggregate on an engine with ``pool_size=2, max_overflow=0``,
  requested six at a time, so requests queue for a connection;
- ``GET /products/{product_id}``: one lookup by primary key, the clean route, requested
  two at a time: the main pool and the reports pool share one database, so correlate
  counts their holders as one pool's (docs/rules.md#unexplained_time), and three lookups
  held at once (a loaded machine makes them overlap) would make it a pool of three.

Tables are named ``<PREFIX>_…``; they are created here (dropped first) and left for
the caller to capture plans against and drop. Run as a subprocess (instrumentors patch
once per process).
Usage: python asyncpg_shop.py ASYNCPG_DSN PREFIX OUT.jsonl
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import ForeignKey, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DSN, PREFIX, OUT = sys.argv[1], sys.argv[2], sys.argv[3]


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = f"{PREFIX}_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Order(Base):
    __tablename__ = f"{PREFIX}_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey(Customer.id))
    total: Mapped[int]


class Product(Base):
    __tablename__ = f"{PREFIX}_products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Event(Base):
    """Rows for the slow report: ``kind`` has no index."""

    __tablename__ = f"{PREFIX}_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[int]
    payload: Mapped[str]


engines: dict[str, AsyncEngine] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # asyncpg connections belong to the loop that opened them: the server's
    engines["main"] = create_async_engine(DSN, pool_size=10, max_overflow=0)
    engines["reports"] = create_async_engine(DSN, pool_size=2, max_overflow=0, pool_timeout=30)
    yield
    for engine in engines.values():
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


def session(engine: str = "main") -> Any:
    return async_sessionmaker(engines[engine], expire_on_commit=False)()


@app.get("/orders")
async def orders() -> list[dict[str, object]]:
    async with session() as s:
        latest = (await s.scalars(select(Order).order_by(Order.id.desc()).limit(12))).all()
        out = []
        for order in latest:  # one round trip per order: the N+1
            customer = await s.get(Customer, order.customer_id)
            assert customer is not None
            out.append({"order": order.id, "customer": customer.name})
        return out


async def _count(statement: Any) -> int:
    async with session() as s:
        return int((await s.execute(statement)).scalar_one())


@app.get("/dashboard")
async def dashboard() -> dict[str, int]:
    # five different queries at once, each on a connection of its own
    names = ("customers", "orders", "products", "revenue", "big")
    counts = await asyncio.gather(
        _count(select(func.count()).select_from(Customer)),
        _count(select(func.count()).select_from(Order)),
        _count(select(func.count()).select_from(Product)),
        _count(select(func.coalesce(func.sum(Order.total), 0))),
        _count(select(func.count()).select_from(Order).where(Order.total > 500)),
    )
    return dict(zip(names, counts, strict=True))


@app.get("/report")
async def report(kind: int = 3) -> dict[str, int]:
    async with session("reports") as s:
        found = await s.execute(
            select(func.count(), func.max(func.length(Event.payload))).where(
                Event.kind == kind, Event.payload.like("%7%")
            )
        )
        n, longest = found.one()
        return {"events": int(n), "longest": int(longest or 0)}


@app.get("/products/{product_id}")
async def product(product_id: int) -> dict[str, object]:
    async with session() as s:
        p = await s.get(Product, product_id)
        return {"id": product_id, "name": p.name if p else None}


async def create_schema() -> None:
    engine = create_async_engine(DSN)
    async with engine.begin() as con:
        await con.run_sync(Base.metadata.drop_all)
        await con.run_sync(Base.metadata.create_all)
        for table, rows, columns in (
            ("customers", 50, "g, 'customer ' || g"),
            ("orders", 50, "g, g, g * 7 % 1000"),
            ("products", 50, "g, 'product ' || g"),
            ("events", 400_000, "g, g % 10, md5(g::text) || md5((g * 3)::text)"),
        ):
            await con.execute(
                text(
                    f"INSERT INTO {PREFIX}_{table} SELECT {columns} FROM generate_series(1, {rows}) g"
                )
            )
        await con.execute(text(f"ANALYZE {PREFIX}_events"))
    await engine.dispose()


def drive(base: str) -> None:
    """Each route under load of its own, one after the other."""

    def get(path: str) -> None:
        with urllib.request.urlopen(base + path, timeout=60) as response:
            assert response.status == 200, path
            response.read()

    phases = [
        (["/orders"] * 24, 2),
        (["/dashboard"] * 16, 2),
        (["/report"] * 18, 6),
        ([f"/products/{i % 50 + 1}" for i in range(30)], 2),
    ]
    for paths, concurrency in phases:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(get, paths))


def main() -> None:
    asyncio.run(create_schema())
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(OUT)))
    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    serving.start()
    while not server.started:
        time.sleep(0.02)
    try:
        drive(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        serving.join()
    provider.shutdown()


if __name__ == "__main__":
    main()
