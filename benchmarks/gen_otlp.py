#!/usr/bin/env python
"""Write realistic OTLP/JSON span files, deterministically, for benchmarks and tests.

The output imitates a load test against three Python services exported through
``BatchSpanProcessor`` into an OTLP/JSON lines file: one ``{"resourceSpans":[...]}``
request per line, each line the batch of one worker process (so it carries one resource
and two or three scopes). The content follows what the real instrumentation writes
(FastAPI/Flask and SQLAlchemy instrumentation 0.66b1 with SDK 1.45.1, checked against
their output): SQLAlchemy 2.0 + psycopg 3 statement text with ``::INTEGER`` bind casts,
lazy-load N+1 patterns, ``insertmanyvalues`` batches, hand-written SQL with inlined
literals, and each of the semantic-convention modes a service may run in.

Usage::

    python benchmarks/gen_otlp.py --spans 1000000 --out /tmp/bench/1m.jsonl [--seed 1] [--jobs 2]
    python benchmarks/gen_otlp.py --spans 2000 --out /tmp/s.jsonl.gz --gzip

In Python::

    counts = generate("/tmp/spans.jsonl", spans=2000)
    counts["spans"]  # 2000
"""

from __future__ import annotations

import argparse
import bisect
import gzip as gzip_module
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["SERVICES", "SHAPES", "Service", "Shape", "generate", "main"]

# 2026-11-24T20:20:00Z: a fixed origin keeps output identical across machines and days.
RUN_START_NS = 1_795_594_800_000_000_000
DB_NAME = "shop"
SDK_VERSION = "1.45.1"
INSTRUMENTATION_VERSION = "0.66b1"
MAX_DB_SPANS = 40  # connect + queries per request
ERROR_RATE = 0.01  # share of requests that end in a 5xx
BSP_SCHEDULE_DELAY_NS = 5_000_000_000  # BatchSpanProcessor exports at least this often
POOL_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 3000
_SPANS_PER_SECOND = 1600  # at peak load (~150 requests/s); sets the simulated run length
_SEGMENT_SPANS = 1 << 18  # unit of work: each segment is generated on its own
_FINISH_AT = 100  # below this many spans left, traces are sized to land exactly on --spans

# --------------------------------------------------------------------------------------
# OTLP/JSON fragments. Built as strings: json.dumps of nested dicts is several times
# slower than formatting templates whose constant parts are escaped once.


def _esc(text: str) -> str:
    return json.dumps(text)[1:-1]


def _kv_s(key: str, value: str) -> str:
    return f'{{"key":"{key}","value":{{"stringValue":"{_esc(value)}"}}}}'


def _kv_i(key: str, value: int | str) -> str:
    # OTLP/JSON writes 64-bit integers as decimal strings.
    return f'{{"key":"{key}","value":{{"intValue":"{value}"}}}}'


# --------------------------------------------------------------------------------------
# Statement shapes


@dataclass(frozen=True)
class Shape:
    """One statement shape: SQL with ``{0}``-style slots that vary per execution.

    Slot kinds: ``("in", param)`` an expanding IN list of bind parameters, ``("rows", row)``
    an ``insertmanyvalues`` VALUES list (``row`` has ``{i}``), ``("int", lo, hi)``,
    ``("pick", options)`` and ``("ilist", lo, hi)`` literals inlined by hand-written SQL.
    """

    key: str
    sql: str
    base_ms: float
    slots: tuple[tuple[Any, ...], ...] = ()

    @property
    def operation(self) -> str:
        # The instrumentation names the span after the statement's first word, case kept.
        return self.sql.split(None, 1)[0]

    @property
    def sized(self) -> bool:
        return any(s[0] in ("in", "rows") for s in self.slots)

    @property
    def literal(self) -> bool:
        return any(s[0] not in ("in", "rows") for s in self.slots)


_TABLES: dict[str, tuple[str, ...]] = {
    "customers": ("id", "email", "full_name", "tier", "created_at"),
    "addresses": ("id", "customer_id", "line1", "city", "postcode", "country"),
    "orders": (
        "id",
        "customer_id",
        "status",
        "total_cents",
        "currency",
        "created_at",
        "updated_at",
    ),
    "order_items": ("id", "order_id", "product_id", "quantity", "unit_price_cents"),
    "shipments": ("id", "order_id", "carrier", "tracking_no", "status", "shipped_at"),
    "products": ("id", "sku", "name", "category_id", "price_cents", "active", "created_at"),
    "categories": ("id", "slug", "name", "parent_id"),
    "inventory": ("product_id", "warehouse_id", "quantity", "reserved"),
    "reviews": ("id", "product_id", "customer_id", "rating", "body", "created_at"),
    "carts": ("id", "customer_id", "updated_at"),
    "cart_items": ("id", "cart_id", "product_id", "quantity"),
    "payments": ("id", "order_id", "provider", "amount_cents", "status", "created_at"),
    "coupons": ("id", "code", "percent_off", "expires_at"),
}
# (child table, foreign-key column, parent table)
_FKS: tuple[tuple[str, str, str], ...] = (
    ("addresses", "customer_id", "customers"),
    ("orders", "customer_id", "customers"),
    ("order_items", "order_id", "orders"),
    ("order_items", "product_id", "products"),
    ("shipments", "order_id", "orders"),
    ("products", "category_id", "categories"),
    ("inventory", "product_id", "products"),
    ("reviews", "product_id", "products"),
    ("reviews", "customer_id", "customers"),
    ("carts", "customer_id", "customers"),
    ("cart_items", "cart_id", "carts"),
    ("cart_items", "product_id", "products"),
    ("payments", "order_id", "orders"),
)
_STATUSES = {
    "orders": ("new", "paid", "shipped", "cancelled", "refunded"),
    "shipments": ("pending", "in_transit", "delivered", "returned"),
    "payments": ("authorized", "captured", "failed", "refunded"),
}


def _cast(col: str) -> str:
    # SQLAlchemy 2.0's psycopg dialect renders a cast after most bind parameters;
    # Boolean and Numeric binds get none.
    if col == "id" or col.endswith(("_id", "_cents")) or col in _INT_COLS:
        return "::INTEGER"
    if col.endswith("_at"):
        return "::TIMESTAMP WITHOUT TIME ZONE"
    if col == "active":
        return ""
    return "::VARCHAR"


_INT_COLS = frozenset({"quantity", "reserved", "rating", "percent_off"})


def _bind(name: str, col: str) -> str:
    return f"%({name})s{_cast(col)}"


def _cols(table: str, alias: str | None = None, label: bool = False) -> str:
    ref = alias or table
    if label:
        return ", ".join(f"{ref}.{c} AS {ref}_{c}" for c in _TABLES[table])
    return ", ".join(f"{ref}.{c}" for c in _TABLES[table])


def _order_col(table: str) -> str:
    return "created_at" if "created_at" in _TABLES[table] else "id"


def _pk_where(table: str) -> str:
    if table == "inventory":
        return (
            "inventory.product_id = %(pk_1)s::INTEGER "
            "AND inventory.warehouse_id = %(pk_2)s::INTEGER"
        )
    return f"{table}.id = %(pk_1)s::INTEGER"


def _orm_shapes() -> list[Shape]:
    """Statements the SQLAlchemy 2.0 ORM and Core compile, one family per loading pattern."""
    out: list[Shape] = []
    for t in _TABLES:
        out.append(
            Shape(
                f"get:{t}", f"SELECT {_cols(t, label=True)} \nFROM {t} \nWHERE {_pk_where(t)}", 0.3
            )
        )
    for c, fk, _p in _FKS:
        w = f"{c}.{fk} = {_bind(fk + '_1', fk)}"
        ob = _order_col(c)
        out.append(Shape(f"by:{c}.{fk}", f"SELECT {_cols(c)} \nFROM {c} \nWHERE {w}", 0.7))
        # A lazy load puts the bind parameter on the left.
        out.append(
            Shape(
                f"lazy:{c}.{fk}",
                f"SELECT {_cols(c, label=True)} \nFROM {c} \nWHERE %(param_1)s::INTEGER = {c}.{fk}",
                0.5,
            )
        )
        out.append(
            Shape(
                f"page:{c}.{fk}",
                f"SELECT {_cols(c)} \nFROM {c} \nWHERE {w} ORDER BY {c}.{ob} DESC \n"
                " LIMIT %(param_1)s::INTEGER OFFSET %(param_2)s::INTEGER",
                1.4,
            )
        )
        out.append(
            Shape(
                f"in:{c}.{fk}",
                f"SELECT {c}.{fk} AS {c}_{fk}, {_cols(c, label=True)} \nFROM {c} \n"
                f"WHERE {c}.{fk} IN ({{0}})",
                0.6,
                (("in", "primary_keys", _cast(fk)),),
            )
        )
    for c, fk, p in _FKS:
        a = f"{c}_1"
        out.append(
            Shape(
                f"join:{c}.{fk}",
                f"SELECT {_cols(p, label=True)}, {_cols(c, a, label=True)} \n"
                f"FROM {p} LEFT OUTER JOIN {c} AS {a} ON {p}.id = {a}.{fk} \n"
                f"WHERE {p}.id = %(id_1)s::INTEGER",
                1.6,
            )
        )
        out.append(
            Shape(
                f"count:{c}.{fk}",
                "SELECT count(*) AS count_1 \nFROM (SELECT "
                + ", ".join(f"{c}.{col} AS {col}" for col in _TABLES[c])
                + f" \nFROM {c} \nWHERE {c}.{fk} = {_bind(fk + '_1', fk)}) AS anon_1",
                2.5,
            )
        )
        out.append(
            Shape(
                f"group:{c}.{fk}",
                f"SELECT {c}.{fk}, count(*) AS count_1 \nFROM {c} \n"
                f"WHERE {c}.{fk} IN ({{0}}) GROUP BY {c}.{fk}",
                2.0,
                (("in", f"{fk}_1", _cast(fk)),),
            )
        )
    for t, cols in _TABLES.items():
        ins = [c for c in cols if c != "id"]
        returning = "" if t == "inventory" else f" RETURNING {t}.id"
        if "created_at" in ins:
            # server_default=now(): the ORM leaves the column out and fetches it back.
            ins.remove("created_at")
            returning = f" RETURNING {t}.id, {t}.created_at"
        values = ", ".join(_bind(c, c) for c in ins)
        out.append(
            Shape(
                f"ins:{t}", f"INSERT INTO {t} ({', '.join(ins)}) VALUES ({values}){returning}", 0.6
            )
        )
        settable = [c for c in cols if c not in ("id", "created_at") and not c.endswith("_id")]
        sets = ", ".join(f"{c}={_bind(c, c)}" for c in settable[-2:])
        where = (
            "inventory.product_id = %(inventory_product_id)s::INTEGER AND "
            "inventory.warehouse_id = %(inventory_warehouse_id)s::INTEGER"
            if t == "inventory"
            else f"{t}.id = %({t}_id)s::INTEGER"
        )
        out.append(Shape(f"upd:{t}", f"UPDATE {t} SET {sets} WHERE {where}", 0.5))
    for t in ("order_items", "cart_items", "reviews"):
        ins = [c for c in _TABLES[t] if c not in ("id", "created_at")]
        ps = ", ".join(f"p{i}{_cast(c)}" for i, c in enumerate(ins))
        row = "(" + ", ".join(f"%({c}__{{i}})s{_cast(c)}" for c in ins) + ", {i})"
        out.append(
            Shape(
                f"insmany:{t}",
                f"INSERT INTO {t} ({', '.join(ins)}) SELECT {ps} FROM (VALUES {{0}}) "
                f"AS imp_sen({', '.join(f'p{i}' for i in range(len(ins)))}, sen_counter) "
                f"ORDER BY sen_counter RETURNING {t}.id, {t}.id AS id__1",
                0.9,
                (("rows", row),),
            )
        )
    for t in ("cart_items", "carts", "addresses", "reviews", "coupons"):
        out.append(Shape(f"del:{t}", f"DELETE FROM {t} WHERE {t}.id = %(id)s::INTEGER", 0.4))
    out.append(
        Shape(
            "delby:cart_items.cart_id",
            "DELETE FROM cart_items WHERE cart_items.cart_id = %(cart_id_1)s::INTEGER",
            0.6,
        )
    )
    for t in ("orders", "inventory", "payments", "carts", "coupons", "products"):
        out.append(
            Shape(
                f"lock:{t}", f"SELECT {_cols(t)} \nFROM {t} \nWHERE {_pk_where(t)} FOR UPDATE", 0.5
            )
        )
    out += [
        Shape(
            "upd2:inventory.take",
            "UPDATE inventory SET quantity=(inventory.quantity - %(quantity_1)s::INTEGER), "
            "reserved=(inventory.reserved + %(reserved_1)s::INTEGER) WHERE inventory.product_id = "
            "%(product_id_1)s::INTEGER AND inventory.warehouse_id = %(warehouse_id_1)s::INTEGER",
            0.7,
        ),
        Shape(
            "upd2:orders.status",
            "UPDATE orders SET status=%(status)s::VARCHAR, updated_at=now() WHERE orders.id = "
            "%(id_1)s::INTEGER RETURNING orders.updated_at",
            0.6,
        ),
        Shape(
            "upd2:carts.touch",
            "UPDATE carts SET updated_at=now() WHERE carts.id = %(id_1)s::INTEGER",
            0.4,
        ),
        Shape(
            "get:categories.slug",
            f"SELECT {_cols('categories')} \nFROM categories \n"
            "WHERE categories.slug = %(slug_1)s::VARCHAR",
            0.3,
        ),
        Shape(
            "get:coupons.code",
            f"SELECT {_cols('coupons')} \nFROM coupons \nWHERE coupons.code = %(code_1)s::VARCHAR "
            "AND coupons.expires_at > now()",
            0.3,
        ),
        Shape(
            "upsert:inventory",
            "INSERT INTO inventory (product_id, warehouse_id, quantity, reserved) VALUES "
            "(%(product_id)s::INTEGER, %(warehouse_id)s::INTEGER, %(quantity)s::INTEGER, "
            "%(reserved)s::INTEGER) ON CONFLICT (product_id, warehouse_id) DO UPDATE SET "
            "quantity = excluded.quantity",
            0.8,
        ),
        Shape(
            "upsert:cart_items",
            "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES (%(cart_id)s::INTEGER, "
            "%(product_id)s::INTEGER, %(quantity)s::INTEGER) ON CONFLICT (cart_id, product_id) DO "
            "UPDATE SET quantity = (cart_items.quantity + excluded.quantity) "
            "RETURNING cart_items.id",
            0.7,
        ),
        Shape(
            "lockxact",
            "SELECT pg_advisory_xact_lock(%(pg_advisory_xact_lock_1)s::BIGINT) AS "
            "pg_advisory_xact_lock_1",
            0.2,
        ),
        Shape(
            "cte:top_customers",
            "WITH recent AS \n(SELECT orders.customer_id AS customer_id, orders.total_cents AS "
            "total_cents \nFROM orders \nWHERE orders.created_at > %(created_at_1)s::TIMESTAMP "
            "WITHOUT TIME ZONE)\n SELECT recent.customer_id, sum(recent.total_cents) AS sum_1 \n"
            "FROM recent GROUP BY recent.customer_id ORDER BY sum_1 DESC \n"
            " LIMIT %(param_1)s::INTEGER",
            14.0,
        ),
        Shape(
            "cte:bestsellers",
            "WITH sold AS \n(SELECT order_items.product_id AS product_id, "
            "sum(order_items.quantity) AS qty \nFROM order_items JOIN orders ON "
            "orders.id = order_items.order_id \nWHERE orders.status = %(status_1)s::VARCHAR AND "
            "orders.created_at > %(created_at_1)s::TIMESTAMP WITHOUT TIME ZONE "
            "GROUP BY order_items.product_id)\n SELECT products.id, "
            "products.name, sold.qty \nFROM products JOIN sold ON products.id = sold.product_id "
            "ORDER BY sold.qty DESC \n LIMIT %(param_1)s::INTEGER",
            22.0,
        ),
        Shape(
            "window:reviews",
            "SELECT anon_1.id, anon_1.product_id, anon_1.rating, anon_1.body \nFROM (SELECT "
            "reviews.id AS id, reviews.product_id AS product_id, reviews.rating AS rating, "
            "reviews.body AS body, row_number() OVER (PARTITION BY reviews.product_id ORDER BY "
            "reviews.created_at DESC) AS rn \nFROM reviews \nWHERE reviews.product_id IN ({0})) "
            "AS anon_1 \nWHERE anon_1.rn <= %(rn_1)s::INTEGER",
            4.0,
            (("in", "product_id_1", "::INTEGER"),),
        ),
        Shape(
            "window:orders",
            "SELECT anon_1.id, anon_1.customer_id, anon_1.total_cents \nFROM (SELECT orders.id AS "
            "id, orders.customer_id AS customer_id, orders.total_cents AS total_cents, rank() OVER "
            "(PARTITION BY orders.customer_id ORDER BY orders.total_cents DESC) AS rnk \nFROM "
            "orders \nWHERE orders.customer_id IN ({0})) AS anon_1 \nWHERE anon_1.rnk = "
            "%(rnk_1)s::INTEGER",
            5.0,
            (("in", "customer_id_1", "::INTEGER"),),
        ),
        Shape(
            "exists:customers.orders",
            f"SELECT {_cols('customers')} \nFROM customers \nWHERE EXISTS (SELECT 1 \nFROM orders "
            "\nWHERE customers.id = orders.customer_id AND orders.status = %(status_1)s::VARCHAR) "
            "ORDER BY customers.created_at DESC \n LIMIT %(param_1)s::INTEGER",
            9.0,
        ),
        Shape(
            "exists:products.stock",
            f"SELECT {_cols('products')} \nFROM products \nWHERE products.category_id = "
            "%(category_id_1)s::INTEGER AND (EXISTS (SELECT 1 \nFROM inventory \nWHERE "
            "products.id = inventory.product_id AND inventory.quantity > %(quantity_1)s::INTEGER))"
            " ORDER BY products.price_cents \n LIMIT %(param_1)s::INTEGER",
            6.0,
        ),
        Shape(
            "exists:carts.items",
            "SELECT carts.id, carts.customer_id, carts.updated_at \nFROM carts \nWHERE "
            "carts.updated_at < %(updated_at_1)s::TIMESTAMP WITHOUT TIME ZONE AND (EXISTS (SELECT "
            "1 \nFROM cart_items \nWHERE carts.id = cart_items.cart_id)) \n LIMIT %(param_1)s::"
            "INTEGER",
            11.0,
        ),
        Shape(
            "scan:orders.status",
            # No index on orders.status: the slow query a diagnosis should find.
            f"SELECT {_cols('orders')} \nFROM orders \nWHERE orders.status = %(status_1)s::VARCHAR "
            "ORDER BY orders.created_at \n LIMIT %(param_1)s::INTEGER",
            45.0,
        ),
        Shape(
            "search:products",
            f"SELECT {_cols('products')} \nFROM products \nWHERE products.name ILIKE "
            "%(name_1)s::VARCHAR AND products.active ORDER BY products.name \n"
            " LIMIT %(param_1)s::INTEGER",
            7.0,
        ),
    ]
    return out


def _text_shapes() -> list[Shape]:
    """Hand-written ``text()`` SQL with literals inlined, lower case, laid out by hand."""
    out: list[Shape] = []
    limits = ("pick", ("10", "20", "25", "50", "100"))
    for t in ("orders", "products", "reviews", "payments", "customers"):
        cols = ", ".join(_TABLES[t][:4])
        out.append(
            Shape(
                f"txt:recent:{t}",
                f"select {cols}\n  from {t}\n where created_at > now() - interval '{{0}} minutes'"
                "\n order by created_at desc\n limit {1}",
                3.0,
                (("pick", ("5", "15", "30", "60", "240")), limits),
            )
        )
    for t, statuses in _STATUSES.items():
        out.append(
            Shape(
                f"txt:status:{t}",
                f"select count(*) from {t} where status = '{{0}}'",
                12.0,
                (("pick", statuses),),
            )
        )
    for c, fk in (
        ("products", "category_id"),
        ("orders", "customer_id"),
        ("reviews", "product_id"),
        ("order_items", "order_id"),
        ("addresses", "customer_id"),
    ):
        out.append(
            Shape(
                f"txt:page:{c}",
                f"select * from {c} where {fk} = {{0}} order by id limit {{1}} offset {{2}}",
                1.8,
                (("int", 1, 50_000), limits, ("pick", ("0", "20", "40", "60", "100", "200"))),
            )
        )
    for t in ("products", "customers", "orders", "coupons", "categories"):
        out.append(
            Shape(
                f"txt:ids:{t}",
                f"select id, {_TABLES[t][1]} from {t} where id in ({{0}})",
                0.9,
                (("ilist", 1, 200_000),),
            )
        )
    for t in ("orders", "payments", "reviews"):
        out.append(
            Shape(
                f"txt:buckets:{t}",
                f"select date_trunc('{{0}}', created_at) as bucket, count(*)\n  from {t}\n"
                f" where created_at >= now() - interval '{{1}} days'\n group by 1\n order by 1",
                35.0,
                (("pick", ("hour", "day")), ("int", 1, 30)),
            )
        )
    out += [
        Shape(
            "txt:price_range",
            "select id, sku, name, price_cents from products where category_id = {0} and "
            "price_cents between {1} and {2} and active order by price_cents limit {3}",
            2.2,
            (("int", 1, 120), ("int", 100, 2000), ("int", 2000, 90_000), limits),
        ),
        Shape(
            "txt:newest_in_category",
            "select id, sku, name, price_cents, created_at from products where category_id = {0} "
            "and active order by created_at desc limit {1}",
            2.0,
            (("int", 1, 120), limits),
        ),
        Shape(
            "txt:ilike:products",
            "select id, sku, name from products where name ilike '%{0}%' limit {1}",
            16.0,
            (("pick", ("lamp", "chair", "desk", "mug", "cable", "shelf", "rug")), limits),
        ),
        Shape(
            "txt:ilike:customers",
            "select id, email, full_name from customers where email ilike '{0}%' limit 20",
            14.0,
            (("pick", ("ann", "bob", "li", "mo", "sam", "zoe")),),
        ),
        Shape(
            "txt:reserve",
            "update inventory set reserved = reserved + {0} where product_id = {1} and "
            "warehouse_id = {2}",
            0.8,
            (("int", 1, 5), ("int", 1, 200_000), ("int", 1, 6)),
        ),
        Shape(
            "txt:set_status",
            "update orders set status = '{0}', updated_at = now() where id = {1}",
            0.7,
            (("pick", _STATUSES["orders"]), ("int", 1, 500_000)),
        ),
        Shape(
            "txt:touch_cart",
            "update carts set updated_at = now() where id = {0}",
            0.4,
            (("int", 1, 90_000),),
        ),
        Shape(
            "txt:order_total",
            "select coalesce(sum(quantity * unit_price_cents), 0) from order_items "
            "where order_id = {0}",
            0.6,
            (("int", 1, 500_000),),
        ),
        Shape(
            "txt:rating",
            "select avg(rating)::numeric(3,2), count(*) from reviews where product_id = {0}",
            1.1,
            (("int", 1, 200_000),),
        ),
        Shape("txt:ping", "select 1", 0.1),
    ]
    for c, fk, p in _FKS:
        ca, pa = c[0] + "x", p[0]
        out.append(
            Shape(
                f"txt:join:{c}.{fk}",
                f"select {ca}.*, {pa}.{_TABLES[p][1]}\n  from {c} {ca}\n  join {p} {pa} on "
                f"{pa}.id = {ca}.{fk}\n where {ca}.{fk} = {{0}}\n limit {{1}}",
                1.5,
                (("int", 1, 200_000), limits),
            )
        )
    return out


def _build_shapes() -> tuple[Shape, ...]:
    shapes = _orm_shapes() + _text_shapes()
    # A fixed spread of per-shape cost so shapes of one family do not all cost the same.
    spread = random.Random(20261124)
    return tuple(
        Shape(s.key, s.sql, round(s.base_ms * spread.uniform(0.6, 1.7), 3), s.slots) for s in shapes
    )


SHAPES: tuple[Shape, ...] = _build_shapes()
_IDX: dict[str, int] = {s.key: i for i, s in enumerate(SHAPES)}
assert len(_IDX) == len(SHAPES), "shape keys must be unique"


def _render_slot(slot: tuple[Any, ...], n: int, rng: random.Random) -> str:
    kind = slot[0]
    if kind == "in":
        name, cast = slot[1], slot[2]
        return ", ".join(f"%({name}_{i})s{cast}" for i in range(1, n + 1))
    if kind == "rows":
        row = str(slot[1])
        return ", ".join(row.format(i=i) for i in range(n))
    if kind == "int":
        return str(rng.randint(slot[1], slot[2]))
    if kind == "pick":
        options = slot[1]
        return str(options[rng.randrange(len(options))])
    if kind == "ilist":
        lo, hi = slot[1], slot[2]
        return ", ".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(2, 24)))
    raise ValueError(f"unknown slot kind {kind!r}")


# --------------------------------------------------------------------------------------
# Services, processes and routes


@dataclass(frozen=True)
class Service:
    """One instrumented service; ``semconv`` is its OTEL_SEMCONV_STABILITY_OPT_IN."""

    name: str
    version: str
    framework: str  # "fastapi" or "flask"
    semconv: str
    workers: int
    app_scope: str
    db_host: str
    db_user: str

    @property
    def db_new(self) -> bool:
        return "database" in self.semconv

    @property
    def http_dup(self) -> bool:
        return "http/dup" in self.semconv


SERVICES: tuple[Service, ...] = (
    # http/dup: both HTTP name sets on server spans, and net.peer.* beside server.* on DB spans.
    Service(
        "shop-api",
        "2.14.0",
        "fastapi",
        "http/dup",
        4,
        "shop_api.services",
        "pg-primary",
        "shop_app",
    ),
    # database,http: stable names everywhere (db.query.text, db.namespace, server.address).
    Service(
        "catalog-api",
        "0.9.3",
        "fastapi",
        "database,http",
        2,
        "catalog_api.repository",
        "pg-replica",
        "catalog_ro",
    ),
    # http alone: old db.* names, but the peer already moved to server.address.
    Service(
        "checkout-api",
        "1.31.2",
        "flask",
        "http",
        2,
        "checkout_api.checkout",
        "pg-primary",
        "checkout_app",
    ),
)
_DB_PORT = 5432
_HTTP_PORT = 8000
_SCOPE_HTTP, _SCOPE_DB, _SCOPE_APP = 0, 1, 2

Block = tuple[str | None, list[tuple[int, int]]]  # (INTERNAL span name or None, [(shape, n)])
Plan = Callable[[random.Random], list[Block]]


@dataclass(frozen=True)
class _Route:
    service: int
    method: str
    route: str
    weight: float
    path: Callable[[random.Random], tuple[str, str]]  # url.path, url.query
    plan: Plan
    ok_status: int = 200
    not_found: float = 0.0  # chance the first lookup finds nothing: 404 after one query


def _q(key: str, n: int = 0) -> tuple[int, int]:
    return (_IDX[key], n)


def _rid(rng: random.Random, hi: int = 500_000) -> int:
    return rng.randint(1, hi)


def _plan_get_order(rng: random.Random) -> list[Block]:
    items = rng.randint(1, 9)
    core = [_q("get:orders"), _q("in:order_items.order_id", 1), _q("in:payments.order_id", 1)]
    core += [_q("get:products")] * items  # many-to-one lazy loads: one get per item
    tail = [_q("by:shipments.order_id"), _q("get:customers")]
    return [("OrderService.get_order", core), (None, tail)]


def _plan_list_orders(rng: random.Random) -> list[Block]:
    n = min(int(rng.paretovariate(1.4) * 6), 36)  # N+1: one lazy load per order on the page
    return [
        (
            "OrderRepository.list_for_customer",
            [_q("page:orders.customer_id"), _q("count:orders.customer_id")],
        ),
        ("OrderSerializer.dump", [_q("lazy:order_items.order_id")] * n),
    ]


def _plan_customer(rng: random.Random) -> list[Block]:
    qs = [_q("get:customers"), _q("by:addresses.customer_id"), _q("join:orders.customer_id")]
    if rng.random() < 0.5:
        qs.append(_q("group:orders.customer_id", rng.randint(1, 3)))
    return [(None, qs)]


_STATS_EXTRA = (
    "cte:top_customers",
    "exists:customers.orders",
    "txt:status:orders",
    "scan:orders.status",
)


def _plan_customer_stats(rng: random.Random) -> list[Block]:
    summary = [
        _q("get:customers"),
        _q("window:orders", rng.randint(1, 4)),
        _q("txt:order_total"),
        _q("txt:recent:orders"),
    ]
    return [("StatsService.customer_summary", summary), (None, [_q(rng.choice(_STATS_EXTRA))])]


def _plan_update_order(rng: random.Random) -> list[Block]:
    qs = [_q("lock:orders"), _q("upd:orders")]
    if rng.random() < 0.4:
        qs.append(_q("ins:shipments"))
    qs.append(_q("txt:set_status") if rng.random() < 0.3 else _q("upd2:orders.status"))
    return [("OrderService.update", qs)]


def _plan_product(rng: random.Random) -> list[Block]:
    return [
        (None, [_q("get:products"), _q("get:categories"), _q("by:inventory.product_id")]),
        ("ReviewRepository.latest", [_q("page:reviews.product_id"), _q("txt:rating")]),
    ]


def _plan_search(rng: random.Random) -> list[Block]:
    n = rng.choice((10, 20, 20, 20, 50))
    first = _q("search:products") if rng.random() < 0.6 else _q("txt:ilike:products")
    return [(None, [first, _q("in:inventory.product_id", n), _q("group:reviews.product_id", n)])]


def _plan_category(rng: random.Random) -> list[Block]:
    n = rng.randint(5, 30)
    listing = _q("txt:price_range") if rng.random() < 0.5 else _q("txt:newest_in_category")
    qs = [_q("get:categories.slug"), listing, _q("in:inventory.product_id", n)]
    if rng.random() < 0.3:
        qs.append(_q("exists:products.stock"))
    return [("CategoryRepository.products", qs)]


def _plan_reviews(rng: random.Random) -> list[Block]:
    n = rng.randint(1, 20)
    return [
        (None, [_q("page:reviews.product_id"), _q("count:reviews.product_id")]),
        ("ReviewSerializer.dump", [_q("get:customers")] * n),
    ]


def _plan_cart(rng: random.Random) -> list[Block]:
    n = rng.randint(0, 8)
    return [
        (
            None,
            [_q("by:carts.customer_id"), _q("in:cart_items.cart_id", 1)] + [_q("get:products")] * n,
        )
    ]


def _plan_add_item(rng: random.Random) -> list[Block]:
    write = _q("upsert:cart_items") if rng.random() < 0.5 else _q("ins:cart_items")
    return [
        (
            "CartService.add_item",
            [_q("by:carts.customer_id"), _q("get:products"), write, _q("upd2:carts.touch")],
        )
    ]


def _plan_checkout(rng: random.Random) -> list[Block]:
    k = rng.randint(1, 8)
    qs = [_q("lock:carts"), _q("by:cart_items.cart_id")]
    if rng.random() < 0.3:
        qs.append(_q("get:coupons.code"))
    for _ in range(k):
        qs += [_q("lock:inventory"), _q("upd2:inventory.take")]
    qs += [
        _q("ins:orders"),
        _q("insmany:order_items", k),
        _q("ins:payments"),
        _q("delby:cart_items.cart_id"),
    ]
    return [("CheckoutService.place_order", qs)]


def _plan_capture(rng: random.Random) -> list[Block]:
    return [
        (
            "PaymentService.capture",
            [_q("lock:payments"), _q("upd:payments"), _q("get:orders"), _q("upd2:orders.status")],
        )
    ]


def _plan_ready(rng: random.Random) -> list[Block]:
    return [(None, [_q("txt:ping")])]


def _p_id(
    prefix: str, hi: int = 500_000, suffix: str = ""
) -> Callable[[random.Random], tuple[str, str]]:
    return lambda rng: (f"{prefix}{_rid(rng, hi)}{suffix}", "")


_ROUTES: tuple[_Route, ...] = (
    _Route(0, "GET", "/orders/{order_id}", 28, _p_id("/orders/"), _plan_get_order, not_found=0.02),
    _Route(
        0,
        "GET",
        "/orders",
        16,
        lambda r: ("/orders", f"customer_id={_rid(r, 90_000)}&page={r.randint(1, 5)}&page_size=20"),
        _plan_list_orders,
    ),
    _Route(
        0,
        "GET",
        "/customers/{customer_id}",
        10,
        _p_id("/customers/", 90_000),
        _plan_customer,
        not_found=0.01,
    ),
    _Route(
        0,
        "GET",
        "/customers/{customer_id}/stats",
        2,
        _p_id("/customers/", 90_000, "/stats"),
        _plan_customer_stats,
    ),
    _Route(0, "PATCH", "/orders/{order_id}", 3, _p_id("/orders/"), _plan_update_order),
    _Route(
        1,
        "GET",
        "/products/{product_id}",
        20,
        _p_id("/products/", 200_000),
        _plan_product,
        not_found=0.02,
    ),
    _Route(
        1,
        "GET",
        "/products",
        12,
        lambda r: ("/products", f"q={r.choice(('lamp', 'chair', 'desk', 'mug', 'rug'))}&limit=20"),
        _plan_search,
    ),
    _Route(
        1,
        "GET",
        "/categories/{slug}/products",
        6,
        lambda r: (
            f"/categories/{r.choice(('home', 'office', 'garden', 'kitchen'))}"
            f"-{r.randint(1, 30)}/products",
            "",
        ),
        _plan_category,
    ),
    _Route(
        1,
        "GET",
        "/products/{product_id}/reviews",
        5,
        _p_id("/products/", 200_000, "/reviews"),
        _plan_reviews,
    ),
    _Route(2, "GET", "/cart", 6, lambda r: ("/cart", ""), _plan_cart),
    _Route(
        2, "POST", "/cart/items", 5, lambda r: ("/cart/items", ""), _plan_add_item, ok_status=201
    ),
    _Route(2, "POST", "/checkout", 3, lambda r: ("/checkout", ""), _plan_checkout, ok_status=201),
    _Route(
        2,
        "POST",
        "/payments/<int:payment_id>/capture",
        2,
        _p_id("/payments/", 300_000, "/capture"),
        _plan_capture,
    ),
    _Route(2, "GET", "/readyz", 0.3, lambda r: ("/readyz", ""), _plan_ready),
)
# A small Flask route: the last requests of a segment are cut from it to hit --spans exactly.
_CART_ROUTE = next(i for i, r in enumerate(_ROUTES) if r.route == "/cart")


def _writes(shape: Shape) -> bool:
    return shape.operation.upper() in ("INSERT", "UPDATE", "DELETE") or "FOR UPDATE" in shape.sql


def _tail_pools() -> list[tuple[list[int], list[float]]]:
    """Per service, every shape it may run off the main path, with Zipf-like popularity.

    Real services run many rarely-used statements (admin paths, feature flags, retries);
    drawing them in small numbers makes the full ~200 shapes show up in a long run.
    """
    owner = {
        **dict.fromkeys(("customers", "addresses", "orders", "order_items", "shipments"), 0),
        **dict.fromkeys(("top_customers", "set_status", "order_total", "lockxact"), 0),
        **dict.fromkeys(("products", "categories", "inventory", "reviews", "bestsellers"), 1),
        **dict.fromkeys(("price_range", "newest_in_category", "reserve", "rating", "ping"), 1),
        **dict.fromkeys(("carts", "cart_items", "payments", "coupons", "touch_cart"), 2),
    }
    pools: list[list[int]] = [[], [], []]
    for i, shape in enumerate(SHAPES):
        word = shape.key.split(":")[-1].split(".")[0]
        service = owner[word]
        if service == 1 and _writes(shape):
            # catalog-api reads from a replica; its tables are written by the other two.
            service = 2 if word == "inventory" else 0
        pools[service].append(i)
    order = random.Random(7)
    out = []
    for pool in pools:
        order.shuffle(pool)
        cum, total = [], 0.0
        for rank in range(len(pool)):
            total += 1.0 / (rank + 1) ** 0.8
            cum.append(total)
        out.append((pool, cum))
    return out


_TAIL = _tail_pools()

# --------------------------------------------------------------------------------------
# Errors: what the instrumentation records when a request fails


@dataclass(frozen=True)
class _Failure:
    db_message: str  # str() of the DBAPI error: the query span's status message
    exc_type: str  # exception.type recorded on the internal and server spans
    origin: str  # the psycopg error class SQLAlchemy wraps
    link: str  # sqlalche.me error code
    seconds: float  # how long the failing statement ran; 0 means its usual time


_STATEMENT_TIMEOUT = _Failure(
    "canceling statement due to statement timeout",
    "sqlalchemy.exc.OperationalError",
    "psycopg.errors.QueryCanceled",
    "e3q8",
    STATEMENT_TIMEOUT_MS / 1000,
)
_DEADLOCK = _Failure(
    "deadlock detected\nDETAIL:  Process {p1} waits for ShareLock on transaction {x1}; blocked by "
    "process {p2}.\nProcess {p2} waits for ShareLock on transaction {x2}; blocked by process "
    "{p1}.\nHINT:  See server log for query details.\nCONTEXT:  while updating tuple ({b},{o}) "
    'in relation "{table}"',
    "sqlalchemy.exc.OperationalError",
    "psycopg.errors.DeadlockDetected",
    "e3q8",
    1.0,  # PostgreSQL's deadlock_timeout
)
_UNIQUE = _Failure(
    'duplicate key value violates unique constraint "{table}_pkey"\nDETAIL:  Key (id)=({p1}) '
    "already exists.",
    "sqlalchemy.exc.IntegrityError",
    "psycopg.errors.UniqueViolation",
    "gkpj",
    0.0,
)
_POOL_MESSAGE = (
    "QueuePool limit of size 10 overflow 5 reached, connection timed out, timeout "
    f"{POOL_TIMEOUT_S:.2f} (Background on this error at: https://sqlalche.me/e/20/3o7r)"
)

_SITE = "/usr/local/lib/python3.12/site-packages"
_FRAMEWORK_FRAMES = {
    "fastapi": (
        f'  File "{_SITE}/opentelemetry/instrumentation/asgi/__init__.py", line 743, in __call__\n'
        "    await self.app(scope, otel_receive, otel_send)\n"
        f'  File "{_SITE}/starlette/routing.py", line 74, in app\n'
        "    response = await f(request)\n"
        f'  File "{_SITE}/fastapi/routing.py", line 301, in app\n'
        "    raw_response = await run_endpoint_function(\n"
    ),
    "flask": (
        f'  File "{_SITE}/flask/app.py", line 917, in full_dispatch_request\n'
        "    rv = self.dispatch_request()\n"
        f'  File "{_SITE}/flask/app.py", line 902, in dispatch_request\n'
        "    return self.ensure_sync(self.view_functions[rule])(**view_args)  # type: ignore[no-any-return]\n"
    ),
}
_DB_FRAMES = (
    f'  File "{_SITE}/sqlalchemy/orm/session.py", line 2365, in execute\n'
    "    return self._execute_internal(\n"
    f'  File "{_SITE}/sqlalchemy/engine/base.py", line 1967, in _exec_single_context\n'
    "    self.dialect.do_execute(\n"
    f'  File "{_SITE}/sqlalchemy/engine/default.py", line 951, in do_execute\n'
    "    cursor.execute(statement, parameters)\n"
    f'  File "{_SITE}/psycopg/cursor.py", line 97, in execute\n'
    "    raise ex.with_traceback(None)\n"
)
_POOL_FRAMES = (
    f'  File "{_SITE}/sqlalchemy/orm/session.py", line 2365, in execute\n'
    "    return self._execute_internal(\n"
    f'  File "{_SITE}/sqlalchemy/engine/base.py", line 3273, in connect\n'
    "    return self._connection_cls(self)\n"
    f'  File "{_SITE}/sqlalchemy/pool/impl.py", line 179, in _do_get\n'
    "    raise exc.TimeoutError(\n"
)


def _stacktrace(svc: Service, app_frame: str, exc_type: str, message: str, cause: str) -> str:
    """A Python traceback as ``record_exception`` stores it; ``cause`` is the DBAPI error."""
    head = "Traceback (most recent call last):\n"
    app = (
        f'  File "/app/{svc.app_scope.replace(".", "/")}.py", line 57, in {app_frame}\n'
        "    return self._run(session)\n"
    )
    outer = head + _FRAMEWORK_FRAMES[svc.framework] + app
    if not cause:  # a pool checkout timeout is raised by SQLAlchemy itself
        return f"{outer}{_POOL_FRAMES}{exc_type}: {message}\n"
    chained = "\nThe above exception was the direct cause of the following exception:\n\n"
    return f"{head}{_DB_FRAMES}{cause}\n{chained}{outer}{_DB_FRAMES}{exc_type}: {message}\n"


def _exception_event(t: int, exc_type: str, message: str, stack: str) -> str:
    return (
        f'{{"timeUnixNano":"{t}","name":"exception","attributes":['
        f"{_kv_s('exception.type', exc_type)},{_kv_s('exception.message', message)},"
        f"{_kv_s('exception.stacktrace', stack)},"
        '{"key":"exception.escaped","value":{"stringValue":"False"}}]}'
    )


# --------------------------------------------------------------------------------------
# The run


class _Process:
    """One worker process: its resource, scopes and BatchSpanProcessor queue."""

    __slots__ = ("head", "last_export", "queue", "scope_heads", "scope_tails", "service")

    def __init__(self, service: int, instance_id: str) -> None:
        svc = SERVICES[service]
        self.service = service
        resource = ",".join(
            (
                _kv_s("telemetry.sdk.language", "python"),
                _kv_s("telemetry.sdk.name", "opentelemetry"),
                _kv_s("telemetry.sdk.version", SDK_VERSION),
                _kv_s("service.instance.id", instance_id),
                _kv_s("service.name", svc.name),
                _kv_s("service.version", svc.version),
                _kv_s("deployment.environment.name", "loadtest"),
            )
        )
        self.head = f'{{"resourceSpans":[{{"resource":{{"attributes":[{resource}]}},"scopeSpans":['
        schema_http = "https://opentelemetry.io/schemas/1.21.0"
        # The SQLAlchemy tracer takes the highest schema among its db and http opt-ins.
        schema_db = f"https://opentelemetry.io/schemas/{'1.25.0' if svc.db_new else '1.21.0'}"
        http_scope = f"opentelemetry.instrumentation.{svc.framework}"
        self.scope_heads = (
            f'{{"scope":{{"name":"{http_scope}","version":"{INSTRUMENTATION_VERSION}"}},"spans":[',
            '{"scope":{"name":"opentelemetry.instrumentation.sqlalchemy","version":"'
            f'{INSTRUMENTATION_VERSION}"}},"spans":[',
            f'{{"scope":{{"name":"{svc.app_scope}"}},"spans":[',
        )
        self.scope_tails = (
            f'],"schemaUrl":"{schema_http}"}}',
            f'],"schemaUrl":"{schema_db}"}}',
            "]}",
        )
        self.queue: list[tuple[int, str]] = []
        self.last_export = RUN_START_NS


class _DbAttrs:
    """Pre-escaped attribute lists of one service's DB spans, per its semconv mode."""

    def __init__(self, svc: Service) -> None:
        host, port = svc.db_host, _DB_PORT
        if svc.http_dup:
            peer = [
                _kv_s("net.peer.name", host),
                _kv_s("server.address", host),
                _kv_i("net.peer.port", port),
                _kv_i("server.port", port),
            ]
        elif "http" in svc.semconv:
            peer = [_kv_s("server.address", host), _kv_i("server.port", port)]
        else:
            peer = [_kv_s("net.peer.name", host), _kv_i("net.peer.port", port)]
        if svc.db_new:
            url = [*peer, _kv_s("db.namespace", DB_NAME)]
            stmt_key, system, op_key = (
                "db.query.text",
                _kv_s("db.system.name", "postgresql"),
                "db.operation.name",
            )
        else:
            url = [*peer, _kv_s("db.name", DB_NAME), _kv_s("db.user", svc.db_user)]
            stmt_key, system, op_key = (
                "db.statement",
                _kv_s("db.system", "postgresql"),
                "db.operation",
            )
        self.connect = ",".join([*url, system])
        self.prefix = ",".join(url) + f',{{"key":"{stmt_key}","value":{{"stringValue":"'
        self.suffix: dict[str, str] = {}
        for shape in SHAPES:
            op = f"{shape.operation} {DB_NAME}"
            self.suffix[op] = f'"}}}},{system},{_kv_s(op_key, op)}'
        self.cache: dict[tuple[int, int], str] = {}
        # Most statements never change: their whole attribute list is built once ("" if not).
        self.static = [
            ""
            if s.slots
            else f"{self.prefix}{_esc(s.sql)}{self.suffix[f'{s.operation} {DB_NAME}']}"
            for s in SHAPES
        ]


class _Clock:
    """Simulated wall time as a function of how many spans have been written.

    Load ramps linearly from 15% to full over the first 30% of the run, then holds, as a
    load-test tool spawning users does. Mapping span offsets (not request counts) to time
    lets every segment of the file know its time range without generating the ones
    before it, so segments can be generated in parallel and still join seamlessly.
    """

    RAMP, FLOOR = 0.3, 0.15

    def __init__(self, total_spans: int) -> None:
        self.duration = max(60.0, total_spans / _SPANS_PER_SECOND)
        self.ramp_s = self.RAMP * self.duration
        self.peak = total_spans / (self.duration * (1 - self.RAMP * (1 - self.FLOOR) / 2))
        self.ramp_spans = self.peak * self.ramp_s * (self.FLOOR + (1 - self.FLOOR) / 2)

    def seconds(self, x: float) -> float:
        """When the span with offset ``x`` is written, in seconds since the run started."""
        if x >= self.ramp_spans:
            return self.ramp_s + (x - self.ramp_spans) / self.peak
        a, slope = self.FLOOR, (1 - self.FLOOR) / self.ramp_s
        # Inverse of spans(t) = peak * (a*t + slope*t^2/2) on the ramp.
        return (math.sqrt(a * a + 2 * slope * x / self.peak) - a) / slope

    def ns(self, x: float) -> int:
        return RUN_START_NS + int(self.seconds(x) * 1e9)

    def load(self, x: float) -> float:
        """Offered load at offset ``x``, as a fraction of the peak."""
        t = self.seconds(x)
        return self.FLOOR + (1 - self.FLOOR) * min(1.0, t / self.ramp_s)


class _Run:
    """One segment of the file: ``count`` spans starting at global span ``offset``."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        seed: int,
        total: int,
        offset: int,
        count: int,
        batch: int,
    ) -> None:
        self.write = write
        self.batch = batch
        self.offset = offset
        self.target = count
        self.clock = _Clock(total)
        self.produced = self.lines = self.json_bytes = self.requests = self.errors = 0
        # Run-wide constants come from the seed alone, so every segment agrees on them.
        setup = random.Random(seed)
        self.procs: list[list[_Process]] = [
            [
                _Process(i, str(uuid.UUID(int=setup.getrandbits(128), version=4)))
                for _ in range(svc.workers)
            ]
            for i, svc in enumerate(SERVICES)
        ]
        start = self.clock.ns(offset)
        for procs in self.procs:
            for proc in procs:
                proc.last_export = start
        # Lookup tables: one getrandbits(12) per draw instead of a gauss() call.
        self.noise = [math.exp(setup.gauss(0.0, 0.35)) for _ in range(4096)]
        for i in setup.sample(range(4096), 40):  # lock waits, cold cache: a heavy tail
            self.noise[i] *= setup.uniform(4.0, 15.0)
        self.gap = [
            int(math.exp(setup.gauss(math.log(120_000), 0.7))) + 15_000 for _ in range(4096)
        ]
        self.ua = setup.choice(("python-requests/2.32.5", "k6/1.1.0 (https://k6.io/)"))
        self.clients = [f"10.42.{setup.randint(0, 3)}.{setup.randint(2, 250)}" for _ in range(4)]
        # Each segment draws from its own stream (a str seed is hashed with SHA-512).
        self.rng = random.Random(f"gen_otlp/{seed}/{offset}")
        self.db = [_DbAttrs(svc) for svc in SERVICES]
        self.esc = [_esc(s.sql) for s in SHAPES]
        self.names = [f"{s.operation} {DB_NAME}" for s in SHAPES]
        self.base_ns = [s.base_ms * 1e6 for s in SHAPES]
        self.route_cum: list[float] = []
        acc = 0.0
        for r in _ROUTES:
            acc += r.weight
            self.route_cum.append(acc)
        self.http_templates: dict[tuple[int, int, bool], str] = {}
        self.send_attrs: dict[tuple[str, int], tuple[tuple[str, str], tuple[str, str]]] = {}

    # -- ids and small draws ----------------------------------------------------------

    def _sid(self) -> str:
        return f"{self.rng.getrandbits(64) or 1:016x}"  # an all-zero id is invalid

    # -- main loop ---------------------------------------------------------------------

    def run(self) -> None:
        rng = self.rng
        while self.produced < self.target:
            remaining = self.target - self.produced
            if remaining > _FINISH_AT:
                route = _ROUTES[
                    bisect.bisect_left(self.route_cum, rng.random() * self.route_cum[-1])
                ]
                self.produced += self._request(route, None)
            else:
                # Close the segment on its exact span count with small Flask requests.
                exact = (
                    remaining
                    if remaining <= MAX_DB_SPANS + 1
                    else min(MAX_DB_SPANS + 1, remaining - 3)
                )
                self.produced += self._request(_ROUTES[_CART_ROUTE], exact)
        for procs in self.procs:
            for proc in procs:
                while proc.queue:
                    self._export(proc, proc.queue[: self.batch])
                    del proc.queue[: self.batch]

    def _export(self, proc: _Process, items: Sequence[tuple[int, str]]) -> None:
        # The SDK encoder groups a batch by scope in order of first appearance.
        scopes = [scope for scope, _ in items]
        order = sorted(set(scopes), key=scopes.index)
        line = (
            proc.head
            + ",".join(
                proc.scope_heads[s]
                + ",".join([span for scope, span in items if scope == s])
                + proc.scope_tails[s]
                for s in order
            )
            + "]}]}\n"
        )
        data = line.encode("ascii")
        self.write(data)
        self.lines += 1
        self.json_bytes += len(data)

    def _enqueue(self, proc: _Process, end: int, spans: list[tuple[int, str]]) -> None:
        if proc.queue and end - proc.last_export >= BSP_SCHEDULE_DELAY_NS:
            # The export timer fired since the last batch: flush what has queued up.
            while proc.queue:
                self._export(proc, proc.queue[: self.batch])
                del proc.queue[: self.batch]
            proc.last_export = end
        proc.queue += spans
        while len(proc.queue) >= self.batch:
            self._export(proc, proc.queue[: self.batch])
            del proc.queue[: self.batch]
            proc.last_export = end

    # -- one request -------------------------------------------------------------------

    def _statement(self, db: _DbAttrs, shape_i: int, n: int) -> str:
        """The attribute list of a DB span whose text varies, cached when it repeats."""
        shape = SHAPES[shape_i]
        if shape.literal:
            text = self.esc[shape_i].format(*(_render_slot(s, n, self.rng) for s in shape.slots))
            return db.prefix + text + db.suffix[self.names[shape_i]]
        attrs = db.cache.get((shape_i, n))
        if attrs is None:
            text = self.esc[shape_i].format(*(_render_slot(s, n, self.rng) for s in shape.slots))
            attrs = db.cache[(shape_i, n)] = db.prefix + text + db.suffix[self.names[shape_i]]
        return attrs

    def _request(self, route: _Route, exact: int | None) -> int:
        """Write one request's trace into its process's queue; return its span count."""
        rng = self.rng
        x = self.offset + self.produced
        load = self.clock.load(x)
        bits = rng.getrandbits
        svc_i = route.service
        svc = SERVICES[svc_i]
        proc = self.procs[svc_i][rng.randrange(svc.workers)]
        tid = f"{bits(128) or 1:032x}"
        server_id = self._sid()
        handler = route.plan.__name__.removeprefix("_plan_")
        self.requests += 1

        blocks = route.plan(rng)
        status = route.ok_status
        failure: _Failure | None = None
        pool_timeout = False
        fail_at = -1  # position, in execution order, of the last query that runs
        if exact is not None:
            blocks, pool_timeout = self._exact_blocks(blocks, svc_i, exact)
        else:
            blocks = self._add_tail(blocks, svc_i)
            r = rng.random()
            if r < ERROR_RATE:
                kind = rng.random()
                if kind < 0.3 and load > 0.8:
                    pool_timeout = True
                else:
                    failure, fail_at = self._pick_failure(blocks, kind)
            elif r < ERROR_RATE + route.not_found:
                status, fail_at = 404, 0
            if pool_timeout:
                blocks = _truncate(blocks, 1)
            elif fail_at >= 0:
                blocks = _truncate(blocks, fail_at + 1)
        if pool_timeout or failure is not None:
            status = 500
            self.errors += 1

        # The start time sits anywhere in the slot this request's spans take on the clock.
        size = 1 + (2 if svc.framework == "fastapi" else 0) + sum(1 for name, _ in blocks if name)
        if blocks:
            size += 1 + (0 if pool_timeout else sum(len(qs) for _, qs in blocks))
        lo = self.clock.ns(x)
        t0 = lo + int(rng.random() * (self.clock.ns(x + size) - lo))

        out: list[tuple[int, str]] = []
        db = self.db[svc_i]
        noise, gap, base_ns, names = self.noise, self.gap, self.base_ns, self.names
        static = db.static
        slow = 1.0 + 0.6 * load**3  # a loaded database answers more slowly
        cursor = t0 + 200_000 + gap[bits(12)] * 2
        connected = False
        qi = 0
        exc: tuple[str, str, str] | None = None  # (type, message, stacktrace) once raised
        for name, queries in blocks:
            parent = server_id
            istart, iid = 0, ""
            if name is not None:
                iid = self._sid()
                istart = cursor
                cursor += 20_000 + gap[bits(12)] // 4
                parent = iid
            for shape_i, n in queries:
                if not connected:
                    connected = True
                    cursor = self._connect(out, tid, parent, cursor, load, db, pool_timeout)
                    if pool_timeout:
                        exc = self._pool_timeout(out, svc, handler, cursor)
                        break
                    cursor += gap[bits(12)] // 4
                start = cursor + gap[bits(12)] // 3
                attrs = static[shape_i] or self._statement(db, shape_i, n)
                st = "{}"
                if qi == fail_at and failure is not None:
                    if failure.seconds:
                        dur = int(failure.seconds * 1e9) + bits(20)
                    else:
                        dur = int(base_ns[shape_i] * noise[bits(12)])
                    sql = attrs[len(db.prefix) : -len(db.suffix[names[shape_i]])]
                    st, exc = self._db_failure(failure, svc, handler, shape_i, sql)
                else:
                    dur = int(base_ns[shape_i] * noise[bits(12)] * slow) + 20_000 + n * 15_000
                end = start + dur
                out.append(
                    (
                        _SCOPE_DB,
                        f'{{"traceId":"{tid}","spanId":"{bits(64) or 1:016x}",'
                        f'"parentSpanId":"{parent}","flags":256,"name":"{names[shape_i]}","kind":3,'
                        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",'
                        f'"attributes":[{attrs}],"status":{st}}}',
                    )
                )
                cursor = end + gap[bits(12)]
                qi += 1
                if exc is not None:
                    break
            if name is not None:
                iend = cursor + 10_000 + gap[bits(12)] // 4
                ev, ist = "", "{}"
                if exc is not None:
                    # start_as_current_span records what passes through it, and words the status.
                    ev = f',"events":[{_exception_event(iend - 5_000, *exc)}]'
                    ist = f'{{"message":"{_esc(_short(exc[0]) + ": " + exc[1])}","code":2}}'
                out.append(
                    (
                        _SCOPE_APP,
                        f'{{"traceId":"{tid}","spanId":"{iid}","parentSpanId":"{server_id}",'
                        f'"flags":256,"name":"{name}","kind":1,"startTimeUnixNano":"{istart}",'
                        f'"endTimeUnixNano":"{iend}"{ev},"status":{ist}}}',
                    )
                )
                cursor = iend + gap[bits(12)] // 2
            if exc is not None:
                break
        n = self._server(out, proc, route, svc, tid, server_id, t0, cursor, status, exc)
        assert n == size, (n, size, route.route)
        return n

    def _pool_timeout(
        self, out: list[tuple[int, str]], svc: Service, handler: str, end: int
    ) -> tuple[str, str, str]:
        """Turn the last (connect) span into a pool-checkout timeout; return the exception."""
        exc_type = "sqlalchemy.exc.TimeoutError"
        exc = (exc_type, _POOL_MESSAGE, _stacktrace(svc, handler, exc_type, _POOL_MESSAGE, ""))
        span = out[-1][1]
        out[-1] = (
            _SCOPE_DB,
            span[: span.rindex(',"status":{}')]
            + f',"events":[{_exception_event(end - 40_000, *exc)}]'
            + f',"status":{{"message":"TimeoutError: {_esc(_POOL_MESSAGE)}","code":2}}}}',
        )
        return exc

    def _db_failure(
        self, failure: _Failure, svc: Service, handler: str, shape_i: int, sql_json: str
    ) -> tuple[str, tuple[str, str, str]]:
        """The failing query span's status, and the exception SQLAlchemy raises from it."""
        rng = self.rng
        words = SHAPES[shape_i].sql.split()
        table = words[2] if words[0].upper() == "INSERT" else words[1]
        if words[0].upper() not in ("INSERT", "UPDATE"):
            table = "orders"
        db_message = failure.db_message.format(
            p1=rng.randint(1000, 99999),
            p2=rng.randint(1000, 99999),
            x1=rng.randint(10**6, 10**8),
            x2=rng.randint(10**6, 10**8),
            b=rng.randint(0, 9000),
            o=rng.randint(1, 80),
            table=table,
        )
        sql = json.loads(f'"{sql_json}"')
        message = (
            f"({failure.origin}) {db_message}\n[SQL: {sql}]\n"
            "[SQL parameters hidden due to hide_parameters=True]\n"
            f"(Background on this error at: https://sqlalche.me/e/20/{failure.link})"
        )
        cause = f"{failure.origin}: {db_message}"
        stack = _stacktrace(svc, handler, failure.exc_type, message, cause)
        return f'{{"message":"{_esc(db_message)}","code":2}}', (failure.exc_type, message, stack)

    def _connect(
        self,
        out: list[tuple[int, str]],
        tid: str,
        parent: str,
        cursor: int,
        load: float,
        db: _DbAttrs,
        pool_timeout: bool,
    ) -> int:
        """Append the ``connect`` span (pool checkout); return when it ended."""
        rng = self.rng
        start = cursor
        if pool_timeout:
            dur = POOL_TIMEOUT_S * 1_000_000_000 + rng.getrandbits(21)
        else:
            dur = 25_000 + rng.getrandbits(17)
            if rng.random() < 0.004:
                dur += rng.randint(2_000_000, 9_000_000)  # a new physical connection
            if load > 0.75 and rng.random() < (load - 0.75) * 2.4:
                dur += int(rng.expovariate(1.0 / (18_000_000 * load)))  # waiting on a full pool
        end = start + dur
        out.append(
            (
                _SCOPE_DB,
                f'{{"traceId":"{tid}","spanId":"{self._sid()}","parentSpanId":"{parent}",'
                f'"flags":256,"name":"connect","kind":3,"startTimeUnixNano":"{start}",'
                f'"endTimeUnixNano":"{end}","attributes":[{db.connect}],"status":{{}}}}',
            )
        )
        return end

    def _server(
        self,
        out: list[tuple[int, str]],
        proc: _Process,
        route: _Route,
        svc: Service,
        tid: str,
        server_id: str,
        t0: int,
        cursor: int,
        status: int,
        exc: tuple[str, str, str] | None,
    ) -> int:
        rng = self.rng
        bits = rng.getrandbits
        name = f"{route.method} {route.route}"
        if svc.framework == "fastapi":
            for attrs, st in self._send_attrs(svc, status):
                start = cursor + 8_000 + bits(14)
                end = start + 6_000 + bits(16)
                out.append(
                    (
                        _SCOPE_HTTP,
                        f'{{"traceId":"{tid}","spanId":"{self._sid()}",'
                        f'"parentSpanId":"{server_id}","flags":256,"name":"{name} http send",'
                        f'"kind":1,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",'
                        f'"attributes":[{attrs}],"status":{st}}}',
                    )
                )
                cursor = end
        end = cursor + 30_000 + bits(18)
        path, query = route.path(rng)
        key = (id(route), status, bool(query))
        template = self.http_templates.get(key)
        if template is None:
            template = self.http_templates[key] = self._http_template(
                svc, route, status, bool(query)
            )
        attrs = template.format(path, query, self.clients[bits(2)], 32768 + bits(14))
        events = ""
        if exc is not None:
            events = f',"events":[{_exception_event(end - 20_000, *exc)}]'
        if status >= 500:
            if svc.framework == "flask" and exc is not None:
                # Flask's teardown ends the span through use_span(), which words the status.
                st = f'{{"message":"{_esc(_short(exc[0]) + ": " + exc[1])}","code":2}}'
            else:
                st = '{"code":2}'  # the ASGI middleware sets ERROR without a description
        else:
            st = "{}"
        out.append(
            (
                _SCOPE_HTTP,
                f'{{"traceId":"{tid}","spanId":"{server_id}","flags":256,"name":"{name}",'
                f'"kind":2,"startTimeUnixNano":"{t0}","endTimeUnixNano":"{end}",'
                f'"attributes":[{attrs}]{events},"status":{st}}}',
            )
        )
        self._enqueue(proc, end, out)
        return len(out)

    def _send_attrs(self, svc: Service, status: int) -> tuple[tuple[str, str], tuple[str, str]]:
        """Attributes and status of the ASGI middleware's two ``http send`` spans."""
        key = (svc.name, status)
        cached = self.send_attrs.get(key)
        if cached is None:
            start = [_kv_s("asgi.event.type", "http.response.start")]
            if svc.http_dup:
                start.append(_kv_i("http.status_code", status))
            start.append(_kv_i("http.response.status_code", status))
            if status >= 500:
                start.append(_kv_s("error.type", str(status)))
            body = _kv_s("asgi.event.type", "http.response.body")
            cached = ((",".join(start), '{"code":2}' if status >= 500 else "{}"), (body, "{}"))
            self.send_attrs[key] = cached
        return cached

    def _http_template(self, svc: Service, route: _Route, status: int, has_query: bool) -> str:
        """Server-span attributes, in the order each instrumentation sets them, as a format
        string over (url.path, url.query, client.address, client.port)."""
        host, port, method = svc.name, _HTTP_PORT, route.method
        path, query, client, cport = "@@0@@", "@@1@@" if has_query else "", "@@2@@", "@@3@@"
        code = [_kv_i("http.response.status_code", status)]
        if status >= 500:
            code.append(_kv_s("error.type", str(status)))
        q = [_kv_s("url.query", query)] if query else []
        if svc.framework == "flask":
            kv = [
                _kv_s("http.request.method", method),
                _kv_s("url.scheme", "http"),
                _kv_s("server.address", host),
                _kv_i("server.port", port),
                _kv_s("url.path", path),
                *q,
                _kv_s("client.address", client),
                _kv_s("user_agent.original", self.ua),
                _kv_s("network.protocol.version", "1.1"),
                _kv_s("http.route", route.route),
                *code,
            ]
            return _to_format(",".join(kv))
        if svc.http_dup:
            url = f"http://{host}:{port}{path}" + (f"?{query}" if query else "")
            kv = [
                _kv_s("http.scheme", "http"),
                _kv_s("url.scheme", "http"),
                _kv_s("http.host", host),
                _kv_s("server.address", host),
                _kv_i("net.host.port", port),
                _kv_i("server.port", port),
                _kv_s("http.flavor", "1.1"),
                _kv_s("network.protocol.version", "1.1"),
                _kv_s("http.target", path),
                _kv_s("url.path", path),
                *q,
                _kv_s("http.url", url),
                _kv_s("http.method", method),
                _kv_s("http.request.method", method),
                _kv_s("http.server_name", f"{host}:{port}"),
                _kv_s("http.user_agent", self.ua),
                _kv_s("user_agent.original", self.ua),
                _kv_s("net.peer.ip", client),
                _kv_s("client.address", client),
                _kv_i("net.peer.port", cport),
                _kv_i("client.port", cport),
                _kv_s("http.route", route.route),
                _kv_i("http.status_code", status),
                *code,
            ]
            return _to_format(",".join(kv))
        kv = [
            _kv_s("url.scheme", "http"),
            _kv_s("server.address", host),
            _kv_i("server.port", port),
            _kv_s("network.protocol.version", "1.1"),
            _kv_s("url.path", path),
            *q,
            _kv_s("http.request.method", method),
            _kv_s("user_agent.original", self.ua),
            _kv_s("client.address", client),
            _kv_i("client.port", cport),
            _kv_s("http.route", route.route),
            *code,
        ]
        return _to_format(",".join(kv))

    # -- plan adjustments --------------------------------------------------------------

    def _add_tail(self, blocks: list[Block], svc_i: int) -> list[Block]:
        """Add 0-3 rarely-run statements and cap the request at MAX_DB_SPANS."""
        rng = self.rng
        k = (0, 0, 0, 1, 1, 2, 3, 1)[rng.getrandbits(3)]
        if k:
            pool, cum = _TAIL[svc_i]
            extra = [(i, self._size(i)) for i in (self._tail(pool, cum) for _ in range(k))]
            blocks = [*blocks, (None, extra)]
        return _truncate(blocks, MAX_DB_SPANS - 1)

    def _tail(self, pool: list[int], cum: list[float]) -> int:
        return pool[bisect.bisect_left(cum, self.rng.random() * cum[-1])]

    def _size(self, shape_i: int) -> int:
        if not SHAPES[shape_i].sized:
            return 0
        return 1 + min(int(self.rng.paretovariate(1.2)) - 1, 49)

    def _exact_blocks(
        self, blocks: list[Block], svc_i: int, exact: int
    ) -> tuple[list[Block], bool]:
        """Reshape a plan so the request makes exactly ``exact`` spans (Flask: no send spans)."""
        if exact <= 2:
            # server + failed connect, or (only when asked for one span) a bare server span.
            return ([(None, [_q("txt:ping")])] if exact == 2 else []), exact == 2
        queries = [q for _, qs in blocks for q in qs]
        pool, cum = _TAIL[svc_i]
        while len(queries) < exact - 2:
            i = self._tail(pool, cum)
            queries.append((i, self._size(i)))
        return [(None, queries[: exact - 2])], False

    def _pick_failure(self, blocks: list[Block], kind: float) -> tuple[_Failure, int]:
        flat = [SHAPES[i] for _, qs in blocks for i, _ in qs]
        rng = self.rng
        if kind > 0.8:
            writes = [j for j, s in enumerate(flat) if s.operation.upper() == "INSERT"]
            if writes:
                return _UNIQUE, rng.choice(writes)
        if kind > 0.65:
            updates = [j for j, s in enumerate(flat) if s.operation.upper() == "UPDATE"]
            if updates:
                return _DEADLOCK, rng.choice(updates)
        return _STATEMENT_TIMEOUT, rng.randrange(len(flat))


def _to_format(text: str) -> str:
    """Turn ``@@n@@`` tokens into ``str.format`` fields, the JSON braces into literals."""
    text = text.replace("{", "{{").replace("}", "}}")
    for i in range(4):
        text = text.replace(f"@@{i}@@", f"{{{i}}}")
    return text


def _short(exc_type: str) -> str:
    return exc_type.rsplit(".", 1)[-1]


def _truncate(blocks: list[Block], keep: int) -> list[Block]:
    """Keep the first ``keep`` queries; drop blocks left empty."""
    out: list[Block] = []
    for name, qs in blocks:
        if keep <= 0:
            break
        if qs:
            out.append((name, qs[:keep]))
            keep -= len(qs)
    return out


# --------------------------------------------------------------------------------------
# Entry points


def generate(
    path: str | os.PathLike[str],
    spans: int,
    seed: int = 1,
    batch: int = 512,
    *,
    gzip: bool | None = None,
    jobs: int | None = None,
) -> dict[str, int]:
    """Write ``spans`` spans as OTLP/JSON lines to ``path``; return what was written.

    ``gzip=None`` compresses when the path ends in ``.gz``. ``jobs`` processes generate
    segments of the file in parallel (default: one per CPU); the bytes depend only on
    ``spans``, ``seed`` and ``batch``, never on ``jobs``. Returns the counts ``spans``,
    ``lines``, ``bytes`` (on disk), ``json_bytes`` (uncompressed), ``requests``,
    ``errors`` (5xx responses) and ``run_seconds`` (simulated wall time).
    """
    if spans < 1:
        raise ValueError(f"spans must be at least 1, got {spans}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    path = os.fspath(path)
    compress = path.endswith(".gz") if gzip is None else gzip
    segments = [
        (offset, min(_SEGMENT_SPANS, spans - offset)) for offset in range(0, spans, _SEGMENT_SPANS)
    ]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(segments)))
    totals: dict[str, int] = {}

    def add(counts: dict[str, int]) -> None:
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value

    with open(path, "wb") as out:
        if jobs == 1:
            for offset, count in segments:
                add(_segment(out, seed, spans, offset, count, batch, compress))
        else:
            parts = [f"{path}.part{k}" for k in range(len(segments))]
            methods = multiprocessing.get_all_start_methods()
            # fork: the workers need not re-import this file, which is not a package module.
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            try:
                with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                    futures = [
                        pool.submit(
                            _segment_file, part, seed, spans, offset, count, batch, compress
                        )
                        for part, (offset, count) in zip(parts, segments, strict=True)
                    ]
                    for part, future in zip(parts, futures, strict=True):
                        add(future.result())
                        _append(out, part)
                        os.remove(part)
            finally:
                for part in parts:
                    if os.path.exists(part):
                        os.remove(part)
    totals["bytes"] = os.path.getsize(path)
    totals["run_seconds"] = int(_Clock(spans).duration)
    return totals


def _append(out: IO[bytes], part: str) -> None:
    """Append the file ``part`` to ``out``, in the kernel where the platform allows."""
    out.flush()
    with open(part, "rb") as src:
        size, done = os.fstat(src.fileno()).st_size, 0
        copy_range = getattr(os, "copy_file_range", None)
        if copy_range is not None:
            try:
                while done < size:
                    copied = copy_range(src.fileno(), out.fileno(), size - done)
                    if not copied:
                        break
                    done += copied
            except OSError:  # e.g. a file system without it: finish the plain way
                pass
        src.seek(done)
        shutil.copyfileobj(src, out, 1 << 22)
    out.flush()


def _segment(
    out: IO[bytes], seed: int, total: int, offset: int, count: int, batch: int, compress: bool
) -> dict[str, int]:
    """Write one segment to ``out``: plain lines, or one gzip member of them."""
    if compress:
        # Concatenated gzip members make one valid gzip stream; mtime=0 and no file name in
        # the header keep the bytes reproducible. Level 1: at zlib's default level the
        # compression would cost more CPU than generating the JSON.
        with gzip_module.GzipFile(
            filename="", mode="wb", fileobj=out, compresslevel=1, mtime=0
        ) as gz:
            run = _Run(gz.write, seed, total, offset, count, batch)
            run.run()
    else:
        run = _Run(out.write, seed, total, offset, count, batch)
        run.run()
    return {
        "spans": run.produced,
        "lines": run.lines,
        "json_bytes": run.json_bytes,
        "requests": run.requests,
        "errors": run.errors,
    }


def _segment_file(
    path: str, seed: int, total: int, offset: int, count: int, batch: int, compress: bool
) -> dict[str, int]:
    with open(path, "wb", buffering=1 << 20) as out:
        return _segment(out, seed, total, offset, count, batch, compress)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, required=True, help="number of spans to write")
    parser.add_argument("--out", required=True, help="output file (.jsonl, or .gz)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=512, help="spans per line (BSP batch size)")
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = generate(
        args.out,
        args.spans,
        seed=args.seed,
        batch=args.batch,
        gzip=True if args.gzip else None,
        jobs=args.jobs,
    )
    elapsed = time.perf_counter() - started
    print(
        f"{args.out}: {counts['spans']:,} spans, {counts['requests']:,} requests "
        f"({counts['errors']:,} 5xx), {counts['lines']:,} lines, {counts['bytes']:,} bytes "
        f"in {elapsed:.1f}s ({counts['spans'] / elapsed:,.0f} spans/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
