"""Spans of a Black-Friday-like load, generated inside ClickHouse into the exporter's table.

:func:`generate` writes about N spans straight into the OpenTelemetry Collector
exporter's ``otel_traces`` table (its DDL from
:mod:`correlate.clickhouse.otel_schema`: MergeTree, partitioned by day, ordered by
``(ServiceName, SpanName, toDateTime(Timestamp))``), by one ``INSERT … SELECT`` per
chunk of requests over ``numbers()`` with deterministic hashing: no Python runs per
span, and the same seed gives the same spans however the requests are chunked.

The load (:data:`ROUTES`): one service, ``shop-api``, serving seven HTTP routes at a
steady rate; each request is a Flask-style SERVER span with a SQLAlchemy-style
``connect`` span (the pool checkout) and PostgreSQL CLIENT spans (``db.system``,
``db.statement``, ``db.name``, ``net.peer.*``: what SQLAlchemy's instrumentation
writes) whose statements come from :data:`TEMPLATES` (21 shapes, literals varying per
call), then a ``render`` INTERNAL span: ~19 spans a request. Planted for the analysis
to find:

- ``GET /orders/{id}`` is an N+1: one ``SELECT … FROM products p WHERE p.id = N`` per
  order line, 8 to 30 lines a request;
- ``GET /recommendations`` is dominated by one slow aggregate (60-180 ms a call);
- the pool is short twice in the run (10 % of it from 40 %, 5 % from 70 %): half
  the checkouts then wait 20-250 ms, 1 % of them at other times;
- 4 % of ``POST /checkout`` requests fail with a 500 (an exception event, status
  Error), their payment insert too.
"""

from __future__ import annotations

from typing import Any

from correlate.clickhouse.otel_schema import OtelTables, quote_string

SERVICE = "shop-api"
#: 2026-11-27 (Black Friday) 09:00:00 UTC, in nanoseconds.
START_NS = 1_795_770_000 * 1_000_000_000
DEFAULT_RATE = 2_000  # requests a second

#: Statement shapes: ``{n}`` and ``{m}`` become numbers, ``{tok}`` a hex token,
#: each varying per call. Base duration of one call in microseconds.
TEMPLATES: tuple[tuple[str, int], ...] = (
    ("SELECT s.user_id, s.expires_at FROM sessions s WHERE s.token = '{tok}'", 300),  # 0
    ("SELECT u.id, u.email, u.tier FROM users u WHERE u.id = {n}", 350),  # 1
    ("SELECT p.id, p.sku, p.name, p.price, p.category_id FROM products p WHERE p.id = {n}", 400),
    ("SELECT v.id, v.size, v.color FROM product_variants v WHERE v.product_id = {n}", 450),  # 3
    ("SELECT i.on_hand, i.reserved FROM inventory i WHERE i.product_id = {n}", 350),  # 4
    (
        "SELECT r.id, r.stars, r.body FROM reviews r WHERE r.product_id = {n} "
        "ORDER BY r.created_at DESC LIMIT 20",
        1_800,
    ),  # 5
    (
        "SELECT p.id, p.name, p.price FROM products p WHERE p.category_id = {n} "
        "ORDER BY p.popularity DESC LIMIT 48 OFFSET {m}",
        2_500,
    ),  # 6
    ("SELECT count(*) FROM products p WHERE p.category_id = {n}", 1_200),  # 7
    ("SELECT c.id, c.name FROM categories c WHERE c.parent_id = {n}", 300),  # 8
    ("SELECT c.id, c.updated_at FROM carts c WHERE c.user_id = {n}", 350),  # 9
    ("SELECT ci.product_id, ci.qty FROM cart_items ci WHERE ci.cart_id = {n}", 500),  # 10
    ("INSERT INTO cart_items (cart_id, product_id, qty) VALUES ({n}, {m}, 1)", 900),  # 11
    ("UPDATE carts SET updated_at = now() WHERE id = {n}", 700),  # 12
    ("SELECT o.id, o.status, o.total FROM orders o WHERE o.id = {n} AND o.user_id = {m}", 450),
    ("SELECT oi.product_id, oi.qty FROM order_items oi WHERE oi.order_id = {n}", 600),  # 14
    ("SELECT p.name, p.price FROM products p WHERE p.id = {n}", 700),  # 15: the N+1
    ("SELECT s.carrier, s.tracking FROM shipments s WHERE s.order_id = {n}", 400),  # 16
    ("INSERT INTO orders (user_id, total) VALUES ({n}, {m}) RETURNING id", 1_100),  # 17
    (
        "UPDATE inventory SET reserved = reserved + 1 WHERE product_id = {n} "
        "AND on_hand > reserved",
        900,
    ),  # 18
    (
        "SELECT p.id, p.name, count(*) AS sold FROM order_items oi "
        "JOIN products p ON p.id = oi.product_id "
        "WHERE oi.created_at > now() - interval '7 days' AND p.category_id = {n} "
        "GROUP BY p.id, p.name ORDER BY sold DESC LIMIT 12",
        120_000,
    ),  # 19: the slow one
    ("INSERT INTO payments (order_id, amount, provider) VALUES ({n}, {m}, 'stripe')", 1_500),
)
N_PLUS_ONE_TEMPLATE = 15
SLOW_TEMPLATE = 19


#: (method, route, url path with ``{id}``, share of requests in %, statements in order).
ROUTES: tuple[tuple[str, str, str, int, tuple[int, ...]], ...] = (
    (
        "GET",
        "/products/{id}",
        "/products/{id}",
        30,
        (0, 1, 9, 10, 2, 3, 4, 5, 8, 8, 2, 3, 4, 2, 3, 4),
    ),
    ("GET", "/products", "/products", 20, (0, 1, 9, 10, 8, 8, 7, 6, 2, 3, 4, 2, 3, 4, 2, 3, 4, 5)),
    ("GET", "/cart", "/cart", 15, (0, 1, 9, 10, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4)),
    ("POST", "/cart/items", "/cart/items", 12, (0, 1, 9, 10, 2, 3, 4, 11, 12, 10, 2, 4, 3, 4)),
    ("GET", "/orders/{id}", "/orders/{id}", 10, (0, 1, 13, 14, 16)),
    ("POST", "/checkout", "/checkout", 8, (0, 1, 9, 10, 2, 4, 3, 18, 18, 18, 17, 12, 20)),
    ("GET", "/recommendations", "/recommendations", 5, (0, 1, 2, SLOW_TEMPLATE, 8)),
)
N_PLUS_ONE_ROUTE = "/orders/{id}"
SLOW_ROUTE = "/recommendations"
ERROR_ROUTE = "/checkout"


def _array(values: Any) -> str:
    return "[" + ", ".join(quote_string(v) if isinstance(v, str) else str(v) for v in values) + "]"


def mean_spans_per_request() -> float:
    """Spans a request makes on average (SERVER, connect, statements, render)."""
    total = 0.0
    for _, route, _, share, plan in ROUTES:
        extra = 19.0 if route == N_PLUS_ONE_ROUTE else 0.0  # 8..30 lines, mean 19
        total += share * (len(plan) + extra + 3)
    return total / sum(r[3] for r in ROUTES)


def insert_sql(
    table: str, first: int, count: int, *, requests: int, seed: int = 1, rate: int = DEFAULT_RATE
) -> str:
    """``INSERT … SELECT`` writing requests ``first`` … ``first + count - 1`` of ``requests``.

    Request ``r`` starts at ``START_NS + r / rate`` seconds (plus up to one
    interval of jitter), so the load is steady; every choice is a hash of
    (``seed``, ``r``, the span's index) and so the same for any chunking.
    """
    cum, shares = [], 0
    for r in ROUTES:
        shares += r[3]
        cum.append(shares)
    step = 1_000_000_000 // rate
    peaks = (
        (0.40, 0.50),
        (0.70, 0.75),
    )
    in_peak = " OR ".join(f"(frac >= {a} AND frac < {b})" for a, b in peaks)
    plans = "[" + ", ".join(_array(r[4]) for r in ROUTES) + "]"
    n1 = [r[1] for r in ROUTES].index(N_PLUS_ONE_ROUTE)
    err = [r[1] for r in ROUTES].index(ERROR_ROUTE)
    db_attrs = (
        "'db.system', 'postgresql', 'db.name', 'shop', 'db.user', 'shop', "
        "'net.peer.name', 'pg-primary', 'net.peer.port', '5432'"
    )
    # u(k): a uniform number in [0, 1) for request r and key k
    return f"""
INSERT INTO {table} (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage, `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
WITH
    {_array([t for t, _ in TEMPLATES])} AS templates,
    {_array([us for _, us in TEMPLATES])} AS base_us,
    {_array([r[0] for r in ROUTES])} AS methods,
    {_array([r[1] for r in ROUTES])} AS routes,
    {_array([r[2] for r in ROUTES])} AS paths,
    {plans} AS plans
SELECT
    fromUnixTimestamp64Nano(toInt64(start_ns)) AS Timestamp,
    trace_id AS TraceId,
    if(k = 0, server_id, substring(lower(hex(sipHash128({seed}, r, k))), 1, 16)) AS SpanId,
    if(k = 0, '', server_id) AS ParentSpanId,
    '' AS TraceState,
    multiIf(k = 0, concat(method, ' ', route), k = 1, 'connect', k = n + 2, 'render',
            concat(splitByChar(' ', statement)[1], ' shop')) AS SpanName,
    multiIf(k = 0, 'Server', k = n + 2, 'Internal', 'Client') AS SpanKind,
    '{SERVICE}' AS ServiceName,
    map('service.name', '{SERVICE}', 'service.version', '2.14.0',
        'deployment.environment', 'staging', 'telemetry.sdk.language', 'python',
        'telemetry.sdk.name', 'opentelemetry', 'telemetry.sdk.version', '1.38.0',
        'host.name', concat('shop-api-', toString(r % 8))) AS ResourceAttributes,
    multiIf(k = 0, 'opentelemetry.instrumentation.flask', k = n + 2, 'shop.views',
            'opentelemetry.instrumentation.sqlalchemy') AS ScopeName,
    '0.59b0' AS ScopeVersion,
    multiIf(
        k = 0, map('http.request.method', method, 'http.route', route, 'url.path', url_path,
                   'url.scheme', 'http', 'http.response.status_code', toString(status),
                   'server.address', 'shop.example', 'server.port', '8080',
                   'network.protocol.version', '1.1', 'user_agent.original', 'locust/2.32'),
        k = 1, map({db_attrs}),
        k = n + 2, map('code.function', 'render_template'),
        map({db_attrs}, 'db.statement', statement)) AS SpanAttributes,
    toUInt64(end_ns - start_ns) AS Duration,
    if(failed AND (k = 0 OR k = n + 1), 'Error', 'Unset') AS StatusCode,
    if(failed AND (k = 0 OR k = n + 1), 'canceling statement due to statement timeout', '')
        AS StatusMessage,
    if(failed AND k = 0, [fromUnixTimestamp64Nano(toInt64(end_ns - 500000))], []) AS `Events.Timestamp`,
    if(failed AND k = 0, ['exception'], []) AS `Events.Name`,
    if(failed AND k = 0,
       [map('exception.type', 'sqlalchemy.exc.OperationalError',
            'exception.message', 'canceling statement due to statement timeout')],
       []) AS `Events.Attributes`,
    [] AS `Links.TraceId`, [] AS `Links.SpanId`, [] AS `Links.TraceState`,
    [] AS `Links.Attributes`
FROM (
    SELECT
        r, k, n, method, route, url_path, failed, trace_id, server_id,
        if(failed AND route_i = {err + 1}, 500, 200) AS status,
        if(k >= 2 AND k <= n + 1, replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(
                templates[plan[k - 1] + 1],
                '\\\\{{n\\\\}}', toString(sipHash64({seed}, r, k, 1) % 10000000)),
                '\\\\{{m\\\\}}', toString(sipHash64({seed}, r, k, 2) % 5000)),
                '\\\\{{tok\\\\}}', substring(lower(hex(sipHash128({seed}, r, 'tok'))), 1, 24)),
           '') AS statement,
        multiIf(k = 0, t0, k = 1, t0 + 300000, k = n + 2, db_end + 100000,
                connect_end + ends[k - 1] - durs[k - 1]) AS start_ns,
        multiIf(k = 0, render_end + 200000, k = 1, connect_end, k = n + 2, render_end,
                connect_end + ends[k - 1]) AS end_ns
    FROM (
        SELECT
            *,
            -- statements run one after another, each after a gap of 50-300 us
            arrayMap((t, j) -> toInt64(base_us[t + 1] * 1000 * (0.5 + sipHash64({seed}, r, j, 3)
                     / 18446744073709551616.0)), plan, arrayEnumerate(plan)) AS durs,
            arrayCumSum(arrayMap((d, j) -> d + 50000 + toInt64(sipHash64({seed}, r, j, 4) % 250000),
                                 durs, arrayEnumerate(durs))) AS ends,
            connect_end + ends[n] AS db_end,
            db_end + 100000 + 1000000 + toInt64(sipHash64({seed}, r, 5) % 3000000) AS render_end
        FROM (
            SELECT
                *,
                t0 + 300000 + if(long_wait, 20000000 + toInt64(sipHash64({seed}, r, 6) % 230000000),
                                 30000 + toInt64(sipHash64({seed}, r, 7) % 150000)) AS connect_end,
                length(plan) AS n
            FROM (
                SELECT
                    number AS r,
                    arrayFirstIndex(x -> (sipHash64({seed}, r, 0) % 100) < x, {_array(cum)})
                        AS route_i,
                    methods[route_i] AS method,
                    routes[route_i] AS route,
                    replaceOne(paths[route_i], '{{id}}', toString(sipHash64({seed}, r, 8) % 90000 + 1))
                        AS url_path,
                    if(route_i = {n1 + 1},
                       arrayConcat(plans[route_i],
                                   arrayWithConstant(8 + sipHash64({seed}, r, 9) % 23,
                                                     {N_PLUS_ONE_TEMPLATE})),
                       plans[route_i]) AS plan,
                    route_i = {err + 1} AND sipHash64({seed}, r, 10) % 100 < 4 AS failed,
                    {START_NS} + r * {step} + toInt64(sipHash64({seed}, r, 11) % {step}) AS t0,
                    r / {requests} AS frac,
                    sipHash64({seed}, r, 12) % 100 < if({in_peak}, 50, 1) AS long_wait,
                    lower(hex(sipHash128({seed}, r))) AS trace_id,
                    substring(lower(hex(sipHash128({seed}, r, 0))), 1, 16) AS server_id
                FROM numbers({first}, {count})
            )
        )
    )
    ARRAY JOIN range(toUInt64(n + 3)) AS k
)
SETTINGS max_block_size = 8192
"""


def generate(
    conn: Any,
    spans: int,
    *,
    seed: int = 1,
    rate: int = DEFAULT_RATE,
    chunk: int = 250_000,
    tables: OtelTables | None = None,
) -> int:
    """Write about ``spans`` spans into the exporter's traces table; return the requests.

    ``conn`` is a :class:`correlate.clickhouse.connection.Connection`; the
    exporter's tables are created first when missing. Requests go in chunks of
    ``chunk`` so no insert holds more than a few million spans at once.
    """
    tables = tables or conn.source.tables
    for ddl in tables.all_ddl():
        conn.command(ddl)
    requests = max(1, round(spans / mean_spans_per_request()))
    for first in range(0, requests, chunk):
        count = min(chunk, requests - first)
        conn.command(
            insert_sql(tables.traces_table, first, count, requests=requests, seed=seed, rate=rate)
        )
    return requests
