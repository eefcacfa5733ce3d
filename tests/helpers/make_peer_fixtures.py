"""Write the peer-tool fixtures in ``tests/data/peers/`` (deterministic).

    python tests/helpers/make_peer_fixtures.py

Small load-test-like traces re-created from the *facts* of other tools' public
fixtures (span names, attribute keys, statements, counts, timings): perf-sentinel's
per-stack N+1 fixtures, Zipkin's ``simple-db`` sample trace and Jaeger's HotROD
demo. Nothing is copied from those repositories; every span here is written by
this script. ``EXPECTED.md`` and ``expected.json`` (what a detector should find in
each file, and where each file's facts come from) are written from the same
tables, so they cannot drift from the data.

Same input, same bytes: ids are hashes of the file and request, jitter comes from
``random.Random(<file name>)``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "data" / "peers"

#: 2025-11-25T09:00:00Z, the start of every file's "load test"
BASE_NS = 1_764_061_200 * 1_000_000_000
MS = 1_000_000
US = 1_000

#: The N of "N+1": perf-sentinel's default threshold, and Sentry's (correlate's today)
N_PLUS_ONE_MIN = 5
#: perf-sentinel's default for excessive fan-out: more than this many direct children
FAN_OUT_MAX = 20

PERF_SENTINEL = "https://github.com/robintra/perf-sentinel"
ZIPKIN = "https://github.com/openzipkin/zipkin"
JAEGER = "https://github.com/jaegertracing/jaeger"


# -- the span model -----------------------------------------------------------------------


@dataclass
class Span:
    trace: str  # 32 (or 16) hex digits
    sid: str  # 16 hex digits
    parent: str | None
    name: str
    kind: str | None  # SERVER, CLIENT, INTERNAL, or None (a tracer that set none)
    service: str
    start: int  # ns
    end: int  # ns
    attrs: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None
    error: bool = False
    remote: str | None = None  # Zipkin remoteEndpoint.serviceName
    logs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # Jaeger logs


class Ids:
    """Deterministic ids: a hash of the file, the request and a counter."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.n = 0

    def trace(self, request: int, digits: int = 32) -> str:
        return hashlib.sha256(f"{self.key}/{request}".encode()).hexdigest()[:digits]

    def span(self) -> str:
        self.n += 1
        return hashlib.sha256(f"{self.key}#{self.n}".encode()).hexdigest()[:16]


class Trace:
    """Spans of one request, built top-down."""

    def __init__(self, ids: Ids, request: int, digits: int = 32) -> None:
        self.ids = ids
        self.trace_id = ids.trace(request, digits)
        self.spans: list[Span] = []

    def add(
        self,
        parent: Span | None,
        name: str,
        kind: str | None,
        service: str,
        start: int,
        end: int,
        attrs: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Span:
        span = Span(
            self.trace_id,
            self.ids.span(),
            parent.sid if parent else None,
            name,
            kind,
            service,
            start,
            end,
            dict(attrs or {}),
            **extra,
        )
        self.spans.append(span)
        return span


def jitter(rng: random.Random, value: float, share: float) -> float:
    return value * (1 + rng.uniform(-share, share))


# -- writers ------------------------------------------------------------------------------


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


_OTLP_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}


def otlp_document(spans: list[Span], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One ExportTraceServiceRequest: a resource per service, a scope per scope name."""
    out: list[dict[str, Any]] = []
    for service in dict.fromkeys(s.service for s in spans):
        scopes: dict[str, list[dict[str, Any]]] = {}
        for s in (s for s in spans if s.service == service):
            body: dict[str, Any] = {"traceId": s.trace, "spanId": s.sid}
            if s.parent:
                body["parentSpanId"] = s.parent
            body |= {
                "name": s.name,
                "kind": _OTLP_KIND[s.kind or "INTERNAL"],
                "startTimeUnixNano": str(s.start),
                "endTimeUnixNano": str(s.end),
                "attributes": [{"key": k, "value": _any_value(v)} for k, v in s.attrs.items()],
            }
            if s.error:
                body["status"] = {"code": 2}
            scopes.setdefault(s.scope or "", []).append(body)
        resource = {"service.name": service} | resources.get(service, {})
        out.append(
            {
                "resource": {
                    "attributes": [{"key": k, "value": _any_value(v)} for k, v in resource.items()]
                },
                "scopeSpans": [
                    {"scope": {"name": name}, "spans": body} for name, body in scopes.items()
                ],
            }
        )
    return {"resourceSpans": out}


def zipkin_span(s: Span, ipv4: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"traceId": s.trace}
    if s.parent:
        body["parentId"] = s.parent
    body["id"] = s.sid
    if s.kind:
        body["kind"] = s.kind
    body |= {
        "name": s.name,
        "timestamp": s.start // US,
        "duration": max(1, (s.end - s.start) // US),
        "localEndpoint": {"serviceName": s.service}
        | ({"ipv4": ipv4[s.service]} if s.service in ipv4 else {}),
    }
    if s.remote:
        body["remoteEndpoint"] = {"serviceName": s.remote}
    tags = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in s.attrs.items()}
    if tags:
        body["tags"] = tags
    return body


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    return {"key": key, "type": "string", "value": str(value)}


def jaeger_trace(spans: list[Span], processes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trace as the Jaeger UI and query API v1 give it."""
    pid = {svc: f"p{i + 1}" for i, svc in enumerate(dict.fromkeys(s.service for s in spans))}
    out = []
    for s in spans:
        tags = dict(s.attrs)
        if s.kind:
            tags = {"span.kind": s.kind.lower()} | tags
        if s.error:
            tags["error"] = True
        out.append(
            {
                "traceID": s.trace,
                "spanID": s.sid,
                "flags": 1,
                "operationName": s.name,
                "references": [{"refType": "CHILD_OF", "traceID": s.trace, "spanID": s.parent}]
                if s.parent
                else [],
                "startTime": s.start // US,
                "duration": (s.end - s.start) // US,
                "tags": [_jaeger_tag(k, v) for k, v in tags.items()],
                "logs": [
                    {"timestamp": t // US, "fields": [_jaeger_tag(k, v) for k, v in f.items()]}
                    for t, f in s.logs
                ],
                "processID": pid[s.service],
                "warnings": None,
            }
        )
    return {
        "traceID": spans[0].trace,
        "spans": out,
        "processes": {
            pid[svc]: {
                "serviceName": svc,
                "tags": [_jaeger_tag(k, v) for k, v in processes.get(svc, {}).items()],
            }
            for svc in pid
        },
        "warnings": None,
    }


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- what each file holds (written into expected.json and EXPECTED.md) --------------------


@dataclass
class Pattern:
    kind: str  # n_plus_one_db, n_plus_one_http, redundant, fan_out, slow_query, slow_downstream
    service: str
    route: str  # the request's route template (as the detectors should name it)
    parent: str  # name of the span the repeated calls hang under
    shape: str  # statement shape, URL template or operation
    calls_per_request: list[int]  # in each request that shows it
    note: str = ""

    @property
    def requests(self) -> int:
        return len(self.calls_per_request)


@dataclass
class Fixture:
    path: str  # under tests/data/peers/
    format: str
    source: str  # key of SOURCES
    title: str
    requests: int
    spans: int = 0
    traces: int = 0
    patterns: list[Pattern] = field(default_factory=list)
    not_flagged: list[str] = field(default_factory=list)
    also: list[str] = field(default_factory=list)  # other findings a detector may rightly add
    facts: str = ""  # the file (or files) of the source whose facts it follows
    part_of: str = ""  # a directory described as a whole (HotROD's four files)


FIXTURES: list[Fixture] = []


def write_lines(fx: Fixture, traces: list[Trace], resources: dict[str, dict[str, Any]]) -> None:
    """OTLP/JSON lines: one ExportTraceServiceRequest per request, as a batch exporter writes."""
    lines = [compact(otlp_document(t.spans, resources)) for t in traces]
    _write(fx, "\n".join(lines) + "\n", traces)


def _write(fx: Fixture, text: str, traces: list[Trace]) -> None:
    path = OUT / fx.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    fx.spans += sum(len(t.spans) for t in traces)
    fx.traces += len({t.trace_id for t in traces})
    if fx not in FIXTURES:
        FIXTURES.append(fx)


# -- perf-sentinel: one N+1 per stack, and its fix -----------------------------------------

#: perf-sentinel's per-stack fixtures: 6 statements 50 ms apart with these durations (µs)
PS_DURATIONS_US = [800, 750, 900, 820, 700, 850]
#: ... and the Mutiny one: 15 statements 30 ms apart
PS_MUTINY_US = [100, 50, 200, 60, 250, 80, 300, 70, 150, 400, 90, 220, 65, 280, 110]
#: orders per request in our load test (the first request is perf-sentinel's 6)
ORDERS_PER_REQUEST = [6, 6, 7, 4, 6, 5, 8, 3, 6, 6]


@dataclass
class Stack:
    key: str
    title: str
    service: str
    resource: dict[str, Any]
    server_scope: str
    route: str  # http.route as the framework reports it
    server_name: str
    server_attrs: Callable[[int], dict[str, Any]]
    db_scope: str
    db_name: Callable[[str, str], str]  # (operation, table) -> span name
    db_attrs: dict[str, Any]  # on every statement span
    text_key: str  # db.statement or db.query.text
    op_key: str | None  # db.operation / db.operation.name
    load: str | None  # the customer's open orders
    item: Callable[[int], str]  # the N+1 statement for one order
    batch: Callable[[list[int]], str]  # the fix: all orders' items at once
    update: Callable[[int], str] | None
    code: dict[str, Any]  # code.* attributes perf-sentinel's fixture carries
    facts: str  # fixture path in perf-sentinel
    item_table: str = "order_item"
    cadence_ms: float = 50.0
    durations_us: list[int] = field(default_factory=lambda: list(PS_DURATIONS_US))
    counts: list[int] = field(default_factory=lambda: list(ORDERS_PER_REQUEST))
    controller: tuple[str, str] | None = None  # (span name, scope) of an INTERNAL handler span
    wrapper: tuple[str, str] | None = None  # (span name, scope) around each N+1 statement
    wrapper_attrs: dict[str, Any] = field(default_factory=dict)
    fixed_joins_load: bool = False  # the fix folds the load into one JOIN FETCH statement


def _stmt_attrs(stack: Stack, text: str, operation: str) -> dict[str, Any]:
    attrs = dict(stack.db_attrs)
    attrs[stack.text_key] = text
    if stack.op_key:
        attrs[stack.op_key] = operation
    return attrs


def stack_request(
    stack: Stack, tr: Trace, rng: random.Random, k: int, t0: int, fixed: bool
) -> None:
    n = stack.counts[k]
    order_ids = [i + 1 for i in range(n)] if k == 0 else [100 * k + i for i in range(n)]
    main_order = 42 if k == 0 else 40 + k
    svc = stack.service
    server = tr.add(
        None,
        stack.server_name,
        "SERVER",
        svc,
        t0,
        t0,
        stack.server_attrs(main_order),
        scope=stack.server_scope,
    )
    parent = server
    if stack.controller:
        parent = tr.add(
            server,
            stack.controller[0],
            "INTERNAL",
            svc,
            t0 + 300 * US,
            0,
            scope=stack.controller[1],
        )
    t = t0 + int(1.2 * MS)

    def statement(
        text: str,
        op: str,
        table: str,
        start: int,
        dur_us: float,
        under: Span,
        extra: dict[str, Any] | None = None,
    ) -> Span:
        attrs = _stmt_attrs(stack, text, op) | (extra or {})
        return tr.add(
            under,
            stack.db_name(op, table),
            "CLIENT",
            svc,
            start,
            start + int(dur_us * US),
            attrs,
            scope=stack.db_scope,
        )

    if fixed:
        if not stack.fixed_joins_load and stack.load:
            s = statement(stack.load, "SELECT", "orders", t, jitter(rng, 1400, 0.2), parent)
            t = s.end + int(jitter(rng, 0.6, 0.3) * MS)
        s = statement(
            stack.batch(order_ids), "SELECT", stack.item_table, t, jitter(rng, 2300, 0.2), parent
        )
        t = s.end + int(jitter(rng, 3, 0.3) * MS)
    else:
        if stack.load:
            s = statement(stack.load, "SELECT", "orders", t, jitter(rng, 1400, 0.2), parent)
            t = s.end + int(jitter(rng, 0.8, 0.3) * MS)
        first = t
        for i, oid in enumerate(order_ids):
            offset = i * stack.cadence_ms * MS
            start = first + int(offset if k == 0 else jitter(rng, offset, 0.08))
            dur = stack.durations_us[i % len(stack.durations_us)]
            dur = dur if k == 0 else jitter(rng, dur, 0.2)
            under = parent
            if stack.wrapper:
                under = tr.add(
                    parent,
                    stack.wrapper[0],
                    "INTERNAL",
                    svc,
                    start - 150 * US,
                    start + int(dur * US) + 100 * US,
                    stack.wrapper_attrs,
                    scope=stack.wrapper[1],
                )
            s = statement(
                stack.item(oid), "SELECT", stack.item_table, start, dur, under, stack.code
            )
        t = s.end + int(jitter(rng, 2, 0.3) * MS)
    if stack.update:
        s = statement(
            stack.update(main_order), "UPDATE", "orders", t, jitter(rng, 1800, 0.2), parent
        )
        t = s.end
    if parent is not server:
        parent.end = t + 400 * US
    server.end = t + int(jitter(rng, 1.5, 0.3) * MS)


def write_stack(stack: Stack) -> None:
    resources = {stack.service: stack.resource}
    for fixed in (False, True):
        variant = "clean" if fixed else "n-plus-one"
        name = f"perf-sentinel/{stack.key}-{variant}.jsonl"
        rng = random.Random(name)
        ids = Ids(name)
        traces = []
        t0 = BASE_NS
        for k in range(len(stack.counts)):
            tr = Trace(ids, k)
            stack_request(stack, tr, rng, k, t0, fixed)
            traces.append(tr)
            t0 += int(jitter(rng, 450, 0.4) * MS)
        fx = Fixture(
            name,
            "otlp-json",
            "perf-sentinel",
            f"{stack.title}, {'fixed (' + variant + ')' if fixed else 'N+1'}",
            len(traces),
        )
        parent = stack.controller[0] if stack.controller else stack.server_name
        if fixed:
            fx.not_flagged.append(
                "anything: each statement runs once per request (the N+1 is fixed by "
                + {
                    "java-jpa": "a JOIN FETCH",
                    "java-quarkus": "a JOIN FETCH",
                    "java-mutiny": "one grouped count",
                    "csharp-efcore": "`.Include()`",
                    "php-laravel": "eager loading, `with('items')`",
                    "rust-diesel": "`belonging_to` / `eq_any`",
                }[stack.key]
                + ")"
            )
        else:
            counts = [c for c in stack.counts if c >= N_PLUS_ONE_MIN]
            note = ""
            if stack.wrapper:
                note = (
                    f"each statement's direct parent is its own `{stack.wrapper[0]}` span "
                    f"(one per call); the calls repeat under `{parent}`, one level up"
                )
            fx.patterns.append(
                Pattern(
                    "n_plus_one_db",
                    stack.service,
                    stack.route,
                    parent,
                    stack.item(0).replace("= 0 ", "= ? ").replace("= 0", "= ?"),
                    counts,
                    note,
                )
            )
            small = [c for c in stack.counts if c < N_PLUS_ONE_MIN]
            fx.not_flagged.append(
                f"the {len(small)} requests with fewer than {N_PLUS_ONE_MIN} orders "
                f"({', '.join(map(str, small))} calls): below the N+1 threshold"
                if small
                else "nothing else"
            )
            if stack.key != "php-laravel":
                fx.not_flagged.append(
                    "redundant: the N+1 statement's text is identical within a request, but "
                    "its parameters are bound, not in the text (perf-sentinel reports such "
                    "ORM statements as redundant for want of values; they are one N+1)"
                )
            fx.not_flagged.append(
                f"fan_out: at most {max(stack.counts) + 2} direct children (≤ {FAN_OUT_MAX})"
            )
            fx.also.append(
                f"unexplained_time on {stack.route}: perf-sentinel's {stack.cadence_ms:.0f} ms "
                "between statements is the application's own time, most of each request "
                "(correlate's rule needs ≥ 10 requests, so it fires only on 10-request files)"
            )
        write_lines(fx, traces, resources)
        fx.facts = stack.facts


def stacks() -> list[Stack]:
    java_res = {
        "telemetry.sdk.language": "java",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.distro.name": "opentelemetry-java-instrumentation",
    }
    hib_item = (
        "select oi1_0.order_id,oi1_0.id,oi1_0.product_id,oi1_0.quantity "
        "from order_item oi1_0 where oi1_0.order_id=?"
    )
    hib_load = (
        "select o1_0.id,o1_0.customer_id,o1_0.status from orders o1_0 "
        "where o1_0.customer_id=? and o1_0.status=?"
    )
    hib_join = (
        "select o1_0.id,o1_0.customer_id,o1_0.status,i1_0.order_id,i1_0.id,i1_0.product_id,"
        "i1_0.quantity from orders o1_0 left join order_item i1_0 on o1_0.id=i1_0.order_id "
        "where o1_0.customer_id=? and o1_0.status=?"
    )
    hib_update = "update orders set customer_id=?,status=? where id=?"

    def old_http(route: str) -> Callable[[int], dict[str, Any]]:
        return lambda oid: {
            "http.method": "POST",
            "http.route": route,
            "http.target": route.replace("{orderId}", str(oid)),
            "http.status_code": 200,
        }

    def new_http(route: str, placeholder: str, prefix: str = "") -> Callable[[int], dict[str, Any]]:
        return lambda oid: {
            "http.request.method": "POST",
            "http.route": route,
            "url.path": prefix + route.replace(placeholder, str(oid)),
            "http.response.status_code": 200,
        }

    ef_item = (
        "SELECT [o].[Id], [o].[OrderId], [o].[ProductId], [o].[Quantity]\n"
        "FROM [OrderItems] AS [o]\nWHERE [o].[OrderId] = @__orderId_0"
    )
    laravel = "select * from `order_items` where `order_items`.`order_id` = {} and `order_items`.`order_id` is not null"
    diesel_cols = '"order_items"."id", "order_items"."order_id", "order_items"."quantity"'
    return [
        Stack(
            key="java-jpa",
            title="Spring Boot + Spring Data JPA / Hibernate 6, OpenTelemetry Java agent",
            service="order-svc",
            resource=java_res,
            server_scope="io.opentelemetry.tomcat-10.0",
            route="/api/orders/{orderId}/submit",
            server_name="POST /api/orders/{orderId}/submit",
            server_attrs=old_http("/api/orders/{orderId}/submit"),
            controller=("OrderController.submit", "io.opentelemetry.spring-webmvc-6.0"),
            wrapper=("OrderItemRepository.findByOrderId", "io.opentelemetry.spring-data-1.8"),
            db_scope="io.opentelemetry.jdbc",
            db_name=lambda op, table: f"{op} shop.{table}",
            db_attrs={"db.system": "postgresql", "db.name": "shop", "net.peer.name": "orders-db"},
            text_key="db.statement",
            op_key="db.operation",
            load=hib_load,
            item=lambda oid: hib_item,
            batch=lambda ids: hib_join,
            update=lambda oid: hib_update,
            fixed_joins_load=True,
            code={},
            wrapper_attrs={
                "code.function": "findByOrderId",
                "code.namespace": "com.kinexo.order.repository.OrderItemRepository",
            },
            counts=[6, 6, 7, 4, 6, 5, 3],
            facts="tests/fixtures/n_plus_one_sql_java_jpa.json",
        ),
        Stack(
            key="java-quarkus",
            title="Quarkus 3 + Hibernate ORM (lazy loading), Quarkus OpenTelemetry + JDBC telemetry",
            service="order-svc",
            resource=java_res | {"telemetry.distro.name": "quarkus"},
            server_scope="io.quarkus.opentelemetry",
            route="/api/orders/{orderId}/submit",
            server_name="POST /api/orders/{orderId}/submit",
            server_attrs=new_http("/api/orders/{orderId}/submit", "{orderId}"),
            db_scope="io.opentelemetry.jdbc",
            db_name=lambda op, table: f"{op} orders.{table}",
            db_attrs={"db.system": "postgresql", "db.name": "orders", "server.address": "pg"},
            text_key="db.statement",
            op_key="db.operation",
            load=hib_load,
            item=lambda oid: hib_item,
            batch=lambda ids: hib_join,
            update=lambda oid: hib_update,
            fixed_joins_load=True,
            code={"code.function": "SessionImpl.initializeCollection"},
            counts=ORDERS_PER_REQUEST[:9],
            facts="tests/fixtures/n_plus_one_sql_java_quarkus.json",
        ),
        Stack(
            key="java-mutiny",
            title="Quarkus reactive (Mutiny), new database semantic conventions",
            service="mutiny-svc",
            resource=java_res | {"telemetry.distro.name": "quarkus"},
            server_scope="io.quarkus.opentelemetry",
            route="/api/fault/n-plus-one-sql",
            server_name="POST /api/fault/n-plus-one-sql",
            server_attrs=new_http("/api/fault/n-plus-one-sql", "{}"),
            db_scope="io.opentelemetry.jdbc",
            db_name=lambda op, table: f"{op} mutiny.{table}",
            db_attrs={
                "db.system.name": "postgresql",
                "db.namespace": "mutiny",
                "server.address": "pg",
            },
            text_key="db.query.text",
            op_key="db.operation.name",
            load=None,
            item=lambda oid: "SELECT count(*) FROM mutiny.order_items WHERE order_id = ?",
            batch=lambda ids: (
                "SELECT order_id, count(*) FROM mutiny.order_items "
                "WHERE order_id = ANY(?) GROUP BY order_id"
            ),
            update=None,
            item_table="order_items",
            cadence_ms=30.0,
            durations_us=list(PS_MUTINY_US),
            counts=[15] * 5,
            code={"code.function": "FaultResource.nPlusOneSql"},
            facts="tests/fixtures/n_plus_one_sql_java_mutiny_reactive.json",
        ),
        Stack(
            key="csharp-efcore",
            title="ASP.NET Core + EF Core (SQL Server), OpenTelemetry .NET",
            service="order-svc",
            resource={"telemetry.sdk.language": "dotnet", "telemetry.sdk.name": "opentelemetry"},
            server_scope="Microsoft.AspNetCore",
            route="api/orders/{orderId}/submit",
            server_name="POST api/orders/{orderId}/submit",
            server_attrs=new_http("api/orders/{orderId}/submit", "{orderId}", "/"),
            db_scope="OpenTelemetry.Instrumentation.EntityFrameworkCore",
            db_name=lambda op, table: "Shop",
            db_attrs={"db.system": "mssql", "db.name": "Shop", "server.address": "sql-orders"},
            text_key="db.statement",
            op_key=None,
            load=(
                "SELECT [o].[Id], [o].[CustomerId], [o].[Status]\nFROM [Orders] AS [o]\n"
                "WHERE [o].[CustomerId] = @__customerId_0 AND [o].[Status] = 0"
            ),
            item=lambda oid: ef_item,
            batch=lambda ids: (
                "SELECT [o].[Id], [o0].[Id], [o0].[OrderId], [o0].[ProductId], [o0].[Quantity]\n"
                "FROM [Orders] AS [o]\nLEFT JOIN [OrderItems] AS [o0] ON [o].[Id] = [o0].[OrderId]\n"
                "WHERE [o].[CustomerId] = @__customerId_0 AND [o].[Status] = 0\nORDER BY [o].[Id]"
            ),
            update=lambda oid: (
                "SET IMPLICIT_TRANSACTIONS OFF;\nSET NOCOUNT ON;\n"
                "UPDATE [Orders] SET [Status] = @p0\nOUTPUT 1\nWHERE [Id] = @p1;"
            ),
            item_table="OrderItems",
            code={"code.namespace": "Microsoft.EntityFrameworkCore.DbSet"},
            facts="tests/fixtures/n_plus_one_sql_csharp_ef_core.json",
        ),
        Stack(
            key="php-laravel",
            title="Laravel / Eloquent (MySQL), OpenTelemetry PHP auto-instrumentation",
            service="order-svc",
            resource={"telemetry.sdk.language": "php", "telemetry.sdk.name": "opentelemetry"},
            server_scope="io.opentelemetry.contrib.php.laravel",
            route="api/orders/{order}/submit",
            server_name="POST api/orders/{order}/submit",
            server_attrs=new_http("api/orders/{order}/submit", "{order}", "/"),
            db_scope="io.opentelemetry.contrib.php.pdo",
            db_name=lambda op, table: "PDOStatement::execute",
            db_attrs={"db.system": "mysql", "db.name": "shop", "server.address": "mysql"},
            text_key="db.statement",
            op_key=None,
            load="select * from `orders` where `customer_id` = 7 and `status` = 'open'",
            item=lambda oid: laravel.format(oid),
            batch=lambda ids: (
                "select * from `order_items` where `order_items`.`order_id` in "
                f"({', '.join(map(str, ids))})"
            ),
            update=lambda oid: (
                f"update `orders` set `status` = 'submitted', `updated_at` = "
                f"'2025-11-25 09:00:01' where `id` = {oid}"
            ),
            item_table="order_items",
            code={"code.function": "items", "code.namespace": "App\\Models\\Order"},
            facts="tests/fixtures/n_plus_one_sql_php_laravel.json",
        ),
        Stack(
            key="rust-diesel",
            title="Rust axum + Diesel (PostgreSQL), tracing-opentelemetry",
            service="order-svc",
            resource={"telemetry.sdk.language": "rust", "telemetry.sdk.name": "opentelemetry"},
            server_scope="axum-tracing-opentelemetry",
            route="/api/orders/:order_id/submit",
            server_name="POST /api/orders/:order_id/submit",
            server_attrs=new_http("/api/orders/:order_id/submit", ":order_id"),
            db_scope="diesel-tracing",
            db_name=lambda op, table: f"{op} {table}",
            db_attrs={"db.system": "postgresql", "db.name": "shop", "server.address": "pg"},
            text_key="db.statement",
            op_key="db.operation",
            load=(
                'SELECT "orders"."id", "orders"."customer_id", "orders"."status" FROM "orders" '
                'WHERE (("orders"."customer_id" = $1) AND ("orders"."status" = $2))'
            ),
            item=lambda oid: (
                f'SELECT {diesel_cols} FROM "order_items" WHERE ("order_items"."order_id" = $1)'
            ),
            batch=lambda ids: (
                f'SELECT {diesel_cols} FROM "order_items" '
                'WHERE ("order_items"."order_id" = ANY($1))'
            ),
            update=lambda oid: (
                'UPDATE "orders" SET "status" = $1 WHERE ("orders"."id" = $2) '
                'RETURNING "orders"."id", "orders"."customer_id", "orders"."status"'
            ),
            item_table="order_items",
            code={"code.function": "OrderRepository::find_by_order_id"},
            counts=ORDERS_PER_REQUEST[:9],
            facts="tests/fixtures/n_plus_one_sql_rust_diesel.json",
        ),
    ]


# -- perf-sentinel: the stack-independent ones ---------------------------------------------

GAME_RES = {"telemetry.sdk.language": "rust", "telemetry.sdk.name": "opentelemetry"}


def write_http_n_plus_one() -> None:
    name = "perf-sentinel/http-n-plus-one.jsonl"
    rng, ids = random.Random(name), Ids(name)
    offsets_ms = [0, 50, 100, 150, 150, 200]  # two calls start together
    durations_ms = [12, 11, 13, 14, 10, 11.5]
    counts = [6, 6, 8, 4, 6, 7, 5, 3]
    traces, t0 = [], BASE_NS
    for k, n in enumerate(counts):
        tr = Trace(ids, k)
        game = 42 if k == 0 else 40 + k
        server = tr.add(
            None,
            "POST /api/game/{gameId}/start",
            "SERVER",
            "game",
            t0,
            0,
            {
                "http.request.method": "POST",
                "http.route": "/api/game/{gameId}/start",
                "url.path": f"/api/game/{game}/start",
                "http.response.status_code": 200,
            },
            scope="axum-tracing-opentelemetry",
        )
        first = t0 + 2 * MS
        for i in range(n):
            account = 101 + i if k == 0 else 100 * k + 7 * i + 3
            off = offsets_ms[i % 6] + 250 * (i // 6)
            start = first + int((off if k == 0 else jitter(rng, off, 0.05)) * MS)
            dur = durations_ms[i % 6] if k == 0 else jitter(rng, durations_ms[i % 6], 0.2)
            client = tr.add(
                server,
                "GET",
                "CLIENT",
                "game",
                start,
                start + int(dur * MS),
                {
                    "http.request.method": "GET",
                    "url.full": f"http://account-svc:5000/api/account/{account}",
                    "server.address": "account-svc",
                    "http.response.status_code": 200,
                },
                scope="reqwest-tracing",
            )
            tr.add(
                client,
                "GET /api/account/{id}",
                "SERVER",
                "account-svc",
                client.start + 600 * US,
                client.end - 400 * US,
                {
                    "http.request.method": "GET",
                    "http.route": "/api/account/{id}",
                    "url.path": f"/api/account/{account}",
                    "http.response.status_code": 200,
                },
                scope="io.opentelemetry.aspnetcore",
            )
        server.end = max(s.end for s in tr.spans) + 3 * MS
        traces.append(tr)
        t0 += int(jitter(rng, 500, 0.4) * MS)
    fx = Fixture(name, "otlp-json", "perf-sentinel", "HTTP N+1: game → account-svc", len(traces))
    fx.patterns.append(
        Pattern(
            "n_plus_one_http",
            "game",
            "/api/game/{gameId}/start",
            "POST /api/game/{gameId}/start",
            "GET account-svc /api/account/{id}",
            [c for c in counts if c >= N_PLUS_ONE_MIN],
            "the callee's own SERVER spans carry the route template; two of the calls overlap",
        )
    )
    fx.not_flagged += [
        "the 2 requests with 4 and 3 account calls: below the threshold",
        "redundant: every account id differs within a request",
        "account-svc's own requests (`GET /api/account/{id}`): one call each, nothing to flag",
    ]
    write_lines(fx, traces, {"game": GAME_RES, "account-svc": {"telemetry.sdk.language": "dotnet"}})
    fx.facts = "tests/fixtures/n_plus_one_http.json"


def write_fan_out() -> None:
    name = "perf-sentinel/fan-out.jsonl"
    rng, ids = random.Random(name), Ids(name)
    counts = [25, 21, 18, 30, 25]
    traces, t0 = [], BASE_NS
    for k, n in enumerate(counts):
        tr = Trace(ids, k)
        game = 42 if k == 0 else 40 + k
        server = tr.add(
            None,
            "POST /api/game/{gameId}/start",
            "SERVER",
            "game",
            t0,
            0,
            {
                "http.request.method": "POST",
                "http.route": "/api/game/{gameId}/start",
                "url.path": f"/api/game/{game}/start",
                "http.response.status_code": 200,
            },
            scope="axum-tracing-opentelemetry",
        )
        handler = tr.add(
            server,
            "GameService::start_game",
            "INTERNAL",
            "game",
            t0 + 200 * US,
            0,
            scope="tracing-opentelemetry",
        )
        for i in range(n):
            start = handler.start + int(jitter(rng, 10 * (i + 1), 0.02 if k else 0) * MS)
            dur = jitter(rng, 800, 0.15)
            tr.add(
                handler,
                "SELECT game",
                "CLIENT",
                "game",
                start,
                start + int(dur * US),
                {
                    "db.system": "postgresql",
                    "db.statement": f"SELECT * FROM player WHERE game_id = {i + 1 if k == 0 else 30 * k + i}",
                },
                scope="sqlx",
            )
        handler.end = max(s.end for s in tr.spans) + 1 * MS
        server.end = handler.end + 1 * MS
        traces.append(tr)
        t0 += int(jitter(rng, 700, 0.3) * MS)
    fx = Fixture(
        name,
        "otlp-json",
        "perf-sentinel",
        "Excessive fan-out: 25 queries under one span",
        len(traces),
    )
    flagged = [c for c in counts if c > FAN_OUT_MAX]
    fx.patterns += [
        Pattern(
            "fan_out",
            "game",
            "/api/game/{gameId}/start",
            "GameService::start_game",
            "direct CLIENT children",
            flagged,
            f"more than {FAN_OUT_MAX} direct children; the 30 is not > 3×{FAN_OUT_MAX}, so a warning",
        ),
        Pattern(
            "n_plus_one_db",
            "game",
            "/api/game/{gameId}/start",
            "GameService::start_game",
            "SELECT * FROM player WHERE game_id = ?",
            counts,
            "the same children are an N+1 too (literal ids, all different), as perf-sentinel reports both",
        ),
    ]
    fx.not_flagged += [
        f"fan_out in the request with {min(counts)} children (≤ {FAN_OUT_MAX})",
        "redundant: no game_id repeats within a request",
    ]
    write_lines(fx, traces, {"game": GAME_RES})
    fx.facts = "tests/fixtures/fanout.json"


def write_clean() -> None:
    name = "perf-sentinel/clean.jsonl"
    rng, ids = random.Random(name), Ids(name)
    traces, t0 = [], BASE_NS
    for k in range(10):
        tr = Trace(ids, k)
        if k % 2 == 0:
            user = 1 if k == 0 else k
            server = tr.add(
                None,
                "GET /api/users/{id}",
                "SERVER",
                "user-svc",
                t0,
                0,
                {
                    "http.request.method": "GET",
                    "http.route": "/api/users/{id}",
                    "url.path": f"/api/users/{user}",
                    "http.response.status_code": 200,
                },
                scope="io.opentelemetry.tomcat-10.0",
            )
            for i, (text, dur) in enumerate(
                [
                    (f"SELECT * FROM users WHERE id = {user}", 500),
                    (f"SELECT * FROM orders WHERE user_id = {user}", 600),
                ]
            ):
                start = t0 + int((1 + 50 * i) * MS)
                tr.add(
                    server,
                    "SELECT users",
                    "CLIENT",
                    "user-svc",
                    start,
                    start + int(jitter(rng, dur, 0.2) * US),
                    {"db.system": "postgresql", "db.name": "users", "db.statement": text},
                    scope="io.opentelemetry.jdbc",
                )
        else:
            server = tr.add(
                None,
                "POST /api/orders",
                "SERVER",
                "order-svc",
                t0,
                0,
                {
                    "http.request.method": "POST",
                    "http.route": "/api/orders",
                    "url.path": "/api/orders",
                    "http.response.status_code": 201,
                },
                scope="io.opentelemetry.tomcat-10.0",
            )
            start = t0 + 1 * MS
            tr.add(
                server,
                "GET",
                "CLIENT",
                "order-svc",
                start,
                start + int(jitter(rng, 8, 0.2) * MS),
                {
                    "http.request.method": "GET",
                    "url.full": "http://payment-svc:8080/api/payment/status",
                    "server.address": "payment-svc",
                    "server.port": 8080,
                    "http.response.status_code": 200,
                },
                scope="io.opentelemetry.http-url-connection",
            )
            start = t0 + 100 * MS
            amount = 99.99 if k == 1 else round(10 + 7.5 * k, 2)
            tr.add(
                server,
                "INSERT orders",
                "CLIENT",
                "order-svc",
                start,
                start + int(jitter(rng, 300, 0.2) * US),
                {
                    "db.system": "postgresql",
                    "db.name": "orders",
                    "db.statement": f"INSERT INTO orders (user_id, amount) VALUES (42, {amount})",
                },
                scope="io.opentelemetry.jdbc",
            )
        server.end = max(s.end for s in tr.spans) + 2 * MS
        traces.append(tr)
        t0 += int(jitter(rng, 400, 0.4) * MS)
    fx = Fixture(
        name,
        "otlp-json",
        "perf-sentinel",
        "Clean traces: two services, nothing to find",
        len(traces),
    )
    fx.not_flagged += [
        "anything: each statement and each call runs once per request",
        "n_plus_one_db across requests: `SELECT * FROM users WHERE id = ?` runs once in each of "
        "5 requests (a shape repeated across requests is not an N+1)",
    ]
    write_lines(
        fx,
        traces,
        {
            "user-svc": {"telemetry.sdk.language": "java"},
            "order-svc": {"telemetry.sdk.language": "java"},
        },
    )
    fx.facts = "tests/fixtures/clean_traces.json"


# -- Zipkin: Brave + p6spy, and an older tracer --------------------------------------------

BRAVE_IP = {"bookshelf": "172.23.250.16", "storefront": "10.1.0.4", "pricing": "10.1.0.9"}


def write_zipkin_simple_db() -> None:
    name = "zipkin/simple-db.json"
    rng, ids = random.Random(name), Ids(name)
    traces, t0 = [], BASE_NS
    titles = [
        "Cloud Native Java",
        "Release It!",
        "Designing Data-Intensive Applications",
        "Site Reliability Engineering",
        "Systems Performance",
        "The Art of PostgreSQL",
        "High Performance MySQL",
        "Database Internals",
        "Java Performance",
        "Understanding Distributed Systems",
    ]
    for k, title in enumerate(titles):
        tr = Trace(ids, k, 16)
        warm = k == 0  # the first request pays for the JIT: 252 ms, as in Zipkin's sample
        book, rev = 10001 + k, 97 + k
        price = [12.25, 30.5, 39.99, 25.0, 44.0, 35.0, 41.5, 33.0, 38.0, 29.99][k]
        total = 252_016 * US if warm else int(jitter(rng, 26, 0.3) * MS)
        root = tr.add(
            None,
            "http:/book",
            "SERVER",
            "bookshelf",
            t0,
            t0 + total,
            {
                "http.host": "localhost",
                "http.method": "POST",
                "http.path": "/book",
                "http.url": "http://localhost:9777/book",
                "mvc.controller.class": "AppController",
                "mvc.controller.method": "postBook",
            },
        )
        steps = [
            ("call", "call next value for hibernate_sequence", 100.5, 6.05),
            (
                "insert",
                f"insert into api_book (book_price, book_title, book_id) values ({price}, '{title.replace(chr(39), chr(39) * 2)}', {book})",
                179.2,
                2.41,
            ),
            (
                "insert",
                f"insert into revinfo (rev, revtstmp) values (null, {(t0 + 190 * MS) // MS})",
                197.6,
                2.03,
            ),
            (
                "insert",
                f"insert into api_book_aud (revtype, book_price, book_title, book_id, rev) values (0, {price}, '{title.replace(chr(39), chr(39) * 2)}', {book}, {rev})",
                207.0,
                1.12,
            ),
        ]
        scale = 1.0 if warm else total / (252.016 * MS)
        for op, sql, at_ms, dur_ms in steps:
            start = t0 + int(at_ms * MS * scale)
            dur = dur_ms if warm else jitter(rng, dur_ms * 0.6, 0.2)
            tr.add(
                root,
                op,
                "CLIENT",
                "bookshelf",
                start,
                start + int(dur * MS),
                {"sql.query": sql},
                remote="app_db",
            )
        # Zipkin's sample lists the children before their root: keep that order
        tr.spans = tr.spans[1:] + tr.spans[:1]
        traces.append(tr)
        t0 += int(jitter(rng, 600, 0.4) * MS)
    doc = [[zipkin_span(s, BRAVE_IP) for s in tr.spans] for tr in traces]
    fx = Fixture(
        name,
        "zipkin",
        "zipkin-simple-db",
        "Brave + p6spy: POST /book, Zipkin's simple-db",
        len(traces),
    )
    fx.not_flagged += [
        "anything: four different statements per request, each once",
        "slow_query: the first request's 252 ms is the application's (warm-up), not the database's "
        "(its statements take 1–6 ms)",
    ]
    _write(fx, "[\n" + ",\n".join(compact(t) for t in doc) + "\n]\n", traces)
    fx.facts = "zipkin-lens/testdata/simple-db-p6.json"


def write_zipkin_books() -> None:
    name = "zipkin/books-n-plus-one.json"
    rng, ids = random.Random(name), Ids(name)
    books_per_author = [8, 3, 12, 6, 9, 2, 7, 10, 5, 11]
    traces, t0 = [], BASE_NS
    author_sql = "select a.id, a.name from author a where a.id={}"
    books_sql = "select b.id, b.author_id, b.price, b.title from book b where b.author_id={}"
    review_sql = "select r.id, r.book_id, r.stars from review r where r.book_id={}"
    for k, n in enumerate(books_per_author):
        tr = Trace(ids, k, 16)
        author = 42 if k == 0 else 40 + 3 * k
        root = tr.add(
            None,
            f"http:/authors/{author}/books",
            "SERVER",
            "bookshelf",
            t0,
            0,
            {
                "http.host": "localhost",
                "http.method": "GET",
                "http.path": f"/authors/{author}/books",
                "http.url": f"http://localhost:9777/authors/{author}/books",
                "mvc.controller.class": "AuthorController",
                "mvc.controller.method": "books",
            },
        )
        t = t0 + int(jitter(rng, 1.5, 0.2) * MS)
        texts = [author_sql.format(author), author_sql.format(author), books_sql.format(author)]
        texts += [review_sql.format(1000 * author + b) for b in range(n)]
        for text in texts:
            dur = jitter(rng, 1.1, 0.3)
            tr.add(
                root,
                "select",
                "CLIENT",
                "bookshelf",
                t,
                t + int(dur * MS),
                {"sql.query": text},
                remote="app_db",
            )
            t += int((dur + jitter(rng, 0.4, 0.3)) * MS)
        root.end = t + int(jitter(rng, 2, 0.3) * MS)
        traces.append(tr)
        t0 += int(jitter(rng, 400, 0.4) * MS)
    doc = [[zipkin_span(s, BRAVE_IP) for s in tr.spans] for tr in traces]
    fx = Fixture(
        name,
        "zipkin",
        "zipkin-simple-db",
        "Brave + p6spy: GET /authors/{id}/books, reviews loaded per book",
        len(traces),
    )
    route = "/authors/{id}/books"
    fx.patterns += [
        Pattern(
            "n_plus_one_db",
            "bookshelf",
            route,
            "http:/authors/{id}/books",
            "select r.id, r.book_id, r.stars from review r where r.book_id=?",
            [c for c in books_per_author if c >= N_PLUS_ONE_MIN],
            "statements from `sql.query` with literal ids; the root's name carries the "
            "author id (`http:/authors/42/books`), so the route must come from "
            "`http.path` with its id replaced",
        ),
        Pattern(
            "redundant",
            "bookshelf",
            route,
            "http:/authors/{id}/books",
            "select a.id, a.name from author a where a.id=<same id>",
            [2] * len(books_per_author),
            "the same author read twice, same literal id",
        ),
    ]
    fx.not_flagged += [
        "n_plus_one_db in the 2 requests with 3 and 2 books",
        "n_plus_one_db for the author statement: 2 calls with the *same* id are redundant, not N+1",
    ]
    _write(fx, "[\n" + ",\n".join(compact(t) for t in doc) + "\n]\n", traces)
    fx.facts = "zipkin-lens/testdata/simple-db-p6.json"


def write_zipkin_legacy() -> None:
    """An older tracer in the storefront: request roots without a kind, OpenTracing tags."""
    name = "zipkin/legacy-no-kind.json"
    rng, ids = random.Random(name), Ids(name)
    cart_lines = [6, 4, 7, 5, 8]
    traces, t0 = [], BASE_NS
    twice = ""
    for k in range(10):
        tr = Trace(ids, k)
        cart = k % 2 == 0
        if cart:
            n = cart_lines[k // 2]
            skus = [f"SKU-{1000 + 37 * (k + 1) + 11 * i}" for i in range(n)]
            if k == 4:
                skus[5] = twice = skus[1]  # the same product twice in one cart
            path = f"/cart/c-{2000 + k}"
        else:
            skus = [f"SKU-{1200 + 13 * k}"]
            path = f"/products/{skus[0]}"
        root = tr.add(
            None,
            "get",
            None,
            "storefront",
            t0,
            0,
            {
                "http.url": f"http://storefront:3000{path}",
                "http.path": path,
                "http.status_code": "200",
            },
        )
        t = t0 + int(jitter(rng, 0.8, 0.2) * MS)
        text = (
            "SELECT id, sku, qty FROM cart_line WHERE cart_id = ?"
            if cart
            else "SELECT id, sku, title, stock FROM product WHERE sku = ?"
        )
        db = tr.add(
            root,
            "query",
            "CLIENT",
            "storefront",
            t,
            t + int(jitter(rng, 1.8, 0.2) * MS),
            {
                "db.type": "sql",
                "db.instance": "storefront",
                "db.statement": text,
                "db.user": "storefront",
            },
            remote="mysql",
        )
        t = db.end + int(jitter(rng, 0.5, 0.2) * MS)
        for i, sku in enumerate(skus):
            dur = jitter(rng, 9, 0.25)
            failed = k == 6 and i == 0
            client = tr.add(
                root,
                "get",
                "CLIENT",
                "storefront",
                t,
                t + int(dur * MS),
                {
                    "http.method": "GET",
                    "http.url": f"http://pricing:8080/prices/{sku}",
                    "http.status_code": "503" if failed else "200",
                }
                | ({"error": "true"} if failed else {}),
                remote="pricing",
            )
            tr.add(
                client,
                "get /prices/{sku}",
                "SERVER",
                "pricing",
                client.start + 700 * US,
                client.end - 500 * US,
                {"http.method": "GET", "http.path": f"/prices/{sku}"}
                | ({"http.status_code": "503", "error": "503"} if failed else {}),
            )
            t = client.end + int(jitter(rng, 0.3, 0.3) * MS)
        root.end = t + int(jitter(rng, 1.5, 0.2) * MS)
        traces.append(tr)
        t0 += int(jitter(rng, 500, 0.4) * MS)
    spans = [zipkin_span(s, BRAVE_IP) for tr in traces for s in tr.spans]
    fx = Fixture(
        name,
        "zipkin",
        "zipkin-legacy",
        "Older tracer: request roots without a kind, N+1 to the pricing service",
        len(traces),
    )
    fx.patterns += [
        Pattern(
            "n_plus_one_http",
            "storefront",
            "/cart/{id}",
            "get",
            "GET pricing /prices/{sku}",
            [c for c in cart_lines if c >= N_PLUS_ONE_MIN],
            "the parent is a root with no kind (a request all the same: no parent, an "
            "`http.url`); the callee's route comes from pricing's span name",
        ),
        Pattern(
            "redundant",
            "storefront",
            "/cart/{id}",
            "get",
            f"GET http://pricing:8080/prices/{twice} (same URL twice)",
            [2],
            "request 5 (cart c-2004) holds the same product twice",
        ),
    ]
    fx.not_flagged += [
        "n_plus_one_http in the cart with 4 lines, and in /products/{sku} (one call each)",
        "slow_downstream for /products/{sku}: its one pricing call is most of the route, but "
        "about 9 ms a call, under the 20 ms floor (a thin route in front of its backend)",
        "n_plus_one_db: one cart_line / product query per request",
        "the 503 from pricing is an error, not a pattern",
    ]
    _write(fx, "[\n" + ",\n".join(compact(s) for s in spans) + "\n]\n", traces)
    fx.facts = "(no file: conventions of OpenTracing-era Zipkin tracers)"


# -- HotROD ---------------------------------------------------------------------------------

HOTROD_PROC = {
    svc: {"hostname": "hotrod-7d9f", "ip": "172.18.0.3", "jaeger.version": "Go-2.30.0"}
    for svc in ("frontend", "customer", "driver", "redis", "route")
}
CUSTOMERS = {123: "115,277", 392: "577,322", 731: "728,326", 567: "211,653"}


def hotrod_request(
    tr: Trace,
    rng: random.Random,
    k: int,
    t0: int,
    customer: int,
    sql_ms: float,
    waiting: int,
    errors: list[int],
) -> None:
    session = f"{4721 + k}-{k + 1}"
    loc = CUSTOMERS[customer]
    root = tr.add(
        None,
        "HTTP GET /dispatch",
        "SERVER",
        "frontend",
        t0,
        0,
        {
            "sampler.type": "const",
            "sampler.param": True,
            "http.method": "GET",
            "http.url": f"/dispatch?customer={customer}&nonse=0.{7310 + 97 * k}",
            "component": "net/http",
            "http.status_code": 200,
        },
    )
    # customer: one HTTP call, one MySQL query behind a one-connection "pool"
    t = t0 + 400 * US
    c_client = tr.add(
        root,
        "HTTP GET: /customer",
        "CLIENT",
        "frontend",
        t,
        0,
        {
            "component": "net/http",
            "http.method": "GET",
            "http.url": f"http://0.0.0.0:8081/customer?customer={customer}",
            "http.status_code": 200,
        },
    )
    c_server = tr.add(
        c_client,
        "HTTP GET /customer",
        "SERVER",
        "customer",
        t + 300 * US,
        0,
        {
            "http.method": "GET",
            "http.url": f"/customer?customer={customer}",
            "component": "net/http",
            "http.status_code": 200,
        },
    )
    s0 = c_server.start + 200 * US
    sql = tr.add(
        c_server,
        "SQL SELECT",
        "CLIENT",
        "customer",
        s0,
        s0 + int(sql_ms * MS),
        {
            "peer.service": "mysql",
            "request": session,
            "sql.query": f"SELECT * FROM customer WHERE customer_id={customer}",
        },
    )
    if waiting:
        sql.logs.append(
            (
                s0 + 50 * US,
                {
                    "event": f"Waiting for lock behind {waiting} transactions",
                    "blockers": f"[{4721 + k - 1}-{k}]",
                },
            )
        )
        sql.logs.append(
            (
                s0 + int((sql_ms - 300) * MS),
                {"event": "Acquired lock with 0 transactions waiting behind"},
            )
        )
    c_server.end = sql.end + 150 * US
    c_client.end = c_server.end + 250 * US
    # driver: FindNearest asks redis for ten drivers, then reads each (retrying timeouts)
    t = c_client.end + int(jitter(rng, 0.6, 0.3) * MS)
    d_client = tr.add(
        root, "/driver.DriverService/FindNearest", "CLIENT", "frontend", t, 0, {"component": "gRPC"}
    )
    d_server = tr.add(
        d_client,
        "/driver.DriverService/FindNearest",
        "SERVER",
        "driver",
        t + 400 * US,
        0,
        {"component": "gRPC"},
    )
    t = d_server.start + 300 * US
    find = tr.add(
        d_server,
        "FindDriverIDs",
        "CLIENT",
        "redis",
        t,
        t + int(jitter(rng, 20, 0.25) * MS),
        {"peer.service": "redis", "param.location": loc},
    )
    t = find.end + 100 * US
    drivers = [f"T7{(53_117 * (k + 1) * (i + 3)) % 100_000:05d}C" for i in range(10)]
    for driver in drivers:
        while True:
            failed = errors[0] == 0  # HotROD fails every 5th GetDriver
            errors[0] = 4 if failed else errors[0] - 1
            dur = jitter(rng, 10, 0.25) + (20 if failed else 0)
            get = tr.add(
                d_server,
                "GetDriver",
                "CLIENT",
                "redis",
                t,
                t + int(dur * MS),
                {"peer.service": "redis", "param.driverID": driver},
                error=failed,
            )
            if failed:
                get.logs.append(
                    (
                        get.end - 50 * US,
                        {"event": "error", "message": "redis timeout", "driver_id": driver},
                    )
                )
            t = get.end + 80 * US
            if not failed:
                break
    d_server.end = t + 200 * US
    d_client.end = d_server.end + 300 * US
    # route: one call per driver, three at a time (the worker pool)
    free = [d_client.end + int(jitter(rng, 0.5, 0.3) * MS)] * 3
    for i, _driver in enumerate(drivers):
        w = min(range(3), key=lambda j: free[j])
        start = free[w] + 60 * US
        dur = jitter(rng, 50, 0.25)
        pickup = f"{(311 * (k + 2) * (i + 1)) % 1000},{(577 * (i + 5)) % 1000}"
        query = f"dropoff={loc.replace(',', '%2C')}&pickup={pickup.replace(',', '%2C')}"
        r_client = tr.add(
            root,
            "HTTP GET: /route",
            "CLIENT",
            "frontend",
            start,
            start + int(dur * MS),
            {
                "component": "net/http",
                "http.method": "GET",
                "http.url": f"http://0.0.0.0:8083/route?{query}",
                "http.status_code": 200,
            },
        )
        tr.add(
            r_client,
            "HTTP GET /route",
            "SERVER",
            "route",
            start + 300 * US,
            r_client.end - 200 * US,
            {
                "http.method": "GET",
                "http.url": f"/route?{query}",
                "component": "net/http",
                "http.status_code": 200,
            },
        )
        free[w] = r_client.end
    root.end = max(free) + int(jitter(rng, 0.8, 0.3) * MS)


def write_hotrod() -> None:
    starts_ms = [0, 1400, 2600, 2650, 2700, 4300, 5600, 6900]
    customers = [123, 392, 731, 567, 123, 392, 731, 567]
    sql_ms = [257.3, 296.4, 311.8, 606.2, 902.5, 288.9, 322.1, 279.6]  # 3 and 4 queue on the mutex
    waiting = [0, 0, 0, 1, 2, 0, 0, 0]
    rng = random.Random("hotrod")
    ids = Ids("hotrod")
    errors = [3]  # calls until redis' simulated timeout, then every 5th call
    all_traces: list[Trace] = []
    for part in range(4):
        name = f"hotrod/dispatch-{part + 1}.json"
        traces = []
        for k in (2 * part, 2 * part + 1):
            tr = Trace(ids, k, 16)
            hotrod_request(
                tr, rng, k, BASE_NS + starts_ms[k] * MS, customers[k], sql_ms[k], waiting[k], errors
            )
            traces.append(tr)
        all_traces += traces
        doc = {
            "data": [jaeger_trace(t.spans, HOTROD_PROC) for t in traces],
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": None,
        }
        fx = Fixture(
            name, "jaeger", "hotrod", f"HotROD /dispatch, requests {2 * part + 1}–{2 * part + 2}", 2
        )
        fx.part_of = "hotrod/"
        _write(fx, compact(doc) + "\n", traces)
        fx.facts = "examples/hotrod/services/{frontend,customer,driver,route,config}"
    # the patterns are described once, for the whole directory
    whole = Fixture(
        "hotrod/", "jaeger", "hotrod", "HotROD: the four files together (8 /dispatch requests)", 8
    )
    whole.spans = sum(len(t.spans) for t in all_traces)
    whole.traces = len(all_traces)
    get_driver = [sum(1 for s in t.spans if s.name == "GetDriver") for t in all_traces]
    retries = [c - 10 for c in get_driver]
    whole.patterns += [
        Pattern(
            "n_plus_one_http",
            "frontend",
            "/dispatch",
            "HTTP GET /dispatch",
            "GET route /route (ids in the query string: pickup, dropoff)",
            [10] * 8,
            "three calls at a time (worker pool of 3): overlapping calls are still an N+1",
        ),
        Pattern(
            "n_plus_one_db",
            "driver",
            "/driver.DriverService/FindNearest",
            "/driver.DriverService/FindNearest",
            "redis GetDriver (param.driverID varies)",
            get_driver,
            f"ten drivers per request, plus {sum(retries)} retries after a simulated "
            "timeout (error=true); no statement: the shape is the operation and peer.service",
        ),
        Pattern(
            "slow_query",
            "customer",
            "/customer",
            "HTTP GET /customer",
            "SELECT * FROM customer WHERE customer_id=?",
            [1] * 8,
            "257 ms in the first request, ~300 ms typical, 606 and 903 ms when queued behind "
            "HotROD's one-connection mutex; > 95% of the customer route's time, so "
            "correlate's own slow-query rule (≥ 50%, median ≥ 20 ms) holds once the "
            "statement is read",
        ),
        Pattern(
            "slow_downstream",
            "frontend",
            "/dispatch",
            "HTTP GET /dispatch",
            "GET customer /customer",
            [1] * 8,
            "the one customer call is about half of each /dispatch (its server side is the "
            "slow MySQL query, which the slow_query finding names as the cause); the /route "
            "calls take longer together but are the N+1's, not a slow downstream",
        ),
    ]
    whole.not_flagged += [
        "redundant: a GetDriver repeated with the same driverID follows a failed attempt "
        "(error=true): a retry, not a redundant call",
        f"fan_out: /dispatch has 12 direct CLIENT children, FindNearest at most "
        f"{max(get_driver) + 1} (≤ {FAN_OUT_MAX})",
        "n_plus_one_http for /customer and FindNearest: one call each",
    ]
    FIXTURES.append(whole)
    whole.facts = "examples/hotrod/services/{frontend,customer,driver,route,config}"


# -- provenance and EXPECTED.md -------------------------------------------------------------

SOURCES: dict[str, dict[str, str]] = {
    "perf-sentinel": {
        "project": "perf-sentinel (robintra/perf-sentinel)",
        "url": PERF_SENTINEL,
        "facts": (
            "Its `tests/fixtures/` N+1 files are one trace each in its own event format: "
            "6 SQL events 50 ms apart (800/750/900/820/700/850 µs) `SELECT * FROM order_item "
            "WHERE order_id = 1..6` under endpoint `POST /api/orders/42/submit`, service "
            "`order-svc`, with per-stack `code.*` attributes (JPA: `OrderItemRepository."
            "findByOrderId`, `JpaRepository`; Quarkus: `SessionImpl`; EF Core: `DbSet`; Laravel: "
            "`App\\Models\\Order::items`, scopes `io.opentelemetry.contrib.php.pdo`/`.laravel`; "
            "Diesel: `FilterDsl`). The Mutiny file: 15 events 30 ms apart of `SELECT count(*) "
            "FROM mutiny.order_items WHERE order_id = ?` under one parent, service `mutiny-svc`, "
            "`POST /api/fault/n-plus-one-sql`, scopes `io.opentelemetry.jdbc`/"
            "`io.quarkus.opentelemetry`. `n_plus_one_http.json`: 6 calls `GET "
            "http://account-svc:5000/api/account/101..106` (10–14 ms, two starting together) "
            "under `POST /api/game/42/start`. `fanout.json`: 25 children `SELECT * FROM player "
            "WHERE game_id = N`, 10 ms apart, under one span. `clean_traces.json`: `GET "
            "/api/users/1` (2 selects) and `POST /api/orders` (a payment status call and an "
            "INSERT). Thresholds from `docs/design/04-DETECTION.md`: N+1 ≥ 5 occurrences with ≥ 5 "
            "distinct parameter sets within 500 ms; redundant ≥ 2 identical; fan-out > 20 "
            "children (critical > 60). Expected results from `crates/sentinel-cli/tests/e2e/"
            "analyze.rs`: one `n_plus_one_sql` finding per stack file."
        ),
    },
    "zipkin-simple-db": {
        "project": "Zipkin (openzipkin/zipkin)",
        "url": f"{ZIPKIN}/blob/master/zipkin-lens/testdata/simple-db-p6.json",
        "facts": (
            "`zipkin-lens/testdata/simple-db-p6.json`: a Brave + p6spy trace, a 64-bit trace id, "
            "SERVER root `http:/book` (252 ms) with tags `http.host`, `http.method`, `http.path`, "
            "`http.url`, `mvc.controller.class`, `mvc.controller.method` and no status code; "
            "four CLIENT children named by the statement's first word (`call`, `insert`) with "
            "remoteEndpoint `app_db` and the statement, values inlined, in the tag `sql.query` "
            "(`call next value for hibernate_sequence`, inserts into `api_book`, `revinfo`, "
            "`api_book_aud`); children listed before the root."
        ),
    },
    "zipkin-legacy": {
        "project": "OpenTracing-era Zipkin tracers (conventions, no single file)",
        "url": "https://github.com/opentracing/specification/blob/master/semantic_conventions.md",
        "facts": (
            "OpenTracing's span tags: `db.type`, `db.instance`, `db.statement`, `db.user`, "
            "`http.url`, `http.method`, `http.status_code`, `peer.service`, `error`; Zipkin v2 "
            "tags are strings, and a span with no `kind` is local."
        ),
    },
    "hotrod": {
        "project": "Jaeger HotROD demo (jaegertracing/jaeger)",
        "url": f"{JAEGER}/tree/main/examples/hotrod",
        "facts": (
            "`examples/hotrod/services/customer/database.go`: CLIENT span `SQL SELECT` with "
            "`peer.service=mysql` and `sql.query=SELECT * FROM customer WHERE customer_id=N`, a "
            "mutex simulating a one-connection pool (logs `Waiting for lock behind N "
            "transactions`); `config/config.go`: MySQL 300 ms ± 30, redis FindDriverIDs 20 ms, "
            "GetDriver 10 ms, route 50 ms, route worker pool 3; `driver/redis.go`: "
            "`FindDriverIDs` (`param.location`) returns 10 drivers, `GetDriver` "
            "(`param.driverID`) fails with `redis timeout` (error=true) every 5th call; "
            "`frontend/best_eta.go`: customer, then driver FindNearest, then one route call per "
            "driver through the pool. Jaeger JSON as its UI and query API give it (`span.kind`, "
            "`error` in tags, 64-bit trace ids from jaeger-client-go, `http.status_code` int64)."
        ),
    },
}


def expected_json() -> dict[str, Any]:
    files = []
    for fx in FIXTURES:
        files.append(
            {
                "file": fx.path,
                "format": fx.format,
                "title": fx.title,
                "source": fx.source,
                "follows": fx.facts,
                "follows_url": facts_url(fx),
                "part_of": fx.part_of or None,
                "spans": fx.spans,
                "traces": fx.traces,
                "requests": fx.requests,
                "patterns": [
                    {
                        "kind": p.kind,
                        "service": p.service,
                        "route": p.route,
                        "parent": p.parent,
                        "shape": p.shape,
                        "calls_per_request": p.calls_per_request,
                        "requests": p.requests,
                        "note": p.note,
                    }
                    for p in fx.patterns
                ],
                "not_flagged": fx.not_flagged,
                "may_also_report": fx.also,
                "today": TODAY.get(fx.path, []),
            }
        )
    return {
        "thresholds": {"n_plus_one_min": N_PLUS_ONE_MIN, "fan_out_max": FAN_OUT_MAX},
        "sources": SOURCES,
        "files": files,
    }


NO_N1_UNION = (
    "no N+1 finding: correlate's N+1 rule (Sentry's) also wants the repeated statements' "
    "union ≥ 50 ms, and perf-sentinel's statements add up to {} ms per request"
)

#: What correlate (before the issue) makes of each file, checked with `correlate ingest`,
#: `correlate sql` and `correlate report`.
TODAY: dict[str, list[str]] = {
    "perf-sentinel/java-jpa-n-plus-one.jsonl": [
        NO_N1_UNION.format("3–7"),
        "and even with slower statements: each one's parent is its own Spring Data span, so "
        "grouping by direct parent sees 1 call per parent",
    ],
    "perf-sentinel/java-quarkus-n-plus-one.jsonl": [NO_N1_UNION.format("3–7")],
    "perf-sentinel/java-mutiny-n-plus-one.jsonl": [
        NO_N1_UNION.format("about 2.4"),
        "`db.query.text` / `db.system.name` / `db.namespace` are mapped (new semconv): fine",
    ],
    "perf-sentinel/csharp-efcore-n-plus-one.jsonl": [
        NO_N1_UNION.format("3–7"),
        "reports unexplained_time instead (10 requests, the 50 ms gaps)",
        "`@__orderId_0` / `@p0` are not read as placeholders: normalised to `@ __orderid_0`, "
        "`@ p0` (the shape still groups, because the name is the same on every call)",
        "`[Status] = 0` becomes `$1` while `@p0` stays: two placeholder styles in one shape",
    ],
    "perf-sentinel/php-laravel-n-plus-one.jsonl": [
        NO_N1_UNION.format("3–7"),
        "reports unexplained_time instead (10 requests, the 50 ms gaps)",
        "literal ids are fingerprinted to one shape (`… order_id = $1 AND NOT … IS NULL`): fine",
    ],
    "perf-sentinel/rust-diesel-n-plus-one.jsonl": [
        NO_N1_UNION.format("3–7"),
        "the axum route keeps its `:order_id` syntax (no `{}`): shown as is",
    ],
    "perf-sentinel/http-n-plus-one.jsonl": [
        "no HTTP N+1 detector; the CLIENT spans' URL is only in `url.full`, which no column "
        "holds (`url_path` is NULL on them); the template is the callee's `http.route`",
        "account-svc's 45 calls show as a route of their own (`account-svc /api/account/{id}`)",
    ],
    "perf-sentinel/fan-out.jsonl": [
        "no fan-out detector",
        NO_N1_UNION.format("15–25") + " under one parent",
    ],
    "perf-sentinel/clean.jsonl": ["nothing reported: correct"],
    "zipkin/simple-db.json": [
        "`sql.query` is not mapped: no `db_statement`, no `db_system`, no fingerprint, an "
        "empty query table; the DB time counts as downstream (CLIENT spans)",
        "`http.path` and `http.url` are not mapped to `url_path`; the route is the span name "
        "`http:/book` (right here only because the path has no id)",
        "`remoteEndpoint` `app_db` lands in `peer.service` only",
    ],
    "zipkin/books-n-plus-one.json": [
        "routes explode: the span name carries the author id and nothing carries a route, so "
        "each request is its own route (`http:/authors/42/books`, … 10 routes of 1 request)",
        "`sql.query` is not mapped: neither the N+1 nor the redundant read can be seen",
    ],
    "zipkin/legacy-no-kind.json": [
        "roots without a kind are stored as INTERNAL, so the storefront's 10 requests are not "
        "requests at all: the only routes are pricing's (`get /prices/{sku}`, 35 requests)",
        "`db.type=sql` is not mapped to `db_system`, nor `db.instance` to `db_namespace`",
        "`http.url` is not mapped (`url_path` NULL); the string `http.status_code` is read "
        "as a number (fine), `error=true` gives ERROR (fine)",
    ],
    "hotrod/": [
        "`sql.query` is not mapped: the 257–903 ms MySQL query has no statement, no "
        "fingerprint, and counts as downstream time of `customer HTTP GET /customer`, so no "
        "slow-query finding",
        "`http.url` (a path with its query string, or a full URL on clients) is not mapped to "
        "`url_path`; with no `http.route`, routes are span names (`frontend HTTP GET "
        "/dispatch`, `route HTTP GET /route`: fine for HotROD's fixed paths)",
        "`span.kind` in tags, `error=true`, int64 `http.status_code` and 64-bit trace ids "
        "(left-padded) are read correctly",
        "redis spans have no `db.system`: not database time",
    ],
}
for _stack in (
    "java-jpa",
    "java-quarkus",
    "java-mutiny",
    "csharp-efcore",
    "php-laravel",
    "rust-diesel",
):
    TODAY[f"perf-sentinel/{_stack}-clean.jsonl"] = ["nothing reported: correct"]
TODAY["zipkin/simple-db.json"].insert(
    0, "nothing reported (correct, but only because no statement is seen)"
)


def facts_url(fx: Fixture) -> str:
    """Where the facts a fixture follows can be read."""
    repo = {"perf-sentinel": PERF_SENTINEL, "zipkin-simple-db": ZIPKIN, "hotrod": JAEGER}
    if fx.source not in repo:
        return SOURCES[fx.source]["url"]
    if fx.source == "hotrod":
        return f"{JAEGER}/tree/HEAD/examples/hotrod/services"
    return f"{repo[fx.source]}/blob/HEAD/{fx.facts}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def expected_md() -> str:
    out = [
        "# Peer fixtures: what a detector should find",
        "",
        "Written by `tests/helpers/make_peer_fixtures.py` (with `expected.json`, the same "
        "content for programs); regenerate with `python tests/helpers/make_peer_fixtures.py`. "
        "Each file is a small load test re-created from the facts of another tool's public "
        "fixtures or demo (span names, attribute keys, statements, counts, timings); no file or "
        "code was copied from them.",
        "",
        f"Thresholds assumed: an N+1 is ≥ {N_PLUS_ONE_MIN} calls of one shape with varying "
        "(or bound, invisible) parameters under one parent in one request; redundant is the "
        "same statement with the same literal parameters, or the same URL, twice or more in "
        f"one request; fan-out is more than {FAN_OUT_MAX} direct children of one span "
        "(perf-sentinel's defaults). *Requests* counts the requests that show the pattern; "
        "*calls* lists the calls in each of them.",
        "",
        "Kinds: `n_plus_one_db`, `n_plus_one_http`, `redundant`, `fan_out`, `slow_query`, "
        "`slow_downstream`; a file without patterns must give nothing. "
        "`tests/test_repeated.py` (`test_peer_fixture_patterns`) checks every pattern against "
        "correlate's detectors: each found once, on its route, under its parent, with its "
        "shape, requests and calls, and nothing else.",
        "",
    ]
    for fx in FIXTURES:
        if fx.part_of:
            continue
        src = SOURCES[fx.source]["project"]
        out += [
            f"## `{fx.path}`",
            "",
            f"{fx.title}. Format `{fx.format}`; {fx.spans} spans, "
            f"{fx.traces} traces, {fx.requests} requests. Follows {src}: "
            f"[`{fx.facts}`]({facts_url(fx)}).",
            "",
        ]
        parts = [p for p in FIXTURES if p.part_of == fx.path]
        if parts:
            out += [
                "Ingest the directory; its files (one query-API download of two traces each):",
                "",
            ]
            out += [f"- `{p.path}`: {p.title.split(', ')[-1]}, {p.spans} spans" for p in parts]
            out.append("")
        if fx.patterns:
            out += [
                "| kind | service / route | parent span | shape | requests | calls |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for p in fx.patterns:
                out.append(
                    f"| `{p.kind}` | {p.service} `{p.route}` | `{p.parent}` | "
                    f"`{_md_escape(p.shape)}` | {p.requests} | "
                    f"{', '.join(map(str, p.calls_per_request))} |"
                )
            out.append("")
            notes = [f"- {p.kind}: {p.note}" for p in fx.patterns if p.note]
            out += [*notes, ""] if notes else []
        else:
            out.append("**Expected: nothing.**")
        out += ["", "Must not be flagged:", ""] if not fx.patterns else ["Must not be flagged:", ""]
        out += [f"- {t}" for t in fx.not_flagged]
        if fx.also:
            out += ["", "May also be reported (other detectors, rightly):", ""]
            out += [f"- {t}" for t in fx.also]
        if TODAY.get(fx.path):
            out += ["", "What correlate did when the fixture was written:", ""]
            out += [f"- {t}" for t in TODAY[fx.path]]
        out.append("")
    out += ["## Provenance", ""]
    for src in SOURCES.values():
        out += [f"### {src['project']}", "", f"<{src['url']}>", "", src["facts"], ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    for stack in stacks():
        write_stack(stack)
    write_http_n_plus_one()
    write_fan_out()
    write_clean()
    write_zipkin_simple_db()
    write_zipkin_books()
    write_zipkin_legacy()
    write_hotrod()
    (OUT / "expected.json").write_text(
        json.dumps(expected_json(), indent=2, ensure_ascii=False) + "\n"
    )
    (OUT / "EXPECTED.md").write_text(expected_md())
    for fx in FIXTURES:
        if not fx.path.endswith("/"):
            size = (OUT / fx.path).stat().st_size
            print(f"{fx.path:45} {fx.spans:5} spans {size / 1024:6.1f} KB")


if __name__ == "__main__":
    main()
