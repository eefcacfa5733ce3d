"""The demo shop's tables, engine and deterministic seed data.

Tables are declared without a schema; on PostgreSQL and MariaDB/MySQL the
engine maps them into a schema of their own (``schema_translate_map``), so the
statements the service sends name ``correlate_demo.orders`` explicitly and can be
EXPLAINed later on a plain connection to the same database.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    create_engine,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "correlate_demo"
# The index whose absence is planted fault 1.
CUSTOMER_INDEX = "ix_orders_customer_id"
EPOCH = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # the Black Friday of the story


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    region: Mapped[str] = mapped_column(String(16))


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(80))
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # No index=True here on purpose: whether it exists is a fault flag (seed()).
    # No FOREIGN KEY constraints either: checking them row by row made COPY of
    # the seed data take three times as long, and no fault depends on them.
    customer_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    total_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order",
        lazy="select",
        primaryjoin="Order.id == foreign(OrderItem.order_id)",
    )


class OrderItem(Base):
    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer, index=True)
    product_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(Integer)
    order: Mapped[Order] = relationship(
        back_populates="items", primaryjoin="Order.id == foreign(OrderItem.order_id)"
    )


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class Scale:
    """Row counts derived from the number of orders."""

    orders: int

    @property
    def customers(self) -> int:
        return max(50, self.orders // 40)

    @property
    def products(self) -> int:
        return 500


def uses_schema(engine_or_url: Any) -> bool:
    url = make_url(engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url)
    return url.get_backend_name() in ("postgresql", "mysql", "mariadb")


def make_engine(
    dsn: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 2.5,
    null_pool: bool = False,
) -> Engine:
    """An engine for the demo; SQLite gets WAL and a busy timeout for threads."""
    url = make_url(dsn)
    kwargs: dict[str, Any] = {}
    if null_pool:
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def scoped(engine: Engine, schema: str) -> Engine:
    """The engine the service uses: tables mapped into ``schema`` where supported."""
    if uses_schema(engine):
        return engine.execution_options(schema_translate_map={None: schema})
    return engine


def _rows_customers(rng: random.Random, n: int) -> Iterator[tuple[Any, ...]]:
    regions = ("eu", "us", "apac", "latam")
    for i in range(1, n + 1):
        yield (i, f"Customer {i}", f"customer{i}@example.com", rng.choice(regions))


def _rows_products(rng: random.Random, n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        yield (i, f"Product {i}", rng.randrange(199, 19_999), rng.randrange(0, 500))


def _rows_orders_and_items(
    rng: random.Random, scale: Scale, prices: Sequence[int]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    start = EPOCH - timedelta(days=365)
    step = timedelta(days=365) / scale.orders
    statuses = ("shipped",) * 8 + ("delivered", "cancelled")
    item_id = 0
    # rng.random() arithmetic instead of randint(): five times faster, and
    # seeding 200k orders should take seconds.
    draw = rng.random
    n_products, n_customers, n_statuses = scale.products, scale.customers, len(statuses)
    for order_id in range(1, scale.orders + 1):
        total = 0
        for _ in range(1 + int(draw() * 3)):
            item_id += 1
            product = 1 + int(draw() * n_products)
            qty = 1 + int(draw() * 3)
            price = prices[product - 1]
            total += qty * price
            items.append((item_id, order_id, product, qty, price))
        created = start + step * order_id
        customer = 1 + int(draw() * n_customers)
        orders.append((order_id, customer, statuses[int(draw() * n_statuses)], total, created))
    return orders, items


def reset_schema(engine: Engine, schema: str) -> None:
    """Drop and recreate the demo's tables (in their own schema where supported)."""
    backend = engine.url.get_backend_name()
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        elif backend in ("mysql", "mariadb"):
            conn.execute(text(f"DROP DATABASE IF EXISTS `{schema}`"))
            conn.execute(text(f"CREATE DATABASE `{schema}`"))
        else:
            Base.metadata.drop_all(conn)
    with scoped(engine, schema).begin() as conn:
        Base.metadata.create_all(conn)


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text_value = str(value)
    if isinstance(value, str):
        text_value = text_value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return text_value


def _copy_pg(engine: Engine, schema: str, table: str, columns: str, rows: Any) -> None:
    # COPY in text format, written in large chunks: psycopg's write_row() per
    # row made seeding 200k orders take ~14 s instead of ~3 s.
    raw: Any = engine.raw_connection()
    qualified = f'"{schema}".{table}'
    try:
        with raw.cursor() as cur:
            with cur.copy(f"COPY {qualified} ({columns}) FROM STDIN") as cp:
                chunk: list[str] = []
                for row in rows:
                    chunk.append("\t".join(map(_copy_text, row)) + "\n")
                    if len(chunk) >= 50_000:
                        cp.write("".join(chunk))
                        chunk = []
                if chunk:
                    cp.write("".join(chunk))
            # Explicit ids leave a serial sequence at 1; move it past them so
            # the service's INSERTs do not collide with seeded rows.
            cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (qualified,))
            found = cur.fetchone()
            if found and found[0]:
                cur.execute(f"SELECT setval(%s, (SELECT max(id) FROM {qualified}))", (found[0],))
        raw.commit()
    finally:
        raw.close()


def _insert_many(engine: Engine, schema: str, model: type[Base], rows: Any) -> None:
    table: Any = model.__table__
    names = [c.name for c in table.columns]
    batch: list[dict[str, Any]] = []
    with scoped(engine, schema).begin() as conn:
        for row in rows:
            batch.append(dict(zip(names, row, strict=True)))
            if len(batch) >= 20_000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)


def seed(
    dsn: str,
    *,
    orders: int = 200_000,
    seed: int = 42,
    missing_index: bool = True,
    schema: str = DEFAULT_SCHEMA,
) -> float:
    """Create and fill the shop deterministically; return the seconds it took.

    Same ``seed`` and ``orders`` give the same rows on every backend. The
    ``orders.customer_id`` index is created only when ``missing_index`` is False.
    """
    began = time.perf_counter()
    scale = Scale(orders)
    rng = random.Random(seed)
    engine = make_engine(dsn, null_pool=True)
    try:
        reset_schema(engine, schema)
        customers = list(_rows_customers(rng, scale.customers))
        products = list(_rows_products(rng, scale.products))
        order_rows, item_rows = _rows_orders_and_items(rng, scale, [p[2] for p in products])
        data: list[tuple[type[Base], list[tuple[Any, ...]]]] = [
            (Customer, customers),
            (Product, products),
            (Order, order_rows),
            (OrderItem, item_rows),
        ]
        backend = engine.url.get_backend_name()
        for model, rows in data:
            if backend == "postgresql":
                cols = ", ".join(c.name for c in model.__table__.columns)
                _copy_pg(engine, schema, model.__tablename__, cols, rows)
            else:
                _insert_many(engine, schema, model, rows)
        prefix = f"{_quote(backend, schema)}." if uses_schema(engine) else ""
        with engine.begin() as conn:
            if not missing_index:
                conn.execute(text(f"CREATE INDEX {CUSTOMER_INDEX} ON {prefix}orders (customer_id)"))
            if backend == "postgresql":
                # Fresh statistics, so the planner's choice reflects the index, not stale counts.
                conn.execute(
                    text(
                        f"ANALYZE {prefix}customers, {prefix}products, {prefix}orders, {prefix}order_items"
                    )
                )
            elif backend in ("mysql", "mariadb"):
                conn.execute(text(f"ANALYZE TABLE {prefix}orders, {prefix}order_items"))
            else:
                conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    took = time.perf_counter() - began
    logger.info(
        "seeded %d orders, %d items, %d customers in %.1f s (index on orders.customer_id: %s)",
        len(order_rows),
        len(item_rows),
        scale.customers,
        took,
        not missing_index,
    )
    return took


def _quote(backend: str, name: str) -> str:
    return f"`{name}`" if backend in ("mysql", "mariadb") else f'"{name}"'
